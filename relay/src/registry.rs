//! The connection registry: who is connected, who subscribes to what, and the
//! fan-out of deliveries into outbound queues.
//!
//! Locking design. Three DashMaps (connections, users, topics); every access
//! takes one shard guard, does a short synchronous job, and drops it. No guard
//! is ever held across an `.await`, and no code path holds two guards at once,
//! so there is no lock-order cycle and no worker thread ever blocks for longer
//! than one critical section. The fan-out holds the topic's shard guard while it
//! assigns the sequence number and pushes into every subscriber's queue: that
//! makes sequence order and queue order the same for every subscriber. Pushing
//! never waits ([`Outbox::try_push`]); a full queue closes that consumer with
//! 1013 instead of delaying anyone. `/health` and `/metrics` read these same
//! maps, so a stuck lock shows up as a failing health check.
//!
//! The known-answer bugs keep to the same rules. `--bug kick-every`
//! ([`Registry::kick`]) walks the connections map one shard at a time,
//! copies the ids and outboxes out, drops the guards, and only then asks the
//! chosen outboxes to close (an atomic and a `Notify`, no lock). A kicked
//! connection's subscriptions stay in their topics as ghosts: the fan-out,
//! already inside the topic's guard, sees [`Outbox::is_kicked`] (an atomic
//! load) and counts the delivery instead of queueing it. `--bug stall-topic`
//! remembers its topic in a `OnceLock`, set once by the first Subscribe and
//! read without a lock by every Broadcast.
//!
//! The one deliberate exception is `--bug hang-on-reset`
//! ([`Registry::disconnect`]), which holds a connections shard guard and a
//! topics shard guard across an await that never completes.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use dashmap::DashMap;
use serde_json::value::RawValue;

use crate::bugs::Bugs;
use crate::frame;
use crate::metrics::{AbnormalEnd, BugFacts, Gauges, Metrics};
use crate::outbox::{CloseCause, Outbox, Push, QueueRx};
use squall_proto::wire::{BroadcastOut, DirectOut, ServerMessage};

/// A connection's number, unique for the life of the process.
pub type ConnId = u64;

/// All shared state of the relay.
#[derive(Debug)]
pub struct Registry {
    /// Every registered connection's outbox. Read by `/health` (its length),
    /// by shutdown (close all) and by `/metrics` (queued frames).
    connections: DashMap<ConnId, Arc<Outbox>>,
    /// The sockets of each user (`sub`), for Direct.
    users: DashMap<Arc<str>, HashMap<ConnId, Arc<Outbox>>>,
    /// Each topic's sequence counter and subscribers. A topic is kept once
    /// known, so its sequence never restarts from 0 while the relay runs.
    topics: DashMap<String, Topic>,
    next_id: AtomicU64,
    /// Deliveries so far; counted only when a drop/dup bug needs it.
    deliveries: AtomicU64,
    /// Frames each outbound queue holds at most; `None` with `unbounded-queue`.
    queue_bound: Option<usize>,
    bugs: Bugs,
    /// The relay's start, which every "S after start" of a bug counts from.
    started: Instant,
    /// `--bug stall-topic`: the first topic ever subscribed to. A `OnceLock`:
    /// set once, then read by every Broadcast without any lock.
    stalled_topic: OnceLock<String>,
    /// `--bug stall-topic`: whether the first withheld delivery was logged.
    stall_logged: AtomicBool,
    /// Every counter of the relay.
    pub metrics: Metrics,
}

#[derive(Debug, Default)]
struct Topic {
    next_sequence: u64,
    subscribers: HashMap<ConnId, Arc<Outbox>>,
}

impl Registry {
    /// An empty registry with outbound queues of `queue_size` frames.
    pub fn new(queue_size: usize, bugs: Bugs) -> Self {
        Self {
            connections: DashMap::new(),
            users: DashMap::new(),
            topics: DashMap::new(),
            next_id: AtomicU64::new(1),
            deliveries: AtomicU64::new(0),
            queue_bound: (!bugs.unbounded_queue).then_some(queue_size),
            bugs,
            started: Instant::now(),
            stalled_topic: OnceLock::new(),
            stall_logged: AtomicBool::new(false),
            metrics: Metrics::default(),
        }
    }

    /// When this registry, and so the relay, started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Registers a new connection of `user`; returns its id, its outbox and the
    /// receiving end of its queue.
    pub fn register(&self, user: &Arc<str>) -> (ConnId, Arc<Outbox>, QueueRx) {
        let id = self.next_id.fetch_add(1, Relaxed);
        let (outbox, rx) = Outbox::new(self.queue_bound);
        self.connections.insert(id, outbox.clone());
        self.users
            .entry(user.clone())
            .or_default()
            .insert(id, outbox.clone());
        (id, outbox, rx)
    }

    /// Subscribes a connection to topics.
    pub fn subscribe(&self, id: ConnId, outbox: &Arc<Outbox>, topics: &[String]) {
        if let (Some(at), Some(first)) = (self.bugs.stall_topic, topics.first())
            && self.stalled_topic.set(first.clone()).is_ok()
        {
            tracing::warn!(
                topic = %first,
                "--bug stall-topic: deliveries on topic {first:?} are withheld from {at:?} after start"
            );
        }
        for name in topics {
            self.topics
                .entry(name.clone())
                .or_default()
                .subscribers
                .insert(id, outbox.clone());
        }
    }

    /// Unsubscribes a connection from topics.
    pub fn unsubscribe<'a>(&self, id: ConnId, topics: impl IntoIterator<Item = &'a str>) {
        for name in topics {
            if let Some(mut topic) = self.topics.get_mut(name) {
                topic.subscribers.remove(&id);
            }
        }
    }

    /// Publishes on a topic: assigns the next sequence number and queues one
    /// shared frame to every subscriber. Returns the number of frames queued.
    pub fn broadcast(&self, topic: &str, from: &str, payload: &RawValue) -> usize {
        let withhold = self.is_stalled(topic);
        let mut entry = match self.topics.get_mut(topic) {
            Some(entry) => entry,
            None => self.topics.entry(topic.to_string()).or_default(),
        };
        let sequence = entry.next_sequence;
        entry.next_sequence += 1;
        let frame = frame::text(ServerMessage::Broadcast(BroadcastOut {
            topic,
            payload,
            sequence,
            from,
        }));
        self.fan_out(entry.subscribers.values(), &frame, withhold)
    }

    /// True when `--bug stall-topic` withholds deliveries on `topic` now.
    fn is_stalled(&self, topic: &str) -> bool {
        let Some(at) = self.bugs.stall_topic else {
            return false;
        };
        let stalled =
            self.stalled_topic.get().is_some_and(|t| t == topic) && self.started.elapsed() >= at;
        if stalled && !self.stall_logged.swap(true, Relaxed) {
            tracing::warn!(
                topic,
                "--bug stall-topic: withholding deliveries on {topic:?} from now on"
            );
        }
        stalled
    }

    /// Sends to every socket of user `to`. Returns `None` if `to` has none.
    pub fn direct(&self, to: &str, from: &str, payload: &RawValue) -> Option<usize> {
        let sockets = self.users.get(to)?;
        let frame = frame::text(ServerMessage::Direct(DirectOut { from, payload }));
        Some(self.fan_out(sockets.values(), &frame, false))
    }

    /// Queues `frame` into each outbox, never waiting; applies the bugs and
    /// the slow-consumer policy, and counts it all. A ghost (a connection
    /// `kick-every` closed) gets nothing and is counted in
    /// `kicked_undelivered`; with `withhold` (the stalled topic) every other
    /// subscriber gets nothing and is counted in `stalled_deliveries`.
    fn fan_out<'a>(
        &self,
        outboxes: impl Iterator<Item = &'a Arc<Outbox>>,
        frame: &Bytes,
        withhold: bool,
    ) -> usize {
        let ghosts = self.bugs.kick_every.is_some();
        let mut queued = 0;
        let mut dropped = 0;
        let mut undelivered = 0;
        let mut withheld = 0;
        for outbox in outboxes {
            if ghosts && outbox.is_kicked() {
                undelivered += 1;
                continue;
            }
            if withhold {
                withheld += 1;
                continue;
            }
            for _ in 0..self.copies_of_next_delivery() {
                match outbox.try_push(frame.clone()) {
                    Push::Queued => queued += 1,
                    // Kicked between the check above and the push: still
                    // the ghost's, not a drop.
                    Push::Full | Push::Closed if ghosts && outbox.is_kicked() => undelivered += 1,
                    Push::Full => {
                        dropped += 1;
                        if outbox.close(CloseCause::SlowConsumer) {
                            self.metrics.slow_consumers.fetch_add(1, Relaxed);
                        }
                    }
                    Push::Closed => dropped += 1,
                }
            }
        }
        let m = &self.metrics;
        m.messages_out.fetch_add(queued as u64, Relaxed);
        m.bytes_out
            .fetch_add((queued * frame::payload_len(frame)) as u64, Relaxed);
        if dropped > 0 {
            m.deliveries_dropped.fetch_add(dropped, Relaxed);
        }
        if undelivered > 0 {
            m.kicked_undelivered.fetch_add(undelivered, Relaxed);
        }
        if withheld > 0 {
            m.stalled_deliveries.fetch_add(withheld, Relaxed);
        }
        queued
    }

    /// 1 normally; 0 or 2 for the deliveries the drop/dup bugs pick.
    fn copies_of_next_delivery(&self) -> usize {
        if !self.bugs.counts_deliveries() {
            return 1;
        }
        let n = self.deliveries.fetch_add(1, Relaxed) + 1;
        if self
            .bugs
            .drop_every
            .is_some_and(|every| n.is_multiple_of(every.get()))
        {
            0
        } else if self
            .bugs
            .dup_every
            .is_some_and(|every| n.is_multiple_of(every.get()))
        {
            2
        } else {
            1
        }
    }

    /// Removes every trace of a connection: subscriptions, user entry,
    /// connection entry. `abnormal` says how it ended if it ended without a
    /// closing handshake (the `*-on-reset` bugs act on those). A connection
    /// that `kick-every` closed leaves its subscriptions behind as ghosts.
    pub async fn disconnect(
        &self,
        id: ConnId,
        user: &str,
        topics: &HashSet<String>,
        abnormal: Option<AbnormalEnd>,
    ) {
        if abnormal.is_some_and(AbnormalEnd::is_reset_like) {
            if self.bugs.hang_on_reset {
                self.hang_holding_shards(id, topics).await;
            }
            if self.bugs.leak_on_reset {
                return;
            }
        }
        let kicked = self.bugs.kick_every.is_some()
            && self
                .connections
                .get(&id)
                .is_some_and(|outbox| outbox.is_kicked());
        if !kicked {
            self.unsubscribe(id, topics.iter().map(String::as_str));
        }
        if let Some(mut sockets) = self.users.get_mut(user) {
            sockets.remove(&id);
        }
        self.users.remove_if(user, |_, sockets| sockets.is_empty());
        self.connections.remove(&id);
    }

    /// `--bug hang-on-reset`, on purpose: takes the connection's shard guard
    /// and the shard guard of its first topic (synchronous locks), then awaits
    /// the closing handshake that a reset peer will never send. The task parks
    /// with the guards held; every worker thread that next touches those
    /// shards (`/health` counts every connections shard; a Broadcast on that
    /// topic) blocks inside the lock, until no worker is left to run anything.
    async fn hang_holding_shards(&self, id: ConnId, topics: &HashSet<String>) {
        let connection = self.connections.get_mut(&id);
        let topic = topics
            .iter()
            .next()
            .and_then(|name| self.topics.get_mut(name.as_str()));
        std::future::pending::<()>().await;
        drop((connection, topic));
    }

    /// `--bug kick-every`: asks every `every`th open connection (the 1st, the
    /// N+1th, ... by ascending id, among those not already closing) to close
    /// with 1008 "kicked". Returns how many were kicked.
    pub fn kick(&self, every: NonZeroU64) -> u64 {
        // Copied out first: no shard guard is held while closing.
        let mut open: Vec<(ConnId, Arc<Outbox>)> = self
            .connections
            .iter()
            .filter(|entry| entry.value().close_cause().is_none())
            .map(|entry| (*entry.key(), entry.value().clone()))
            .collect();
        open.sort_unstable_by_key(|(id, _)| *id);
        let step = usize::try_from(every.get()).unwrap_or(usize::MAX);
        let mut kicked = Vec::new();
        for (id, outbox) in open.iter().step_by(step) {
            if outbox.close(CloseCause::Kicked) {
                kicked.push(*id);
            }
        }
        let n = kicked.len() as u64;
        self.metrics.kicked.fetch_add(n, Relaxed);
        tracing::warn!(
            open = open.len(),
            kicked = n,
            "--bug kick-every: closed every {every}th open connection with 1008 kicked"
        );
        tracing::debug!(?kicked, "--bug kick-every: the kicked connection ids");
        n
    }

    /// Asks every connection to close for `cause` (shutdown).
    pub fn close_all(&self, cause: CloseCause) {
        for entry in self.connections.iter() {
            entry.value().close(cause);
        }
    }

    /// Connections registered now.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// The gauges, read from the maps themselves.
    pub fn gauges(&self) -> Gauges {
        let (mut subscriptions, mut ghost_subscriptions) = (0, 0);
        for topic in self.topics.iter() {
            let ghosts = if self.bugs.kick_every.is_some() {
                topic.subscribers.values().filter(|o| o.is_kicked()).count()
            } else {
                0
            };
            subscriptions += topic.subscribers.len() - ghosts;
            ghost_subscriptions += ghosts;
        }
        Gauges {
            connections: self.connections.len(),
            topics: self.topics.len(),
            subscriptions,
            queued: self.connections.iter().map(|c| c.value().queued()).sum(),
            ghost_subscriptions,
        }
    }

    /// The body of `GET /health`.
    pub fn health_json(&self, uptime_s: f64) -> String {
        let connections = self.connection_count();
        self.metrics.health_checks.fetch_add(1, Relaxed);
        format!(r#"{{"status":"ok","connections":{connections},"uptime_s":{uptime_s:.3}}}"#)
    }

    /// The body of `GET /metrics`.
    pub fn metrics_text(&self, uptime_s: f64) -> String {
        let bugs = BugFacts {
            stalled_topic: self.stalled_topic.get().map(String::as_str),
            exit_after: self.bugs.exit_after,
        };
        self.metrics.render(self.gauges(), bugs, uptime_s)
    }
}
