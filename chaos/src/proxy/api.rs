//! The proxy's HTTP control API, one request per connection:
//! `GET /toxics` lists them (JSON array), `POST /toxics` adds one (a
//! Toxiproxy-shaped JSON object; 409 if the name exists), `DELETE
//! /toxics/NAME` removes one (204, or 404).

use super::ToxicSet;
use super::toxics::ToxicSpec;
use crate::Error;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The largest request accepted, head and body.
const MAX_REQUEST: usize = 64 * 1024;
/// Bound on reading one request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the API until `stop` fires.
pub async fn serve(listener: TcpListener, toxics: ToxicSet, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => if let Ok((stream, _)) = accepted {
                tokio::spawn(handle(stream, toxics.clone()));
            },
        }
    }
}

async fn handle(mut stream: TcpStream, toxics: ToxicSet) {
    let (status, body) = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok((method, path, body))) => route(&method, &path, &body, &toxics),
        Ok(Err(why)) => (400, error_json(&why.to_string())),
        Err(_) => (408, error_json("request timed out")),
    };
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        _ => "Conflict",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn route(method: &str, path: &str, body: &[u8], toxics: &ToxicSet) -> (u16, String) {
    match (method, path.trim_end_matches('/')) {
        ("GET", "/toxics") => (
            200,
            serde_json::to_string(&toxics.list()).expect("toxics serialize"),
        ),
        ("POST", "/toxics") => match serde_json::from_slice::<ToxicSpec>(body) {
            Ok(spec) => {
                let json = serde_json::to_string(&spec).expect("toxics serialize");
                match toxics.add(spec) {
                    Ok(()) => (200, json),
                    Err(Error::ToxicExists(name)) => (
                        409,
                        error_json(&format!("a toxic named {name:?} exists already")),
                    ),
                    Err(e) => (400, error_json(&e.to_string())),
                }
            }
            Err(e) => (400, error_json(&e.to_string())),
        },
        ("DELETE", p) if p.starts_with("/toxics/") => match toxics.remove(&p["/toxics/".len()..]) {
            Ok(()) => (204, String::new()),
            Err(Error::ToxicNotFound(name)) => {
                (404, error_json(&format!("no toxic named {name:?}")))
            }
            Err(e) => (400, error_json(&e.to_string())),
        },
        (_, "/toxics") => (405, error_json("use GET or POST")),
        _ => (404, error_json("not found: try /toxics")),
    }
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// Why a request could not be read (the API answers 400 with the message).
#[derive(Debug, thiserror::Error)]
enum RequestError {
    /// Reading the socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The client closed before the head was complete.
    #[error("connection closed mid-request")]
    ClosedInHead,
    /// The client closed before the body was complete.
    #[error("connection closed mid-body")]
    ClosedInBody,
    /// Head and body over [`MAX_REQUEST`].
    #[error("request too large")]
    TooLarge,
    /// Not HTTP/1.x.
    #[error("{0}")]
    Parse(#[from] httparse::Error),
}

/// Reads one request: method, path, body (by Content-Length).
async fn read_request(stream: &mut TcpStream) -> Result<(String, String, Vec<u8>), RequestError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(RequestError::ClosedInHead);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            return Err(RequestError::TooLarge);
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head) = request.parse(&buf)? {
            let length: usize = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0);
            if head + length > MAX_REQUEST {
                return Err(RequestError::TooLarge);
            }
            let (method, path) = (
                request.method.unwrap_or("").to_string(),
                request.path.unwrap_or("").to_string(),
            );
            while buf.len() < head + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(RequestError::ClosedInBody);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((method, path, buf[head..head + length].to_vec()));
        }
    }
}
