//! What `/proc` says about the target process: its threads (state, CPU,
//! what they are blocked in), memory, descriptors, TCP sockets.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::time::Duration;

/// One thread of the target.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadInfo {
    /// Thread id.
    pub tid: u32,
    /// `comm`: the thread's name (tokio workers are `tokio-runtime-w`).
    pub name: String,
    /// Scheduler state: `R` running, `S` sleeping, `D` disk, `T` stopped, ...
    pub state: char,
    /// Share of one CPU used over the sampling window, 0..=100.
    pub cpu_percent: f64,
    /// The kernel function it sleeps in (`/proc/.../wchan`), if readable.
    pub wchan: String,
    /// The system call it is blocked in (`futex`, `epoll_wait`, ...), or
    /// `running` when it is on a CPU in user space, if known.
    pub syscall: Option<&'static str>,
}

impl ThreadInfo {
    /// Asleep on a futex: waiting for a lock or a condition variable.
    pub fn in_futex(&self) -> bool {
        self.syscall == Some("futex") || self.wchan.contains("futex")
    }

    /// Runnable in user space, in no system call: computing.
    pub fn computing(&self) -> bool {
        self.state == 'R' && self.syscall == Some("running")
    }

    /// Asleep in epoll: an event loop waiting for I/O.
    pub fn in_epoll(&self) -> bool {
        self.syscall.is_some_and(|s| s.starts_with("epoll")) || self.wchan.contains("epoll")
    }
}

/// Everything read from `/proc` about the target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessInfo {
    /// Whether the process exists and has not exited (a zombie has not).
    pub alive: bool,
    /// Its command line.
    pub cmdline: String,
    /// Resident set size in KiB.
    pub rss_kib: Option<u64>,
    /// Open file descriptors.
    pub fds: usize,
    /// Its threads, sampled over the window.
    pub threads: Vec<ThreadInfo>,
    /// Its TCP sockets by state (`ESTABLISHED`, `CLOSE_WAIT`, ...).
    pub tcp_states: BTreeMap<&'static str, u64>,
    /// Connections waiting in its listening sockets' accept queues.
    pub accept_backlog: u64,
}

/// Reads `/proc/PID`, sampling thread CPU over `window`.
pub fn inspect(pid: u32, window: Duration) -> ProcessInfo {
    let base = format!("/proc/{pid}");
    if fs::metadata(&base).is_err() {
        return ProcessInfo::default();
    }
    let before = thread_ticks(pid);
    std::thread::sleep(window);
    let after = thread_ticks(pid);
    let ticks_per_s = clock_ticks();
    let threads: Vec<ThreadInfo> = after
        .iter()
        .map(|(tid, (name, state, ticks))| {
            let used = ticks.saturating_sub(before.get(tid).map_or(*ticks, |b| b.2));
            ThreadInfo {
                tid: *tid,
                name: name.clone(),
                state: *state,
                cpu_percent: 100.0 * used as f64 / ticks_per_s / window.as_secs_f64(),
                wchan: fs::read_to_string(format!("{base}/task/{tid}/wchan"))
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                syscall: blocked_syscall(pid, *tid),
            }
        })
        .collect();
    let inodes = socket_inodes(pid);
    let (tcp_states, accept_backlog) = tcp_sockets(pid, &inodes);
    // A zombie (exited, not yet reaped) still has its /proc entry.
    let alive = !threads.iter().all(|t| matches!(t.state, 'Z' | 'X'));
    ProcessInfo {
        alive,
        cmdline: fs::read(format!("{base}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default(),
        rss_kib: status_field(pid, "VmRSS:"),
        fds: fs::read_dir(format!("{base}/fd")).map_or(0, |d| d.count()),
        threads,
        tcp_states,
        accept_backlog,
    }
}

/// tid → (name, state, utime + stime in clock ticks).
fn thread_ticks(pid: u32) -> BTreeMap<u32, (String, char, u64)> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    tasks
        .filter_map(|entry| {
            let tid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            // "tid (comm) state ..." where comm may hold spaces and parentheses.
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let name = stat[open + 1..close].to_string();
            let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
            let state = fields.first()?.chars().next()?;
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((tid, (name, state, utime + stime)))
        })
        .collect()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// The system call a thread is blocked in, from `/proc/.../syscall`.
fn blocked_syscall(pid: u32, tid: u32) -> Option<&'static str> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    let first = text.split_whitespace().next()?;
    if first == "running" {
        return Some("running"); // on a CPU in user space, in no system call
    }
    let number: i64 = first.parse().ok()?;
    Some(match number {
        n if n == libc::SYS_futex => "futex",
        n if n == libc::SYS_epoll_pwait => "epoll_pwait",
        #[cfg(target_arch = "x86_64")]
        n if n == libc::SYS_epoll_wait => "epoll_wait",
        n if n == libc::SYS_epoll_pwait2 => "epoll_pwait2",
        n if n == libc::SYS_read => "read",
        n if n == libc::SYS_write => "write",
        n if n == libc::SYS_accept4 => "accept4",
        n if n == libc::SYS_nanosleep || n == libc::SYS_clock_nanosleep => "sleep",
        _ => "other",
    })
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// The inodes of the process's sockets.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| {
        let link = fs::read_link(fd.ok()?.path()).ok()?;
        let link = link.to_str()?;
        link.strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    })
    .collect()
}

/// The name of a `/proc/net/tcp` state code.
pub fn tcp_state_name(code: u8) -> &'static str {
    match code {
        0x01 => "ESTABLISHED",
        0x02 => "SYN_SENT",
        0x03 => "SYN_RECV",
        0x04 => "FIN_WAIT1",
        0x05 => "FIN_WAIT2",
        0x06 => "TIME_WAIT",
        0x07 => "CLOSE",
        0x08 => "CLOSE_WAIT",
        0x09 => "LAST_ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// Counts the process's TCP sockets by state (from its network namespace's
/// `/proc/PID/net/tcp{,6}`), and the accept-queue length of its listeners.
fn tcp_sockets(pid: u32, inodes: &HashSet<u64>) -> (BTreeMap<&'static str, u64>, u64) {
    let mut states = BTreeMap::new();
    let mut backlog = 0;
    for file in ["tcp", "tcp6"] {
        let Ok(table) = fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(state), Some(queues), Some(inode)) =
                (fields.get(3), fields.get(4), fields.get(9))
            else {
                continue;
            };
            let Ok(inode) = inode.parse::<u64>() else {
                continue;
            };
            if !inodes.contains(&inode) {
                continue;
            }
            let code = u8::from_str_radix(state, 16).unwrap_or(0);
            *states.entry(tcp_state_name(code)).or_default() += 1;
            if code == 0x0A {
                let rx = queues
                    .split(':')
                    .nth(1)
                    .and_then(|q| u64::from_str_radix(q, 16).ok());
                backlog += rx.unwrap_or(0);
            }
        }
    }
    (states, backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspects_this_very_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let info = inspect(std::process::id(), Duration::from_millis(50));
        assert!(info.alive && info.fds > 0 && info.rss_kib.unwrap_or(0) > 0);
        assert!(!info.threads.is_empty());
        assert!(
            info.tcp_states.get("LISTEN").copied().unwrap_or(0) >= 1,
            "{:?}",
            info.tcp_states
        );
        drop(listener);
    }
}
