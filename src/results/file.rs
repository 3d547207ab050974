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

/// Reads a results file.
pub fn read(path: &Path) -> Result<Results, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a squall results file: {e}", path.display()))
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
