//! `[auth]` resolved: the engine's JWT minting settings, and the flags that
//! make the builtin relay accept what squall mints.

use super::raw::{AuthKind, Placement, RawScenario};
use super::source::{ScenarioError, Source};
use crate::target::{TargetSettings, TargetSpec};
use squall_loadgen::plan as lp;
use std::path::{Path, PathBuf};

/// How the load's sockets authenticate.
pub fn auth(source: &Source, raw: &RawScenario) -> Result<lp::Auth, ScenarioError> {
    let a = &raw.auth;
    let err = |key: &str, message: String| source.error(key, message);
    if a.kind == AuthKind::None {
        return Ok(lp::Auth::None);
    }
    let pem = |key: &str| -> Result<String, ScenarioError> {
        let path = a.key_file.as_ref().ok_or_else(|| {
            err(
                key,
                format!("{} needs key_file (a PEM private key)", a.algorithm),
            )
        })?;
        let path = beside(source, path);
        std::fs::read_to_string(&path)
            .map_err(|e| err("auth.key_file", format!("{}: {e}", path.display())))
    };
    let key = match a.algorithm.as_str() {
        "HS256" => {
            if a.key_file.is_some() {
                return Err(err(
                    "auth.key_file",
                    "HS256 signs with a secret, not a key file".into(),
                ));
            }
            let secret = match (&a.secret, &a.secret_env) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        "auth.secret_env",
                        "set `secret` or `secret_env`, not both".into(),
                    ));
                }
                (Some(s), None) => s.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    err(
                        "auth.secret_env",
                        format!("the environment variable {var} is not set"),
                    )
                })?,
                (None, None) => "dev-secret".to_string(),
            };
            lp::JwtKey::HS256(secret)
        }
        "RS256" => lp::JwtKey::RS256(pem("auth.algorithm")?),
        "ES256" => lp::JwtKey::ES256(pem("auth.algorithm")?),
        other => {
            return Err(err(
                "auth.algorithm",
                format!("{other:?}: use HS256, RS256 or ES256"),
            ));
        }
    };
    let mut extra = serde_json::Map::new();
    for (k, v) in &a.claims {
        if k == "sub" || k == "exp" {
            return Err(err(
                &format!("auth.claims.{k}"),
                "`sub` and `exp` are set by squall".into(),
            ));
        }
        let v =
            serde_json::to_value(v).map_err(|e| err(&format!("auth.claims.{k}"), e.to_string()))?;
        extra.insert(k.clone(), v);
    }
    Ok(lp::Auth::Jwt(lp::JwtAuth {
        key,
        placement: match a.placement {
            Placement::Query => lp::Placement::Query,
            Placement::Header => lp::Placement::Header,
        },
        sub_pattern: a.sub.clone(),
        roles: a.roles.clone(),
        extra_claims: extra,
        ttl: a.ttl.0,
    }))
}

/// The builtin relay must accept the tokens squall mints: same secret or key.
pub fn with_relay_auth(
    source: &Source,
    raw: &RawScenario,
    mut t: TargetSettings,
) -> Result<TargetSettings, ScenarioError> {
    let TargetSpec::Builtin { relay_args, .. } = &mut t.spec else {
        return Ok(t);
    };
    let a = &raw.auth;
    let mut flags = Vec::new();
    match (a.kind, a.algorithm.as_str()) {
        (AuthKind::None, _) => flags.push("--no-auth".to_string()),
        (AuthKind::Jwt, "HS256") => {
            let secret = match (&a.secret, &a.secret_env) {
                (Some(s), _) => s.clone(),
                (None, Some(var)) => std::env::var(var).unwrap_or_default(),
                (None, None) => "dev-secret".to_string(),
            };
            flags.extend(["--jwt-secret".to_string(), secret]);
        }
        (AuthKind::Jwt, _) => {
            let key = a.public_key_file.as_ref().ok_or_else(|| {
                source.error(
                    "auth.public_key_file",
                    "the builtin relay needs the public key of key_file".to_string(),
                )
            })?;
            let key = beside(source, key);
            flags.extend(["--jwt-public-key".to_string(), key.display().to_string()]);
        }
    }
    flags.append(relay_args);
    *relay_args = flags;
    Ok(t)
}

/// A path from the scenario file, relative to the file's own directory.
pub(crate) fn beside(source: &Source, path: &Path) -> PathBuf {
    match source.path.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}
