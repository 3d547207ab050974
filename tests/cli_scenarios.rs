//! Issue 3: `squall validate` and scenario errors through the real binary: a bad key
//! exits 2 and names the file, line and key; every shipped scenario is valid.

mod common;

use common::{Scratch, run};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_bad_key_exits_2_and_names_file_line_and_key() {
    let s = Scratch::new("badkey");
    let file = s.scenario(
        "bad",
        "name = \"bad\"\nduration = \"5s\"\n\n[load]\nconnections = 10\nconections = 5\n",
    );
    let out = run(&["run", file.to_str().unwrap(), "--no-tui"], LIMIT);
    assert_eq!(out.code(), 2, "{out:?}");
    let expected = format!("{}:6:1: key `load.conections`", file.display());
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown field `conections`"),
        "{}",
        out.stderr
    );
    assert!(
        s.results_files().is_empty(),
        "an invalid scenario writes no results"
    );
    let out = run(&["validate", file.to_str().unwrap()], LIMIT);
    assert_eq!(out.code(), 2);
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
}

#[test]
fn a_bad_value_names_its_key_and_a_bad_override_names_the_override() {
    let s = Scratch::new("badvalue");
    let file = s.scenario("v", "duration = \"5 parsecs\"\n");
    let out = run(&["validate", file.to_str().unwrap()], LIMIT);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr.contains(":1:12: key `duration`"),
        "{}",
        out.stderr
    );
    let file = s.scenario("ok", "duration = \"5s\"\n");
    let out = run(
        &[
            "validate",
            file.to_str().unwrap(),
            "--set",
            "load.connections=lots",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr.contains("--set load.connections=lots"),
        "{}",
        out.stderr
    );
    let out = run(
        &[
            "validate",
            file.to_str().unwrap(),
            "--set",
            "load.connections=5000",
        ],
        LIMIT,
    );
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains("5000 connections"), "{}", out.stdout);
}

#[test]
fn checks_that_need_more_than_types_name_their_key_too() {
    let s = Scratch::new("plan");
    let file = s.scenario("p", "[load]\nconnections = 10\npublishers = 20\n");
    let out = run(&["validate", file.to_str().unwrap()], LIMIT);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr
            .contains(":3:1: key `load.publishers`: 20 publishers"),
        "{}",
        out.stderr
    );
    let file = s.scenario("r", "duration = \"5s\"\n[load]\nramp = \"10s\"\n");
    let out = run(&["validate", file.to_str().unwrap()], LIMIT);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr
            .contains(":3:1: key `load.ramp`: ramp and stages"),
        "{}",
        out.stderr
    );
    let file = s.scenario("t", "[target]\nkind = \"command\"\n");
    let out = run(&["validate", file.to_str().unwrap()], LIMIT);
    assert_eq!(out.code(), 2);
    // The key is missing: the error points at its table.
    assert!(
        out.stderr.contains(":1:2: key `target.command`: required"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_remote_target_is_refused_without_both_permissions() {
    let s = Scratch::new("remote");
    let text = "duration = \"5s\"\n[target]\nkind = \"url\"\nurl = \"ws://10.0.0.1:9/ws\"\n[auth]\nkind = \"none\"\n";
    let file = s.scenario("r", text);
    let out = run(
        &["run", file.to_str().unwrap(), "--no-tui", "--allow-remote"],
        LIMIT,
    );
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.contains("not a loopback address"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = run(&["validate", path.to_str().unwrap()], LIMIT);
            assert_eq!(out.code(), 0, "{}: {}", path.display(), out.stderr);
            checked += 1;
        }
    }
    assert!(checked >= 1);
}
