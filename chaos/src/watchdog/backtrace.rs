//! Reads gdb's `thread apply all bt` and says, one line per thread, where
//! it waits and which of the target's own functions got it there: the
//! line a reader of the hang file wants before the full stacks.

use std::collections::HashSet;

/// One frame: the function (generics elided) and its `file:line`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    /// e.g. `dashmap::lock::RawRwLock::lock_shared_slow`.
    pub function: String,
    /// e.g. `relay/src/registry.rs:244`.
    pub location: Option<String>,
}

/// Source paths of code that is not the target's own.
const FOREIGN_PATHS: &[&str] = &[
    "/.cargo/registry/",
    "/rustc/",
    "../sysdeps/",
    "/usr/include/",
    "/build/glibc",
];
/// Function prefixes of code that is not the target's own.
const FOREIGN_FUNCTIONS: &[&str] = &[
    "std::",
    "core::",
    "alloc::",
    "tokio::",
    "syscall",
    "__",
    "clone",
    "start_thread",
];

/// One line per thread: `Thread 3 "tokio-rt-worker": waits in X, called
/// from Y at file:line`. X is the innermost lock function (`lock…`), else
/// the innermost park/wait/epoll/sleep; Y is the innermost frame of the
/// target's own code: with a source location, outside the toolchain and the
/// cargo registry, and not of a crate seen there.
pub fn summarize(gdb: &str) -> Vec<String> {
    let threads = threads(gdb);
    let foreign_crates: HashSet<&str> = threads
        .iter()
        .flat_map(|(_, frames)| frames)
        .filter(|f| {
            f.location
                .as_deref()
                .is_some_and(|l| FOREIGN_PATHS.iter().any(|p| l.contains(p)))
        })
        .map(|f| crate_of(&f.function))
        .collect();
    threads
        .iter()
        .map(|(header, frames)| {
            let wait = frames
                .iter()
                .position(|f| last_segment(&f.function).starts_with("lock"))
                .or_else(|| frames.iter().position(is_wait))
                .or_else(|| frames.iter().position(|f| f.function != "syscall"));
            // The caller is outside the waiting machinery: past the wait
            // frame, and not itself a lock or a wait (inlined library frames
            // in a release build may carry a short name and a relative path).
            let own = frames
                .iter()
                .skip(wait.map_or(0, |i| i + 1))
                .find(|f| !is_lock_or_wait(f) && is_own(f, &foreign_crates));
            let wait = wait.map(|i| &frames[i]);
            let mut line = header.clone();
            if let Some(wait) = wait {
                line.push_str(&format!(": waits in {}", wait.function));
            }
            if let Some(own) = own {
                line.push_str(&format!(", called from {}", own.function));
                if let Some(at) = &own.location {
                    line.push_str(&format!(" at {at}"));
                }
            }
            line
        })
        .collect()
}

/// The crate a function belongs to: its first path segment.
fn crate_of(function: &str) -> &str {
    function.split("::").next().unwrap_or(function)
}

/// The function's own name, closures skipped: `a::b::{closure#0}` → `b`.
fn last_segment(function: &str) -> &str {
    function
        .rsplit("::")
        .find(|s| !s.starts_with('{'))
        .unwrap_or(function)
}

/// A frame that parks, waits, polls or sleeps.
fn is_wait(frame: &FrameInfo) -> bool {
    let name = last_segment(&frame.function);
    ["park", "wait", "epoll", "sleep"]
        .iter()
        .any(|w| name.contains(w))
}

/// A frame of the locking or waiting machinery rather than of its caller.
fn is_lock_or_wait(frame: &FrameInfo) -> bool {
    last_segment(&frame.function).starts_with("lock") || is_wait(frame)
}

fn is_own(frame: &FrameInfo, foreign_crates: &HashSet<&str>) -> bool {
    let Some(location) = frame.location.as_deref() else {
        return false;
    };
    !FOREIGN_PATHS.iter().any(|p| location.contains(p))
        && !FOREIGN_FUNCTIONS
            .iter()
            .any(|p| frame.function.starts_with(p))
        && !foreign_crates.contains(crate_of(&frame.function))
}

/// Splits gdb's output into threads: the header (`Thread 3 "name"`) and
/// the frames, innermost first.
fn threads(gdb: &str) -> Vec<(String, Vec<FrameInfo>)> {
    let mut out: Vec<(String, Vec<FrameInfo>)> = Vec::new();
    for line in gdb.lines() {
        if let Some(rest) = line.strip_prefix("Thread ") {
            let number = rest.split_whitespace().next().unwrap_or("?");
            let name = rest
                .rsplit_once(") \"")
                .map(|(_, n)| n.trim_end_matches("\"):").to_string());
            let header = match name {
                Some(name) => format!("Thread {number} \"{name}\""),
                None => format!("Thread {number}"),
            };
            out.push((header, Vec::new()));
        } else if line.starts_with('#')
            && let Some((_, frames)) = out.last_mut()
        {
            frames.push(parse_frame(line));
        }
    }
    out
}

/// Parses `#3  0x... in a::b<T>::c (x=1) at src/x.rs:10` (the address and
/// the `in` are absent for inlined frames).
fn parse_frame(line: &str) -> FrameInfo {
    let body = line
        .trim_start_matches('#')
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start();
    let body = match body.split_once(" in ") {
        Some((address, rest)) if address.starts_with("0x") => rest,
        _ => body,
    };
    let location = body
        .rsplit_once(" at ")
        .map(|(_, at)| at.trim().to_string());
    let name_end = body.find(" (").unwrap_or(body.len());
    FrameInfo {
        function: elide_generics(&body[..name_end]),
        location,
    }
}

/// `a::b<T, U<V>>::c` → `a::b::c`.
fn elide_generics(name: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GDB: &str = r#"
Thread 3 (Thread 0x7fce05fb66c0 (LWP 1218) "tokio-rt-worker"):
#0  syscall () at ../sysdeps/unix/sysv/linux/x86_64/syscall.S:38
#1  0x0000556dd05aac31 in parking_lot_core::thread_parker::imp::ThreadParker::futex_wait (self=0x7f, ts=...) at /root/.cargo/registry/src/x/parking_lot_core-0.9.12/src/thread_parker/linux.rs:112
#6  0x0000556dd05ac76e in dashmap::lock::RawRwLock::lock_shared_slow (self=0x556e09ddbd00) at src/lock.rs:270
#16 0x0000556dd05308cb in dashmap::DashMap<u64, alloc::sync::Arc<Outbox>>::len<u64> (self=0x5) at /root/.cargo/registry/src/x/dashmap-6.2.1/src/lib.rs:724
#17 0x0000556dd052f8be in squall_relay::registry::Registry::gauges (self=0x556e09ddcb30) at relay/src/registry.rs:244
"#;

    /// As gdb prints a release build (`line-tables-only`): inlined library
    /// frames with short names and relative paths before the caller.
    const GDB_INLINED: &str = r#"
Thread 2 (Thread 0x7f3 (LWP 8596) "tokio-rt-worker"):
#0  syscall () at ../sysdeps/unix/sysv/linux/x86_64/syscall.S:38
#6  lock_exclusive_slow () at src/lock.rs:127
#7  0x00005569693c6a83 in lock_exclusive () at /root/.cargo/registry/src/x/dashmap-6.2.1/src/lock.rs:39
#11 0x00005569693c2aba in entry<alloc::string::String, squall_relay::registry::Topic> () at /root/.cargo/registry/src/x/dashmap-6.2.1/src/lib.rs:872
#12 subscribe () at relay/src/registry.rs:95
#13 0x00005569693813e2 in {async_fn#0} () at relay/src/connection.rs:210
"#;

    #[test]
    fn skips_inlined_lock_frames_to_reach_the_caller() {
        assert_eq!(
            summarize(GDB_INLINED),
            vec![
                "Thread 2 \"tokio-rt-worker\": waits in lock_exclusive_slow, \
                 called from subscribe at relay/src/registry.rs:95"
                    .to_string()
            ]
        );
    }

    #[test]
    fn names_the_wait_and_the_targets_own_caller() {
        assert_eq!(
            summarize(GDB),
            vec![
                "Thread 3 \"tokio-rt-worker\": waits in dashmap::lock::RawRwLock::lock_shared_slow, \
                 called from squall_relay::registry::Registry::gauges at relay/src/registry.rs:244"
                    .to_string()
            ]
        );
    }
}
