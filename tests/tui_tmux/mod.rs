//! A real terminal for the UI tests: a tmux server of the test's own (its
//! own socket, so nothing else's tmux is touched), a detached session of a
//! fixed size running one command, and its screen read with `capture-pane`.
//! Every wait is bounded.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One tmux session on a private server, killed on drop.
pub struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    /// Whether tmux can be run here; under `CI=true` its absence fails the
    /// test instead (a test never passes by skipping in CI).
    pub fn available() -> bool {
        let found = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found || std::env::var("CI").as_deref() != Ok("true"),
            "tmux is not installed and CI=true: a test never passes by skipping (scripts/test installs it)"
        );
        found
    }

    /// Starts `command` (a shell command line) in a `width`×`height` pane.
    pub fn start(name: &str, width: u16, height: u16, command: &str) -> Self {
        let tmux = Self {
            socket: format!("squall-test-{name}-{}", std::process::id()),
            session: name.to_string(),
        };
        let status = tmux
            .cmd()
            .args(["new-session", "-d", "-s", name, "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(command)
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]);
        cmd
    }

    /// The visible screen as text; empty once the session is gone.
    pub fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types keys (tmux key names such as `Left`, `C-c`, `q`).
    pub fn send(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", &self.session])
            .args(keys)
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux send-keys failed");
    }

    /// Resizes the terminal, as a user dragging the window would.
    pub fn resize(&self, width: u16, height: u16) {
        let status = self
            .cmd()
            .args(["resize-window", "-t", &self.session, "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux resize-window failed");
    }

    /// Polls the screen until `ready` holds, for at most `limit`; returns
    /// the last screen seen and whether it held.
    pub fn wait_for(&self, limit: Duration, ready: impl Fn(&str) -> bool) -> (String, bool) {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.capture();
            if ready(&screen) {
                return (screen, true);
            }
            if Instant::now() > deadline {
                return (screen, false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// Single-quotes `s` for the shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Starts `squall SUBCOMMAND <dir>/<file> --tui --out <dir>/out EXTRA...` in
/// a 100×32 tmux pane, with `scenario` written to `<dir>/<file>` first; the
/// pane shows `SQUALL-EXIT=<code>` when squall ends, and stays a while so
/// it can be read.
pub fn start_squall(
    name: &str,
    subcommand: &str,
    dir: &Path,
    file: &str,
    scenario: &str,
    extra: &[&str],
) -> Tmux {
    let path = dir.join(file);
    std::fs::write(&path, scenario).unwrap();
    let extra: Vec<String> = extra.iter().map(|a| shell_quote(a)).collect();
    let command = format!(
        "{} {subcommand} {} --tui --out {} {}; echo SQUALL-EXIT=$?; sleep 60",
        shell_quote(env!("CARGO_BIN_EXE_squall")),
        shell_quote(&path.display().to_string()),
        shell_quote(&dir.join("out").display().to_string()),
        extra.join(" "),
    );
    Tmux::start(name, 100, 32, &command)
}

/// The word right after `marker` in `text` (a screen: `│` ends a word).
pub fn after<'a>(text: &'a str, marker: &str) -> &'a str {
    let from = text.find(marker).unwrap() + marker.len();
    text[from..]
        .split(|c: char| c.is_whitespace() || c == '│')
        .find(|w| !w.is_empty())
        .unwrap()
}

/// Whether a process whose command line holds `marker` (e.g. a test's own
/// temporary directory) is still running.
pub fn running(marker: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name().to_string_lossy().parse::<u32>().is_ok()
            && std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
    })
}

/// Waits, at most `limit`, until no process whose command line holds
/// `marker` runs; says whether none does.
pub fn ended(marker: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while running(marker) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    true
}
