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

use crate::layout::Layout;
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

    /// The first time at or after `from` when the value is above `c`.
    fn rise_time(&self, from: f64, c: f64) -> Option<f64> {
        for w in self.points.windows(2) {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            if t1 < from {
                continue;
            }
            let s = t0.max(from);
            if self.value(s) > c {
                return Some(s);
            }
            if v1 > c {
                let t = if t1 > t0 {
                    t0 + (c - v0) / (v1 - v0) * (t1 - t0)
                } else {
                    t0
                };
                return Some(t.clamp(s, t1));
            }
        }
        let &(t_last, v_last) = self.points.last()?;
        (v_last > c).then_some(t_last.max(from))
    }

    /// The first time after `from`, a moment when the value is above `c` or
    /// just rose past it, when the value falls back to `c` or below.
    fn fall_time(&self, from: f64, c: f64) -> Option<f64> {
        for w in self.points.windows(2) {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            if t1 <= from || v1 >= v0 || v1 > c {
                continue;
            }
            let t = if v0 <= c || t1 <= t0 {
                t0
            } else {
                t0 + (v0 - c) / (v0 - v1) * (t1 - t0)
            };
            return Some(t.max(from));
        }
        None
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
    /// Per publisher: its start and end.
    by_publisher: Vec<PublisherSchedule>,
    /// Per publisher: how many messages its schedule holds.
    counts: Vec<u64>,
}

impl Schedule {
    /// The schedule of `plan`, whose publishers sit as `layout` says.
    pub fn new(plan: &LoadPlan, layout: &Layout) -> Self {
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
        let mut schedule = Self {
            connections: Curve { points: conns },
            rate: Curve { points: rate },
            cumulative,
            duration,
            publishers: layout.publishers().max(1) as f64,
            by_publisher: Vec::new(),
            counts: Vec::new(),
        };
        schedule.by_publisher = (0..layout.publishers())
            .map(|j| {
                let c = layout.connection_of_publisher(j);
                let open = schedule.open_ns(c);
                let close = open.and_then(|o| schedule.close_ns(c, o));
                schedule.publisher(j, open, close)
            })
            .collect();
        schedule.counts = (0..layout.publishers())
            .map(|j| schedule.count_due(j))
            .collect();
        schedule
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
        let t = self.connections.rise_time(0.0, c as f64)?;
        (t < self.duration).then(|| to_ns(t))
    }

    /// When connection `c`, opened at `open_ns`, is due to close because the
    /// plan wants fewer sockets (`None`: it stays to the end of the run).
    pub fn close_ns(&self, c: u64, open_ns: u64) -> Option<u64> {
        let t = self.connections.fall_time(open_ns as f64 / NS, c as f64)?;
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

    /// Publisher `j`'s schedule from its connection's opening and (planned) close.
    fn publisher(&self, j: u64, open_ns: Option<u64>, close_ns: Option<u64>) -> PublisherSchedule {
        let end = to_ns(self.duration);
        let Some(open_ns) = open_ns else {
            return PublisherSchedule {
                base: 0.0,
                phase: 0.0,
                end_ns: 0,
            };
        };
        PublisherSchedule {
            base: self.integral(open_ns as f64 / NS),
            phase: (j as f64 + 0.5) / self.publishers,
            end_ns: close_ns.map_or(end, |c| c.min(end)),
        }
    }

    /// When publisher `j`'s message `i` is due (ns from the origin), or
    /// `None` past the publisher's end.
    pub fn due_ns(&self, j: u64, i: u64) -> Option<u64> {
        let p = &self.by_publisher[j as usize];
        let target = p.base + self.publishers * (i as f64 + p.phase);
        let t = to_ns(self.inverse(target)?);
        (t < p.end_ns).then_some(t)
    }

    /// Publisher `j`'s share of the messages due before `t_ns`, as a real
    /// number, minus its phase: message `i` is due when it reaches `i`.
    fn share(&self, j: u64, t_ns: u64) -> f64 {
        let p = &self.by_publisher[j as usize];
        (self.integral(t_ns as f64 / NS) - p.base) / self.publishers - p.phase
    }

    /// How many messages the schedule holds for publisher `j`.
    pub fn count(&self, j: u64) -> u64 {
        self.counts[j as usize]
    }

    /// Counts publisher `j`'s messages from its schedule.
    fn count_due(&self, j: u64) -> u64 {
        let end_ns = self.by_publisher[j as usize].end_ns;
        let mut k = (self.share(j, end_ns).floor() + 1.0).max(0.0) as u64;
        while k > 0 && self.due_ns(j, k - 1).is_none() {
            k -= 1;
        }
        while self.due_ns(j, k).is_some() {
            k += 1;
        }
        k
    }

    /// The first sequence number of publisher `j` due strictly after
    /// `ack_ns`: a subscriber acknowledged at `ack_ns` is owed every message
    /// from it on (a message never leaves before it is due).
    pub fn first_after(&self, j: u64, ack_ns: u64) -> u64 {
        let mut i = self.share(j, ack_ns).ceil().max(0.0) as u64;
        while i > 0 && self.due_ns(j, i - 1).is_none_or(|t| t > ack_ns) {
            i -= 1;
        }
        while self.due_ns(j, i).is_some_and(|t| t <= ack_ns) {
            i += 1;
        }
        i
    }
}

fn to_ns(t: f64) -> u64 {
    (t * NS).ceil() as u64
}

/// Where one publisher's schedule starts and ends.
#[derive(Debug, Clone)]
struct PublisherSchedule {
    /// Integral of the total rate at the publisher's start.
    base: f64,
    /// Fraction of a message before the first one is due.
    phase: f64,
    /// Nothing is due at or after this time.
    end_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Stage;
    use std::time::Duration;

    fn plan(
        connections: u64,
        publishers: u64,
        rate: f64,
        ramp_s: u64,
        duration_s: u64,
    ) -> LoadPlan {
        LoadPlan {
            connections,
            publishers,
            rate,
            ramp: Duration::from_secs(ramp_s),
            duration: Duration::from_secs(duration_s),
            topics: 1,
            ..LoadPlan::new(vec!["ws://127.0.0.1:1".into()])
        }
    }

    fn schedule(plan: &LoadPlan) -> Schedule {
        let layout = Layout::new(1, 1, plan.peak_connections(), plan.publishers, 1);
        Schedule::new(plan, &layout)
    }

    #[test]
    fn a_constant_rate_is_shared_evenly_and_staggered() {
        let s = schedule(&plan(10, 10, 100.0, 0, 10));
        for j in 0..10 {
            assert_eq!(s.count(j), 100, "publisher {j}");
            assert_eq!(s.due_ns(j, 0), Some((j * 10_000_000) + 5_000_000));
            assert_eq!(
                s.due_ns(j, 3),
                Some(300_000_000 + j * 10_000_000 + 5_000_000)
            );
        }
        assert_eq!(s.due_ns(0, 100), None);
        assert_eq!(s.first_after(0, 1_000_000_000), 10);
        let due5 = s.due_ns(0, 5).unwrap();
        assert_eq!(s.first_after(0, due5), 6);
        assert_eq!(s.first_after(0, due5 - 1), 5);
        assert_eq!(s.first_after(0, 0), 0);
        assert_eq!(
            s.first_after(0, 20_000_000_000),
            100,
            "after the end: nothing owed"
        );
    }

    #[test]
    fn connections_ramp_steadily_and_stages_close_the_highest_first() {
        let mut p = plan(100, 10, 100.0, 10, 30);
        p.stages = vec![
            Stage {
                duration: Duration::from_secs(5),
                rate: None,
                connections: Some(50),
            },
            Stage {
                duration: Duration::from_secs(5),
                rate: None,
                connections: Some(200),
            },
        ];
        let s = schedule(&p);
        assert_eq!(s.open_ns(0), Some(0));
        assert_eq!(s.open_ns(37), Some(3_700_000_000));
        assert_eq!(s.close_ns(99, s.open_ns(99).unwrap()), Some(10_100_000_000));
        assert_eq!(s.close_ns(50, s.open_ns(50).unwrap()), Some(15_000_000_000));
        assert_eq!(s.close_ns(49, s.open_ns(49).unwrap()), None);
        let open = s.open_ns(150).unwrap();
        assert!(
            open.abs_diff(18_333_333_333) < 1000,
            "opens while the second stage rises: {open}"
        );
        assert_eq!(s.open_ns(200), None);
        assert_eq!(s.wanted_connections(5_000_000_000), 50);
        assert_eq!(s.wanted_connections(12_500_000_000), 75);
        assert!(
            s.ramping(1_000_000_000) && !s.ramping(11_000_000_000) && s.ramping(16_000_000_000)
        );
    }

    #[test]
    fn a_rising_rate_follows_its_integral() {
        let mut p = plan(1, 1, 0.0, 0, 10);
        p.stages = vec![Stage {
            duration: Duration::from_secs(10),
            rate: Some(100.0),
            connections: None,
        }];
        let s = schedule(&p);
        // 5 t^2 messages by time t: message i is due when 5 t^2 = i + 1/2.
        assert_eq!(s.count(0), 500);
        for i in [0, 1, 10, 250, 499] {
            let want = ((i as f64 + 0.5) / 5.0).sqrt();
            let got = s.due_ns(0, i).unwrap() as f64 / 1e9;
            assert!((got - want).abs() < 1e-6, "message {i}: {got} vs {want}");
        }
    }

    #[test]
    fn publishers_start_when_their_connection_opens() {
        let s = schedule(&plan(10, 2, 20.0, 10, 10));
        // Publisher 1 sits on connection 5, which opens at 5 s: 10 msg/s from then.
        assert_eq!(s.count(0), 100);
        assert_eq!(s.count(1), 50);
        assert!(s.due_ns(1, 0).unwrap() > 5_000_000_000);
        assert_eq!(s.first_after(1, 0), 0);
    }
}
