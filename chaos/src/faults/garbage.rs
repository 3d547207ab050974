//! `garbage`: protocol violations, one fresh authenticated socket per case,
//! `count` rounds of every case. Each answer is judged by what RFC 6455
//! allows for that violation, not by what squall's own relay happens to
//! answer (issue 8: fair to servers that are not ours):
//!
//! | case | violates | conformant answers |
//! |---|---|---|
//! | `unmasked` | 5.1: client frames MUST be masked | close 1002, or the connection closed |
//! | `reserved_opcode` | 5.2: unknown opcode | close 1002, or the connection closed |
//! | `fragmented_control` | 5.5: control frames MUST NOT be fragmented | close 1002, or the connection closed |
//! | `invalid_utf8` | 8.1: text MUST be UTF-8 | close 1007, or the connection closed |
//! | `oversized` | nothing: a limit is the server's choice (7.4.1) | close 1009 or 1008, closed, or accepted |
//! | `bad_json` | nothing in RFC 6455 | squall protocol: an `Error` reply `bad_json`; else anything but an invalid close code |
//! | `error_flood` | nothing in RFC 6455 | squall protocol: close 1008 (DESIGN.md); else anything but an invalid close code |
//!
//! "The connection closed" is a FIN or a reset without a Close frame
//! (failing the connection, RFC 6455 7.1.7). A close code a server must
//! never send (1004 to 1006, 1015, 0 to 999, 1016 to 2999, 5000 and up) is
//! never conformant. An answer that does not conform is a finding about the
//! target ([`Check::passed`] false), not a failure of the step: the step
//! still finishes, and `done` counts every case that ran.

use super::FaultContext;
use crate::report::{Check, Findings};
use crate::ws::ReadEnd;
use crate::ws::WsConn;
use crate::ws::frame::{Frame, OP_CLOSE, OP_PING, OP_TEXT};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};

/// Every case, in the order they run.
pub const CASES: &[&str] = &[
    "unmasked",
    "reserved_opcode",
    "invalid_utf8",
    "oversized",
    "fragmented_control",
    "bad_json",
    "error_flood",
];

/// How long the server has to answer a violation.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// The payload of the oversized frame: four times the relay's 64 KiB limit.
const OVERSIZED: usize = 256 * 1024;
/// Bad JSON frames sent by `error_flood` before giving up on a 1008: more
/// than a per-connection rate limit of 1,000/s with a one-second burst lets
/// through.
const FLOOD: usize = 5_000;
/// `error_flood` checks for the server's close every this many frames.
const FLOOD_CHECK_EVERY: usize = 50;

/// Runs `count` rounds of the step's cases (all when it names none).
pub async fn run(ctx: Arc<FaultContext>) -> Findings {
    let cases: Vec<&str> = if ctx.step.cases.is_empty() {
        CASES.to_vec()
    } else {
        CASES
            .iter()
            .copied()
            .filter(|c| ctx.step.cases.iter().any(|s| s == c))
            .collect()
    };
    let mut checks = Vec::new();
    for round in 0..ctx.step.count {
        for (k, case) in cases.iter().enumerate() {
            let i = round * cases.len() as u64 + k as u64;
            let ws = match ctx.open_subscribed(i, ctx.options(i)).await {
                Ok(ws) => ws,
                Err(e) => {
                    ctx.progress.fail(&e.kind());
                    continue;
                }
            };
            checks.push(run_case(case, ws, ctx.target.squall_protocol).await);
            ctx.progress.done();
        }
    }
    Findings {
        checks,
        ..Findings::default()
    }
}

/// What the server answered to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// A Close frame with this code (1005 when it carried none).
    Close(u16),
    /// The connection ended without a Close frame: `eof`, `reset`, a failed
    /// write, ...
    Closed(String),
    /// Nothing ended within the wait (the server kept the connection).
    Open,
    /// The squall protocol's `Error` reply, with its code.
    ErrorReply(String),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Close(code) => write!(f, "close {code}"),
            Answer::Closed(how) => f.write_str(how),
            Answer::Open => write!(f, "no answer in {}s (open)", ANSWER_WAIT.as_secs()),
            Answer::ErrorReply(code) => write!(f, "error {code}"),
        }
    }
}

/// Whether RFC 6455 (7.4) lets an endpoint send `code` in a Close frame:
/// the defined codes, the IANA-registered 1012 to 1014, and 3000 to 4999.
fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What RFC 6455 (and, for the squall protocol's own cases, DESIGN.md)
/// allows as the answer to `case`, in words, and whether `answer` is one.
fn judge(case: &str, answer: &Answer, squall: bool) -> (&'static str, bool) {
    let closed = matches!(answer, Answer::Closed(_));
    let close_is = |codes: &[u16]| matches!(answer, Answer::Close(c) if codes.contains(c));
    let anything_valid = !matches!(answer, Answer::Close(c) if !sendable(*c));
    match case {
        "unmasked" => (
            "close 1002 or closed (RFC 6455 5.1)",
            close_is(&[1002]) || closed,
        ),
        "reserved_opcode" => (
            "close 1002 or closed (RFC 6455 5.2)",
            close_is(&[1002]) || closed,
        ),
        "fragmented_control" => (
            "close 1002 or closed (RFC 6455 5.5)",
            close_is(&[1002]) || closed,
        ),
        "invalid_utf8" => (
            "close 1007 or closed (RFC 6455 8.1)",
            close_is(&[1007]) || closed,
        ),
        "oversized" => (
            "close 1009/1008, closed or accepted (RFC 6455 7.4.1)",
            close_is(&[1008, 1009]) || closed || *answer == Answer::Open,
        ),
        "bad_json" if squall => (
            "error bad_json (squall protocol)",
            *answer == Answer::ErrorReply("bad_json".into()),
        ),
        "error_flood" if squall => ("close 1008 (squall protocol)", close_is(&[1008])),
        _ => ("any valid answer (RFC 6455 7.4)", anything_valid),
    }
}

async fn run_case(case: &str, mut ws: WsConn, squall: bool) -> Check {
    let answer = match case {
        "oversized" => oversized(&mut ws).await,
        "bad_json" => bad_json(&mut ws, squall).await,
        "error_flood" => error_flood(&mut ws).await,
        _ => {
            let frame = violation(case);
            match ws.send_raw(&frame).await {
                Ok(()) => answer(&mut ws).await,
                Err(e) => Answer::Closed(format!("write failed: {e}")),
            }
        }
    };
    let _ = ws.reset();
    let (expected, passed) = judge(case, &answer, squall);
    Check {
        case: case.to_string(),
        passed,
        expected: expected.to_string(),
        seen: answer.to_string(),
    }
}

/// The bytes of a one-frame violation.
fn violation(case: &str) -> Vec<u8> {
    let text = br#"{"type":"Ping","data":{"timestamp":1}}"#.to_vec();
    let frame = match case {
        "unmasked" => Frame {
            mask: None,
            ..Frame::client(OP_TEXT, text)
        },
        "reserved_opcode" => Frame::client(0x3, text),
        "invalid_utf8" => Frame::client(OP_TEXT, vec![b'"', 0xFF, 0xFE, b'"']),
        "fragmented_control" => Frame {
            fin: false,
            ..Frame::client(OP_PING, b"x".to_vec())
        },
        other => unreachable!("{other} is not a one-frame violation"),
    };
    frame.encode()
}

/// Waits for the server's answer: a close code, or how the stream ended.
async fn answer(ws: &mut WsConn) -> Answer {
    describe(ws.read_close(ANSWER_WAIT, |_| {}).await)
}

fn describe(result: Result<Option<u16>, ReadEnd>) -> Answer {
    match result {
        Ok(Some(code)) => Answer::Close(code),
        Ok(None) => Answer::Open,
        Err(end) => Answer::Closed(format!("{} without a close frame", end.kind())),
    }
}

/// Sends a frame four times over the limit while reading the answer: a
/// server that stops reading must not stall the client's write forever.
async fn oversized(ws: &mut WsConn) -> Answer {
    let bytes = Frame::client(OP_TEXT, vec![b'a'; OVERSIZED]).encode();
    let stream = ws.stream_mut();
    let mut written = 0;
    // Each write takes what the socket (or the TLS layer) accepts now; the
    // timeout may stop it halfway, and `written` says how far it got.
    let write = async {
        while written < bytes.len() {
            match stream.write(&bytes[written..]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => written += n,
            }
        }
        stream.flush().await.ok()
    };
    let wrote = tokio::time::timeout(ANSWER_WAIT, write).await;
    if !matches!(wrote, Ok(Some(()))) && written == 0 {
        return Answer::Closed("write failed".into());
    }
    answer(ws).await
}

/// Sends one frame of bad JSON. The squall protocol answers with an `Error`
/// frame of code `bad_json` and keeps the socket open; another target may
/// do as it likes (short of an invalid close code).
async fn bad_json(ws: &mut WsConn, squall: bool) -> Answer {
    if let Err(e) = ws.send_text("{not json").await {
        return Answer::Closed(format!("write failed: {e}"));
    }
    let deadline = Instant::now()
        + if squall {
            ANSWER_WAIT
        } else {
            Duration::from_secs(1)
        };
    loop {
        match timeout_at(deadline, ws.read_frame()).await {
            Err(_) => return Answer::Open,
            Ok(Ok(frame)) if frame.opcode == OP_CLOSE => {
                return Answer::Close(frame.close_code().unwrap_or(1005));
            }
            Ok(Ok(frame)) if squall && frame.opcode == OP_TEXT => {
                if let Some(code) = error_reply_code(&frame.payload) {
                    return Answer::ErrorReply(code);
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(end)) => {
                return Answer::Closed(format!("{} without a close frame", end.kind()));
            }
        }
    }
}

/// The `code` of a squall `Error` frame.
fn error_reply_code(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "type")]
        kind: String,
        data: Option<ErrorData>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorData {
        code: String,
    }
    let reply: Reply = serde_json::from_slice(payload).ok()?;
    (reply.kind == "Error").then_some(reply.data?.code)
}

/// Sends bad JSON frames as fast as it can until the server closes (or
/// `FLOOD` are out), reading the replies meanwhile so that it is not closed
/// as a slow consumer instead, then waits for the close: DESIGN.md closes a
/// client with too many errors with 1008.
async fn error_flood(ws: &mut WsConn) -> Answer {
    for i in 0..FLOOD {
        if ws.send_text("{not json").await.is_err() {
            break;
        }
        if i % FLOOD_CHECK_EVERY == 0
            && let Some(end) = ws.closed_by_server()
        {
            return match end.strip_prefix("close ").and_then(|c| c.parse().ok()) {
                Some(code) => Answer::Close(code),
                None => Answer::Closed(format!("{end} without a close frame")),
            };
        }
    }
    answer(ws).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_by_rfc_6455_and_the_squall_protocol_only_for_its_own_cases() {
        let closed = Answer::Closed("eof without a close frame".into());
        for case in ["unmasked", "reserved_opcode", "fragmented_control"] {
            assert!(judge(case, &Answer::Close(1002), false).1);
            assert!(judge(case, &closed, true).1);
            assert!(!judge(case, &Answer::Close(1000), false).1);
            assert!(!judge(case, &Answer::Open, false).1, "{case}: MUST close");
        }
        assert!(judge("invalid_utf8", &Answer::Close(1007), true).1);
        assert!(!judge("invalid_utf8", &Answer::Close(1002), true).1);
        for seen in [
            Answer::Close(1009),
            Answer::Close(1008),
            Answer::Open,
            closed.clone(),
        ] {
            assert!(judge("oversized", &seen, true).1, "{seen}");
        }
        assert!(!judge("oversized", &Answer::Close(1006), false).1);
        // Not RFC violations: anything but an invalid code, unless the
        // target speaks the squall protocol.
        for seen in [
            Answer::Open,
            Answer::Close(1000),
            Answer::Close(4000),
            closed,
        ] {
            assert!(judge("bad_json", &seen, false).1, "{seen}");
            assert!(judge("error_flood", &seen, false).1, "{seen}");
        }
        assert!(!judge("error_flood", &Answer::Close(1005), false).1);
        assert!(judge("error_flood", &Answer::Close(1008), true).1);
        assert!(!judge("error_flood", &Answer::Open, true).1);
        assert!(judge("bad_json", &Answer::ErrorReply("bad_json".into()), true).1);
        assert!(!judge("bad_json", &Answer::Open, true).1);
    }
}
