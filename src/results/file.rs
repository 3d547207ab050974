//! Where a run's files go and how they are written: names reserved atomically
//! (two runs in the same second get different names), JSON written to a
//! temporary file and renamed, so a reader never sees half a results file.

use super::Results;
use super::time::Utc;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The files of one run: `<dir>/<name>-<yyyymmddThhmmssZ>[-N].*`.
#[derive(Debug)]
pub struct RunFiles {
    /// `…json`: the results.
    pub results: PathBuf,
    /// `…timeline.ndjson`: one snapshot per second.
    pub timeline: PathBuf,
    /// The timeline file, created (its creation reserved the name).
    pub timeline_file: File,
}

impl RunFiles {
    /// Reserves the names of a run that started at `started`.
    pub fn reserve(dir: &Path, name: &str, started: &Utc) -> io::Result<RunFiles> {
        std::fs::create_dir_all(dir)?;
        let stamp = started.compact();
        for n in 1..1000 {
            let stem = if n == 1 {
                format!("{name}-{stamp}")
            } else {
                format!("{name}-{stamp}-{n}")
            };
            let results = dir.join(format!("{stem}.json"));
            let timeline = dir.join(format!("{stem}.timeline.ndjson"));
            if results.exists() {
                continue;
            }
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&timeline)
            {
                Ok(timeline_file) => {
                    return Ok(RunFiles {
                        results,
                        timeline,
                        timeline_file,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "no free results name for {name}-{stamp} in {}",
            dir.display()
        )))
    }
}

/// Writes `value` as pretty JSON to `path` through a temporary file and a rename.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let mut text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    text.push(b'\n');
    write_atomic(path, &text)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Why a results file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file is not JSON, or not a results file.
    #[error("{path}: {why}")]
    NotResults {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: NotResults,
    },
}

/// What makes a JSON document not a results file.
#[derive(Debug, thiserror::Error)]
pub enum NotResults {
    /// A key has the wrong type, or the text is not JSON.
    #[error("not a squall results file: {0}")]
    Json(#[from] serde_json::Error),
    /// No `scenario` key: every results file names its scenario.
    #[error("not a squall results file: it has no `scenario` key")]
    NoScenario,
}

/// Reads a results file.
pub fn read(path: &Path) -> Result<Results, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text)
        .map_err(NotResults::from)
        .and_then(parse)
        .map_err(|why| ReadError::NotResults {
            path: path.to_path_buf(),
            why,
        })
}

/// Reads a results file's JSON leniently (every key has a default), but
/// insists on the `scenario` key that makes it a results file.
pub fn parse(value: serde_json::Value) -> Result<Results, NotResults> {
    if value.get("scenario").is_none() {
        return Err(NotResults::NoScenario);
    }
    Ok(serde_json::from_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reserved_once_and_writes_are_whole() {
        let dir = std::env::temp_dir().join(format!("squall-files-{}", std::process::id()));
        let t = Utc::now();
        let a = RunFiles::reserve(&dir, "x", &t).unwrap();
        let b = RunFiles::reserve(&dir, "x", &t).unwrap();
        assert_ne!(a.results, b.results);
        write_json_atomic(&a.results, &serde_json::json!({"k": 1})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&a.results).unwrap(),
            "{\n  \"k\": 1\n}\n"
        );
        let leftovers = std::fs::read_dir(&dir).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")
        });
        assert_eq!(leftovers.count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
