//! `badauth`: upgrades with a missing, expired, wrongly signed, unsigned
//! (`alg: none`), oversized or malformed token. Each must get HTTP 401 (the
//! oversized one may get 431 instead: a request head over the server's limit
//! is refused before the token is read, which is as good); anything else (an
//! upgrade, another status, a reset, silence) is reported.

use super::FaultContext;
use crate::report::{Check, Findings};
use crate::tokens::{alg_none, expired_claims, sign_hs256};
use crate::ws::{ConnectError, connect};
use squall_proto::wire::Claims;
use std::sync::Arc;
use std::time::Duration;

/// Every case, in the order they run.
pub const CASES: &[&str] = &[
    "missing",
    "expired",
    "wrong_signature",
    "alg_none",
    "oversized",
    "malformed",
];

/// The secret the wrong signatures are made with.
const WRONG_SECRET: &str = "squall-chaos-wrong-secret";
/// The oversized token's `roles` claim, in bytes.
const OVERSIZED_ROLES: usize = 16 * 1024;
/// How long the server has to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// The token a case sends, and a note when the case had to be weakened.
fn token(case: &str, secret: Option<&str>) -> (Option<String>, Option<&'static str>) {
    let sub = "squall-chaos-badauth";
    let signing = secret.unwrap_or(WRONG_SECRET);
    let unsigned_note = secret
        .is_none()
        .then_some("no secret known: signed with a wrong key too");
    match case {
        "missing" => (None, None),
        "expired" => (
            Some(sign_hs256(
                signing,
                &expired_claims(sub, Duration::from_secs(3600)),
            )),
            unsigned_note,
        ),
        "wrong_signature" => (Some(sign_hs256(WRONG_SECRET, &valid_claims(sub))), None),
        "alg_none" => (Some(alg_none(sub)), None),
        "oversized" => {
            let mut claims = valid_claims(sub);
            claims.roles = vec!["r".repeat(OVERSIZED_ROLES)];
            (Some(sign_hs256(signing, &claims)), unsigned_note)
        }
        "malformed" => (Some("not.a.jwt".to_string()), None),
        other => unreachable!("unknown badauth case {other}"),
    }
}

fn valid_claims(sub: &str) -> Claims {
    let mut claims = expired_claims(sub, Duration::ZERO);
    claims.exp += 3600;
    claims
}

/// Runs `count` rounds of the step's cases (all when it names none).
pub async fn run(ctx: Arc<FaultContext>) -> Findings {
    let mut checks = Vec::new();
    let mut notes = Vec::new();
    for _ in 0..ctx.step.count {
        for case in CASES
            .iter()
            .filter(|c| ctx.step.cases.is_empty() || ctx.step.cases.iter().any(|s| s == *c))
        {
            let (token, note) = token(case, ctx.target.jwt_secret.as_deref());
            if let Some(note) = note
                && !notes.contains(&format!("{case}: {note}"))
            {
                notes.push(format!("{case}: {note}"));
            }
            let mut options = ctx.options(0);
            options.token = token;
            options.timeout = ANSWER_WAIT;
            let seen = match connect(&ctx.endpoint, &options).await {
                Ok(ws) => {
                    let _ = ws.reset();
                    "http 101 (upgraded)".to_string()
                }
                Err(ConnectError::Status(code)) => format!("http {code}"),
                Err(e) => e.kind(),
            };
            let (expected, passed) = match *case {
                "oversized" => ("http 401 or 431", seen == "http 401" || seen == "http 431"),
                _ => ("http 401", seen == "http 401"),
            };
            checks.push(Check {
                case: case.to_string(),
                expected: expected.into(),
                passed,
                seen,
            });
            ctx.progress.done();
        }
    }
    Findings {
        checks,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        ..Findings::default()
    }
}
