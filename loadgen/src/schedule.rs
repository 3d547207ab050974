//! The run's schedule, a pure function of the plan: when each connection is
//! due to open and close, and when each publisher's every message is due.
//!
//! Wanted connections and the total rate are piecewise linear in time: the
//! initial ramp (0 to `connections` over `ramp`, at `rate`), then each stage
//! (linear to its own values), then flat until `duration`. Connection `c`
//! opens when the wanted count first exceeds `c` and closes when it next falls
//! to `c` or below (highest numbers first). Publisher `j` sends `1/P` of the
//! total rate from its connection's opening time until its close or the end
//! of publishing; its message `i` is due when its share of the integral of
//! the rate reaches `i + phase`, `phase = (j + 1/2) / P`, so publishers that
//! start together are spread over one period. Every time is in ns from the
//! origin, rounded up, and every question about a publisher (when is `i` due,
//! how many are due before its end, which is the first due after `A`) is
//! answered from the same function, so they always agree.

use crate::plan::LoadPlan;

const NS: f64 = 1e9;

/// A piecewise-linear function of time (seconds), flat after its last point.
#[derive(Debug, Clone)]
struct Curve {
    points: Vec<(f64, f64)>,
}

impl Curve {
    fn value(&self, t: f64) -> f64 {
        let i = self.points.partition_point(|p| p.0 <= t);
        if i == 0 {
            return self.points[0].1;
        }
        let (t0, v0) = self.points[i - 1];
        match self.points.get(i) {
            Some(&(t1, v1)) if t1 > t0 => v0 + (v1 - v0) * (t - t0) / (t1 - t0),
            _ => v0,
        }
    }

    /// The first time at or after `from` when the value is above `c`
    /// (`above`) or at or below it (`!above`).
    fn first_time(&self, from: f64, c: f64, above: bool) -> Option<f64> {
        let holds = |v: f64| if above { v > c } else { v <= c };
        for w in self.points.windows(2) {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            if t1 < from {
                continue;
            }
            let s = t0.max(from);
            if holds(self.value(s)) {
                return Some(s);
            }
            if holds(v1) {
                let t = if t1 > t0 {
                    t0 + (c - v0) / (v1 - v0) * (t1 - t0)
                } else {
                    t0
                };
                return Some(t.clamp(s, t1));
            }
        }
        let &(t_last, v_last) = self.points.last()?;
        holds(v_last).then_some(t_last.max(from))
    }
}

/// The schedule of a whole run.
#[derive(Debug, Clone)]
pub struct Schedule {
    connections: Curve,
    rate: Curve,
    /// Integral of the rate (messages in all) at each point of `rate`.
    cumulative: Vec<f64>,
    /// End of publishing, seconds.
    duration: f64,
    publishers: f64,
}

impl Schedule {
    /// The schedule of `plan`.
    pub fn new(plan: &LoadPlan) -> Self {
        let duration = plan.duration.as_secs_f64();
        let ramp = plan.ramp.as_secs_f64();
        let peak = plan.connections as f64;
        let mut conns = vec![(0.0, 0.0), (ramp, peak)];
        let mut rate = vec![(0.0, plan.rate), (ramp, plan.rate)];
        let mut t = ramp;
        for stage in &plan.stages {
            t += stage.duration.as_secs_f64();
            let c = stage
                .connections
                .map_or(conns.last().unwrap().1, |c| c as f64);
            let r = stage.rate.unwrap_or(rate.last().unwrap().1);
            conns.push((t, c));
            rate.push((t, r));
        }
        let last = rate.last().unwrap().1;
        rate.retain(|p| p.0 <= duration);
        rate.push((duration, last));
        let mut cumulative = vec![0.0];
        for w in rate.windows(2) {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            cumulative.push(cumulative.last().unwrap() + (v0 + v1) / 2.0 * (t1 - t0));
        }
        Self {
            connections: Curve { points: conns },
            rate: Curve { points: rate },
            cumulative,
            duration,
            publishers: plan.publishers.max(1) as f64,
        }
    }

    /// Sockets the plan wants open at `t_ns` (over all shards).
    pub fn wanted_connections(&self, t_ns: u64) -> u64 {
        if t_ns as f64 / NS >= self.duration {
            return self.connections.value(self.duration).ceil() as u64;
        }
        self.connections.value(t_ns as f64 / NS).ceil() as u64
    }

    /// Whether the wanted connection count is still rising at `t_ns`.
    pub fn ramping(&self, t_ns: u64) -> bool {
        let t = t_ns as f64 / NS;
        self.connections
            .points
            .windows(2)
            .any(|w| w[0].0 <= t && t < w[1].0 && w[1].1 > w[0].1)
    }

    /// When connection `c` is due to open, or `None` if it never is (before
    /// the end of publishing).
    pub fn open_ns(&self, c: u64) -> Option<u64> {
        let t = self.connections.first_time(0.0, c as f64, true)?;
        (t < self.duration).then(|| to_ns(t))
    }

    /// When connection `c`, opened at `open_ns`, is due to close because the
    /// plan wants fewer sockets (`None`: it stays to the end of the run).
    pub fn close_ns(&self, c: u64, open_ns: u64) -> Option<u64> {
        let t = self
            .connections
            .first_time(open_ns as f64 / NS, c as f64, false)?;
        (t < self.duration).then(|| to_ns(t))
    }

    /// Messages in all due before `t` (seconds), the integral of the rate.
    fn integral(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, self.duration);
        let pts = &self.rate.points;
        let k = pts.partition_point(|p| p.0 <= t).saturating_sub(1);
        let (t0, v0) = pts[k];
        let x = t - t0;
        let slope = match pts.get(k + 1) {
            Some(&(t1, v1)) if t1 > t0 => (v1 - v0) / (t1 - t0),
            _ => 0.0,
        };
        self.cumulative[k] + v0 * x + slope * x * x / 2.0
    }

    /// The time (seconds) at which the integral reaches `target`, if it
    /// does before the end of publishing.
    fn inverse(&self, target: f64) -> Option<f64> {
        if target > *self.cumulative.last().unwrap() {
            return None;
        }
        let k = self
            .cumulative
            .partition_point(|&c| c < target)
            .saturating_sub(1);
        let pts = &self.rate.points;
        let (t0, v0) = pts[k];
        let Some(&(t1, v1)) = pts.get(k + 1) else {
            return Some(t0);
        };
        let span = t1 - t0;
        let rem = target - self.cumulative[k];
        if rem <= 0.0 || span <= 0.0 {
            return Some(t0);
        }
        // Solve a x^2 + v0 x = rem in the stable form x = 2 rem / (v0 + sqrt(v0^2 + 4 a rem)).
        let a = (v1 - v0) / span / 2.0;
        let denom = v0 + (v0 * v0 + 4.0 * a * rem).max(0.0).sqrt();
        let x = if denom > 0.0 { 2.0 * rem / denom } else { span };
        Some(t0 + x.clamp(0.0, span))
    }

    /// Publisher `j`'s schedule, given its connection's opening and (planned) close.
    pub fn publisher(&self, j: u64, open_ns: u64, close_ns: Option<u64>) -> PublisherSchedule<'_> {
        let start = open_ns as f64 / NS;
        let end_ns = close_ns.map_or(to_ns(self.duration), |c| c.min(to_ns(self.duration)));
        PublisherSchedule {
            schedule: self,
            base: self.integral(start),
            phase: (j as f64 + 0.5) / self.publishers,
            end_ns,
        }
    }
}

fn to_ns(t: f64) -> u64 {
    (t * NS).ceil() as u64
}

/// One publisher's messages: sequence number to due time.
#[derive(Debug, Clone)]
pub struct PublisherSchedule<'a> {
    schedule: &'a Schedule,
    base: f64,
    phase: f64,
    end_ns: u64,
}

impl PublisherSchedule<'_> {
    /// When message `i` is due (ns from the origin), or `None` past its end.
    pub fn due_ns(&self, i: u64) -> Option<u64> {
        let target = self.base + self.schedule.publishers * (i as f64 + self.phase);
        let t = to_ns(self.schedule.inverse(target)?);
        (t < self.end_ns).then_some(t)
    }

    /// This publisher's share of the messages due before `t_ns`, as a real number.
    fn share(&self, t_ns: u64) -> f64 {
        (self.schedule.integral(t_ns as f64 / NS) - self.base) / self.schedule.publishers
    }

    /// How many messages the schedule holds for it.
    pub fn count(&self) -> u64 {
        let mut k = ((self.share(self.end_ns) - self.phase).floor() + 1.0).max(0.0) as u64;
        while k > 0 && self.due_ns(k - 1).is_none() {
            k -= 1;
        }
        while self.due_ns(k).is_some() {
            k += 1;
        }
        k
    }

    /// The first sequence number due strictly after `ack_ns`: a subscriber
    /// acknowledged at `ack_ns` is owed every message from it on.
    pub fn first_after(&self, ack_ns: u64) -> u64 {
        let mut i = (self.share(ack_ns) - self.phase).ceil().max(0.0) as u64;
        while i > 0 && self.due_ns(i - 1).is_none_or(|t| t > ack_ns) {
            i -= 1;
        }
        while self.due_ns(i).is_some_and(|t| t <= ack_ns) {
            i += 1;
        }
        i
    }
}
