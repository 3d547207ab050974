//! Helpers shared by the CLI's integration tests: run the real `squall`
//! binary with a bounded wait, write scenario files, read results files and
//! check them against `results/schema.json`.
#![allow(dead_code)] // each test file uses its own subset

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `squall` binary under test.
pub fn squall() -> Command {
    Command::new(env!("CARGO_BIN_EXE_squall"))
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("squall-test-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes a scenario file and returns its path.
    pub fn scenario(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The results directory of this scratch.
    pub fn out(&self) -> PathBuf {
        self.0.join("results")
    }

    /// Every results file written so far (not timelines), sorted.
    pub fn results_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.out()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a finished process left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// Runs `squall ARGS` and waits at most `limit` (then kills it and fails).
pub fn run(args: &[&str], limit: Duration) -> Finished {
    let child = squall()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("squall starts");
    wait(child, limit)
}

/// Waits at most `limit` for `child`, reading its output.
pub fn wait(mut child: Child, limit: Duration) -> Finished {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "squall did not end within {limit:?}; stderr:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Finished {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Reads a results file and checks it against `results/schema.json`.
pub fn read_results(path: &Path) -> Value {
    let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_valid(&value);
    value
}

/// Fails unless `value` is valid against `results/schema.json`.
pub fn assert_valid(value: &Value) {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema.json is a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "results file breaks schema.json:\n{}",
        errors.join("\n")
    );
}

/// Runs a scenario to its end and returns its one results file.
pub fn run_scenario(
    scratch: &Scratch,
    scenario: &Path,
    extra: &[&str],
    limit: Duration,
) -> (Finished, Value) {
    let out = scratch.out();
    let mut args = vec![
        "run",
        scenario.to_str().unwrap(),
        "--no-tui",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let before = scratch.results_files();
    let finished = run(&args, limit);
    let new: Vec<PathBuf> = scratch
        .results_files()
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(
        new.len(),
        1,
        "one new results file; stderr:\n{}",
        finished.stderr
    );
    let results = read_results(&new[0]);
    (finished, results)
}

/// A `u64` at a JSON pointer.
pub fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} in {v:#}"))
}

/// An `f64` at a JSON pointer.
pub fn f(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} in {v:#}"))
}

/// A small scenario: 40 sockets, 4 topics, 8 publishers at 200 msg/s for
/// `seconds`, 1 s drain; `extra` adds keys (`[target]`, `[[chaos]]`, ...).
pub fn small(name: &str, seconds: u64, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nduration = \"{seconds}s\"\ndrain = \"1s\"\n{extra}\n\
         [load]\nconnections = 40\nramp = \"1s\"\ntopics = 4\npublishers = 8\nrate = 200\npayload_bytes = 128\n"
    )
}

/// Starts `squall run FILE --no-tui --out <scratch>` in the background.
pub fn spawn_run(scratch: &Scratch, scenario: &Path) -> Child {
    squall()
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--no-tui",
            "--out",
            scratch.out().to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs a scenario, sends `signal` once its timeline holds two seconds (or
/// after 20 s), and waits for it to end.
pub fn run_then_signal(scratch: &Scratch, scenario: &Path, signal: libc::c_int) -> Finished {
    let child = spawn_run(scratch, scenario);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let lines = std::fs::read_dir(scratch.out())
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .map(|t| t.lines().count())
            .max()
            .unwrap_or(0);
        if lines >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) on the child we just spawned and still own.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    wait(child, Duration::from_secs(20))
}
