//! JWT minting: one token per connection, signed just before it connects.

use crate::plan::{JwtAuth, JwtKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

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
    /// Loads the key; fails on a PEM that does not parse.
    pub fn new(auth: &JwtAuth) -> Result<Self, String> {
        let (alg, key) = match &auth.key {
            JwtKey::HS256(secret) => (
                Algorithm::HS256,
                EncodingKey::from_secret(secret.as_bytes()),
            ),
            JwtKey::RS256(pem) => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| format!("RS256 key: {e}"))?,
            ),
            JwtKey::ES256(pem) => (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| format!("ES256 key: {e}"))?,
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
    pub fn mint(&self, conn: u64) -> Result<String, String> {
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
        jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(|e| format!("JWT: {e}"))
    }
}
