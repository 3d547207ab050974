//! Checks squall's Nostr frames against a running relay, by hand: subscribes
//! to a topic, publishes a signed event (the relay must answer
//! `["OK", id, true, ...]` and deliver it to the subscription) and a forged
//! one (`["OK", id, false, "invalid: ..."]`; nostr-relay leaves the id
//! empty there), printing every frame.
//!
//! `cargo run -p squall-loadgen --example nostr_check -- ws://127.0.0.1:7447/ [KIND]`
//!
//! Exits 0 when the relay answered as NIP-01 says, 1 otherwise.

use futures_util::{SinkExt, StreamExt};
use squall_loadgen::nostr::{
    Keys, Reason, RelayMessage, Signature, UnsignedEvent, auth_event, client, unix_now,
};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

async fn send(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>, frame: String) {
    println!("> {frame}");
    ws.send(Message::text(frame)).await.expect("send");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:7447/".into());
    let kind: u16 = args.next().map_or(1, |k| k.parse().expect("a kind"));
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("the relay takes the upgrade");
    let keys = Keys::generate();
    let topic = format!("squall-check-{}", std::process::id());
    send(&mut ws, client::req("sq-check", kind, &topic, unix_now())).await;
    let stamp = format!("~sq0.0.{}~", unix_now());
    let tags = [["t", topic.as_str()]];
    let event = UnsignedEvent {
        kind,
        created_at: unix_now(),
        tags: &tags,
        content: &stamp,
    };
    let good = event.sign(&keys, Signature::Valid);
    let forged = UnsignedEvent {
        content: "~sq0.1.0~",
        ..event
    }
    .sign(&keys, Signature::Forged);

    let (mut eose, mut delivered, mut good_ok, mut forged_ok) = (false, false, None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut sent = false;
    while tokio::time::Instant::now() < deadline
        && (good_ok.is_none() || forged_ok.is_none() || !delivered)
    {
        if eose && !sent {
            sent = true;
            send(&mut ws, client::event(&good)).await;
            send(&mut ws, client::event(&forged)).await;
        }
        let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await else {
            break;
        };
        let Message::Text(text) = msg else { continue };
        println!("< {text}");
        match RelayMessage::parse(&text) {
            RelayMessage::Eose { .. } => eose = true,
            RelayMessage::Event { .. } => delivered |= text.contains(&stamp),
            RelayMessage::Ok {
                id,
                accepted,
                message,
            } => {
                // By id, or (a relay that leaves it out) the oldest unanswered.
                let answer = Some((accepted, Reason::of(&message)));
                if id == Some(good.id) || (id.is_none() && good_ok.is_none()) {
                    good_ok = answer;
                } else if id == Some(forged.id) || id.is_none() {
                    forged_ok = answer;
                }
            }
            RelayMessage::Auth { challenge } => {
                let auth = auth_event(&keys, &url, &challenge, unix_now());
                send(&mut ws, client::auth(&auth)).await;
            }
            _ => {}
        }
    }
    send(&mut ws, client::close("sq-check")).await;
    println!(
        "EOSE: {eose}; signed event: OK {good_ok:?}, delivered {delivered}; forged event: OK {forged_ok:?}"
    );
    let passed = eose
        && delivered
        && good_ok.is_some_and(|(accepted, _)| accepted)
        && forged_ok == Some((false, Reason::Invalid));
    println!("{}", if passed { "PASS" } else { "FAIL" });
    std::process::exit(if passed { 0 } else { 1 });
}
