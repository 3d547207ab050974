//! `squall merge A.json B.json ... -o OUT.json [--junit FILE]`: one gate over
//! the shards of a run. Adds up the shards' engine reports exactly
//! (histograms, counters, per-publisher loss accounting), then evaluates the
//! thresholds recorded in the shards (`settings.thresholds`) on the merged
//! figures, judges the merged run (every hang of every shard included) and
//! exits with the codes `squall run` uses: 3 on a breach, 4 on a hang, 5 when
//! the target could not be tested.
//!
//! Only shards of one run merge: same scenario, same settings apart from the
//! shard itself (`settings.shard`), each shard once. A shard that is missing
//! leaves the merged run incomplete (exit 1 unless something worse happened).

use crate::exit::{Exit, Failure};
use crate::results::file::{self, ReadError};
use crate::results::{Parts, Results, summary};
use crate::scenario::raw::RawThresholds;
use crate::thresholds::{ThresholdError, Thresholds};
use serde_json::Value;
use squall_loadgen::{LoadReport, Shard};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The key of `settings` that says which shard a results file holds:
/// `{"index": I, "count": N}`, 1-based as on the command line.
pub const SHARD_KEY: &str = "shard";
/// The key of `settings` that holds `--start-at`, when given.
pub const START_AT_KEY: &str = "start_at";

/// Why results files could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No file at all.
    #[error("nothing to merge")]
    Nothing,
    /// Files of different scenarios.
    #[error("these are runs of different scenarios ({0:?} and {1:?})")]
    DifferentScenarios(String, String),
    /// Files of one scenario run with different settings.
    #[error(
        "file {index} of the merge ran with other settings than file 1 ({key}: {first} and {other}): \
         these are not shards of one run"
    )]
    DifferentSettings {
        /// 1-based position among the inputs.
        index: usize,
        /// The first setting that differs, as a dotted name.
        key: String,
        /// Its value in file 1 (JSON).
        first: String,
        /// Its value in file `index` (JSON).
        other: String,
    },
    /// The same shard twice: its counts would be added twice.
    #[error("shard {shard} is in the merge twice (files {first} and {second})")]
    DuplicateShard {
        /// The shard, `I/N`.
        shard: String,
        /// 1-based positions of the two files.
        first: usize,
        /// See `first`.
        second: usize,
    },
    /// Shards of runs cut into different numbers of shards.
    #[error("file {index} of the merge is a shard of {other} while file 1 is a shard of {first}")]
    ShardCounts {
        /// 1-based position among the inputs.
        index: usize,
        /// Shards of file 1's run.
        first: u32,
        /// Shards of file `index`'s run.
        other: u32,
    },
    /// A sharded run merged with an unsharded one.
    #[error("file {index} of the merge is {what} while file 1 is not: merge the shards of one run")]
    MixedShards {
        /// 1-based position among the inputs.
        index: usize,
        /// "a shard" or "not a shard".
        what: &'static str,
    },
    /// A file whose engine report is missing or unreadable.
    #[error("file {index} of the merge has no usable load_report: {source}")]
    LoadReport {
        /// 1-based position among the inputs.
        index: usize,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The recorded thresholds are not a `[thresholds]` table.
    #[error("the first file's settings.thresholds: {0}")]
    ThresholdsShape(serde_json::Error),
    /// The recorded thresholds hold a refused value.
    #[error("the first file's settings.{key}: {source}")]
    Thresholds {
        /// The threshold's key.
        key: String,
        /// Why it was refused.
        source: ThresholdError,
    },
    /// An input could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Inputs that did not appear within `--wait`.
    #[error("after waiting {waited:?}, still no results file at {}", list(.missing))]
    Missing {
        /// How long merge waited.
        waited: Duration,
        /// The files that are missing.
        missing: Vec<PathBuf>,
    },
}

impl MergeError {
    /// The exit code: shards that never came are the harness's failure (1),
    /// anything else is a usage error (2).
    pub fn failure(self) -> Failure {
        match self {
            MergeError::Missing { .. } => Failure::harness(self.to_string()),
            _ => Failure::usage(self.to_string()),
        }
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The settings a shard records: the scenario's, plus which shard it ran
/// ([`SHARD_KEY`]) and the agreed start ([`START_AT_KEY`]) when given.
pub fn shard_settings(settings: &Value, shard: Option<Shard>, start_at: Option<&str>) -> Value {
    let mut settings = settings.clone();
    if let Value::Object(map) = &mut settings {
        if let Some(s) = shard {
            map.insert(
                SHARD_KEY.into(),
                serde_json::json!({"index": s.index + 1, "count": s.count}),
            );
        }
        if let Some(at) = start_at {
            map.insert(START_AT_KEY.into(), Value::String(at.to_string()));
        }
    }
    settings
}

/// The shard a results file holds (0-based), if it is one.
fn shard_of(r: &Results) -> Option<Shard> {
    let s = r.settings.get(SHARD_KEY)?;
    let index = s.get("index")?.as_u64()?;
    let count = s.get("count")?.as_u64()?;
    Some(Shard {
        index: u32::try_from(index.checked_sub(1)?).ok()?,
        count: u32::try_from(count).ok()?,
    })
}

/// The first difference between two settings trees, as (dotted key, a, b).
fn difference(a: &Value, b: &Value, at: &str) -> Option<(String, String, String)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let name = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                difference(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &name,
                )
            })
        }
        _ if a == b => None,
        _ => Some((at.to_string(), a.to_string(), b.to_string())),
    }
}

/// The settings without what differs between shards of one run.
fn common_settings(r: &Results) -> Value {
    let mut s = r.settings.clone();
    if let Value::Object(map) = &mut s {
        map.remove(SHARD_KEY);
    }
    s
}

/// Refuses inputs that are not the shards of one run; returns how many
/// shards the run had when they say so.
fn check_one_run(inputs: &[Results]) -> Result<Option<u32>, MergeError> {
    let first = inputs.first().ok_or(MergeError::Nothing)?;
    if let Some(other) = inputs.iter().find(|r| r.scenario != first.scenario) {
        return Err(MergeError::DifferentScenarios(
            first.scenario.clone(),
            other.scenario.clone(),
        ));
    }
    let settings = common_settings(first);
    for (i, r) in inputs.iter().enumerate().skip(1) {
        if let Some((key, first, other)) = difference(&settings, &common_settings(r), "") {
            return Err(MergeError::DifferentSettings {
                index: i + 1,
                key,
                first,
                other,
            });
        }
    }
    let first_shard = shard_of(first);
    let mut seen: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for (i, r) in inputs.iter().enumerate() {
        match (first_shard, shard_of(r)) {
            (None, None) => continue,
            (None, Some(_)) => {
                return Err(MergeError::MixedShards {
                    index: i + 1,
                    what: "a shard",
                });
            }
            (Some(_), None) => {
                return Err(MergeError::MixedShards {
                    index: i + 1,
                    what: "not a shard",
                });
            }
            (Some(f), Some(s)) => {
                if s.count != f.count {
                    return Err(MergeError::ShardCounts {
                        index: i + 1,
                        first: f.count,
                        other: s.count,
                    });
                }
                if let Some(first) = seen.insert((s.index, s.count), i + 1) {
                    return Err(MergeError::DuplicateShard {
                        shard: format!("{}/{}", s.index + 1, s.count),
                        first,
                        second: i + 1,
                    });
                }
            }
        }
    }
    Ok(first_shard.map(|s| s.count))
}

/// Merges results files into one: the shards of one run (see the module
/// docs), or runs that are not sharded at all.
pub fn merge(inputs: &[Results]) -> Result<Results, MergeError> {
    let shards = check_one_run(inputs)?;
    let first = inputs.first().ok_or(MergeError::Nothing)?;
    let mut reports = inputs.iter().enumerate().map(|(i, r)| {
        serde_json::from_value::<LoadReport>(r.load_report.clone()).map_err(|source| {
            MergeError::LoadReport {
                index: i + 1,
                source,
            }
        })
    });
    let mut report = reports.next().ok_or(MergeError::Nothing)??;
    for other in reports {
        report.merge(&other?);
    }
    if let Some(n) = shards
        && (inputs.len() as u64) < u64::from(n)
    {
        // What a missing shard measured is not in these figures.
        report.complete = false;
    }
    let raw: RawThresholds = first
        .settings
        .get("thresholds")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(MergeError::ThresholdsShape)?
        .unwrap_or_default();
    let thresholds = Thresholds::from_raw(&raw)
        .map_err(|(key, source)| MergeError::Thresholds { key, source })?;
    let mut targets: Vec<&str> = Vec::new();
    for r in inputs {
        if !targets.contains(&r.target.as_str()) {
            targets.push(&r.target);
        }
    }
    let mut settings = common_settings(first);
    if let (Some(n), Value::Object(map)) = (shards, &mut settings) {
        map.insert("shards".into(), Value::from(n));
    }
    Ok(Results::build(Parts {
        scenario: first.scenario.clone(),
        file: first.file.clone(),
        started_at: inputs
            .iter()
            .map(|r| r.started_at.clone())
            .min()
            .unwrap_or_default(),
        planned_s: inputs.iter().map(|r| r.planned_s).fold(0.0, f64::max),
        target: targets.join(", "),
        tls: first.tls.clone(),
        settings,
        thresholds,
        report,
        hangs: inputs
            .iter()
            .flat_map(|r| r.hangs.iter().cloned())
            .collect(),
        chaos: inputs
            .iter()
            .flat_map(|r| r.chaos.iter().cloned())
            .collect(),
        proxy_cut: inputs.iter().map(|r| r.connections.dropped_by_proxy).sum(),
        timeline: None,
        // The p99 of a union never exceeds the largest p99 of its parts: the
        // worst window of any input bounds the merged one from above.
        worst_window_p99_ms: inputs
            .iter()
            .flat_map(|r| &r.thresholds)
            .filter(|t| t.name.starts_with("p99_ms_window"))
            .map(|t| t.actual)
            .fold(0.0, f64::max),
        // A shard whose harness failed carries an incomplete report, and the
        // merge of an incomplete report stays incomplete (exit code 1).
        harness_failed: false,
    }))
}

/// Waits until every file exists, at most `wait`, polling twice a second
/// (a shard writes its results atomically, so a file that exists is whole).
fn wait_for(files: &[PathBuf], wait: Duration) -> Result<(), MergeError> {
    let started = Instant::now();
    let mut announced = false;
    loop {
        let missing: Vec<PathBuf> = files.iter().filter(|f| !f.exists()).cloned().collect();
        if missing.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= wait {
            return Err(MergeError::Missing {
                waited: wait,
                missing,
            });
        }
        if !announced {
            crate::output::note(&format!(
                "squall merge: waiting up to {wait:?} for {} of {} results files",
                missing.len(),
                files.len()
            ));
            announced = true;
        }
        std::thread::sleep(Duration::from_millis(500).min(wait.saturating_sub(started.elapsed())));
    }
}

/// What `squall merge` was asked.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// The shards' results files.
    pub files: Vec<PathBuf>,
    /// The merged results file.
    pub out: PathBuf,
    /// Also write the thresholds as JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Wait this long for inputs that do not exist yet.
    pub wait: Option<Duration>,
}

/// `squall merge`: writes the merged file (and JUnit), prints the summary
/// with its verdict, and returns the merged run's exit code.
pub fn run(opts: &MergeOptions) -> Result<Exit, Failure> {
    if let Some(wait) = opts.wait {
        wait_for(&opts.files, wait).map_err(MergeError::failure)?;
    }
    let inputs = opts
        .files
        .iter()
        .map(|f| file::read(f).map_err(MergeError::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(MergeError::failure)?;
    let merged = merge(&inputs).map_err(MergeError::failure)?;
    if let Some(n) = shard_of(&inputs[0]).map(|s| s.count)
        && inputs.len() < n as usize
    {
        crate::output::note(&format!(
            "squall merge: warning: {} of {n} shards merged; the run is incomplete",
            inputs.len()
        ));
    }
    file::write_json_atomic(&opts.out, &merged)
        .map_err(|e| Failure::harness(format!("{}: {e}", opts.out.display())))?;
    crate::output::print(&summary::render(
        &merged,
        Some(&opts.out.display().to_string()),
    ));
    if let Some(junit) = &opts.junit {
        file::write_atomic(junit, crate::junit::render(&merged).as_bytes())
            .map_err(|e| Failure::harness(format!("{}: {e}", junit.display())))?;
    }
    Ok(merged.exit())
}

/// Where a shard's results land when it writes to `dir`: the name `squall
/// run` gives it (`<name>-shard<I>of<N>-<start>.json`), known in advance
/// when the shards share `--start-at`.
pub fn shard_results_path(dir: &Path, name: &str, shard: Shard, start: &str) -> PathBuf {
    dir.join(format!(
        "{name}-shard{}of{}-{start}.json",
        shard.index + 1,
        shard.count
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shard(i: u32, n: u32, extra: Value) -> Results {
        let mut settings = json!({"name": "s", "load": {"rate": 10}});
        if let (Value::Object(a), Value::Object(b)) = (&mut settings, extra) {
            a.extend(b);
        }
        Results {
            scenario: "s".into(),
            settings: shard_settings(
                &settings,
                Some(Shard {
                    index: i - 1,
                    count: n,
                }),
                Some("2026-11-24T11:15:00Z"),
            ),
            load_report: serde_json::to_value(LoadReport {
                shards: 1,
                complete: true,
                ..Default::default()
            })
            .unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn shards_of_one_run_merge_and_record_the_shard_count() {
        let m = merge(&[shard(1, 2, json!({})), shard(2, 2, json!({}))]).unwrap();
        assert_eq!(m.shards, 2);
        assert!(m.complete);
        assert_eq!(m.settings["shards"], 2);
        assert!(m.settings.get(SHARD_KEY).is_none());
        assert_eq!(m.settings[START_AT_KEY], "2026-11-24T11:15:00Z");
    }

    #[test]
    fn a_missing_shard_leaves_the_run_incomplete() {
        let m = merge(&[shard(1, 3, json!({})), shard(3, 3, json!({}))]).unwrap();
        assert!(!m.complete);
        assert_ne!(m.exit(), Exit::Passed);
    }

    #[test]
    fn other_runs_are_refused_with_what_differs() {
        let e = merge(&[
            shard(1, 2, json!({})),
            shard(2, 2, json!({"load": {"rate": 20}})),
        ])
        .unwrap_err();
        match &e {
            MergeError::DifferentSettings { index, key, .. } => {
                assert_eq!((*index, key.as_str()), (2, "load.rate"));
            }
            e => panic!("{e}"),
        }
        assert!(e.to_string().contains("load.rate: 10 and 20"), "{e}");
        let e = merge(&[shard(1, 2, json!({})), shard(1, 2, json!({}))]).unwrap_err();
        assert!(matches!(e, MergeError::DuplicateShard { .. }), "{e}");
        let e = merge(&[shard(1, 2, json!({})), shard(2, 3, json!({}))]).unwrap_err();
        assert!(matches!(e, MergeError::ShardCounts { .. }), "{e}");
        let mut other = shard(2, 2, json!({}));
        other.scenario = "t".into();
        let e = merge(&[shard(1, 2, json!({})), other]).unwrap_err();
        assert!(matches!(e, MergeError::DifferentScenarios(..)), "{e}");
        let mut plain = shard(2, 2, json!({}));
        plain.settings = common_settings(&plain);
        let e = merge(&[shard(1, 2, json!({})), plain]).unwrap_err();
        assert!(matches!(e, MergeError::MixedShards { .. }), "{e}");
        let e = merge(&[shard(1, 2, json!({"thresholds": {"p99_ms": -1.0}}))]).unwrap_err();
        assert!(matches!(e, MergeError::Thresholds { .. }), "{e}");
    }

    #[test]
    fn waiting_for_files_that_never_come_names_them() {
        let missing = PathBuf::from("/nonexistent/squall/shard.json");
        let e = wait_for(std::slice::from_ref(&missing), Duration::from_millis(10)).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/squall/shard.json"),
            "{e}"
        );
        assert_eq!(e.failure().exit, Exit::HarnessFailed);
    }
}
