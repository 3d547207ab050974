//! The hang file: `<out>/<run>-hang-N.txt`, written at detection. A
//! one-line classification from `/proc` first, then the evidence: every
//! thread's stack (gdb when installed, else the kernel's view), memory,
//! descriptors, TCP states, the stderr tail and the last `/metrics` scrape.

use super::procfs::{self, ProcessInfo, ThreadInfo};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long gdb may take to attach and print every stack.
const GDB_TIMEOUT: Duration = Duration::from_secs(30);
/// The window over which thread CPU is sampled.
const CPU_WINDOW: Duration = Duration::from_millis(500);
/// A thread above this share of a CPU is spinning.
const BUSY_PERCENT: f64 = 80.0;
/// A thread computing in user space (in no system call) above this share of
/// a CPU is spinning too: on a contended machine a spinning thread gets
/// only its fair share.
const BUSY_COMPUTING_PERCENT: f64 = 20.0;
/// CLOSE_WAIT sockets from which a pile-up counts as a leak.
const LEAK_CLOSE_WAIT: u64 = 16;

/// What the watchdog knew when it declared the hang.
#[derive(Debug, Clone, Default)]
pub struct HangFacts {
    /// The run's name.
    pub run_name: String,
    /// 1 for the run's first hang.
    pub number: usize,
    /// The hang's kind (`unresponsive`, `delivery-stall`, ...).
    pub kind: String,
    /// When it began, seconds from the origin (see
    /// [`super::HangRecord::started_s`]).
    pub started_s: f64,
    /// Detection, seconds from the origin.
    pub detected_s: f64,
    /// The last chaos action before the hang.
    pub last_chaos: Option<String>,
    /// What the watchdog saw: why the probes failed, what stalled topics
    /// owe, how the process ended.
    pub probe_errors: Vec<String>,
    /// How the target process ended, when it did (`"exited with status
    /// 70"`): the classification then says so, and /proc is not read.
    pub exited: Option<String>,
    /// Whether the stacks may come from gdb, which stops the process while
    /// it reads them: only for a target that no longer answers. A partial
    /// hang's target (delivery-stall, accept-stall) still works for
    /// everyone else, and a pause would distort the run and make it look
    /// unresponsive: its stacks are the kernel's.
    pub gdb: bool,
    /// The last `/metrics` scrape before the hang, with its time in seconds.
    pub last_metrics: Option<(f64, String)>,
    /// The target's stderr, last lines.
    pub stderr_tail: Vec<String>,
}

/// The one-line classification: a label (`blocked-threads`, `busy-loop`,
/// `async-stall`, `leak`, or `stopped`/`exited` when that is what /proc
/// shows) and the reason.
pub fn classify(info: &ProcessInfo) -> (&'static str, String) {
    if !info.alive {
        return ("exited", "the process is gone: it crashed or exited".into());
    }
    let threads = &info.threads;
    if !threads.is_empty() && threads.iter().all(|t| matches!(t.state, 'T' | 't')) {
        return (
            "stopped",
            format!(
                "all {} threads are stopped (SIGSTOP or a tracer)",
                threads.len()
            ),
        );
    }
    let spinning = |t: &&ThreadInfo| {
        t.cpu_percent >= BUSY_PERCENT || (t.computing() && t.cpu_percent >= BUSY_COMPUTING_PERCENT)
    };
    if let Some(hot) = threads
        .iter()
        .filter(spinning)
        .max_by(|a, b| a.cpu_percent.total_cmp(&b.cpu_percent))
    {
        return (
            "busy-loop",
            format!(
                "thread {} ({}) at {:.0}% CPU: a loop that never yields",
                hot.name, hot.tid, hot.cpu_percent
            ),
        );
    }
    let futex = threads.iter().filter(|t| t.in_futex()).count();
    let epoll = threads.iter().filter(|t| t.in_epoll()).count();
    let cpu: f64 = threads.iter().map(|t| t.cpu_percent).sum();
    if futex > 0 && epoll == 0 {
        return (
            "blocked-threads",
            format!(
                "{futex} of {} threads asleep on futexes, none polling for I/O, {cpu:.0}% CPU: a lock deadlock (see the stacks for the lock)",
                threads.len()
            ),
        );
    }
    let close_wait = info.tcp_states.get("CLOSE_WAIT").copied().unwrap_or(0);
    let total: u64 = info.tcp_states.values().sum();
    if close_wait >= LEAK_CLOSE_WAIT && close_wait * 4 >= total {
        return (
            "leak",
            format!(
                "{close_wait} of {total} sockets in CLOSE_WAIT: peers left and the server never closed its side"
            ),
        );
    }
    (
        "async-stall",
        format!(
            "threads idle ({epoll} polling for I/O, {futex} on futexes, {cpu:.0}% CPU) while requests go unanswered: \
             a task awaits something that never comes"
        ),
    )
}

/// Every thread's stack: gdb's user-space backtraces when `gdb` allows it,
/// gdb is installed and the process is not stopped (a detaching gdb would
/// resume it), else the kernel's stacks. Returns the source and the text.
pub fn stacks(pid: u32, info: &ProcessInfo, gdb: bool) -> (String, String) {
    let stopped = info.threads.iter().all(|t| matches!(t.state, 'T' | 't'));
    if gdb && !stopped {
        match gdb_backtraces(pid) {
            Ok(text) if text.contains("Thread") => return ("gdb".into(), text),
            Ok(text) => return ("gdb (no threads printed)".into(), text),
            Err(GdbError::NotInstalled) => {}
            Err(why) => {
                return (
                    format!("gdb failed: {why}; kernel stacks follow"),
                    kernel_stacks(pid, info),
                );
            }
        }
    }
    (
        "/proc/PID/task/*/stack (kernel side)".into(),
        kernel_stacks(pid, info),
    )
}

/// Why gdb printed no stacks.
#[derive(Debug, thiserror::Error)]
enum GdbError {
    /// No `gdb` on the PATH: the kernel's stacks are all there is.
    #[error("gdb is not installed")]
    NotInstalled,
    /// Starting or waiting for gdb failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// gdb did not finish within [`GDB_TIMEOUT`] and was killed.
    #[error("gdb took more than {}s", .0.as_secs())]
    Timeout(Duration),
}

fn gdb_backtraces(pid: u32) -> Result<String, GdbError> {
    let child = Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-p",
            &pid.to_string(),
            "-ex",
            "set pagination off",
            "-ex",
            "thread apply all bt",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                GdbError::NotInstalled
            } else {
                GdbError::Io(e)
            }
        })?;
    let gdb_pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(GDB_TIMEOUT) {
        Ok(output) => output?,
        Err(_) => {
            // SAFETY: kill has no memory preconditions; gdb_pid is our own child.
            unsafe { libc::kill(gdb_pid as i32, libc::SIGKILL) };
            return Err(GdbError::Timeout(GDB_TIMEOUT));
        }
    };
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors = String::from_utf8_lossy(&output.stderr);
    if !errors.trim().is_empty() {
        let _ = write!(text, "\n(gdb stderr)\n{}", errors.trim());
    }
    Ok(text)
}

fn kernel_stacks(pid: u32, info: &ProcessInfo) -> String {
    let mut text = String::new();
    for t in &info.threads {
        let mut stack = String::new();
        let _ = std::fs::File::open(format!("/proc/{pid}/task/{}/stack", t.tid))
            .and_then(|mut f| f.read_to_string(&mut stack));
        let _ = writeln!(
            text,
            "Thread {} ({}):\n{}",
            t.tid,
            t.name,
            if stack.is_empty() {
                "  (unreadable)\n".into()
            } else {
                stack
            }
        );
    }
    text
}

/// Writes `<out_dir>/<run>-hang-N.txt`; returns its path.
pub fn write(out_dir: &Path, facts: &HangFacts, pid: Option<u32>) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join(format!("{}-hang-{}.txt", facts.run_name, facts.number));
    let text = render(facts, pid);
    let tmp = path.with_extension("txt.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The file's text.
pub fn render(facts: &HangFacts, pid: Option<u32>) -> String {
    let mut out = String::new();
    let info = pid
        .filter(|_| facts.exited.is_none())
        .map(|pid| procfs::inspect(pid, CPU_WINDOW));
    match (&facts.exited, &info) {
        (Some(how), _) => {
            let _ = writeln!(out, "classification: exited: the process {how}");
        }
        (None, Some(info)) => {
            let (label, why) = classify(info);
            let _ = writeln!(out, "classification: {label}: {why}");
        }
        (None, None) => {
            let _ = writeln!(
                out,
                "classification: unknown: squall does not own the target process, so /proc cannot be read"
            );
        }
    }
    let _ = writeln!(
        out,
        "\nsquall hang #{} of run {}",
        facts.number, facts.run_name
    );
    let _ = writeln!(out, "kind:       {}", facts.kind);
    let _ = writeln!(out, "started_s:  {:.3}", facts.started_s);
    let _ = writeln!(out, "detected_s: {:.3}", facts.detected_s);
    let _ = writeln!(
        out,
        "last chaos: {}",
        facts.last_chaos.as_deref().unwrap_or("none")
    );
    for error in &facts.probe_errors {
        let _ = writeln!(out, "probe: {error}");
    }
    if let (Some(pid), Some(info)) = (pid, &info) {
        let _ = writeln!(out, "\n== process {pid} ==");
        let _ = writeln!(out, "command:  {}", info.cmdline);
        let _ = writeln!(out, "alive:    {}", info.alive);
        let _ = writeln!(
            out,
            "rss:      {} KiB",
            info.rss_kib.map_or("?".into(), |k| k.to_string())
        );
        let _ = writeln!(out, "open fds: {}", info.fds);
        let _ = writeln!(out, "threads:  {}", info.threads.len());
        let _ = writeln!(
            out,
            "\n== threads (/proc, CPU over {}ms) ==",
            CPU_WINDOW.as_millis()
        );
        let _ = writeln!(
            out,
            "{:>8}  {:<16} {:<5} {:>6}  {:<14} wchan",
            "tid", "name", "state", "cpu%", "syscall"
        );
        for t in &info.threads {
            let _ = writeln!(
                out,
                "{:>8}  {:<16} {:<5} {:>6.1}  {:<14} {}",
                t.tid,
                t.name,
                t.state,
                t.cpu_percent,
                t.syscall.unwrap_or("?"),
                t.wchan
            );
        }
        let _ = writeln!(
            out,
            "\n== TCP sockets of the target (/proc/net/tcp, tcp6) =="
        );
        for (state, n) in &info.tcp_states {
            let _ = writeln!(out, "{state:<12} {n}");
        }
        let _ = writeln!(
            out,
            "accept queue: {} connections waiting to be accepted",
            info.accept_backlog
        );
        if info.alive {
            let (source, text) = stacks(pid, info, facts.gdb);
            if source == "gdb" {
                let _ = writeln!(
                    out,
                    "\n== where each thread waits (from the stacks below) =="
                );
                for line in super::backtrace::summarize(&text) {
                    let _ = writeln!(out, "{line}");
                }
            }
            let _ = writeln!(out, "\n== stacks ({source}) ==\n{text}");
        }
    }
    let _ = writeln!(
        out,
        "\n== stderr (last {} lines) ==",
        facts.stderr_tail.len()
    );
    for line in &facts.stderr_tail {
        let _ = writeln!(out, "{}", strip_ansi(line));
    }
    match &facts.last_metrics {
        Some((at_s, body)) => {
            let _ = writeln!(out, "\n== last /metrics scrape (at {at_s:.3}s) ==\n{body}");
        }
        None => {
            let _ = writeln!(out, "\n== last /metrics scrape: none ==");
        }
    }
    out
}

/// Removes terminal colour codes (`ESC [ ... letter`) that loggers write
/// even into a pipe.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(state: char, cpu: f64, syscall: &'static str) -> ThreadInfo {
        ThreadInfo {
            tid: 1,
            name: "t".into(),
            state,
            cpu_percent: cpu,
            wchan: String::new(),
            syscall: Some(syscall),
        }
    }

    #[test]
    fn strips_colour_codes_from_stderr() {
        assert_eq!(
            strip_ansi("\u{1b}[2m12:00\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x"),
            "12:00  WARN x"
        );
    }

    #[test]
    fn classifies_what_proc_shows() {
        let mut info = ProcessInfo {
            alive: true,
            ..ProcessInfo::default()
        };
        info.threads = vec![thread('S', 0.0, "futex"), thread('S', 0.0, "futex")];
        assert_eq!(classify(&info).0, "blocked-threads");
        info.threads.push(thread('S', 0.0, "epoll_wait"));
        assert_eq!(classify(&info).0, "async-stall");
        info.tcp_states.insert("CLOSE_WAIT", 40);
        info.tcp_states.insert("ESTABLISHED", 10);
        assert_eq!(classify(&info).0, "leak");
        info.threads.push(thread('R', 30.0, "running"));
        assert_eq!(
            classify(&info).0,
            "busy-loop",
            "a computing thread at its fair share of a busy box"
        );
        info.threads.pop();
        info.threads.push(thread('R', 99.0, "other"));
        assert_eq!(classify(&info).0, "busy-loop");
        info.threads = vec![thread('T', 0.0, "futex")];
        assert_eq!(classify(&info).0, "stopped");
        assert_eq!(classify(&ProcessInfo::default()).0, "exited");
    }
}
