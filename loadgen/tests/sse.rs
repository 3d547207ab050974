//! The SSE subscriber and the HTTP publisher against small HTTP servers on
//! loopback that write exactly the bytes of each edge case (chunk and line
//! ends split across writes, bodies without framing, refusals, servers that
//! close kept-alive connections); and the engine over SSE against a small
//! pub/sub of the same kind (one stream for several topics, streams the
//! server ends). The real FastAPI + sse-starlette app is exercised by the
//! root package's `tests/protocols_sse.rs`.

use squall_loadgen::Placement;
use squall_loadgen::sse::http::place_token;
use squall_loadgen::sse::{HttpPublisher, SocketError, SseRequest, SseStream, TcpDial};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// Reads one request head (and its `Content-Length` body) from `s`, after
/// `pending` bytes already read; `None` at the end of the connection.
async fn read_request(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = req.parse(pending) {
            let length: usize = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |h| {
                    std::str::from_utf8(h.value).unwrap().parse().unwrap()
                });
            if pending.len() >= len + length {
                let head = String::from_utf8(pending[..len].to_vec()).unwrap();
                let body = pending[len..len + length].to_vec();
                pending.drain(..len + length);
                return Some((head, body));
            }
        }
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

/// A server that answers each connection's first request with `parts`,
/// written one by one with a flush and a pause between them, then closes;
/// it hands each request head to the returned channel.
async fn stream_server(parts: Vec<&'static [u8]>) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (tx, parts) = (tx.clone(), parts.clone());
            tokio::spawn(async move {
                let Some((head, _)) = read_request(&mut s, &mut Vec::new()).await else {
                    return;
                };
                let _ = tx.send(head);
                for part in parts {
                    if s.write_all(part).await.is_err() {
                        return;
                    }
                    let _ = s.flush().await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        }
    });
    (addr, rx)
}

fn request(addr: SocketAddr, path: &str, token: Option<(&str, Placement)>) -> SseRequest {
    let (target, headers) = place_token(path, token);
    SseRequest {
        host: addr.to_string(),
        target,
        headers,
        last_event_id: None,
    }
}

/// Opens a stream and collects `(type, data, id)` of every event to its end.
async fn collect(
    addr: SocketAddr,
    req: &SseRequest,
) -> Result<(Vec<(String, String, String)>, Option<SocketError>), SocketError> {
    timeout(LIMIT, async {
        let io = TcpStream::connect(addr).await.unwrap();
        let mut stream = SseStream::open(io, req, 1024).await?;
        let mut events = Vec::new();
        loop {
            match stream.next_event().await {
                Ok(Some(e)) => events.push((
                    e.kind().into_owned(),
                    String::from_utf8(e.data.to_vec()).unwrap(),
                    e.id().into_owned(),
                )),
                Ok(None) => return Ok((events, None)),
                Err(e) => return Ok((events, Some(e))),
            }
        }
    })
    .await
    .expect("bounded")
}

fn ev(kind: &str, data: &str, id: &str) -> (String, String, String) {
    (kind.into(), data.into(), id.into())
}

#[tokio::test]
async fn a_chunked_stream_split_anywhere_yields_its_events_and_its_end() {
    let (addr, mut heads) = stream_server(vec![
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"3\r\n\xEF\xBB\xBF\r",
        b"\n10\r\n: ping\r\n",
        b"data: a\r\r\n14\r",
        b"\n",
        b"\n\r\nevent: up\r\ndata:\r\r\n1f\r\n",
        b"\n\r\nid: 7\rdata: b\rdata: c\r\r:\r\n\r\n\r\n0\r",
        b"\n\r\n",
    ])
    .await;
    let req = request(addr, "/events/t?x=1", Some(("tok", Placement::Query)));
    let (events, error) = collect(addr, &req).await.unwrap();
    assert_eq!(
        events,
        vec![
            ev("message", "a", ""),
            ev("up", "", ""),
            ev("message", "b\nc", "7")
        ]
    );
    assert_eq!(error, None, "the last chunk ends the stream properly");
    let head = heads.recv().await.unwrap();
    assert!(
        head.starts_with("GET /events/t?x=1&token=tok HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nAccept: text/event-stream\r\n"), "{head}");
    assert!(!head.contains("uthorization"), "{head}");
}

#[tokio::test]
async fn a_body_without_framing_runs_to_the_end_of_the_connection() {
    let (addr, mut heads) = stream_server(vec![
        b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x",
        b"\n\ndata: y\n\ndata: cut",
    ])
    .await;
    let mut req = request(addr, "/s", Some(("tok", Placement::Header)));
    req.last_event_id = Some("41".into());
    let (events, error) = collect(addr, &req).await.unwrap();
    assert_eq!(events, vec![ev("message", "x", ""), ev("message", "y", "")]);
    assert_eq!(error, None);
    let head = heads.recv().await.unwrap();
    assert!(head.starts_with("GET /s HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nAuthorization: Bearer tok\r\n"), "{head}");
    assert!(head.contains("\r\nLast-Event-ID: 41\r\n"), "{head}");
}

#[tokio::test]
async fn a_content_length_body_ends_at_its_length() {
    let (addr, _heads) = stream_server(vec![
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 18\r\n\r\n",
        b"data: 1\n\ndata: 2\n\nextra bytes ignored\n\n",
    ])
    .await;
    let (events, error) = collect(addr, &request(addr, "/", None)).await.unwrap();
    assert_eq!(events, vec![ev("message", "1", ""), ev("message", "2", "")]);
    assert_eq!(error, None);
}

/// How a stream ends: refused at the head (`Err`), or with an error after
/// its events (`Ok(Some)`), or properly (`Ok(None)`).
type Outcome = Result<Option<SocketError>, SocketError>;

#[tokio::test]
async fn refusals_broken_bodies_and_cut_streams_are_named() {
    let cases: Vec<(Vec<&'static [u8]>, Outcome)> = vec![
        (
            vec![b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"],
            Err(SocketError::Http(401)),
        ),
        (
            vec![b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n"],
            Err(SocketError::Protocol),
        ),
        (vec![b"SSH-2.0-OpenSSH\r\n\r\n"], Err(SocketError::Protocol)),
        (vec![b"HTTP/1.1 200 OK\r\n"], Err(SocketError::Eof)),
        (
            vec![b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n"],
            Ok(Some(SocketError::Eof)),
        ),
        (
            vec![b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
            Ok(Some(SocketError::Protocol)),
        ),
        (
            vec![b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: ", &[b'x'; 2000]],
            Ok(Some(SocketError::TooBig)),
        ),
    ];
    for (parts, want) in cases {
        let first = String::from_utf8_lossy(parts[0]).into_owned();
        let (addr, _heads) = stream_server(parts).await;
        let got = collect(addr, &request(addr, "/", None))
            .await
            .map(|(_, error)| error);
        assert_eq!(got, want, "{first}");
    }
}

/// How the publishing server answers request number `i` of a connection.
#[derive(Clone, Copy)]
enum Answer {
    /// `Content-Length` response with this status.
    Length(u16),
    /// Chunked response.
    Chunked,
    /// Response with `Connection: close`, then close.
    CloseHeader,
    /// Response, then close without saying so.
    Silent,
}

/// A server that answers requests in the order of `script` (shared by all
/// connections), recording `(connection, body)` of each.
async fn publish_server(
    script: Vec<Answer>,
) -> (SocketAddr, mpsc::UnboundedReceiver<(usize, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let script = std::sync::Arc::new(std::sync::Mutex::new(script.into_iter()));
    tokio::spawn(async move {
        let mut conn = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            let (tx, script) = (tx.clone(), script.clone());
            conn += 1;
            tokio::spawn(async move {
                let mut pending = Vec::new();
                while let Some((head, body)) = read_request(&mut s, &mut pending).await {
                    assert!(head.starts_with("POST /publish/t1 HTTP/1.1\r\n"), "{head}");
                    assert!(head.contains("\r\nContent-Type: text/plain\r\n"), "{head}");
                    let _ = tx.send((conn, String::from_utf8(body).unwrap()));
                    let answer = script.lock().unwrap().next().unwrap_or(Answer::Length(200));
                    let reply: &[u8] = match answer {
                        Answer::Length(200) => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull",
                        Answer::Length(_) => b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nerr",
                        Answer::Chunked => b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                        Answer::CloseHeader => b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                        Answer::Silent => b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                    };
                    s.write_all(reply).await.unwrap();
                    if matches!(answer, Answer::CloseHeader | Answer::Silent) {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn the_publisher_keeps_alive_reads_every_framing_and_reconnects() {
    use Answer::*;
    let (addr, mut seen) = publish_server(vec![
        Length(200),
        Chunked,
        Length(500),
        CloseHeader,
        Length(200),
        Silent,
        Length(200),
    ])
    .await;
    let dial = TcpDial { addr, source: None };
    let mut publisher = HttpPublisher::new(
        dial,
        addr.to_string(),
        "Content-Type: text/plain\r\n".into(),
    );
    let statuses = timeout(LIMIT, async {
        let mut statuses = Vec::new();
        for i in 0..7 {
            publisher
                .send("/publish/t1", format!("m{i}").as_bytes())
                .await
                .unwrap();
            assert_eq!(publisher.in_flight(), 1);
            statuses.push(publisher.response().await.unwrap().status);
            if i == 5 {
                // Let the server's silent close arrive before the next send.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        statuses
    })
    .await
    .expect("bounded");
    assert_eq!(statuses, [200, 202, 500, 200, 200, 200, 200]);
    assert_eq!(publisher.connects(), 3);
    let mut bodies = Vec::new();
    while let Ok((conn, body)) = seen.try_recv() {
        bodies.push((conn, body));
    }
    let want: Vec<(usize, String)> = [1, 1, 1, 1, 2, 2, 3]
        .into_iter()
        .zip(0..)
        .map(|(c, i)| (c, format!("m{i}")))
        .collect();
    assert_eq!(bodies, want);
}

#[tokio::test]
async fn an_idle_close_is_noticed_while_waiting_and_a_cut_response_is_an_error() {
    let (addr, _seen) = publish_server(vec![Answer::Silent]).await;
    let mut publisher = HttpPublisher::new(
        TcpDial { addr, source: None },
        addr.to_string(),
        "Content-Type: text/plain\r\n".into(),
    );
    timeout(LIMIT, async {
        publisher.send("/publish/t1", b"a").await.unwrap();
        assert_eq!(publisher.response().await.unwrap().status, 200);
        // Nothing in flight: `response` watches the idle connection, lets it
        // go when the server closes it, and then waits for ever.
        let idle = timeout(Duration::from_millis(300), publisher.response()).await;
        assert!(idle.is_err(), "no response without a request");
        publisher.send("/publish/t1", b"b").await.unwrap();
        assert_eq!(publisher.response().await.unwrap().status, 200);
        assert_eq!(publisher.connects(), 2);
    })
    .await
    .expect("bounded");

    // A server that reads the request and closes without answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = read_request(&mut s, &mut Vec::new()).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                .await;
        }
    });
    let mut publisher = HttpPublisher::new(
        TcpDial { addr, source: None },
        addr.to_string(),
        String::new(),
    );
    timeout(LIMIT, async {
        publisher.send("/p", b"x").await.unwrap();
        assert_eq!(publisher.response().await, Err(SocketError::Eof));
        assert_eq!(publisher.in_flight(), 0);
    })
    .await
    .expect("bounded");
}

/// A small SSE pub/sub on loopback: `GET /events?topics=a,b` streams what is
/// `POST`ed to `/publish/<topic>` for those topics, one chunk per event;
/// with `end_after`, a stream ends properly (its last chunk) after that
/// many events.
async fn pubsub(end_after: Option<usize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, _) = tokio::sync::broadcast::channel::<(String, Vec<u8>)>(4096);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                while let Some((head, body)) = read_request(&mut s, &mut pending).await {
                    let target = head.split(' ').nth(1).unwrap().to_string();
                    if let Some(topic) = target.strip_prefix("/publish/") {
                        let _ = tx.send((topic.to_string(), body));
                        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .await
                            .unwrap();
                        continue;
                    }
                    let topics: Vec<String> = target
                        .split_once("topics=")
                        .map(|(_, t)| t.split(',').map(str::to_string).collect())
                        .unwrap_or_default();
                    let mut rx = tx.subscribe();
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut sent = 0;
                    while let Ok((topic, body)) = rx.recv().await {
                        if !topics.contains(&topic) {
                            continue;
                        }
                        if end_after == Some(sent) {
                            let _ = s.write_all(b"0\r\n\r\n").await;
                            return;
                        }
                        let event = [b"data: ", &body[..], b"\n\n"].concat();
                        let chunk =
                            [format!("{:x}\r\n", event.len()).as_bytes(), &event, b"\r\n"].concat();
                        if s.write_all(&chunk).await.is_err() {
                            return;
                        }
                        sent += 1;
                    }
                    return;
                }
            });
        }
    });
    addr
}

/// A small SSE plan against `addr`: 8 connections with 2 topics each (one
/// `{topics}` stream per connection), 4 publishers at 100 msg/s for 3 s.
fn sse_plan(addr: SocketAddr) -> squall_loadgen::LoadPlan {
    let mut plan =
        squall_loadgen::LoadPlan::new(vec![format!("http://{addr}/events?topics={{topics}}")]);
    plan.transport = squall_loadgen::Transport::Sse(squall_loadgen::Sse {
        publish_path: "/publish/{topic}".into(),
        content_type: "text/plain".into(),
    });
    plan.protocol = squall_loadgen::Protocol::Template {
        subscribe: String::new(),
        publish: "{stamp}".into(),
        settle: Duration::from_millis(100),
    };
    plan.connections = 8;
    plan.ramp = Duration::from_millis(200);
    plan.topics = 4;
    plan.subscriptions_per_connection = 2;
    plan.publishers = 4;
    plan.rate = 100.0;
    plan.payload_bytes = 100;
    plan.duration = Duration::from_secs(3);
    plan.drain = Duration::from_millis(500);
    plan
}

async fn run_plan(plan: squall_loadgen::LoadPlan) -> squall_loadgen::LoadReport {
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (snaps, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    timeout(
        Duration::from_secs(60),
        squall_loadgen::run(plan, squall_loadgen::Origin::now(), stop, snaps),
    )
    .await
    .expect("bounded")
    .expect("a valid plan")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_subscribes_by_one_stream_of_several_topics_and_loses_nothing() {
    let addr = pubsub(None).await;
    let report = run_plan(sse_plan(addr)).await;
    let loss = report.loss();
    assert_eq!(report.connections.established, 8, "{report:?}");
    assert!(report.connections.dropped.is_empty(), "{report:?}");
    assert!(report.connections.errors.is_empty(), "{report:?}");
    assert!(loss.expected > 100, "{loss:?}");
    assert_eq!(loss.lost, 0, "{loss:?}");
    assert!(loss.received >= loss.expected, "{loss:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_the_server_ends_properly_are_stream_end_drops_and_still_owe() {
    let addr = pubsub(Some(5)).await;
    let report = run_plan(sse_plan(addr)).await;
    let loss = report.loss();
    // A stream ends after 5 events; a publisher whose connection's stream
    // ended stops (no reconnect), so not every stream sees 5.
    assert!(
        report.connections.dropped.get("stream_end") >= Some(&4),
        "streams ended after 5 events: {report:?}"
    );
    assert_eq!(report.connections.dropped.len(), 1, "{report:?}");
    assert!(
        loss.lost > 0,
        "what was published after the end is owed: {loss:?}"
    );
}
