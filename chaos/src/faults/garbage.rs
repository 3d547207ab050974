//! `garbage`: protocol violations, one fresh authenticated socket per case,
//! `count` rounds of every case. The close code the server answers with is
//! checked against RFC 6455 and DESIGN.md: 1002 for framing violations,
//! 1007 for invalid UTF-8, 1009 for a frame over the limit, 1008 for a
//! client that keeps sending errors; bad JSON alone earns an `Error` reply
//! (squall protocol) and the socket stays open.

use super::FaultContext;
use crate::report::{Check, Findings};
use crate::ws::ReadEnd;
use crate::ws::WsConn;
use crate::ws::frame::{Frame, OP_CLOSE, OP_PING, OP_TEXT};
use std::sync::Arc;
use std::time::Duration;
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

/// What the server is expected to answer to `case`.
fn expected(case: &str, squall: bool) -> &'static str {
    match case {
        "invalid_utf8" => "close 1007",
        "oversized" => "close 1009",
        "bad_json" if squall => "error bad_json",
        "bad_json" => "open",
        "error_flood" => "close 1008",
        _ => "close 1002",
    }
}

async fn run_case(case: &str, mut ws: WsConn, squall: bool) -> Check {
    let expected = expected(case, squall);
    let seen = match case {
        "oversized" => oversized(&mut ws).await,
        "bad_json" => bad_json(&mut ws, squall).await,
        "error_flood" => error_flood(&mut ws).await,
        _ => {
            let frame = violation(case);
            match ws.send_raw(&frame).await {
                Ok(()) => answer(&mut ws).await,
                Err(e) => format!("write failed: {e}"),
            }
        }
    };
    let _ = ws.reset();
    Check {
        case: case.to_string(),
        passed: seen == expected,
        expected: expected.to_string(),
        seen,
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
async fn answer(ws: &mut WsConn) -> String {
    describe(ws.read_close(ANSWER_WAIT, |_| {}).await)
}

fn describe(result: Result<Option<u16>, ReadEnd>) -> String {
    match result {
        Ok(Some(code)) => format!("close {code}"),
        Ok(None) => format!("no answer in {}s", ANSWER_WAIT.as_secs()),
        Err(end) => format!("{} without a close frame", end.kind()),
    }
}

/// Sends a frame four times over the limit while reading the answer: a
/// server that stops reading must not stall the client's write forever.
async fn oversized(ws: &mut WsConn) -> String {
    let bytes = Frame::client(OP_TEXT, vec![b'a'; OVERSIZED]).encode();
    let stream = ws.stream();
    let mut written = 0;
    let write = async {
        while written < bytes.len() {
            stream.writable().await.ok()?;
            match stream.try_write(&bytes[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return None,
            }
        }
        Some(())
    };
    let wrote = tokio::time::timeout(ANSWER_WAIT, write).await;
    if !matches!(wrote, Ok(Some(()))) && written == 0 {
        return "write failed".into();
    }
    answer(ws).await
}

/// Sends one frame of bad JSON. The squall protocol answers with an `Error`
/// frame of code `bad_json` and keeps the socket open; another target is
/// expected to keep it open (or close it: that is reported as seen).
async fn bad_json(ws: &mut WsConn, squall: bool) -> String {
    if let Err(e) = ws.send_text("{not json").await {
        return format!("write failed: {e}");
    }
    let deadline = Instant::now()
        + if squall {
            ANSWER_WAIT
        } else {
            Duration::from_secs(1)
        };
    loop {
        match timeout_at(deadline, ws.read_frame()).await {
            Err(_) if squall => {
                return format!("open, no Error reply in {}s", ANSWER_WAIT.as_secs());
            }
            Err(_) => return "open".into(),
            Ok(Ok(frame)) if frame.opcode == OP_CLOSE => {
                return format!("close {}", frame.close_code().unwrap_or(1005));
            }
            Ok(Ok(frame)) if squall && frame.opcode == OP_TEXT => {
                if let Some(code) = error_reply_code(&frame.payload) {
                    return format!("error {code}");
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(end)) => return format!("{} without a close frame", end.kind()),
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
async fn error_flood(ws: &mut WsConn) -> String {
    for i in 0..FLOOD {
        if ws.send_text("{not json").await.is_err() {
            break;
        }
        if i % FLOOD_CHECK_EVERY == 0
            && let Some(end) = ws.closed_by_server()
        {
            return end;
        }
    }
    answer(ws).await
}
