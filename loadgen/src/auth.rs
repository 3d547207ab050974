//! JWT minting: one token per connection, signed just before it connects.

use crate::plan::{JwtAuth, JwtKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Why a key could not be loaded or a token not be signed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The PEM of an RS256 or ES256 key does not parse.
    #[error("{alg} key: {source}")]
    Key {
        /// `"RS256"` or `"ES256"`.
        alg: &'static str,
        /// What jsonwebtoken said.
        source: jsonwebtoken::errors::Error,
    },
    /// Signing a token failed.
    #[error("JWT: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// Signs tokens for one plan's connections.
pub struct Minter {
    key: EncodingKey,
    header: Header,
    sub_pattern: String,
    roles: Vec<String>,
    extra: serde_json::Map<String, serde_json::Value>,
    ttl_s: u64,
}

impl Minter {
    /// Loads the key; fails on a PEM that does not parse (and signs one
    /// token to be sure the key works).
    pub fn new(auth: &JwtAuth) -> Result<Self, AuthError> {
        let (alg, key) = match &auth.key {
            JwtKey::HS256(secret) => (
                Algorithm::HS256,
                EncodingKey::from_secret(secret.as_bytes()),
            ),
            JwtKey::RS256(pem) => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|source| AuthError::Key {
                    alg: "RS256",
                    source,
                })?,
            ),
            JwtKey::ES256(pem) => (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|source| AuthError::Key {
                    alg: "ES256",
                    source,
                })?,
            ),
        };
        let minter = Self {
            key,
            header: Header::new(alg),
            sub_pattern: auth.sub_pattern.clone(),
            roles: auth.roles.clone(),
            extra: auth.extra_claims.clone(),
            ttl_s: auth.ttl.as_secs().max(1),
        };
        minter.mint(0)?;
        Ok(minter)
    }

    /// A token for global connection number `conn`.
    pub fn mint(&self, conn: u64) -> Result<String, AuthError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = self.extra.clone();
        claims.insert(
            "sub".into(),
            self.sub_pattern.replace("{conn}", &conn.to_string()).into(),
        );
        claims.insert("exp".into(), (now + self.ttl_s).into());
        claims.insert("iat".into(), now.into());
        if !self.roles.is_empty() {
            claims.insert("roles".into(), self.roles.clone().into());
        }
        jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(AuthError::Sign)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Placement;
    use jsonwebtoken::{DecodingKey, Validation};
    use std::time::Duration;

    #[test]
    fn tokens_carry_sub_roles_extra_claims_and_expiry() {
        let mut extra = serde_json::Map::new();
        extra.insert("tenant".into(), "acme".into());
        extra.insert("sub".into(), "cannot-override".into());
        let minter = Minter::new(&JwtAuth {
            key: JwtKey::HS256("k".into()),
            placement: Placement::Query,
            sub_pattern: "bot-{conn}".into(),
            roles: vec!["a".into(), "b".into()],
            extra_claims: extra,
            ttl: Duration::from_secs(120),
        })
        .unwrap();
        let token = minter.mint(42).unwrap();
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"k"),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], "bot-42");
        assert_eq!(claims["tenant"], "acme");
        assert_eq!(claims["roles"], serde_json::json!(["a", "b"]));
        let ttl = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(ttl, 120);
        assert!(
            Minter::new(&JwtAuth {
                key: JwtKey::RS256("not a pem".into()),
                ..serde_json::from_value::<JwtAuth>(serde_json::json!({
                    "key": {"alg": "HS256", "key": "x"}, "placement": "header",
                    "sub_pattern": "u", "roles": [], "extra_claims": {},
                    "ttl": {"secs": 1, "nanos": 0}
                }))
                .unwrap()
            })
            .is_err()
        );
    }
}
