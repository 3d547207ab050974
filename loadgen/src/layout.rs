//! Who does what: which target each connection uses, which topics it
//! subscribes to, which connections publish and on which topic. All pure
//! arithmetic on the plan, so every shard and worker agrees without talking.
//!
//! Topic groups `G` (the shards of a run over several machines, 1 otherwise),
//! targets `T`, topics `K`, peak connections `C`, publishers `P`,
//! subscriptions per connection `S`:
//! - connection `c`, topic `k` and publisher `j` belong to group `c % G`,
//!   `k % G` and `j % G`; within its group each has the local number
//!   `c / G` (`k / G`, `j / G`), and the rules below apply to local numbers
//!   and the group's own counts, so that a topic's publishers and every one
//!   of its subscribers always sit in the same group (a shard owns whole
//!   topics, and each latency is measured on one machine's clock);
//! - connection `c` uses target `c % T`; topic `k` lives on target `k % T`;
//! - target `g` holds topics `g, g+T, g+2T, ...` (`n_g` of them);
//! - connection `c` (the `l = c / T`-th of its target) subscribes to that
//!   target's topics number `(l*S + i) % n_g` for `i < min(S, n_g)`;
//! - publisher `j` sits on target `g = j % T` as its `q = j / T`-th publisher,
//!   on connection `l*T + g` with `l = q * C_g / P_g` (spread evenly), and
//!   publishes on the target's topic number `q % n_g`.
//!
//! With one group (`G = 1`) the local numbers are the global ones.

/// The layout of one plan: `G` topic groups, each laid out alike.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Number of topic groups (at least 1).
    groups: u64,
    /// Publishers in all groups.
    publishers: u64,
    /// The layout of each group, on its local numbers.
    group: Vec<Flat>,
}

impl Layout {
    /// The layout of a plan with these counts (`targets >= 1`, `publishers <= connections`)
    /// and one topic group.
    pub fn new(
        targets: u64,
        topics: u64,
        connections: u64,
        publishers: u64,
        subscriptions: u64,
    ) -> Self {
        Self::grouped(1, targets, topics, connections, publishers, subscriptions)
    }

    /// The same in `groups` topic groups (see the module docs); every group
    /// with publishers needs at least `targets` topics
    /// ([`crate::LoadPlan::check`] makes sure).
    pub fn grouped(
        groups: u64,
        targets: u64,
        topics: u64,
        connections: u64,
        publishers: u64,
        subscriptions: u64,
    ) -> Self {
        let groups = groups.max(1);
        let group: Vec<Flat> = (0..groups)
            .map(|g| {
                Flat::new(
                    targets,
                    share(topics, g, groups),
                    share(connections, g, groups),
                    share(publishers, g, groups),
                    subscriptions,
                )
            })
            .collect();
        Self {
            groups,
            publishers: group.iter().map(Flat::publishers).sum(),
            group,
        }
    }

    /// Number of publishers.
    pub fn publishers(&self) -> u64 {
        self.publishers
    }

    /// Number of topic groups.
    pub fn groups(&self) -> u64 {
        self.groups
    }

    /// Group and local number of connection, topic or publisher `n`.
    fn local(&self, n: u64) -> (&Flat, u64, u64) {
        let g = n % self.groups;
        (&self.group[g as usize], g, n / self.groups)
    }

    /// Target of connection `c`.
    pub fn target_of(&self, c: u64) -> usize {
        let (flat, _, l) = self.local(c);
        flat.target_of(l)
    }

    /// Topics connection `c` subscribes to.
    pub fn subscriptions_of(&self, c: u64) -> Vec<u64> {
        let (flat, g, l) = self.local(c);
        let n = self.groups;
        flat.subscriptions_of(l)
            .into_iter()
            .map(|k| k * n + g)
            .collect()
    }

    /// The connection of publisher `j`.
    pub fn connection_of_publisher(&self, j: u64) -> u64 {
        let (flat, g, l) = self.local(j);
        flat.connection_of_publisher(l) * self.groups + g
    }

    /// The publisher on connection `c`, if it publishes.
    pub fn publisher_of_connection(&self, c: u64) -> Option<u64> {
        let (flat, g, l) = self.local(c);
        flat.publisher_of_connection(l).map(|j| j * self.groups + g)
    }

    /// Topic of publisher `j`.
    pub fn topic_of_publisher(&self, j: u64) -> u64 {
        let (flat, g, l) = self.local(j);
        flat.topic_of_publisher(l) * self.groups + g
    }

    /// Position of publisher `j` among the publishers of its topic.
    pub fn rank_of_publisher(&self, j: u64) -> usize {
        let (flat, _, l) = self.local(j);
        flat.rank_of_publisher(l)
    }

    /// Publishers of topic `k`, in rank order.
    pub fn publishers_of_topic(&self, k: u64) -> impl Iterator<Item = u64> + use<> {
        let (flat, g, l) = self.local(k);
        let n = self.groups;
        flat.publishers_of_topic(l).map(move |j| j * n + g)
    }
}

/// How many of `0..n` are `g` modulo `m`.
pub(crate) fn share(n: u64, g: u64, m: u64) -> u64 {
    if g >= n { 0 } else { (n - g).div_ceil(m) }
}

/// The layout of one topic group, on its local numbers.
#[derive(Debug, Clone)]
struct Flat {
    targets: u64,
    topics: u64,
    connections: u64,
    publishers: u64,
    subscriptions: u64,
}

impl Flat {
    /// The layout of a group with these counts.
    fn new(
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
    fn publishers(&self) -> u64 {
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
    fn target_of(&self, c: u64) -> usize {
        (c % self.targets) as usize
    }

    /// Topics connection `c` subscribes to.
    fn subscriptions_of(&self, c: u64) -> Vec<u64> {
        let g = c % self.targets;
        let l = c / self.targets;
        let n = self.count_on(self.topics, g);
        let s = self.subscriptions.min(n);
        (0..s)
            .map(|i| g + ((l * self.subscriptions + i) % n) * self.targets)
            .collect()
    }

    /// The connection of publisher `j`.
    fn connection_of_publisher(&self, j: u64) -> u64 {
        let g = j % self.targets;
        let q = j / self.targets;
        let p_g = self.count_on(self.publishers, g);
        let c_g = self.count_on(self.connections, g);
        let l = (u128::from(q) * u128::from(c_g) / u128::from(p_g)) as u64;
        l * self.targets + g
    }

    /// The publisher on connection `c`, if it publishes.
    fn publisher_of_connection(&self, c: u64) -> Option<u64> {
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
    fn topic_of_publisher(&self, j: u64) -> u64 {
        let g = j % self.targets;
        let q = j / self.targets;
        g + (q % self.count_on(self.topics, g)) * self.targets
    }

    /// Position of publisher `j` among the publishers of its topic.
    fn rank_of_publisher(&self, j: u64) -> usize {
        let g = j % self.targets;
        ((j / self.targets) / self.count_on(self.topics, g)) as usize
    }

    /// Publishers of topic `k`, in rank order.
    fn publishers_of_topic(&self, k: u64) -> impl Iterator<Item = u64> + use<> {
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

    /// Checks every invariant of a layout of these counts by brute force.
    fn check(g: u64, targets: u64, topics: u64, connections: u64, publishers: u64, s: u64) {
        let layout = Layout::grouped(g, targets, topics, connections, publishers, s);
        // Target and group of a connection or topic, which must agree.
        let place = |n: u64| ((n / g) % targets, n % g);
        let mut conns = std::collections::HashSet::new();
        assert_eq!(layout.publishers(), publishers.min(connections));
        for j in 0..layout.publishers() {
            let c = layout.connection_of_publisher(j);
            assert!(c < connections, "publisher {j} on connection {c}");
            assert!(conns.insert(c), "two publishers on connection {c}");
            assert_eq!(layout.publisher_of_connection(c), Some(j));
            let k = layout.topic_of_publisher(j);
            assert!(k < topics);
            assert_eq!(place(k), place(c), "topic on another target or group");
            assert_eq!(layout.target_of(c) as u64, place(c).0);
            let list: Vec<u64> = layout.publishers_of_topic(k).collect();
            assert_eq!(list[layout.rank_of_publisher(j)], j);
        }
        for c in 0..connections {
            if !conns.contains(&c) {
                assert_eq!(layout.publisher_of_connection(c), None);
            }
            for k in layout.subscriptions_of(c) {
                assert_eq!(
                    place(k),
                    place(c),
                    "subscription on another target or group"
                );
                assert!(k < topics);
            }
        }
        let total: usize = (0..topics)
            .map(|k| layout.publishers_of_topic(k).count())
            .sum();
        assert_eq!(total as u64, layout.publishers());
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
            check(1, t, k, c, p, s);
        }
    }

    /// Issue 11: a shard of a run over several machines owns whole topics.
    #[test]
    fn topic_groups_keep_every_topic_whole_in_its_group() {
        for &(g, t, k, c, p, s) in &[
            (3, 1, 10, 1000, 100, 1),
            (3, 1, 3, 40, 8, 2),
            (2, 2, 9, 101, 33, 3),
            (4, 1, 4, 4, 4, 1),
            (5, 1, 7, 3, 2, 1),
            (2, 3, 6, 50, 0, 2),
        ] {
            check(g, t, k, c, p, s);
        }
        // One group is the plain layout.
        let (a, b) = (
            Layout::new(3, 7, 100, 31, 2),
            Layout::grouped(1, 3, 7, 100, 31, 2),
        );
        for c in 0..100 {
            assert_eq!(a.subscriptions_of(c), b.subscriptions_of(c));
            assert_eq!(a.publisher_of_connection(c), b.publisher_of_connection(c));
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
