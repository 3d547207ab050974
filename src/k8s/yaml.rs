//! A small YAML emitter for the manifests `squall k8s` writes: block style
//! from a `serde_json::Value`, every string double-quoted.
//!
//! Why by hand: squall only ever writes YAML, never reads it, and the
//! manifests are plain maps, lists, strings, numbers and booleans.
//! `serde_yaml` is archived (unmaintained since 2024), and its forks are
//! young or have had soundness trouble; a crate to print a JSON tree in block
//! style is not worth its weight. Safety comes from one rule: a string is
//! always written as a double-quoted scalar, whose escapes YAML 1.2 shares
//! with JSON (YAML 1.2 is a superset of JSON), so `serde_json`'s string
//! escaper is reused, plus the few characters YAML treats as line breaks
//! (NEL, LS, PS) or refuses raw (BOM, DEL, C1 controls). So no value can turn
//! into a boolean (`no`), a number (`010`), a null (`~`), a comment or
//! another key. The one exception is a multi-line string of printable text
//! (the scenario file in the ConfigMap), written as a literal block (`|`) so
//! that it stays readable; the tests check both styles against a YAML
//! parser.

use serde_json::Value;
use std::fmt::Write;

/// The YAML document of `value` (block style, two-space indents, ending in a
/// newline).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

/// A mapping key: plain when it is a simple name (Kubernetes keys such as
/// `app.kubernetes.io/name` included), else quoted.
fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && k.starts_with(|c: char| c.is_ascii_alphabetic())
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain { k.to_string() } else { quoted(k) }
}

/// A double-quoted scalar: JSON's escapes, plus YAML's other line breaks and
/// the characters it does not take raw.
pub fn quoted(s: &str) -> String {
    let json = serde_json::to_string(s).expect("a string always serializes");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '\u{7f}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A scalar or empty collection on one line.
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// Whether `s` can be a literal block: several lines of printable text that
/// do not start with a space (the block's indentation would swallow it).
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n'])
        && s.chars().all(|c| {
            c == '\n'
                || c == '\t'
                || !(c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}'))
        })
        && !s.contains("\r")
}

/// A literal block scalar at `indent`: `|` with the chomping that keeps the
/// string's trailing newlines exactly.
fn literal(out: &mut String, s: &str, indent: usize) {
    let body = s.trim_end_matches('\n');
    let chomp = match s.len() - body.len() {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let _ = writeln!(out, "|{chomp}");
    let pad = " ".repeat(indent);
    let lines: Vec<&str> = if chomp == "+" {
        // Keep: every trailing newline is content.
        s.strip_suffix('\n').unwrap_or(s).split('\n').collect()
    } else {
        body.split('\n').collect()
    };
    for line in lines {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{pad}{line}");
        }
    }
}

/// A value after `key:` or `- `: inline, a literal block, or a nested
/// collection on the following lines at `indent`.
fn value_after(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            mapping(out, map, indent);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            sequence(out, items, indent);
        }
        Value::String(s) if literal_ok(s) => {
            out.push(' ');
            literal(out, s, indent);
        }
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
}

fn mapping(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (k, v) in map {
        let _ = write!(out, "{pad}{}:", key(k));
        value_after(out, v, indent + 2);
    }
}

fn sequence(out: &mut String, items: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            // A mapping in a list starts on the dash's line.
            Value::Object(map) if !map.is_empty() => {
                let mut nested = String::new();
                mapping(&mut nested, map, indent + 2);
                let _ = write!(out, "{pad}- ");
                out.push_str(&nested[indent + 2..]);
            }
            _ => {
                let _ = write!(out, "{pad}-");
                value_after(out, item, indent + 2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_block_style_with_every_string_quoted() {
        let v = json!({
            "apiVersion": "v1",
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "squall"}},
            "spec": {
                "n": 3,
                "on": true,
                "args": ["run", "--shards", "3", "no", "010", "~", "a: b", "# c"],
                "empty": [],
                "containers": [{"name": "a", "ports": [{"containerPort": 9464}]}],
            }
        });
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "apiVersion: \"v1\"\nmetadata:\n  labels:\n    app.kubernetes.io/name: \"squall\"\n  name: \"x\"\n\
             spec:\n  args:\n    - \"run\"\n    - \"--shards\"\n    - \"3\"\n    - \"no\"\n    - \"010\"\n    - \"~\"\n    - \"a: b\"\n    - \"# c\"\n\
             \x20 containers:\n    - name: \"a\"\n      ports:\n        - containerPort: 9464\n\
             \x20 empty: []\n  \"n\": 3\n  \"on\": true\n"
        );
    }

    #[test]
    fn strings_escape_what_yaml_would_read_otherwise() {
        assert_eq!(quoted("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quoted("tab\there\r"), r#""tab\there\r""#);
        assert_eq!(quoted("nel\u{85}ls\u{2028}"), r#""nel\u0085ls\u2028""#);
        assert_eq!(quoted("bom\u{feff}del\u{7f}"), r#""bom\ufeffdel\u007f""#);
        assert_eq!(quoted("ünïcødé ✓"), "\"ünïcødé ✓\"");
    }

    #[test]
    fn multi_line_text_is_a_literal_block_that_keeps_its_newlines() {
        let y = to_yaml(&json!({"a": "x = 1\n\n[t]\ny = \"2\"\n"}));
        assert_eq!(y, "a: |\n  x = 1\n\n  [t]\n  y = \"2\"\n");
        assert_eq!(to_yaml(&json!({"a": "x\ny"})), "a: |-\n  x\n  y\n");
        assert_eq!(to_yaml(&json!({"a": "x\ny\n\n"})), "a: |+\n  x\n  y\n\n");
        // Not printable, or indented first: quoted instead.
        assert_eq!(to_yaml(&json!({"a": " x\ny"})), "a: \" x\\ny\"\n");
        assert_eq!(to_yaml(&json!({"a": "x\ny\u{1}"})), "a: \"x\\ny\\u0001\"\n");
        assert_eq!(to_yaml(&json!({"a": "x\r\ny"})), "a: \"x\\r\\ny\"\n");
    }
}
