//! Who does what: which target each connection uses, which topics it
//! subscribes to, which connections publish and on which topic. All pure
//! arithmetic on the plan, so every shard and worker agrees without talking.
//!
//! Targets `T`, topics `K`, peak connections `C`, publishers `P`,
//! subscriptions per connection `S`:
//! - connection `c` uses target `c % T`; topic `k` lives on target `k % T`;
//! - target `g` holds topics `g, g+T, g+2T, ...` (`n_g` of them);
//! - connection `c` (the `l = c / T`-th of its target) subscribes to that
//!   target's topics number `(l*S + i) % n_g` for `i < min(S, n_g)`;
//! - publisher `j` sits on target `g = j % T` as its `q = j / T`-th publisher,
//!   on connection `l*T + g` with `l = q * C_g / P_g` (spread evenly), and
//!   publishes on the target's topic number `q % n_g`.

/// The layout of one plan.
#[derive(Debug, Clone)]
pub struct Layout {
    targets: u64,
    topics: u64,
    connections: u64,
    publishers: u64,
    subscriptions: u64,
}

impl Layout {
    /// The layout of a plan with these counts (`targets >= 1`, `publishers <= connections`).
    pub fn new(
        targets: u64,
        topics: u64,
        connections: u64,
        publishers: u64,
        subscriptions: u64,
    ) -> Self {
        Self {
            targets: targets.max(1),
            topics,
            connections,
            publishers: publishers.min(connections),
            subscriptions,
        }
    }

    /// Number of publishers.
    pub fn publishers(&self) -> u64 {
        self.publishers
    }

    /// How many of `0..n` are `g` modulo the number of targets.
    fn count_on(&self, n: u64, g: u64) -> u64 {
        if g >= n {
            0
        } else {
            (n - g).div_ceil(self.targets)
        }
    }

    /// Target of connection `c`.
    pub fn target_of(&self, c: u64) -> usize {
        (c % self.targets) as usize
    }

    /// Topics connection `c` subscribes to.
    pub fn subscriptions_of(&self, c: u64) -> Vec<u64> {
        let g = c % self.targets;
        let l = c / self.targets;
        let n = self.count_on(self.topics, g);
        let s = self.subscriptions.min(n);
        (0..s)
            .map(|i| g + ((l * self.subscriptions + i) % n) * self.targets)
            .collect()
    }

    /// The connection of publisher `j`.
    pub fn connection_of_publisher(&self, j: u64) -> u64 {
        let g = j % self.targets;
        let q = j / self.targets;
        let p_g = self.count_on(self.publishers, g);
        let c_g = self.count_on(self.connections, g);
        let l = (u128::from(q) * u128::from(c_g) / u128::from(p_g)) as u64;
        l * self.targets + g
    }

    /// The publisher on connection `c`, if it publishes.
    pub fn publisher_of_connection(&self, c: u64) -> Option<u64> {
        let g = c % self.targets;
        let l = c / self.targets;
        let p_g = self.count_on(self.publishers, g);
        let c_g = self.count_on(self.connections, g);
        if p_g == 0 || l >= c_g {
            return None;
        }
        let q = (u128::from(l) * u128::from(p_g)).div_ceil(u128::from(c_g)) as u64;
        let j = q * self.targets + g;
        (q < p_g && self.connection_of_publisher(j) == c).then_some(j)
    }

    /// Topic of publisher `j`.
    pub fn topic_of_publisher(&self, j: u64) -> u64 {
        let g = j % self.targets;
        let q = j / self.targets;
        g + (q % self.count_on(self.topics, g)) * self.targets
    }

    /// Position of publisher `j` among the publishers of its topic.
    pub fn rank_of_publisher(&self, j: u64) -> usize {
        let g = j % self.targets;
        ((j / self.targets) / self.count_on(self.topics, g)) as usize
    }

    /// Publishers of topic `k`, in rank order.
    pub fn publishers_of_topic(&self, k: u64) -> impl Iterator<Item = u64> + use<> {
        let g = k % self.targets;
        let m = k / self.targets;
        let n = self.count_on(self.topics, g).max(1);
        let p_g = self.count_on(self.publishers, g);
        let t = self.targets;
        (m..p_g).step_by(n as usize).map(move |q| q * t + g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks every invariant of a layout by brute force.
    fn check(layout: &Layout) {
        let mut conns = std::collections::HashSet::new();
        for j in 0..layout.publishers {
            let c = layout.connection_of_publisher(j);
            assert!(c < layout.connections, "publisher {j} on connection {c}");
            assert!(conns.insert(c), "two publishers on connection {c}");
            assert_eq!(layout.publisher_of_connection(c), Some(j));
            let k = layout.topic_of_publisher(j);
            assert!(k < layout.topics);
            assert_eq!(
                k % layout.targets,
                c % layout.targets,
                "topic on another target"
            );
            let list: Vec<u64> = layout.publishers_of_topic(k).collect();
            assert_eq!(list[layout.rank_of_publisher(j)], j);
        }
        for c in 0..layout.connections {
            if !conns.contains(&c) {
                assert_eq!(layout.publisher_of_connection(c), None);
            }
            for k in layout.subscriptions_of(c) {
                assert_eq!(k % layout.targets, c % layout.targets);
                assert!(k < layout.topics);
            }
        }
        let total: usize = (0..layout.topics)
            .map(|k| layout.publishers_of_topic(k).count())
            .sum();
        assert_eq!(total as u64, layout.publishers);
    }

    #[test]
    fn every_publisher_has_one_connection_and_one_topic_on_its_target() {
        for &(t, k, c, p, s) in &[
            (1, 10, 1000, 100, 1),
            (1, 10, 50, 50, 3),
            (3, 7, 100, 31, 2),
            (2, 2, 9, 9, 5),
            (4, 9, 13, 0, 1),
            (1, 1, 1, 1, 1),
        ] {
            check(&Layout::new(t, k, c, p, s));
        }
    }

    #[test]
    fn spreads_publishers_over_topics_and_subscribers_over_topics() {
        let l = Layout::new(1, 10, 1000, 100, 1);
        assert_eq!(l.connection_of_publisher(7), 70);
        assert_eq!(l.topic_of_publisher(7), 7);
        assert_eq!(l.subscriptions_of(13), vec![3]);
        assert_eq!(
            l.publishers_of_topic(3).collect::<Vec<_>>(),
            (0..10).map(|i| 3 + 10 * i).collect::<Vec<_>>()
        );
        // Every connection publishing and subscribing to its own room.
        let l = Layout::new(1, 10, 100, 100, 1);
        for c in 0..100 {
            assert_eq!(l.subscriptions_of(c), vec![l.topic_of_publisher(c)]);
        }
    }
}
