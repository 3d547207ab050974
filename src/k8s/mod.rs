//! `squall k8s FILE --shards N --image IMAGE [--namespace NS] [-o DIR]`:
//! a sharded run as Kubernetes manifests, so that a run bigger than one
//! machine needs no orchestrator of squall's own.
//!
//! What is written (one object per `*.yaml` file, in apply order):
//! - `10-configmap.yaml`: the scenario file, mounted at `/scenario`;
//! - `15-files-secret.yaml`, when the scenario names other files (a TLS CA,
//!   keys, the builtin relay's certificate): their bytes, mounted at
//!   `/files`, and each shard gets `--set KEY=/files/KEY` ([`files`]);
//! - `20-results-pvc.yaml`: a ReadWriteMany claim for every shard's results
//!   (the shards and the merge run on different nodes);
//! - `30-service.yaml`: a headless Service over the shards, with the
//!   `prometheus.io/*` annotations (the pods have them too);
//! - `40-shards-job.yaml`: an Indexed Job, `completions` = `parallelism` =
//!   N, whose pod `i` runs `squall run --shard-index-from-env
//!   JOB_COMPLETION_INDEX --shards N --start-at T` (shard `i + 1` of N), with
//!   live metrics on port [`METRICS_PORT`];
//! - `50-merge-job.yaml`: a Job that waits for every shard's results file,
//!   runs `squall merge ... --junit` and exits with its code.
//!
//! Every shard waits for the one `--start-at`, so apply the files soon after
//! rendering them (`--start-in`, 3 minutes by default, leaves time to pull
//! the image and schedule the pods): a shard that starts late refuses.

pub mod files;
pub mod render;
pub mod yaml;

use crate::merge::shard_results_path;
use crate::run::start::{StartAt, StartAtError};
use crate::scenario::plan::{self, Plan};
use crate::scenario::source::{ScenarioError, Source};
use files::ShippedFiles;
use serde_json::{Value, json};
use squall_loadgen::Shard;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The port every shard serves `/metrics` on.
pub const METRICS_PORT: u16 = 9464;
/// The user and group the image runs as (see `Dockerfile`).
pub const UID: u32 = 10001;
/// The most shards one render makes: a Job's pods each get a start slot and
/// a results file; past this, split the run.
pub const MAX_SHARDS: u32 = 1000;

/// What `squall k8s` was asked.
#[derive(Debug, Clone)]
pub struct K8sOptions {
    /// The scenario file.
    pub file: PathBuf,
    /// `--set` overrides, checked here and passed to every shard.
    pub sets: Vec<String>,
    /// How many shards (pods).
    pub shards: u32,
    /// The container image with squall as its entrypoint.
    pub image: String,
    /// The namespace of every object (none: the one `kubectl` uses).
    pub namespace: Option<String>,
    /// Where to write the manifests.
    pub out: PathBuf,
    /// The agreed start, or `None` for [`K8sOptions::start_in`] from now.
    pub start_at: Option<StartAt>,
    /// How far ahead of now the start is when not given.
    pub start_in: Duration,
    /// The results volume's storage class (none: the cluster's default).
    pub storage_class: Option<String>,
}

/// Why the manifests could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The scenario does not validate.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The scenario cannot be cut into that many shards.
    #[error("{file}: --shards {shards}: {source}")]
    Shards {
        /// The scenario file.
        file: PathBuf,
        /// Shards asked for.
        shards: u32,
        /// What the load plan said.
        source: squall_loadgen::PlanError,
    },
    /// Zero shards, or more than [`MAX_SHARDS`].
    #[error("--shards {0}: use 1 to {MAX_SHARDS}")]
    ShardCount(u32),
    /// The start instant is unusable.
    #[error(transparent)]
    StartAt(#[from] StartAtError),
    /// An empty image name.
    #[error("--image: give the image to run, e.g. ghcr.io/you/squall:0.1.0")]
    Image,
    /// The namespace is not a DNS label.
    #[error("--namespace {0:?}: a namespace is a DNS label (a-z, 0-9, '-', at most 63)")]
    Namespace(String),
    /// A file the scenario names cannot be read.
    #[error("{key} = {path}: {source}")]
    File {
        /// The scenario key that names it.
        key: String,
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The files the scenario names do not fit in one Secret.
    #[error(
        "the files the scenario names take {bytes} bytes in base64; a Secret holds at most 1 MiB"
    )]
    FilesTooBig {
        /// Their size in base64.
        bytes: usize,
    },
    /// A manifest could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Requests and limits of a shard's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// CPU request in millicores.
    pub cpu_m: u64,
    /// Memory request in MiB.
    pub memory_mib: u64,
    /// Open files a shard needs (sockets, both ends when it runs its own
    /// relay, plus slack).
    pub open_files: u64,
}

impl Resources {
    /// What a shard of `sockets` connections needs; twice the sockets when
    /// it runs the builtin relay too. Measured on the reference relay: about
    /// 12 KiB per socket on each side and a core per ~5,000 sockets at the
    /// smoke test's rate, plus 64 MiB of base; rounded up generously.
    pub fn for_sockets(sockets: u64, own_relay: bool) -> Resources {
        let ends = if own_relay { sockets * 2 } else { sockets };
        Resources {
            cpu_m: (ends * 1000 / 5000).clamp(500, 16_000).div_ceil(100) * 100,
            memory_mib: (128 + ends * 24 / 1024).div_ceil(64) * 64,
            open_files: ends + 1024,
        }
    }

    /// The `resources` of the container. No CPU limit: a throttled load
    /// generator measures its own throttling as the relay's latency. A
    /// memory limit of twice the request bounds a runaway.
    pub fn to_json(&self) -> Value {
        json!({
            "requests": {"cpu": format!("{}m", self.cpu_m), "memory": format!("{}Mi", self.memory_mib)},
            "limits": {"memory": format!("{}Mi", self.memory_mib * 2)},
        })
    }
}

/// Everything the objects are rendered from.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run's name: `squall-<scenario>-<start>`, a DNS label.
    pub run: String,
    /// The scenario's name (results files are named after it).
    pub scenario: String,
    /// The scenario file's name in the ConfigMap.
    pub file_name: String,
    /// The scenario file as written.
    pub scenario_text: String,
    /// `--set` overrides: the command line's, then those of the shipped
    /// files.
    pub sets: Vec<String>,
    /// The files the scenario names, shipped in a Secret.
    pub files: ShippedFiles,
    /// Shards.
    pub shards: u32,
    /// Image.
    pub image: String,
    /// Namespace.
    pub namespace: Option<String>,
    /// The agreed start.
    pub start_at: StartAt,
    /// The scenario allows remote targets: shards get `--allow-remote`.
    pub allow_remote: bool,
    /// Widen the source port range (a remote target).
    pub wide_ports: bool,
    /// A shard's resources.
    pub resources: Resources,
    /// The results volume's storage class.
    pub storage_class: Option<String>,
    /// The shards Job's deadline, seconds.
    pub shard_deadline_s: u64,
    /// How long the merge waits for the shards, seconds.
    pub merge_wait_s: u64,
    /// The merge Job's deadline, seconds.
    pub merge_deadline_s: u64,
}

impl RunSpec {
    /// The ConfigMap's name.
    pub fn config_map(&self) -> String {
        format!("{}-scenario", self.run)
    }
    /// The name of the Secret of shipped files.
    pub fn files_secret(&self) -> String {
        format!("{}-files", self.run)
    }
    /// The volume claim's name.
    pub fn claim(&self) -> String {
        format!("{}-results", self.run)
    }
    /// The headless Service's name.
    pub fn service(&self) -> String {
        format!("{}-shards", self.run)
    }
    /// The Indexed Job's name.
    pub fn shards_job(&self) -> String {
        format!("{}-shards", self.run)
    }
    /// The merge Job's name.
    pub fn merge_job(&self) -> String {
        format!("{}-merge", self.run)
    }
    /// The run's directory on the results volume.
    pub fn results_dir(&self) -> PathBuf {
        Path::new("/results").join(&self.run)
    }

    /// The arguments of every shard's container (the image's entrypoint is
    /// `squall`); the shard comes from the Job's `JOB_COMPLETION_INDEX`.
    pub fn shard_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "run",
            &format!("/scenario/{}", self.file_name),
            "--shard-index-from-env",
            "JOB_COMPLETION_INDEX",
            "--shards",
            &self.shards.to_string(),
            "--start-at",
            &self.start_at.text,
            "--out",
            &self.results_dir().display().to_string(),
            "--no-tui",
            "--metrics-addr",
            &format!("0.0.0.0:{METRICS_PORT}"),
            "--metrics-allow-remote",
            "--metrics-linger",
            "30s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.allow_remote {
            args.push("--allow-remote".into());
        }
        for set in &self.sets {
            args.extend(["--set".to_string(), set.clone()]);
        }
        args
    }

    /// Every shard's results file, as `squall run` will name it.
    pub fn shard_results(&self) -> Vec<PathBuf> {
        let stamp = self.start_at.utc().compact();
        (0..self.shards)
            .map(|index| {
                shard_results_path(
                    &self.results_dir(),
                    &self.scenario,
                    Shard {
                        index,
                        count: self.shards,
                    },
                    &stamp,
                )
            })
            .collect()
    }

    /// The merged results file.
    pub fn merged(&self) -> PathBuf {
        self.results_dir()
            .join(format!("{}-merged.json", self.scenario))
    }

    /// The JUnit file the merge writes.
    pub fn junit(&self) -> PathBuf {
        self.results_dir()
            .join(format!("{}-junit.xml", self.scenario))
    }

    /// The arguments of the merge container.
    pub fn merge_args(&self) -> Vec<String> {
        let mut args = vec!["merge".to_string()];
        args.extend(self.shard_results().iter().map(|p| p.display().to_string()));
        args.extend([
            "-o".to_string(),
            self.merged().display().to_string(),
            "--junit".to_string(),
            self.junit().display().to_string(),
            "--wait".to_string(),
            format!("{}s", self.merge_wait_s),
        ]);
        args
    }
}

/// One manifest: its file name and object.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// e.g. `40-shards-job.yaml`.
    pub file: String,
    /// The object.
    pub object: Value,
}

/// A DNS label from any text: lower case, `[a-z0-9-]`, at most `max`.
fn dns_label(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(max).collect();
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "run".into() } else { out }
}

fn valid_namespace(ns: &str) -> bool {
    !ns.is_empty()
        && ns.len() <= 63
        && ns
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !ns.starts_with('-')
        && !ns.ends_with('-')
}

/// Validates the scenario as `squall run` would and works out the run.
pub fn plan_run(opts: &K8sOptions) -> Result<RunSpec, K8sError> {
    if opts.shards == 0 || opts.shards > MAX_SHARDS {
        return Err(K8sError::ShardCount(opts.shards));
    }
    if opts.image.trim().is_empty() {
        return Err(K8sError::Image);
    }
    if let Some(ns) = &opts.namespace
        && !valid_namespace(ns)
    {
        return Err(K8sError::Namespace(ns.clone()));
    }
    let plan: Plan = plan::load(&opts.file, &opts.sets)?.for_run(
        Some(Shard {
            index: 0,
            count: opts.shards,
        }),
        true,
    );
    plan.check_shard().map_err(|source| K8sError::Shards {
        file: opts.file.clone(),
        shards: opts.shards,
        source,
    })?;
    let start_at = match &opts.start_at {
        Some(at) => at.clone(),
        None => {
            let at = SystemTime::now() + opts.start_in;
            let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 1;
            StartAt::parse(
                &crate::results::time::Utc::from_system(UNIX_EPOCH + Duration::from_secs(secs))
                    .rfc3339(),
            )?
        }
    };
    let lead = start_at.lead()?;
    let scenario_text = std::fs::read_to_string(&opts.file).map_err(|e| ScenarioError {
        file: opts.file.clone(),
        position: None,
        set: None,
        key: None,
        message: e.to_string(),
    })?;
    let source = Source::read(&opts.file, &opts.sets)?;
    let files = ShippedFiles::collect(&source, &source.parse()?)?;
    let own_relay = matches!(plan.target.spec, crate::target::TargetSpec::Builtin { .. });
    let sockets = plan
        .load
        .peak_connections()
        .div_ceil(u64::from(opts.shards));
    let run_s = plan.deadline().as_secs() + plan.target.startup_timeout.as_secs() + 60;
    let shard_deadline_s = lead.as_secs() + run_s + 300;
    let file_name = opts.file.file_name().map_or_else(
        || "scenario.toml".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(RunSpec {
        run: format!(
            "squall-{}-{}",
            dns_label(&plan.name, 24),
            start_at.utc().compact().to_ascii_lowercase()
        ),
        scenario: plan.name.clone(),
        file_name: dns_key(&file_name),
        scenario_text,
        sets: opts.sets.iter().chain(&files.sets).cloned().collect(),
        files,
        shards: opts.shards,
        image: opts.image.trim().to_string(),
        namespace: opts.namespace.clone(),
        allow_remote: plan.allow_remote,
        wide_ports: !own_relay,
        resources: Resources::for_sockets(sockets, own_relay),
        storage_class: opts.storage_class.clone(),
        shard_deadline_s,
        merge_wait_s: shard_deadline_s,
        merge_deadline_s: shard_deadline_s + 600,
        start_at,
    })
}

/// A ConfigMap key from a file name (`[-._a-zA-Z0-9]+`).
fn dns_key(name: &str) -> String {
    let key: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if key.is_empty() || key == "." || key == ".." {
        "scenario.toml".into()
    } else {
        key
    }
}

/// The manifests of a run, in apply order.
pub fn manifests(spec: &RunSpec) -> Vec<Manifest> {
    [
        Some(("10-configmap.yaml", render::config_map(spec))),
        (!spec.files.is_empty()).then(|| ("15-files-secret.yaml", render::files_secret(spec))),
        Some(("20-results-pvc.yaml", render::volume_claim(spec))),
        Some(("30-service.yaml", render::service(spec))),
        Some(("40-shards-job.yaml", render::shards_job(spec))),
        Some(("50-merge-job.yaml", render::merge_job(spec))),
    ]
    .into_iter()
    .flatten()
    .map(|(file, object)| Manifest {
        file: file.to_string(),
        object,
    })
    .collect()
}

/// Renders the manifests into `opts.out` and returns the run and the files
/// written.
pub fn write(opts: &K8sOptions) -> Result<(RunSpec, Vec<PathBuf>), K8sError> {
    let spec = plan_run(opts)?;
    std::fs::create_dir_all(&opts.out).map_err(|source| K8sError::Write {
        path: opts.out.clone(),
        source,
    })?;
    let mut written = Vec::new();
    for m in manifests(&spec) {
        let path = opts.out.join(&m.file);
        let text = format!(
            "# {} of squall run {}: rendered by `squall k8s`; apply before {}.\n{}",
            m.file,
            spec.run,
            spec.start_at.text,
            yaml::to_yaml(&m.object)
        );
        crate::results::file::write_atomic(&path, text.as_bytes()).map_err(|source| {
            K8sError::Write {
                path: path.clone(),
                source,
            }
        })?;
        written.push(path);
    }
    Ok((spec, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(dns_label("Smoke Test_1", 24), "smoke-test-1");
        assert_eq!(dns_label("--", 24), "run");
        assert_eq!(dns_label("a".repeat(40).as_str(), 24).len(), 24);
        assert_eq!(dns_key("my scenario.toml"), "my-scenario.toml");
        assert!(valid_namespace("load-tests"));
        assert!(!valid_namespace("Load"));
        assert!(!valid_namespace("-x"));
    }

    #[test]
    fn resources_grow_with_the_sockets_of_a_shard() {
        let small = Resources::for_sockets(1000, true);
        assert_eq!(small.cpu_m, 500);
        assert_eq!(small.open_files, 3024);
        let big = Resources::for_sockets(20_000, false);
        assert_eq!(big.cpu_m, 4000);
        assert!(big.memory_mib >= 128 + 20_000 * 24 / 1024);
        assert_eq!(big.memory_mib % 64, 0);
    }
}
