//! The target of a run: the builtin relay or another command as squall's own
//! child process (never inside squall's runtime, so a hung or crashed target
//! cannot take the harness down), or an external URL.

pub mod child;
pub mod health;

use child::ChildProcess;
pub use child::Stopped;
use squall_chaos::watchdog::StderrTail;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use squall_proto::{TlsClient, TlsSettings};

/// What to start, resolved from the scenario's `[target]`.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetSpec {
    /// `squall relay` as a child, on a free loopback port; these flags are
    /// added after `--addr` and `--ready-file` (auth, `--bug`, ...).
    Builtin {
        /// Extra flags for `squall relay`.
        relay_args: Vec<String>,
        /// How many relay processes (topics are spread over them whole).
        relays: u32,
        /// The flags serve TLS (`--tls-cert`): the URLs are `wss://` and
        /// `https://`.
        tls: bool,
    },
    /// Any program; `{port}` (a free loopback port) and `{squall}` (this
    /// binary) are substituted in the command and the endpoints. It is ready
    /// when its health URL answers 200, or without one, when the first URL's
    /// port accepts TCP connections.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Where it listens.
        endpoints: Endpoints,
    },
    /// A relay that is already running.
    Url {
        /// Where it listens.
        endpoints: Endpoints,
    },
}

/// Where a target listens.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    /// WebSocket URLs.
    pub urls: Vec<String>,
    /// Health URL (readiness, and the watchdog's probe).
    pub health: Option<String>,
    /// Prometheus metrics URL (the watchdog's scrape).
    pub metrics: Option<String>,
}

impl Endpoints {
    fn map(&self, f: impl Fn(&String) -> String) -> Endpoints {
        Endpoints {
            urls: self.urls.iter().map(&f).collect(),
            health: self.health.as_ref().map(&f),
            metrics: self.metrics.as_ref().map(&f),
        }
    }

    /// Every URL, WebSocket and HTTP.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.urls.iter().chain(&self.health).chain(&self.metrics)
    }
}

/// Why a target could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// No loopback port was free.
    #[error("no free port: {0}")]
    NoFreePort(std::io::Error),
    /// squall could not find its own binary (to start `squall relay`).
    #[error("cannot find squall's own binary: {0}")]
    OwnBinary(std::io::Error),
    /// The TLS settings do not load (a CA file that went missing since
    /// the scenario was validated).
    #[error("TLS: {0}")]
    Tls(#[from] squall_proto::tls::TlsError),
    /// `[target] command` is empty.
    #[error("the target's command is empty")]
    EmptyCommand,
    /// The program could not be spawned.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The process ended before it was ready.
    #[error("the target did not start: {how}{stderr}")]
    Exited {
        /// How it ended.
        how: Stopped,
        /// The end of its stderr, introduced, or empty.
        stderr: String,
    },
    /// It was not ready within `startup_timeout`.
    #[error("the target was not ready within the startup timeout{stderr}")]
    NotReady {
        /// The end of its stderr, introduced, or empty.
        stderr: String,
    },
}

/// How to start and stop the target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSettings {
    /// What to start.
    pub spec: TargetSpec,
    /// How `wss://` and `https://` URLs are trusted (the readiness GET of an
    /// `https://` health URL among them).
    pub tls: TlsSettings,
    /// How long it may take to become ready.
    pub startup_timeout: Duration,
    /// How long it gets between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
}

/// A target ready to be loaded.
#[derive(Debug)]
pub struct Target {
    /// Where it listens.
    pub endpoints: Endpoints,
    /// How its `wss://` and `https://` URLs are trusted.
    pub tls: TlsSettings,
    /// The processes squall owns (several for a builtin target with
    /// `relays > 1`; the first is the one the watchdog watches).
    processes: Vec<ChildProcess>,
    stop_timeout: Duration,
}

impl Target {
    /// Starts the target (if squall owns it) and waits until it is ready.
    pub fn start(settings: &TargetSettings) -> Result<Target, TargetError> {
        let deadline = Instant::now() + settings.startup_timeout;
        match &settings.spec {
            TargetSpec::Builtin {
                relay_args,
                relays,
                tls,
            } => start_builtin(relay_args, *relays, *tls, settings, deadline),
            TargetSpec::Command { argv, endpoints } => {
                let port = free_port()?.to_string();
                let exe = current_exe()?;
                let fill = |s: &String| s.replace("{port}", &port).replace("{squall}", &exe);
                let argv: Vec<String> = argv.iter().map(fill).collect();
                let endpoints = endpoints.map(fill);
                let tls = TlsClient::new(&settings.tls)?;
                let mut process = ChildProcess::spawn(&argv)?;
                let probe = |timeout| match &endpoints.health {
                    Some(h) => health::http_status(h, &tls, timeout) == Ok(200),
                    None => health::tcp_open(&endpoints.urls[0], timeout),
                };
                wait_ready(&mut process, deadline, probe)?;
                Ok(Target {
                    endpoints,
                    tls: settings.tls.clone(),
                    processes: vec![process],
                    stop_timeout: settings.stop_timeout,
                })
            }
            TargetSpec::Url { endpoints } => Ok(Target {
                endpoints: endpoints.clone(),
                tls: settings.tls.clone(),
                processes: Vec::new(),
                stop_timeout: settings.stop_timeout,
            }),
        }
    }

    /// The WebSocket URLs to load.
    pub fn urls(&self) -> &[String] {
        &self.endpoints.urls
    }

    /// Whether squall speaks TLS to it (a `wss://` or `https://` URL).
    pub fn uses_tls(&self) -> bool {
        self.endpoints
            .all()
            .any(|u| u.starts_with("wss://") || u.starts_with("https://"))
    }

    /// The TLS client of its `wss://` and `https://` URLs, from the
    /// scenario's settings.
    pub fn tls_client(&self) -> Result<TlsClient, TargetError> {
        Ok(TlsClient::new(&self.tls)?)
    }

    /// The (first) target process's id, when squall owns it.
    pub fn pid(&self) -> Option<u32> {
        self.processes.first().map(ChildProcess::pid)
    }

    /// The last lines of its stderr, when squall owns it.
    pub fn stderr_tail(&self) -> Option<StderrTail> {
        self.processes.first().map(ChildProcess::stderr_tail)
    }

    /// How a process squall owns ended, if one has (checked without
    /// blocking; `None` for a `url` target).
    pub fn exited(&mut self) -> Option<Stopped> {
        self.processes.iter_mut().find_map(ChildProcess::exited)
    }

    /// The URLs, for display.
    pub fn describe(&self) -> String {
        self.endpoints.urls.join(", ")
    }

    /// Stops the processes squall owns (SIGTERM to all at once, SIGKILL
    /// to any still running after the stop timeout); says how each ended.
    pub fn stop(mut self) -> Vec<Stopped> {
        for p in &mut self.processes {
            p.terminate();
        }
        let deadline = Instant::now() + self.stop_timeout;
        self.processes
            .into_iter()
            .map(|p| p.stop(deadline))
            .collect()
    }
}

fn start_builtin(
    relay_args: &[String],
    relays: u32,
    tls: bool,
    settings: &TargetSettings,
    deadline: Instant,
) -> Result<Target, TargetError> {
    let mut processes = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..relays {
        let ready = ReadyFile::new(i);
        let mut argv = vec![
            current_exe()?,
            "relay".to_string(),
            "--addr".to_string(),
            "127.0.0.1:0".to_string(),
            "--ready-file".to_string(),
            ready.0.display().to_string(),
        ];
        argv.extend(relay_args.iter().cloned());
        let mut process = ChildProcess::spawn(&argv)?;
        let mut addr = None;
        wait_ready(&mut process, deadline, |_| {
            addr = ready.read();
            addr.is_some()
        })?;
        addrs.push(addr.expect("ready means an address was read"));
        processes.push(process);
    }
    let first = addrs[0];
    let (ws, http) = if tls {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    Ok(Target {
        endpoints: Endpoints {
            urls: addrs.iter().map(|a| format!("{ws}://{a}/ws")).collect(),
            health: Some(format!("{http}://{first}/health")),
            metrics: Some(format!("{http}://{first}/metrics")),
        },
        tls: settings.tls.clone(),
        processes,
        stop_timeout: settings.stop_timeout,
    })
}

/// Polls `ready` until it holds, the process exits, or the deadline passes.
fn wait_ready(
    process: &mut ChildProcess,
    deadline: Instant,
    mut ready: impl FnMut(Duration) -> bool,
) -> Result<(), TargetError> {
    loop {
        if let Some(how) = process.exited() {
            // Its last words may still be in the pipe: give the reader
            // thread a moment to take them (bounded; only on this path).
            let tail = process.stderr_tail();
            let waited = Instant::now();
            while tail.lines().is_empty() && waited.elapsed() < Duration::from_millis(500) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return Err(TargetError::Exited {
                how,
                stderr: tail_text(&tail),
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if ready(left.clamp(Duration::from_millis(50), Duration::from_millis(500))) {
            return Ok(());
        }
        if left.is_zero() {
            return Err(TargetError::NotReady {
                stderr: tail_text(&process.stderr_tail()),
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn tail_text(tail: &StderrTail) -> String {
    let lines = tail.lines();
    let last: Vec<&String> = lines.iter().rev().take(10).rev().collect();
    if last.is_empty() {
        String::new()
    } else {
        let text: Vec<&str> = last.iter().map(|s| s.as_str()).collect();
        format!("; its stderr ends with:\n  {}", text.join("\n  "))
    }
}

/// A file the builtin relay writes its bound address to once it accepts.
struct ReadyFile(PathBuf);

impl ReadyFile {
    fn new(index: u32) -> ReadyFile {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "squall-ready-{}-{nanos}-{index}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        ReadyFile(path)
    }

    fn read(&self) -> Option<SocketAddr> {
        read_addr(&self.0)
    }
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read_addr(path: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, TargetError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|a| a.port())
        .map_err(TargetError::NoFreePort)
}

/// This very binary, to start `squall relay` and `{squall}` commands.
pub fn current_exe() -> Result<String, TargetError> {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .map_err(TargetError::OwnBinary)
}
