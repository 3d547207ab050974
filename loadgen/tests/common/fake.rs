//! A small relay of the squall protocol with known-answer faults, for the
//! tests of issue 8 (it does not wait for the reference relay's `--bug`s):
//! it kicks every Nth connection once (close 1008, its subscriptions kept as
//! ghosts that count what they would have been sent), holds every delivery
//! for a while, or withholds one topic's deliveries, and counts each of them
//! so that a test knows the true answer. On its own thread and runtime, like
//! the reference relay of `common`, so its work does not distort the
//! engine's clock.
//!
//! Users: a connection's user is the `sub` claim of its `?token=` (read, not
//! verified); a connection of the same user that subscribes again ends the
//! ghost of a kicked one (a reconnect), so that the ghosts count exactly the
//! deliveries missed while it was away.

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// The faults, all off by default.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// `(n, at)`: once, `at` after start, every open connection whose id
    /// (accept order, from 0) is a multiple of `n` is closed with 1008.
    pub kick: Option<(u64, Duration)>,
    /// Every delivery leaves this long after the broadcast that made it.
    pub hold: Duration,
    /// `(topic, from)`: from `from` after start, deliveries on `topic` are
    /// withheld.
    pub stall: Option<(String, Duration)>,
}

/// What the relay did, for the test to compare with the engine's figures.
#[derive(Debug, Default)]
pub struct Counts {
    /// Connections kicked.
    pub kicked: AtomicU64,
    /// Deliveries a kicked connection's subscriptions would have received
    /// after the kick (until its user subscribed again).
    pub ghost_undelivered: AtomicU64,
    /// Deliveries withheld by the stall.
    pub stalled: AtomicU64,
}

/// A running fake relay; stopped on drop.
pub struct Fake {
    /// `ws://127.0.0.1:PORT/ws`.
    pub url: String,
    /// What it did.
    pub counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What goes out on one connection, in order.
enum Out {
    /// A frame to send at once (after what is queued before it).
    Now(String),
    /// A delivery to send at this time.
    At(String, Instant),
    /// The kick: a close frame, then nothing more.
    Kick,
}

struct Conn {
    tx: mpsc::UnboundedSender<Out>,
    user: Option<String>,
    topics: Vec<String>,
    kicked: bool,
}

/// The relay's state. A `std::sync::Mutex`: each access is a few map
/// operations and channel sends, never held across an `.await`.
#[derive(Default)]
struct State {
    conns: BTreeMap<u64, Conn>,
    sequence: BTreeMap<String, u64>,
}

/// Starts a fake relay with `faults`.
pub fn start(faults: Faults) -> Fake {
    let counts = Arc::new(Counts::default());
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread_counts = counts.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("fake relay runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().unwrap();
            url_tx.send(format!("ws://{addr}/ws")).unwrap();
            let state = Arc::new(Mutex::new(State::default()));
            let started = Instant::now();
            let faults = Arc::new(faults);
            if let Some((n, at)) = faults.kick {
                let (state, counts) = (state.clone(), thread_counts.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until(started + at).await;
                    let mut state = state.lock().unwrap();
                    for (id, conn) in state.conns.iter_mut() {
                        if id.is_multiple_of(n) && !conn.kicked {
                            conn.kicked = true;
                            let _ = conn.tx.send(Out::Kick);
                            counts.kicked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            let accept = async {
                let mut next_id = 0u64;
                while let Ok((stream, _)) = listener.accept().await {
                    let id = next_id;
                    next_id += 1;
                    let ctx = (state.clone(), thread_counts.clone(), faults.clone());
                    tokio::spawn(serve(stream, id, ctx, started));
                }
            };
            tokio::select! {
                _ = accept => {}
                _ = stopped => {}
            }
        });
    });
    Fake {
        url: url_rx.recv().expect("fake relay started"),
        counts,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// The `sub` claim of a `token=` in the request's query, unverified.
fn user_of(request: &Request) -> Option<String> {
    let query = request.uri().query()?;
    let token = query.split('&').find_map(|kv| kv.strip_prefix("token="))?;
    let claims = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["sub"].as_str().map(str::to_string)
}

async fn serve(
    stream: tokio::net::TcpStream,
    id: u64,
    (state, counts, faults): (Arc<Mutex<State>>, Arc<Counts>, Arc<Faults>),
    started: Instant,
) {
    let mut user = None;
    // The error type is tungstenite's (an HTTP response), not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        user = user_of(request);
        Ok(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    state.lock().unwrap().conns.insert(
        id,
        Conn {
            tx: tx.clone(),
            user: user.clone(),
            topics: Vec::new(),
            kicked: false,
        },
    );
    let hold = faults.hold;
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let frame = match out {
                Out::Now(frame) => frame,
                Out::At(frame, at) => {
                    tokio::time::sleep_until(at + hold).await;
                    frame
                }
                Out::Kick => {
                    let close = CloseFrame {
                        code: 1008.into(),
                        reason: "kicked".into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    return;
                }
            };
            if sink.send(Message::Text(frame.into())).await.is_err() {
                return;
            }
        }
    });
    // Reads until the client closes, also after a kick: what it wrote
    // before it saw the close is still broadcast.
    while let Some(Ok(message)) = source.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let data = &v["data"];
        match v["type"].as_str() {
            Some("Subscribe") => {
                let topics: Vec<String> = data["topics"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut state = state.lock().unwrap();
                // The same user back: the kicked ghost's duty ends here.
                if user.is_some() {
                    for conn in state.conns.values_mut() {
                        if conn.kicked && conn.user == user {
                            conn.topics.clear();
                        }
                    }
                }
                if let Some(me) = state.conns.get_mut(&id) {
                    me.topics.extend(topics.iter().cloned());
                }
                let reply = serde_json::json!({"type": "Status", "data": {"status": "subscribed", "details": {"topics": topics}}});
                let _ = tx.send(Out::Now(reply.to_string()));
            }
            Some("Broadcast") => {
                let topic = data["topic"].as_str().unwrap_or_default().to_string();
                let now = Instant::now();
                let stalled = faults
                    .stall
                    .as_ref()
                    .is_some_and(|(t, from)| *t == topic && now >= started + *from);
                let mut state = state.lock().unwrap();
                let seq = {
                    let s = state.sequence.entry(topic.clone()).or_default();
                    *s += 1;
                    *s - 1
                };
                let frame = serde_json::json!({"type": "Broadcast", "data": {"topic": topic, "payload": data["payload"], "sequence": seq, "from": user}}).to_string();
                for conn in state.conns.values() {
                    if !conn.topics.contains(&topic) {
                        continue;
                    }
                    if conn.kicked {
                        counts.ghost_undelivered.fetch_add(1, Ordering::Relaxed);
                    } else if stalled {
                        counts.stalled.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let _ = conn.tx.send(Out::At(frame.clone(), now));
                    }
                }
            }
            _ => {}
        }
    }
    // Gone: a kicked one stays as a ghost, any other leaves.
    {
        let mut state = state.lock().unwrap();
        if state.conns.get(&id).is_some_and(|c| !c.kicked) {
            state.conns.remove(&id);
        }
    }
    drop(tx);
    let _ = writer.await;
}
