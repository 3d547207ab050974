//! Where a run's load comes from: the engine in this process, or worker
//! processes (`squall run --worker`) when the load holds more sockets than one
//! process may open. Either way the rest of the run sees one stream of
//! once-a-second `LoadSnapshot`s and one final `LoadReport`, merged exactly.

use super::worker::{WorkerLine, WorkerSpec};
use squall_loadgen::{LoadPlan, LoadReport, LoadSnapshot, Origin};
use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A load under way.
pub struct LoadRun {
    /// One snapshot a second (merged over workers), closed when the load ends.
    pub snapshots: mpsc::UnboundedReceiver<LoadSnapshot>,
    /// The final report.
    pub report: JoinHandle<Result<LoadReport, String>>,
}

impl LoadRun {
    /// The final report, waiting at most 5 s once the snapshots have ended
    /// (the engine has finished by then, or something is badly wrong):
    /// whatever happens, the harness goes on to write what it has.
    pub async fn final_report(&mut self) -> Result<LoadReport, String> {
        match tokio::time::timeout(Duration::from_secs(5), &mut self.report).await {
            Ok(Ok(Ok(report))) => Ok(report),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(e)) => Err(format!("the load engine failed: {e}")),
            Err(_) => {
                self.report.abort();
                Err("the load engine did not report by its deadline".to_string())
            }
        }
    }
}

/// Runs the engine in this process.
pub fn in_process(plan: LoadPlan, origin: Origin, stop: watch::Receiver<bool>) -> LoadRun {
    let (tx, snapshots) = mpsc::unbounded_channel();
    let report = tokio::spawn(async move {
        squall_loadgen::run(plan, origin, stop, tx)
            .await
            .map_err(|e| e.to_string())
    });
    LoadRun { snapshots, report }
}

/// Runs the load in `spec.count` worker processes and merges what they send.
/// Workers get SIGINT when `stop` turns true, and SIGKILL at `deadline` from
/// the origin; a worker that never reports makes the report incomplete.
pub fn in_workers(
    spec: WorkerSpec,
    origin: Origin,
    mut stop: watch::Receiver<bool>,
    deadline: Duration,
) -> Result<LoadRun, String> {
    let (line_tx, mut lines) = mpsc::unbounded_channel::<(u32, WorkerLine)>();
    let mut pids = Vec::new();
    let mut readers = Vec::new();
    for i in 0..spec.count {
        let mut child = tokio::process::Command::new(&spec.exe)
            .args(spec.args(i, origin))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start worker {}: {e}", i + 1))?;
        pids.extend(child.id());
        let stdout = child.stdout.take().expect("stdout is piped");
        let tx = line_tx.clone();
        readers.push(tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            let read_all = async {
                while let Ok(Some(line)) = reader.next_line().await {
                    match serde_json::from_str::<WorkerLine>(&line) {
                        Ok(msg) => {
                            let _ = tx.send((i, msg));
                        }
                        Err(e) => crate::output::note(&format!(
                            "squall: worker {}: unreadable line ({e})",
                            i + 1
                        )),
                    }
                }
            };
            let left = deadline.saturating_sub(Duration::from_nanos(origin.elapsed_ns()));
            if tokio::time::timeout(left, read_all).await.is_err() {
                crate::output::note(&format!(
                    "squall: worker {} missed the run's deadline; killed",
                    i + 1
                ));
                let _ = child.start_kill();
            }
            let _ = child.wait().await;
        }));
    }
    drop(line_tx);
    tokio::spawn(async move {
        if stop.wait_for(|s| *s).await.is_ok() {
            for pid in &pids {
                if let Ok(pid) = libc::pid_t::try_from(*pid) {
                    // SAFETY: kill(2) on a worker we spawned; at worst it already exited.
                    unsafe { libc::kill(pid, libc::SIGINT) };
                }
            }
        }
    });
    let (tx, snapshots) = mpsc::unbounded_channel();
    let count = spec.count;
    let report = tokio::spawn(async move {
        let mut merger = Merger::default();
        let mut reports: HashMap<u32, LoadReport> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                msg = lines.recv() => match msg {
                    Some((i, WorkerLine::Snapshot(s))) => merger.absorb(i, &s),
                    Some((i, WorkerLine::Report(r))) => { reports.insert(i, *r); }
                    None => break,
                },
                _ = tick.tick() => {
                    if let Some(s) = merger.take() {
                        let _ = tx.send(s);
                    }
                }
            }
        }
        if let Some(s) = merger.take() {
            let _ = tx.send(s);
        }
        for r in readers {
            let _ = r.await;
        }
        merge_reports(count, reports)
    });
    Ok(LoadRun { snapshots, report })
}

/// Adds the workers' reports; a missing one makes the result incomplete.
fn merge_reports(count: u32, reports: HashMap<u32, LoadReport>) -> Result<LoadReport, String> {
    if reports.is_empty() {
        return Err("no worker sent a report".into());
    }
    let mut merged: Option<LoadReport> = None;
    for i in 0..count {
        match (reports.get(&i), &mut merged) {
            (Some(r), Some(m)) => m.merge(r),
            (Some(r), None) => merged = Some(r.clone()),
            (None, _) => crate::output::note(&format!(
                "squall: worker {} sent no report; the results are incomplete",
                i + 1
            )),
        }
    }
    let mut merged = merged.expect("at least one report");
    if reports.len() < count as usize {
        merged.complete = false;
    }
    Ok(merged)
}

/// Combines the workers' snapshots into one a second: each worker's latest
/// totals, plus everything it measured in the intervals since the last tick.
#[derive(Debug, Default)]
struct Merger {
    shards: HashMap<u32, Shard>,
}

#[derive(Debug)]
struct Shard {
    latest: LoadSnapshot,
    since_tick: Option<LoadSnapshot>,
}

impl Merger {
    fn absorb(&mut self, worker: u32, s: &LoadSnapshot) {
        match self.shards.get_mut(&worker) {
            None => {
                self.shards.insert(
                    worker,
                    Shard {
                        latest: s.clone(),
                        since_tick: Some(s.clone()),
                    },
                );
            }
            Some(shard) => {
                shard.latest = s.clone();
                shard.since_tick = Some(match shard.since_tick.take() {
                    None => s.clone(),
                    Some(mut acc) => {
                        let (sent, received) =
                            (acc.messages.sent_interval, acc.messages.received_interval);
                        let (interval_s, lag) = (acc.interval_s, acc.send_lag_ms);
                        let mut latency = std::mem::take(&mut acc.latency);
                        latency.merge(&s.latency);
                        LoadSnapshot {
                            interval_s: interval_s + s.interval_s,
                            send_lag_ms: lag.max(s.send_lag_ms),
                            latency,
                            messages: squall_loadgen::snapshot::MessagesNow {
                                sent_interval: sent + s.messages.sent_interval,
                                received_interval: received + s.messages.received_interval,
                                ..s.messages.clone()
                            },
                            ..s.clone()
                        }
                    }
                });
            }
        }
    }

    /// The merged snapshot of this tick, if any worker has spoken yet.
    fn take(&mut self) -> Option<LoadSnapshot> {
        let mut merged: Option<LoadSnapshot> = None;
        for shard in self.shards.values_mut() {
            let s = shard.since_tick.take().unwrap_or_else(|| LoadSnapshot {
                interval_s: 0.0,
                send_lag_ms: 0.0,
                latency: Default::default(),
                messages: squall_loadgen::snapshot::MessagesNow {
                    sent_interval: 0,
                    received_interval: 0,
                    ..shard.latest.messages.clone()
                },
                ..shard.latest.clone()
            });
            match &mut merged {
                Some(m) => m.merge(&s),
                None => merged = Some(s),
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(t_s: f64, sent_total: u64, sent_interval: u64) -> LoadSnapshot {
        let mut s = LoadSnapshot {
            t_s,
            interval_s: 1.0,
            ..Default::default()
        };
        s.messages.sent = sent_total;
        s.messages.sent_interval = sent_interval;
        s.latency.record_us(1000);
        s
    }

    #[test]
    fn merges_latest_totals_and_every_interval_since_the_last_tick() {
        let mut m = Merger::default();
        m.absorb(0, &snap(1.0, 10, 10));
        m.absorb(0, &snap(2.0, 25, 15));
        m.absorb(1, &snap(1.0, 7, 7));
        let s = m.take().unwrap();
        assert_eq!(s.messages.sent, 32);
        assert_eq!(s.messages.sent_interval, 32);
        assert_eq!(s.latency.count(), 3);
        // A tick with nothing new keeps the totals and shows no traffic.
        m.absorb(1, &snap(2.0, 9, 2));
        let s = m.take().unwrap();
        assert_eq!(s.messages.sent, 34);
        assert_eq!(s.messages.sent_interval, 2);
        assert_eq!(s.latency.count(), 1);
    }
}
