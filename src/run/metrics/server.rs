//! The `/metrics` HTTP endpoint: a tiny HTTP/1.1 server on its own task that
//! answers `GET /metrics` with the text exposition and closes the
//! connection. Requests are bounded (8 KiB of head, 5 s to send it, 32
//! scrapers at once), so a stuck or hostile client costs nothing but its
//! own socket. Loopback only unless the user allows otherwise.

use super::{Metrics, MetricsOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Longest a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest the answer may take to write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapers served at once; more wait for a slot.
const MAX_CLIENTS: usize = 32;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A non-loopback address without the user's leave.
    #[error(
        "--metrics-addr {0}: not a loopback address; pass --allow-remote (or --metrics-allow-remote) \
         to serve metrics to other machines"
    )]
    NotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("--metrics-addr {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A running endpoint; dropping it stops it.
#[derive(Debug)]
pub struct Server {
    /// The address bound (the port is known even when 0 was asked).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Binds `opts.addr` and serves `metrics` from a task of the current
    /// runtime.
    pub async fn start(opts: &MetricsOptions, metrics: Metrics) -> Result<Server, MetricsError> {
        if !opts.addr.ip().is_loopback() && !opts.allow_remote {
            return Err(MetricsError::NotLoopback(opts.addr));
        }
        let listener = TcpListener::bind(opts.addr)
            .await
            .map_err(|source| MetricsError::Bind {
                addr: opts.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| MetricsError::Bind {
            addr: opts.addr,
            source,
        })?;
        let task = tokio::spawn(accept(listener, metrics));
        Ok(Server { addr, task })
    }
}

/// Accepts scrapers for as long as the task lives.
async fn accept(listener: TcpListener, metrics: Metrics) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: try again shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = serve(stream, &metrics).await;
            drop(permit);
        });
    }
}

/// Answers one request and closes the connection.
async fn serve(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let Ok(head) = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await else {
        return Ok(());
    };
    let head = head?;
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, kind, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        ("GET" | "HEAD", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "squall: the run's figures are at /metrics\n".to_string(),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        answer.push_str(&body);
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
    Ok(())
}

/// Reads up to the end of the request head (or [`MAX_HEAD`] bytes); returns
/// its first line.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while buf.len() < MAX_HEAD && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().next().unwrap_or("").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_the_exposition_and_refuses_remote_addresses() {
        let metrics = Metrics::new("t", None, "ws://127.0.0.1:1/ws");
        let opts = MetricsOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            allow_remote: false,
            linger: Duration::ZERO,
        };
        let server = Server::start(&opts, metrics).await.unwrap();
        let answer = get(server.addr, "/metrics").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("text/plain; version=0.0.4"), "{answer}");
        assert!(
            answer.contains("\nsquall_messages_sent_total 0\n"),
            "{answer}"
        );
        assert!(get(server.addr, "/nope").await.starts_with("HTTP/1.1 404"));
        let remote = MetricsOptions {
            addr: "0.0.0.0:0".parse().unwrap(),
            ..opts
        };
        let e = Server::start(&remote, Metrics::new("t", None, "")).await;
        assert!(matches!(e, Err(MetricsError::NotLoopback(_))), "{e:?}");
    }
}
