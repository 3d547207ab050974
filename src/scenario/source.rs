//! Reading a scenario file: TOML with spans, `--set KEY=VALUE` overrides applied
//! to the document before deserializing, and errors that name the file, line,
//! column and key (or the `--set` that caused them).

use super::raw::RawScenario;
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// An invalid scenario: where, which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The scenario file.
    pub file: PathBuf,
    /// 1-based line and column in the file, when the problem is in the file.
    pub position: Option<(usize, usize)>,
    /// The `--set KEY=VALUE` argument, when the problem came from one.
    pub set: Option<String>,
    /// The dotted key (`load.connections`, `chaos.0.at`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(set) = &self.set {
            write!(f, ": --set {set}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// A scenario's text and overrides, kept to locate keys for later errors.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file it was read from.
    pub path: PathBuf,
    text: String,
    sets: Vec<String>,
}

impl Source {
    /// Reads `path` and remembers the `--set KEY=VALUE` overrides.
    pub fn read(path: &Path, sets: &[String]) -> Result<Source, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.to_path_buf(),
            position: None,
            set: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Ok(Source::from_text(path, text, sets))
    }

    /// A source from text already in memory (`path` names it in errors).
    pub fn from_text(path: &Path, text: String, sets: &[String]) -> Source {
        Source {
            path: path.to_path_buf(),
            text,
            sets: sets.to_vec(),
        }
    }

    /// Parses the document, applies the overrides and deserializes it.
    pub fn parse(&self) -> Result<RawScenario, ScenarioError> {
        let document = self.document()?;
        RawScenario::deserialize(toml::Deserializer::from(document)).map_err(|e| {
            let span = e.span();
            let key = span.as_ref().and_then(|s| {
                let document = self.document().ok()?;
                key_at(document.get_ref(), s.start)
            });
            self.error_at(span, key, e.message().to_string())
        })
    }

    /// An error about `key` (dotted), found in the document or the overrides.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ScenarioError {
        let span = self.document().ok().and_then(|d| span_of(d.get_ref(), key));
        let set = self.sets.iter().find(|s| {
            let k = s.split_once('=').map_or(s.as_str(), |(k, _)| k.trim());
            key == k || key.starts_with(&format!("{k}."))
        });
        match set {
            Some(set) => ScenarioError {
                file: self.path.clone(),
                position: None,
                set: Some(set.clone()),
                key: Some(key.to_string()),
                message: message.into(),
            },
            None => self.error_at(span, Some(key.to_string()), message.into()),
        }
    }

    fn error_at(
        &self,
        span: Option<Range<usize>>,
        key: Option<String>,
        message: String,
    ) -> ScenarioError {
        let mut error = ScenarioError {
            file: self.path.clone(),
            position: None,
            set: None,
            key,
            message,
        };
        match span {
            Some(s) if s.start > self.text.len() => {
                error.set = self.set_at(s.start).map(str::to_string)
            }
            Some(s) => error.position = Some(line_column(&self.text, s.start)),
            None => {}
        }
        error
    }

    /// The document with the overrides applied. Override values get spans past
    /// the end of the text (override `i` starts at `base(i)`), so an error's
    /// span says which override caused it.
    fn document(&self) -> Result<Spanned<DeTable<'_>>, ScenarioError> {
        let mut document = DeTable::parse(&self.text).map_err(|e| {
            let span = e.span();
            self.error_at(span, None, e.message().to_string())
        })?;
        if let Some(kind) = self.target_kind_set() {
            drop_other_kinds_keys(document.get_mut(), &kind);
        }
        let mut base = self.text.len() + 1;
        for set in &self.sets {
            let fail = |message: String| ScenarioError {
                file: self.path.clone(),
                position: None,
                set: Some(set.clone()),
                key: None,
                message,
            };
            let (key, value) = set
                .split_once('=')
                .ok_or_else(|| fail("expected KEY=VALUE, e.g. load.connections=5000".into()))?;
            let (key, value) = (key.trim(), value.trim());
            // A bare word is a string: `--set name=nightly` needs no quotes.
            let parsed = DeValue::parse(value).unwrap_or_else(|_| {
                Spanned::new(0..value.len(), DeValue::String(Cow::Borrowed(value)))
            });
            let path: Vec<&str> = key.split('.').collect();
            if path.iter().any(|p| p.is_empty()) {
                return Err(fail(format!("bad key {key:?}")));
            }
            set_path(document.get_mut(), &path, shift(parsed, base)).map_err(fail)?;
            base += set.len() + 1;
        }
        Ok(document)
    }

    /// The kind named by the last `--set target.kind=K`, if any.
    fn target_kind_set(&self) -> Option<String> {
        self.sets.iter().rev().find_map(|set| {
            let (key, value) = set.split_once('=')?;
            (key.trim() == "target.kind").then(|| value.trim().trim_matches('"').to_string())
        })
    }

    /// The override whose shifted span holds `offset`.
    fn set_at(&self, offset: usize) -> Option<&str> {
        let mut base = self.text.len() + 1;
        for set in &self.sets {
            if offset < base + set.len() + 1 {
                return Some(set);
            }
            base += set.len() + 1;
        }
        None
    }
}

/// `--set target.kind=K` switches the target: the file's `[target]` keys that
/// apply to other kinds only (a command line, the builtin relay's flags) are
/// dropped before the overrides are applied, so that a scenario written for
/// `kind = "command"` runs unchanged against a server already running with
/// `--set target.kind=url --set target.url=URL`. Overrides that come after
/// are applied as given, and checked as usual.
fn drop_other_kinds_keys(document: &mut DeTable<'_>, kind: &str) {
    if let Some(DeValue::Table(target)) = document.get_mut("target").map(Spanned::get_mut) {
        let other: Vec<String> = target
            .keys()
            .map(|key| key.get_ref().to_string())
            .filter(|key| !super::target::applies_to(key, kind))
            .collect();
        for key in other {
            target.remove(key.as_str());
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Moves every span of an override value past the end of the document.
fn shift(value: Spanned<DeValue<'_>>, base: usize) -> Spanned<DeValue<'_>> {
    let span = value.span();
    let inner = match value.into_inner() {
        DeValue::Array(array) => {
            DeValue::Array(array.into_iter().map(|v| shift(v, base)).collect())
        }
        DeValue::Table(table) => DeValue::Table(
            table
                .into_iter()
                .map(|(k, v)| {
                    let ks = k.span();
                    (
                        Spanned::new(ks.start + base..ks.end + base, k.into_inner()),
                        shift(v, base),
                    )
                })
                .collect(),
        ),
        other => other,
    };
    Spanned::new(span.start + base..span.end + base, inner)
}

/// Sets `path` in `table` to `value`, creating tables on the way.
fn set_path<'i>(
    table: &mut DeTable<'i>,
    path: &[&str],
    value: Spanned<DeValue<'i>>,
) -> Result<(), String> {
    let (first, rest) = path.split_first().expect("paths are never empty");
    let span = value.span();
    if rest.is_empty() {
        table.insert(Spanned::new(span, Cow::Owned(first.to_string())), value);
        return Ok(());
    }
    let key = Spanned::new(span.clone(), Cow::Owned(first.to_string()));
    let child = table
        .entry(key)
        .or_insert_with(|| Spanned::new(span, DeValue::Table(DeTable::new())));
    set_in_value(child.get_mut(), first, rest, value)
}

fn set_in_value<'i>(
    node: &mut DeValue<'i>,
    name: &str,
    path: &[&str],
    value: Spanned<DeValue<'i>>,
) -> Result<(), String> {
    match node {
        DeValue::Table(t) => set_path(t, path, value),
        DeValue::Array(items) => {
            let (index, rest) = path.split_first().expect("paths are never empty");
            let i: usize = index
                .parse()
                .map_err(|_| format!("`{name}` is a list: expected an index, not {index:?}"))?;
            let len = items.len();
            let item = items
                .get_mut(i)
                .ok_or_else(|| format!("`{name}` has {len} entries, no index {i}"))?;
            if rest.is_empty() {
                *item = value;
                Ok(())
            } else {
                set_in_value(item.get_mut(), index, rest, value)
            }
        }
        _ => Err(format!("`{name}` is not a table")),
    }
}

/// The dotted key whose name or value holds `offset`: the innermost one.
fn key_at(table: &DeTable<'_>, offset: usize) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    walk_table(table, "", &mut |path, span| {
        if span.contains(&offset) && best.as_ref().is_none_or(|(len, _)| span.len() <= *len) {
            best = Some((span.len(), path.to_string()));
        }
    });
    best.map(|(_, path)| path)
}

/// Calls `visit` with every key's dotted path and the spans of its name and value.
fn walk_table(table: &DeTable<'_>, prefix: &str, visit: &mut dyn FnMut(&str, Range<usize>)) {
    for (k, v) in table.iter() {
        let path = join(prefix, k.get_ref());
        visit(&path, k.span());
        walk_value(v, &path, visit);
    }
}

fn walk_value(v: &Spanned<DeValue<'_>>, path: &str, visit: &mut dyn FnMut(&str, Range<usize>)) {
    visit(path, v.span());
    match v.get_ref() {
        DeValue::Table(t) => walk_table(t, path, visit),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_value(item, &join(path, &i.to_string()), visit);
            }
        }
        _ => {}
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The span of the key at a dotted path, or of its nearest present ancestor.
fn span_of(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let mut found = None;
    walk_table(table, "", &mut |path, span| {
        let is_prefix = key == path || key.starts_with(&format!("{path}."));
        if is_prefix
            && found
                .as_ref()
                .is_none_or(|(p, _): &(String, Range<usize>)| path.len() > p.len())
        {
            found = Some((path.to_string(), span));
        }
    });
    found.map(|(_, span)| span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str, sets: &[&str]) -> Source {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Source::from_text(Path::new("t.toml"), text.to_string(), &sets)
    }

    #[test]
    fn an_unknown_key_names_line_column_and_key() {
        let e = src("name = \"x\"\n\n[load]\nconections = 5\n", &[])
            .parse()
            .unwrap_err();
        assert_eq!(e.position, Some((4, 1)));
        assert_eq!(e.key.as_deref(), Some("load.conections"));
        assert!(e.message.contains("unknown field `conections`"), "{e}");
        assert!(
            e.to_string()
                .starts_with("t.toml:4:1: key `load.conections`: "),
            "{e}"
        );
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = src("[load]\nconnections = \"many\"\n", &[])
            .parse()
            .unwrap_err();
        assert_eq!(e.position, Some((2, 15)));
        assert_eq!(e.key.as_deref(), Some("load.connections"));
        let e = src("duration = \"30 parsecs\"\n", &[]).parse().unwrap_err();
        assert_eq!(e.key.as_deref(), Some("duration"));
        assert!(e.message.contains("parsecs"), "{e}");
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let e = src("name = \"x\"\n[load\n", &[]).parse().unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(2));
    }

    #[test]
    fn overrides_replace_and_add_keys() {
        let raw = src(
            "[load]\nconnections = 10\n",
            &[
                "load.connections=5000",
                "name=nightly",
                "target.bugs=[\"drop-every=100\"]",
            ],
        )
        .parse()
        .unwrap();
        assert_eq!(raw.load.connections, 5000);
        assert_eq!(raw.name.as_deref(), Some("nightly"));
        assert_eq!(raw.target.bugs, ["drop-every=100"]);
    }

    #[test]
    fn overrides_reach_into_lists_of_tables() {
        let text = "[[load.stages]]\nduration = \"1s\"\n[[load.stages]]\nduration = \"2s\"\n";
        let raw = src(text, &["load.stages.1.rate=50"]).parse().unwrap();
        assert_eq!(raw.load.stages[1].rate, Some(50.0));
        let e = src(text, &["load.stages.5.rate=50"]).parse().unwrap_err();
        assert!(e.message.contains("no index 5"), "{e}");
    }

    #[test]
    fn a_bad_override_names_the_override() {
        let e = src("[load]\nconnections = 10\n", &["load.connections=lots"])
            .parse()
            .unwrap_err();
        assert_eq!(e.set.as_deref(), Some("load.connections=lots"));
        assert_eq!(e.position, None);
        let e = src("", &["load.nope=1"]).parse().unwrap_err();
        assert_eq!(e.set.as_deref(), Some("load.nope=1"));
        assert!(src("", &["novalue"]).parse().is_err());
    }

    #[test]
    fn switching_the_target_kind_drops_the_files_keys_of_the_other_kind() {
        let text = "[target]\nkind = \"command\"\ncommand = [\"node\", \"s.js\", \"{port}\"]\n\
                    url = \"ws://127.0.0.1:{port}/x\"\nhealth = \"http://127.0.0.1:{port}/health\"\n\
                    startup_timeout = \"15s\"\n";
        let raw = src(text, &["target.kind=url", "target.url=ws://127.0.0.1:9/x"])
            .parse()
            .unwrap();
        assert!(raw.target.command.is_empty());
        assert_eq!(
            raw.target.health.as_deref(),
            Some("http://127.0.0.1:{port}/health"),
            "kept: it applies to url targets too"
        );
        let raw = src(text, &["target.kind=builtin"]).parse().unwrap();
        assert!(raw.target.command.is_empty() && raw.target.url.is_none());
        assert!(raw.target.health.is_none());
        // Without a --set of the kind nothing is dropped.
        let raw = src(text, &["target.url=ws://127.0.0.1:9/x"])
            .parse()
            .unwrap();
        assert_eq!(raw.target.command.len(), 3);
    }

    #[test]
    fn later_errors_find_their_key() {
        let s = src("duration = \"5s\"\n[load]\nramp = \"10s\"\n", &[]);
        let e = s.error("load.ramp", "longer than the run");
        assert_eq!(e.position, Some((3, 1)));
        let e = s.error("load.publishers", "too many");
        assert_eq!(e.position, Some((2, 2)), "falls back to the table");
    }
}
