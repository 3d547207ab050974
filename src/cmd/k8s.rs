//! `squall k8s`: its flags, and the lines it prints after rendering (what
//! was written, and the commands that apply it and read the verdict).

use crate::exit::{Exit, Failure};
use crate::k8s::{K8sError, K8sOptions};
use crate::run::start::StartAt;
use crate::scenario::duration::Dur;
use clap::Args;
use std::path::PathBuf;

/// `squall k8s FILE --shards N --image IMAGE ...`.
#[derive(Debug, Clone, Args)]
pub struct K8sArgs {
    /// The scenario file (validated as `squall run` would).
    pub file: PathBuf,
    /// How many shards, one pod each (each owns whole topics).
    #[arg(long, value_name = "N")]
    pub shards: u32,
    /// The container image, with squall as its entrypoint (see Dockerfile).
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// The namespace of every object.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Directory for the manifests.
    #[arg(short, long, value_name = "DIR", default_value = "k8s")]
    pub out: PathBuf,
    /// The shards' common start (RFC 3339 UTC); default: --start-in from now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_start_at, conflicts_with = "start_in")]
    pub start_at: Option<StartAt>,
    /// How far ahead the start is: time to apply, pull the image and schedule.
    #[arg(long, value_name = "DURATION", default_value = "3m")]
    pub start_in: Dur,
    /// Override a field, e.g. `load.connections=50000` (repeatable), for every shard.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Storage class of the ReadWriteMany results volume (default: the cluster's).
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
}

/// Parses `--start-at`.
pub fn parse_start_at(s: &str) -> Result<StartAt, String> {
    StartAt::parse(s).map_err(|e| e.to_string())
}

/// Renders the manifests and says how to use them.
pub fn run(args: K8sArgs) -> Result<Exit, Failure> {
    let opts = K8sOptions {
        file: args.file,
        sets: args.sets,
        shards: args.shards,
        image: args.image,
        namespace: args.namespace,
        out: args.out.clone(),
        start_at: args.start_at,
        start_in: args.start_in.0,
        storage_class: args.storage_class,
    };
    let (spec, files) = crate::k8s::write(&opts).map_err(|e| match e {
        K8sError::Write { .. } => Failure::harness(e.to_string()),
        _ => Failure::usage(e.to_string()),
    })?;
    let mut text = format!(
        "squall k8s: {} shards of {} starting at {}:\n",
        spec.shards, spec.scenario, spec.start_at.text
    );
    for f in &files {
        text.push_str(&format!("  {}\n", f.display()));
    }
    let ns = spec
        .namespace
        .as_deref()
        .map_or(String::new(), |n| format!(" -n {n}"));
    text.push_str(&format!(
        "apply before the start:   kubectl apply{ns} -f {dir}\n\
         the verdict (merge's exit code, 0 passed, 3 breached):\n  \
         kubectl wait{ns} --for=condition=complete --timeout={t}s job/{merge} || \
         kubectl wait{ns} --for=condition=failed --timeout=1s job/{merge}\n  \
         kubectl logs{ns} job/{merge}\n",
        dir = args.out.display(),
        t = spec.merge_deadline_s,
        merge = spec.merge_job(),
    ));
    crate::output::print(&text);
    Ok(Exit::Passed)
}
