//! `--junit FILE`: the thresholds as JUnit XML, one test case each, for CI
//! test reporters.

use crate::report::format::escape;
use crate::results::Results;
use std::fmt::Write;

/// The JUnit XML of a run's thresholds (plus one case for a hang and one for
/// an incomplete run, so a CI reporter shows why the exit code is not 0).
pub fn render(r: &Results) -> String {
    let mut cases = Vec::new();
    for t in &r.thresholds {
        let failure = (!t.passed).then(|| {
            let side = if t.floor {
                "under the floor"
            } else {
                "over the limit"
            };
            format!("{} = {} is {side} {}", t.name, t.actual, t.limit)
        });
        cases.push((t.name.clone(), failure));
    }
    let hang = (!r.hangs.is_empty()).then(|| format!("the target hung {} time(s)", r.hangs.len()));
    cases.push(("target_did_not_hang".to_string(), hang));
    let incomplete = (!r.complete).then(|| "the run was stopped before its end".to_string());
    cases.push(("run_complete".to_string(), incomplete));
    suite(
        &Suite {
            name: &r.scenario,
            classname: &format!("squall.{}", r.scenario),
            time_s: r.duration_s,
            timestamp: &r.started_at,
            output: None,
        },
        &cases,
    )
}

/// A JUnit test suite's heading and what it printed.
#[derive(Debug, Clone, Copy)]
pub struct Suite<'a> {
    /// The suite's name (the scenario's).
    pub name: &'a str,
    /// The test cases' class name (`squall.<scenario>`).
    pub classname: &'a str,
    /// How long it ran, seconds.
    pub time_s: f64,
    /// When it started, RFC 3339.
    pub timestamp: &'a str,
    /// Its `<system-out>`, if any.
    pub output: Option<&'a str>,
}

/// The JUnit XML of one suite of `(name, failure message)` cases: one XML
/// writer for every gate squall has (a run's thresholds, a search's
/// capacity).
pub fn suite(s: &Suite<'_>, cases: &[(String, Option<String>)]) -> String {
    let failures = cases.iter().filter(|(_, f)| f.is_some()).count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"squall\" tests=\"{}\" failures=\"{failures}\">",
        cases.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\" timestamp=\"{}\">",
        escape(s.name),
        cases.len(),
        s.time_s,
        escape(s.timestamp)
    );
    for (name, failure) in cases {
        let _ = write!(
            xml,
            "    <testcase classname=\"{}\" name=\"{}\"",
            escape(s.classname),
            escape(name)
        );
        match failure {
            None => xml.push_str("/>\n"),
            Some(message) => {
                let _ = writeln!(
                    xml,
                    ">\n      <failure message=\"{}\"/>\n    </testcase>",
                    escape(message)
                );
            }
        }
    }
    if let Some(out) = s.output {
        let _ = writeln!(xml, "    <system-out>{}</system-out>", escape(out));
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}
