//! A target process that squall owns: spawned apart from squall's runtime,
//! the last 200 lines of its stderr kept for hang diagnostics (the chaos
//! crate's `StderrTail`), stopped with SIGTERM then SIGKILL, and never left
//! behind (dropping it kills it).

use super::TargetError;
use squall_chaos::watchdog::StderrTail;
use std::fmt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a target process ended.
#[derive(Debug)]
pub enum Stopped {
    /// It had already exited by itself.
    Exited {
        /// The program.
        program: String,
        /// Its status.
        status: ExitStatus,
    },
    /// Its status could not be read.
    Unknown {
        /// The program.
        program: String,
        /// What the system said.
        error: std::io::Error,
    },
    /// It stopped on SIGTERM.
    Terminated(ExitStatus),
    /// It ignored SIGTERM until the stop timeout and was killed.
    Killed(ExitStatus),
    /// It was killed, and waiting for it failed.
    KilledUnreaped(std::io::Error),
}

impl Stopped {
    /// Whether squall had to SIGKILL it.
    pub fn was_killed(&self) -> bool {
        matches!(self, Stopped::Killed(_) | Stopped::KilledUnreaped(_))
    }
}

/// An exit status in words: "exited with status 70", "killed by signal 9".
fn in_words(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stopped::Exited { program, status } => write!(f, "{program} {}", in_words(*status)),
            Stopped::Unknown { program, error } => write!(f, "{program}: {error}"),
            Stopped::Terminated(status) => write!(f, "stopped: {}", in_words(*status)),
            Stopped::Killed(status) => {
                write!(f, "killed after SIGTERM was ignored: {}", in_words(*status))
            }
            Stopped::KilledUnreaped(e) => write!(f, "killed, wait failed: {e}"),
        }
    }
}

/// A running target process.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
    tail: StderrTail,
    program: String,
}

impl ChildProcess {
    /// Spawns `argv` with stdin closed, stdout discarded and stderr captured.
    pub fn spawn(argv: &[String]) -> Result<ChildProcess, TargetError> {
        let (program, args) = argv.split_first().ok_or(TargetError::EmptyCommand)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C at the terminal stops the run,
            // not the target under measurement (squall stops it at the end).
            .process_group(0);
        // SAFETY: the closure runs in the child between fork and exec and only
        // calls prctl(2), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // If squall dies without stopping it, the target gets SIGTERM.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| TargetError::Spawn {
            program: program.clone(),
            source,
        })?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = StderrTail::capture(stderr, None);
        Ok(ChildProcess {
            child,
            tail,
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
    pub fn exited(&mut self) -> Option<Stopped> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(Stopped::Exited {
                program: self.program.clone(),
                status,
            }),
            Ok(None) => None,
            Err(error) => Some(Stopped::Unknown {
                program: self.program.clone(),
                error,
            }),
        }
    }

    /// Sends SIGTERM (the first half of [`ChildProcess::stop`]), so that
    /// several targets can be asked to stop at once.
    pub fn terminate(&mut self) {
        if self.exited().is_none() {
            signal(self.pid(), libc::SIGTERM);
        }
    }

    /// SIGTERM, then SIGKILL at `deadline`; returns how it ended.
    pub fn stop(mut self, deadline: Instant) -> Stopped {
        if let Some(why) = self.exited() {
            return why;
        }
        self.terminate();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Stopped::Terminated(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // A target that ignores SIGTERM (or is hung) gets SIGKILL.
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => Stopped::Killed(status),
            Err(e) => Stopped::KilledUnreaped(e),
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
