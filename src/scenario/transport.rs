//! `[load] transport` resolved: WebSocket, or Server-Sent Events with the
//! SSE keys of `[protocol]` (`publish_path`, `content_type`), and what SSE
//! cannot go with (another protocol than the template, a `subscribe`
//! frame, the builtin relay, chaos steps, a stream URL that is not
//! `http://` or `https://`).

use super::raw::{ProtocolKind, RawScenario, TargetKind, TransportKind};
use super::source::{ScenarioError, Source};
use squall_loadgen::plan::{Sse, Transport};
use squall_proto::{Scheme, Url};

/// The `Content-Type` of the SSE publishers' `POST`s when the file names none.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The engine's transport for a scenario.
pub fn transport(source: &Source, raw: &RawScenario) -> Result<Transport, ScenarioError> {
    let p = &raw.protocol;
    let err = |key: &str, message: &str| Err(source.error(key, message.to_string()));
    if raw.load.transport == TransportKind::Websocket {
        for (key, set) in [
            ("publish_path", p.publish_path.is_some()),
            ("content_type", p.content_type.is_some()),
        ] {
            if set {
                return err(
                    &format!("protocol.{key}"),
                    "only with load.transport = \"sse\"",
                );
            }
        }
        return Ok(Transport::Websocket);
    }
    if p.kind != ProtocolKind::Template {
        return err(
            "protocol.kind",
            "load.transport = \"sse\" speaks kind = \"template\" (its `publish` is the POST body)",
        );
    }
    if p.subscribe.is_some() {
        return err(
            "protocol.subscribe",
            "over SSE the stream URL (target.url) subscribes: there is no subscribe frame",
        );
    }
    if raw.target.kind == TargetKind::Builtin {
        return err(
            "target.kind",
            "the builtin relay speaks WebSocket: use kind = \"command\" or \"url\" with an \
             http:// or https:// event-stream URL",
        );
    }
    if !raw.chaos.is_empty() {
        return err(
            "chaos.0",
            "chaos steps speak WebSocket: not with load.transport = \"sse\"",
        );
    }
    let urls = raw
        .target
        .url
        .as_ref()
        .map(|u| u.to_vec())
        .unwrap_or_default();
    if urls.is_empty() {
        return err(
            "target.url",
            "required with load.transport = \"sse\": the event-stream URL, e.g. \
             \"http://127.0.0.1:{port}/events/{topic}\"",
        );
    }
    for (i, url) in urls.iter().enumerate() {
        if Url::parse(&url.replace("{port}", "1"))
            .is_ok_and(|u| !matches!(u.scheme, Scheme::Http | Scheme::Https))
        {
            return err(
                &format!("target.url.{i}"),
                "with load.transport = \"sse\" the URL is the event stream's, http:// or https://",
            );
        }
    }
    let Some(publish_path) = p.publish_path.clone() else {
        return err(
            "protocol.publish_path",
            "required with load.transport = \"sse\": where publishers POST, e.g. \"/publish/{topic}\"",
        );
    };
    Ok(Transport::Sse(Sse {
        publish_path,
        content_type: p
            .content_type
            .clone()
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
    }))
}

/// A target URL of the right scheme for checking a load plan before the
/// target is up: loopback port `port`.
pub fn placeholder_url(transport: &Transport, port: usize) -> String {
    match transport {
        Transport::Websocket => format!("ws://127.0.0.1:{port}/ws"),
        Transport::Sse(_) => format!("http://127.0.0.1:{port}/events/{{topic}}"),
    }
}
