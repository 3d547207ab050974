//! The declarative protocol (`kind = "script"`): a text protocol described
//! by its frames, for servers that need more than a subscribe and a publish
//! frame (Socket.IO's Engine.IO handshake and pings, GraphQL over
//! WebSocket's `connection_init`, ids and subprotocol).
//!
//! [`Script`] is the plan's plain data (serde, so that worker processes get
//! it as JSON); [`Script::check`] validates it, and [`Compiled`] is what the
//! engine uses: the patterns compiled once per run. [`greet`] runs the
//! connect-time steps on a fresh socket.

use crate::connect::{self, Socket};
use crate::template::{self, Template};
use futures_util::{SinkExt, StreamExt};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// A text protocol described by its frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// The `Sec-WebSocket-Protocol` asked for at the upgrade.
    #[serde(default)]
    pub subprotocol: Option<String>,
    /// Steps after the upgrade and before subscribing, in order.
    #[serde(default)]
    pub connect: Vec<Step>,
    /// Frames the server sends that are answered at once (pings).
    #[serde(default)]
    pub keepalive: Vec<Keepalive>,
    /// Sent once per subscribed topic: `{topic}`, `{conn}`, `{seq}` (the
    /// subscription's number on the connection, from 0), `{uuid}`, `{now_ms}`.
    pub subscribe: String,
    /// A regex matching one acknowledgement per subscribe frame. Without
    /// it a subscription counts from `settle` after its frame was sent.
    #[serde(default)]
    pub subscribed: Option<String>,
    /// See `subscribed`.
    pub settle: Duration,
    /// Sent for each published message: `{stamp}` (required), `{topic}`,
    /// `{conn}`, `{seq}` (the message's number from its publisher, from 0),
    /// `{uuid}`, `{now_ms}`.
    pub publish: String,
    /// Regexes: a frame matching one is counted as a relay error
    /// (`relay_error_pattern_<n>`, `n` from 1).
    #[serde(default)]
    pub errors: Vec<String>,
}

/// A connect-time step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Send this frame: `{conn}`, `{seq}` (the step's number, from 0),
    /// `{uuid}`, `{now_ms}`.
    Send(String),
    /// Wait for a frame matching `pattern`, at most `timeout`; frames that
    /// do not match are passed over (keepalives answered).
    Expect {
        /// A regex.
        pattern: String,
        /// How long to wait.
        timeout: Duration,
    },
}

/// A frame answered as soon as it arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keepalive {
    /// A regex matching the server's frame.
    pub when: String,
    /// The answer (`{uuid}`, `{now_ms}` allowed).
    pub reply: String,
}

/// The part of a [`Script`] a failed check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// `subprotocol`.
    Subprotocol,
    /// `connect` (step `n`, from 0).
    Connect(usize),
    /// `keepalive` (rule `n`, from 0).
    Keepalive(usize),
    /// `subscribe`.
    Subscribe,
    /// `subscribed`.
    Subscribed,
    /// `publish`.
    Publish,
    /// `errors` (pattern `n`, from 0).
    Errors(usize),
}

impl Part {
    /// The script's key, as the plan spells it (`protocol.connect`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Part::Subprotocol => "protocol.subprotocol",
            Part::Connect(_) => "protocol.connect",
            Part::Keepalive(_) => "protocol.keepalive",
            Part::Subscribe => "protocol.subscribe",
            Part::Subscribed => "protocol.subscribed",
            Part::Publish => "protocol.publish",
            Part::Errors(_) => "protocol.errors",
        }
    }
}

/// Why a [`Script`] cannot run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScriptError {
    /// A pattern that is not a valid regex.
    #[error("bad pattern {pattern:?}: {reason}")]
    Pattern {
        /// Where it is.
        part: Part,
        /// The pattern as given.
        pattern: String,
        /// What the regex compiler said.
        reason: String,
    },
    /// A publish frame without `{stamp}`: nothing could be measured.
    #[error("the publish frame has no {{stamp}}")]
    NoStamp,
    /// A subscribe frame without `{topic}`.
    #[error("the subscribe frame has no {{topic}}")]
    NoTopic,
    /// A subprotocol that is not an HTTP token.
    #[error("subprotocol {0:?} is not a token (letters, digits and !#$%&'*+-.^_`|~)")]
    Subprotocol(String),
}

impl ScriptError {
    /// The part of the script at fault.
    pub fn part(&self) -> Part {
        match self {
            ScriptError::Pattern { part, .. } => *part,
            ScriptError::NoStamp => Part::Publish,
            ScriptError::NoTopic => Part::Subscribe,
            ScriptError::Subprotocol(_) => Part::Subprotocol,
        }
    }
}

impl Script {
    /// Checks the frames and compiles the patterns.
    pub fn check(&self) -> Result<Compiled, ScriptError> {
        if let Some(p) = &self.subprotocol {
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if p.is_empty() || !p.chars().all(token) {
                return Err(ScriptError::Subprotocol(p.clone()));
            }
        }
        if !Template::parse(&self.publish).has_stamp() {
            return Err(ScriptError::NoStamp);
        }
        if !self.subscribe.contains("{topic}") {
            return Err(ScriptError::NoTopic);
        }
        let steps = self
            .connect
            .iter()
            .enumerate()
            .map(|(i, step)| {
                Ok(match step {
                    Step::Send(frame) => Greeting::Send(frame.clone()),
                    Step::Expect { pattern, timeout } => {
                        Greeting::Expect(regex(pattern, Part::Connect(i))?, *timeout)
                    }
                })
            })
            .collect::<Result<_, ScriptError>>()?;
        let keepalive = self
            .keepalive
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Ok((
                    regex(&k.when, Part::Keepalive(i))?,
                    Template::parse(&k.reply),
                ))
            })
            .collect::<Result<_, ScriptError>>()?;
        let subscribed = self
            .subscribed
            .as_deref()
            .map(|p| regex(p, Part::Subscribed))
            .transpose()?;
        let errors = self
            .errors
            .iter()
            .enumerate()
            .map(|(i, p)| regex(p, Part::Errors(i)))
            .collect::<Result<_, ScriptError>>()?;
        Ok(Compiled {
            steps,
            keepalive,
            subscribed,
            errors,
        })
    }
}

fn regex(pattern: &str, part: Part) -> Result<Regex, ScriptError> {
    Regex::new(pattern).map_err(|e| ScriptError::Pattern {
        part,
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })
}

/// A connect-time step, compiled.
#[derive(Debug, Clone)]
enum Greeting {
    /// The frame as written (`{conn}` is filled per connection).
    Send(String),
    Expect(Regex, Duration),
}

/// A [`Script`]'s patterns, compiled once per run.
#[derive(Debug, Clone)]
pub struct Compiled {
    steps: Vec<Greeting>,
    keepalive: Vec<(Regex, Template)>,
    subscribed: Option<Regex>,
    errors: Vec<Regex>,
}

/// What a script makes of a frame without a stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// Answer with this frame.
    Reply(String),
    /// One subscription acknowledged.
    Subscribed,
    /// Error pattern `n` (from 1) matched.
    Error(usize),
    /// Nothing the script names.
    Other,
}

impl Compiled {
    /// What `frame` is: a keepalive first, then an acknowledgement, then an error.
    pub fn read(&self, frame: &str) -> Reading {
        if let Some(reply) = self.keepalive_reply(frame) {
            return Reading::Reply(reply);
        }
        if self.subscribed.as_ref().is_some_and(|r| r.is_match(frame)) {
            return Reading::Subscribed;
        }
        match self.errors.iter().position(|r| r.is_match(frame)) {
            Some(i) => Reading::Error(i + 1),
            None => Reading::Other,
        }
    }

    /// Whether subscriptions are acknowledged (else they settle).
    pub fn acknowledges(&self) -> bool {
        self.subscribed.is_some()
    }

    /// The frames its connect-time steps send, in order, for socket `conn`:
    /// what a socket that does not wait for the replies (the watchdog's
    /// probe) says first.
    pub fn opening(&self, conn: u64) -> Vec<String> {
        self.steps
            .iter()
            .enumerate()
            .filter_map(|(i, step)| match step {
                Greeting::Send(frame) => Some(step_frame(frame, conn, i)),
                Greeting::Expect(..) => None,
            })
            .collect()
    }

    /// The answer to `frame` when it is one of the server's keepalives.
    pub fn keepalive_reply(&self, frame: &str) -> Option<String> {
        self.keepalive
            .iter()
            .find(|(when, _)| when.is_match(frame))
            .map(|(_, reply)| reply.render(None, 0))
    }
}

/// Why the connect-time steps failed, as `connections.errors` counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GreetError {
    /// Step `n` (from 1) saw no matching frame in time.
    #[error("script_step_{0}_timeout")]
    Timeout(usize),
    /// The socket failed or closed during the steps.
    #[error("{0}")]
    Socket(connect::SocketError),
}

/// Runs the connect-time steps on a fresh socket, each send under
/// `send_timeout`; `conn` fills `{conn}`.
pub async fn greet(
    ws: &mut Socket,
    script: &Compiled,
    conn: u64,
    send_timeout: Duration,
) -> Result<(), GreetError> {
    for (i, step) in script.steps.iter().enumerate() {
        match step {
            Greeting::Send(frame) => {
                send(ws, step_frame(frame, conn, i), send_timeout).await?;
            }
            Greeting::Expect(pattern, limit) => {
                let deadline = Instant::now() + *limit;
                loop {
                    let frame = tokio::time::timeout_at(deadline, ws.next())
                        .await
                        .map_err(|_| GreetError::Timeout(i + 1))?;
                    let text = match frame {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | None => {
                            return Err(GreetError::Socket(connect::SocketError::Eof));
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(GreetError::Socket(connect::ws_kind(&e))),
                    };
                    if pattern.is_match(&text) {
                        break;
                    }
                    if let Some(reply) = script.keepalive_reply(&text) {
                        send(ws, reply, send_timeout).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Step `i`'s frame for socket `conn`.
fn step_frame(frame: &str, conn: u64, i: usize) -> String {
    Template::parse(&template::fill(frame, "", conn)).render(None, i as u64)
}

async fn send(ws: &mut Socket, text: String, limit: Duration) -> Result<(), GreetError> {
    match tokio::time::timeout(limit, ws.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(GreetError::Socket(connect::ws_kind(&e))),
        Err(_) => Err(GreetError::Socket(connect::SocketError::SendTimeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn socketio() -> Script {
        Script {
            subprotocol: None,
            connect: vec![
                Step::Expect {
                    pattern: r"^0\{".into(),
                    timeout: Duration::from_secs(5),
                },
                Step::Send("40".into()),
                Step::Expect {
                    pattern: "^40".into(),
                    timeout: Duration::from_secs(5),
                },
            ],
            keepalive: vec![Keepalive {
                when: "^2$".into(),
                reply: "3".into(),
            }],
            subscribe: r#"42{seq}["subscribe","{topic}"]"#.into(),
            subscribed: Some("^43".into()),
            settle: Duration::from_millis(500),
            publish: r#"42["publish",{"topic":"{topic}","payload":"{stamp}"}]"#.into(),
            errors: vec!["^44".into()],
        }
    }

    #[test]
    fn frames_are_read_in_order_keepalive_ack_error() {
        let c = socketio().check().unwrap();
        assert_eq!(c.read("2"), Reading::Reply("3".into()));
        assert_eq!(c.read("22"), Reading::Other);
        assert_eq!(c.read(r#"431["ok"]"#), Reading::Subscribed);
        assert_eq!(c.read(r#"44{"message":"no"}"#), Reading::Error(1));
        assert!(c.acknowledges());
    }

    #[test]
    fn bad_scripts_name_their_part() {
        let mut s = socketio();
        s.errors.push("(".into());
        assert_eq!(s.check().unwrap_err().part(), Part::Errors(1));
        let mut s = socketio();
        s.publish = "no stamp".into();
        assert_eq!(s.check().unwrap_err().part(), Part::Publish);
        let mut s = socketio();
        s.subscribe = "42".into();
        assert_eq!(s.check().unwrap_err().part(), Part::Subscribe);
        let mut s = socketio();
        s.subprotocol = Some("two words".into());
        assert_eq!(s.check().unwrap_err().part(), Part::Subprotocol);
        let mut s = socketio();
        s.connect[2] = Step::Expect {
            pattern: "[".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(s.check().unwrap_err().part(), Part::Connect(2));
    }
}
