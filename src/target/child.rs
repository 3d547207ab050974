//! A target process that squall owns: spawned apart from squall's runtime,
//! its stderr kept as a ring of the last lines, stopped with SIGTERM then
//! SIGKILL, and never left behind (dropping it kills it).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many lines of the target's stderr are kept.
pub const STDERR_LINES: usize = 200;

/// The last [`STDERR_LINES`] lines of a process's stderr, shared with readers.
#[derive(Debug, Clone, Default)]
pub struct StderrTail {
    // A std Mutex: the reader thread and the watchdog only push or copy a few
    // lines while holding it, and nobody holds it across an `.await`.
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl StderrTail {
    /// The lines kept so far, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .expect("stderr tail lock")
            .iter()
            .cloned()
            .collect()
    }

    fn push(&self, line: String) {
        let mut lines = self.lines.lock().expect("stderr tail lock");
        if lines.len() == STDERR_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

/// A running target process.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
    tail: StderrTail,
    reader: Option<JoinHandle<()>>,
    program: String,
}

impl ChildProcess {
    /// Spawns `argv` with stdin closed, stdout discarded and stderr captured.
    pub fn spawn(argv: &[String]) -> Result<ChildProcess, String> {
        let (program, args) = argv.split_first().ok_or("the target's command is empty")?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {program:?}: {e}"))?;
        let tail = StderrTail::default();
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = tail.clone();
        let reader = std::thread::Builder::new()
            .name("target-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    match line {
                        Ok(line) => sink.push(line),
                        Err(_) => break,
                    }
                }
            })
            .map_err(|e| format!("cannot start the stderr reader: {e}"))?;
        Ok(ChildProcess {
            child,
            tail,
            reader: Some(reader),
            program: program.clone(),
        })
    }

    /// The process id, for the watchdog's diagnostics.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A handle on the last lines of its stderr.
    pub fn stderr_tail(&self) -> StderrTail {
        self.tail.clone()
    }

    /// Why it is no longer running, if it is not.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.program)),
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", self.program)),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns how it ended.
    pub fn stop(mut self, grace: Duration) -> String {
        self.terminate(grace)
    }

    fn terminate(&mut self, grace: Duration) -> String {
        if let Some(why) = self.exited() {
            return why;
        }
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.join_reader();
                return format!("stopped ({status})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // A target that ignores SIGTERM (or is hung) gets SIGKILL.
        let _ = self.child.kill();
        let status = self.child.wait();
        self.join_reader();
        match status {
            Ok(status) => format!("killed after {grace:?} ({status})"),
            Err(e) => format!("killed, wait failed: {e}"),
        }
    }

    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            // The pipe closes when the process exits (unless a grandchild holds
            // it): do not wait for a reader that may never finish.
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
    unsafe {
        libc::kill(pid, sig);
    }
}
