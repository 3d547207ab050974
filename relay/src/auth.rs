//! Authentication at the upgrade: the JWT from `?token=` or
//! `Authorization: Bearer`, verified before any WebSocket handshake.
//!
//! HS256 with a shared secret, RS256 or ES256 with a PEM public key (the key's
//! type decides: an RSA key means RS256, an EC P-256 key ES256). A token is
//! checked against the key of the algorithm its header names, and only if that
//! algorithm is configured: `alg: none` and every other algorithm are refused.
//! `exp` is required, with 60 s of leeway.

use std::fmt;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::metrics::Rejection;
use squall_proto::wire::Claims;

/// Clock leeway for `exp`, in seconds.
pub const LEEWAY_S: u64 = 60;

/// Who may connect. `Default` (no keys) is an open relay.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// One decoding key per accepted algorithm; empty means no authentication.
    keys: Vec<(Algorithm, DecodingKey)>,
    /// A role every token must carry (`--require-role`), else HTTP 403.
    pub require_role: Option<String>,
}

/// A public key file that is neither a PEM RSA nor a PEM EC (P-256) key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a PEM RSA or EC public key")]
pub struct KeyError;

/// An authenticated (or anonymous) user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `sub` claim; `None` on an open relay.
    pub sub: Option<String>,
}

/// Why an upgrade was refused: the HTTP status, a one-line reason and the
/// metrics label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401 or 403.
    pub status: u16,
    /// The one-line body of the answer.
    pub reason: String,
    /// The `reason` label of the rejected-connections counter.
    pub kind: Rejection,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<_> = self.keys.iter().map(|(alg, _)| *alg).collect();
        f.debug_struct("AuthConfig")
            .field("algorithms", &algs)
            .field("require_role", &self.require_role)
            .finish()
    }
}

impl AuthConfig {
    /// An open relay: every upgrade is accepted.
    pub fn open() -> Self {
        Self::default()
    }

    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::default().with_hs256(secret)
    }

    /// Also accepts HS256 tokens signed with `secret`.
    pub fn with_hs256(mut self, secret: &[u8]) -> Self {
        self.keys
            .push((Algorithm::HS256, DecodingKey::from_secret(secret)));
        self
    }

    /// Also accepts tokens signed by the private half of a PEM public key:
    /// RS256 for an RSA key, ES256 for an EC (P-256) key.
    pub fn with_public_key_pem(mut self, pem: &[u8]) -> Result<Self, KeyError> {
        let key = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            (Algorithm::ES256, key)
        } else {
            return Err(KeyError);
        };
        self.keys.push(key);
        Ok(self)
    }

    /// Requires `role` in every token's `roles`.
    pub fn with_required_role(mut self, role: impl Into<String>) -> Self {
        self.require_role = Some(role.into());
        self
    }

    /// True when no key is configured: anyone may connect.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the token of one upgrade request.
    pub fn verify(&self, token: Option<&str>) -> Result<Identity, Refusal> {
        if self.is_open() {
            return Ok(Identity { sub: None });
        }
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized(Rejection::MissingToken, "missing token"))?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            if header_alg(token).is_some_and(|alg| alg.eq_ignore_ascii_case("none")) {
                unauthorized(Rejection::WrongAlgorithm, "alg none is refused")
            } else {
                unauthorized(
                    Rejection::Malformed,
                    &format!("malformed token: {}", in_words(e.kind())),
                )
            }
        })?;
        let (alg, key) = self
            .keys
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .ok_or_else(|| {
                unauthorized(
                    Rejection::WrongAlgorithm,
                    &format!("algorithm {:?} is not accepted", header.alg),
                )
            })?;
        let mut validation = Validation::new(*alg);
        validation.leeway = LEEWAY_S;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| refusal_for(e.kind()))?
            .claims;
        if let Some(role) = &self.require_role
            && !claims.roles.iter().any(|r| r == role)
        {
            return Err(Refusal {
                status: 403,
                reason: format!("role {role:?} required"),
                kind: Rejection::Forbidden,
            });
        }
        Ok(Identity {
            sub: Some(claims.sub),
        })
    }
}

/// The token's header `alg`, read leniently (only to name `none` in the reason).
fn header_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_string)
}

fn unauthorized(kind: Rejection, reason: &str) -> Refusal {
    Refusal {
        status: 401,
        reason: reason.to_string(),
        kind,
    }
}

fn refusal_for(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::ExpiredSignature => unauthorized(Rejection::Expired, "token expired"),
        ErrorKind::InvalidSignature => unauthorized(Rejection::BadSignature, "bad signature"),
        ErrorKind::InvalidAlgorithm => {
            unauthorized(Rejection::WrongAlgorithm, "algorithm not accepted")
        }
        ErrorKind::MissingRequiredClaim(c) => {
            unauthorized(Rejection::Malformed, &format!("missing claim {c:?}"))
        }
        other => unauthorized(
            Rejection::Malformed,
            &format!("invalid token: {}", in_words(other)),
        ),
    }
}

/// What is wrong with a token, in words a client's author can act on (never
/// a parser's debug output).
fn in_words(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidToken => "not three base64url parts separated by dots".into(),
        ErrorKind::Base64(_) => "a part is not base64url".into(),
        ErrorKind::Utf8(_) => "a part is not UTF-8".into(),
        ErrorKind::Json(e) => {
            // serde says "missing field `exp` at line 1 column 20": keep the words.
            let text = e.to_string();
            let words = text.split(" at line ").next().unwrap_or(&text);
            format!("its JSON does not fit ({words})")
        }
        ErrorKind::ImmatureSignature => "not valid yet (nbf is in the future)".into(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".into(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".into(),
        ErrorKind::InvalidSubject => "wrong subject (sub)".into(),
        ErrorKind::ExpiredSignature => "expired".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "algorithm not accepted".into()
        }
        ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c:?}"),
        _ => "not a valid JWT".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(secret: &[u8], exp: u64, roles: &[&str]) -> String {
        let claims = Claims {
            sub: "alice".into(),
            exp,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        };
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn refusals_say_what_is_wrong_in_words_not_parser_internals() {
        let auth = AuthConfig::hs256(b"s3cret");
        let no_exp = encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "alice"}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        for token in [no_exp.as_str(), "abc", "a.b.c"] {
            let refusal = auth.verify(Some(token)).unwrap_err();
            assert_eq!(refusal.status, 401);
            assert!(
                !refusal.reason.contains("Json(") && !refusal.reason.contains("Error("),
                "{}",
                refusal.reason
            );
        }
        let refusal = auth.verify(Some(&no_exp)).unwrap_err();
        assert!(refusal.reason.contains("exp"), "{}", refusal.reason);
    }

    #[test]
    fn accepts_valid_and_refuses_each_failure_with_its_label() {
        let auth = AuthConfig::hs256(b"s3cret").with_required_role("pub");
        let ok = auth
            .verify(Some(&token(b"s3cret", now() + 60, &["pub"])))
            .unwrap();
        assert_eq!(ok.sub.as_deref(), Some("alice"));
        // Inside the leeway still passes.
        assert!(
            auth.verify(Some(&token(b"s3cret", now() - 30, &["pub"])))
                .is_ok()
        );
        let kind = |t: Option<&str>| auth.verify(t).unwrap_err().kind;
        assert_eq!(kind(None), Rejection::MissingToken);
        assert_eq!(kind(Some("abc")), Rejection::Malformed);
        assert_eq!(
            kind(Some(&token(b"other", now() + 60, &["pub"]))),
            Rejection::BadSignature
        );
        assert_eq!(
            kind(Some(&token(b"s3cret", now() - 600, &["pub"]))),
            Rejection::Expired
        );
        assert_eq!(
            kind(Some(&token(b"s3cret", now() + 60, &[]))),
            Rejection::Forbidden
        );
        assert_eq!(
            auth.verify(Some(&token(b"s3cret", now() + 60, &[])))
                .unwrap_err()
                .status,
            403
        );
        let none =
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.";
        let refusal = auth.verify(Some(none)).unwrap_err();
        assert_eq!(
            (refusal.kind, refusal.reason.as_str()),
            (Rejection::WrongAlgorithm, "alg none is refused")
        );
    }
}
