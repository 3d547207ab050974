//! The files a scenario names besides itself (a TLS CA, the JWT signing and
//! public keys, Nostr keys, the builtin relay's certificate and key) shipped
//! to the pods: their bytes go in a Secret mounted at [`FILES_DIR`], and
//! every shard gets the `--set`s that point the scenario at those copies.
//! Without this a pod would look for the paths of the machine that
//! rendered the manifests.

use super::K8sError;
use crate::scenario::auth::beside;
use crate::scenario::raw::RawScenario;
use crate::scenario::source::Source;
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the Secret of shipped files is mounted in every pod.
pub const FILES_DIR: &str = "/files";

/// A Secret holds at most 1 MiB.
const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// The shipped files: the Secret's `data` and the `--set`s that use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShippedFiles {
    /// Secret key (the scenario key, e.g. `target.tls_ca_file`) → the
    /// file's bytes in base64.
    pub data: BTreeMap<String, String>,
    /// `KEY=/files/KEY` overrides, in the order of the keys.
    pub sets: Vec<String>,
}

impl ShippedFiles {
    /// Reads the files `raw` (the scenario as read from `source`, `--set`s
    /// applied) names, relative to the scenario file as `squall run` reads
    /// them.
    pub fn collect(source: &Source, raw: &RawScenario) -> Result<ShippedFiles, K8sError> {
        let mut shipped = ShippedFiles::default();
        for (key, path) in [
            ("target.tls_ca_file", &raw.target.tls_ca_file),
            ("auth.key_file", &raw.auth.key_file),
            ("auth.public_key_file", &raw.auth.public_key_file),
            ("protocol.keys_file", &raw.protocol.keys_file),
        ] {
            if let Some(path) = path {
                let copy = shipped.add(key, &beside(source, path))?;
                shipped.sets.push(format!("{key}={copy}"));
            }
        }
        let mut relay_args = Vec::with_capacity(raw.target.relay_args.len());
        let mut shipped_any = false;
        let mut args = raw.target.relay_args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_string())),
                None => (arg.as_str(), None),
            };
            let key = match flag {
                "--tls-cert" => "target.relay_args.tls-cert",
                "--tls-key" => "target.relay_args.tls-key",
                _ => {
                    relay_args.push(arg.clone());
                    continue;
                }
            };
            // `squall validate` has checked that the flag has its file.
            let Some(value) = inline.or_else(|| args.next().cloned()) else {
                relay_args.push(arg.clone());
                continue;
            };
            let copy = shipped.add(key, &beside(source, Path::new(&value)))?;
            relay_args.extend([flag.to_string(), copy]);
            shipped_any = true;
        }
        if shipped_any {
            let array =
                toml::Value::Array(relay_args.into_iter().map(toml::Value::String).collect());
            shipped.sets.push(format!("target.relay_args={array}"));
        }
        let total: usize = shipped.data.values().map(String::len).sum();
        if total > MAX_SECRET_BYTES {
            return Err(K8sError::FilesTooBig { bytes: total });
        }
        Ok(shipped)
    }

    /// Ships the file at `path` as `key`; returns the copy's path in a pod.
    fn add(&mut self, key: &str, path: &Path) -> Result<String, K8sError> {
        let bytes = std::fs::read(path).map_err(|source| K8sError::File {
            key: key.to_string(),
            path: PathBuf::from(path),
            source,
        })?;
        self.data.insert(
            key.to_string(),
            base64::engine::general_purpose::STANDARD.encode(bytes),
        );
        Ok(format!("{FILES_DIR}/{key}"))
    }

    /// Nothing to ship: no Secret, no volume.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}
