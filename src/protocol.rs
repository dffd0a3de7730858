//! The messages between the CLI and the daemon / session child (see `docs/protocol.md`).
//!
//! Every message is one JSON object per line. The version is checked on `ping`;
//! a daemon speaking another version is restarted, never trusted.
//!
//! File names that are not UTF-8 travel as text too: Python holds each byte
//! 0xXY that is not UTF-8 as the lone surrogate U+DCXY (surrogateescape),
//! which is sent as U+10FFXY (the last 128 private-use code points) and
//! mapped back on the Python side (`rpytest/protocol.py`), so node IDs and
//! file names make the round trip byte for byte. The CLI treats such names as
//! opaque: they never match a discovered file, so those files always run.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod parallel;
pub use parallel::{ControlMsg, WorkerMsg};

/// Bumped together with `python/rpytest/protocol.py`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request from the CLI to the daemon.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request<'a> {
    Ping,
    Stop,
    Run {
        protocol: u32,
        argv: &'a [String],
        cwd: &'a str,
        env: &'a BTreeMap<String, String>,
        /// The names of `env` in the order the client's process holds them
        /// (then the names it does not hold): the session's `os.environ`
        /// keeps the order a fresh process would see.
        env_order: &'a [String],
        umask: u32,
        /// Signals the client ignores (kept ignored across exec: `nohup`).
        ignored_signals: &'a [i32],
        /// Signals the client blocks (its mask, inherited across exec).
        blocked_signals: &'a [i32],
        session: &'a SessionConfig,
    },
}

/// What the session plugin needs to know: what to skip and what to replay.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SessionConfig {
    pub rootdir: String,
    pub skip_files: Vec<String>,
    pub cached: Vec<CachedNode>,
    pub record: bool,
    pub events: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_file: Option<String>,
    /// Files in `skip_files` whose import skipped: their collect report is replayed.
    pub skipped_files: Vec<SkippedFile>,
    /// Node IDs of skipped files that `-k`/`-m`/`--deselect` leave out: reported
    /// through `pytest_deselected`, so pytest's "N deselected" stays right.
    pub deselected: Vec<String>,
    /// Files of other `--shard`s: never collected, never replayed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_files: Vec<String>,
    /// `worker` or `controller` in a distributed (`-n`) run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_count: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub testrun_uid: Option<String>,
    /// Per-file test timeouts in seconds (rules' `timeout`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timeouts: BTreeMap<String, f64>,
    /// The session runs with `-p no:xdist`: declare pytest-xdist's options,
    /// marker and fixtures (`rpytest.compat`).
    #[serde(default)]
    pub xdist_compat: bool,
    /// `-n`: the worker that collects once and forks the others connects them
    /// to this Unix socket of the CLI's (rpytest.parallel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_socket: Option<String>,
    /// `-n`: this collector collects only its share of the test files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<parallel::Partition>,
    /// Hermetic tests: the session enters this sandbox before collecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxConfig>,
    /// Describe the options the session's parser knows (an `Options` event):
    /// the command line has one the CLI does not know.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub describe_options: bool,
    /// Replayed nodes come back as positions in `cached` (`CachedReplayed`)
    /// instead of their node IDs, files, outcomes and durations.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay_indices: bool,
    /// Stored coverage data of cached files: file → coverage signature → data
    /// (`python/rpytest/coverage.py`). Present when the run measures coverage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

/// What a hermetic session's sandbox shows (`python/rpytest/sandbox.py`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SandboxConfig {
    pub rootdir: String,
    /// Declared input files (rootdir-relative), shown beside first-party code.
    pub files: Vec<String>,
    /// The session's whole environment inside the sandbox.
    pub env: BTreeMap<String, String>,
    /// Test file -> the hermetic rule that governs it (for explanations).
    pub rules: BTreeMap<String, String>,
    /// Paths bound writable (the CLI's sockets).
    #[serde(default)]
    pub writable: Vec<String>,
}

/// A cached module-level skip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SkippedFile {
    pub file: String,
    pub longrepr: serde_json::Value,
}

/// One cached result, replayed by the plugin instead of running the test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CachedNode {
    pub nodeid: String,
    pub file: String,
    pub outcome: crate::outcome::Outcome,
    pub duration: f64,
    pub location: StoredJson,
    pub longrepr: StoredJson,
    pub wasxfail: Option<String>,
    /// What the run kept beside the outcome (per-phase durations, report
    /// sections, warnings; docs/protocol.md): replayed with it.
    #[serde(default, skip_serializing_if = "StoredJson::is_null")]
    pub output: StoredJson,
}

/// A JSON value as the store holds it: its text, checked to be JSON but
/// not decoded. A replayed node's location, report and output travel to
/// the session as they were stored, and are decoded only where the CLI
/// reads them (a `-v` reason, a warning): 30,000 replayed nodes cost no
/// parse and no re-encoding.
#[derive(Debug, Clone, Default)]
pub struct StoredJson(Option<Box<serde_json::value::RawValue>>);

impl StoredJson {
    /// The stored text as a value: `null` when it is empty, `null` or not JSON.
    pub fn from_text(text: &str) -> StoredJson {
        match text {
            "" | "null" => StoredJson(None),
            t => StoredJson(serde_json::value::RawValue::from_string(t.to_owned()).ok()),
        }
    }

    /// Like `from_text`, taking the text over (no copy).
    pub fn from_string(text: String) -> StoredJson {
        match text.as_str() {
            "" | "null" => StoredJson(None),
            _ => StoredJson(serde_json::value::RawValue::from_string(text).ok()),
        }
    }

    /// A decoded value, encoded.
    pub fn from_value(v: &serde_json::Value) -> StoredJson {
        match v {
            serde_json::Value::Null => StoredJson(None),
            v => StoredJson::from_text(&v.to_string()),
        }
    }

    pub fn is_null(&self) -> bool {
        self.0.is_none()
    }

    /// The JSON text (`null` for null).
    pub fn text(&self) -> &str {
        self.0.as_deref().map_or("null", |r| r.get())
    }

    /// The decoded value.
    pub fn value(&self) -> serde_json::Value {
        match &self.0 {
            None => serde_json::Value::Null,
            Some(r) => serde_json::from_str(r.get()).unwrap_or(serde_json::Value::Null),
        }
    }
}

impl PartialEq for StoredJson {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl Serialize for StoredJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            None => s.serialize_unit(),
            Some(r) => r.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for StoredJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(match raw.get() {
            "null" => StoredJson(None),
            _ => StoredJson(Some(raw)),
        })
    }
}

/// The daemon's answer to `ping`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pong {
    pub protocol: u32,
    pub pid: i64,
    pub fingerprint: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub python: String,
    #[serde(default)]
    pub started: f64,
    #[serde(default)]
    pub sessions: u64,
    #[serde(default)]
    pub warm: Vec<String>,
    /// Files of modules the daemon imported that changed since (it must not
    /// fork another session from their old code).
    #[serde(default)]
    pub stale: Vec<String>,
    /// Environment variables pytest's modules read when the daemon imported
    /// them, with the values it saw (`None`: unset).
    #[serde(default)]
    pub env: BTreeMap<String, Option<String>>,
    /// Seconds since its last session ended (0 while one runs).
    #[serde(default)]
    pub idle: f64,
    /// The idle timeout it uses now (it adapts to how much it was used).
    #[serde(default)]
    pub idle_timeout: f64,
    #[serde(default)]
    pub rootdir: String,
}

impl Pong {
    /// Whether a session forked from this daemon would run as a fresh
    /// interpreter started with `env` would: no imported file changed and
    /// every variable read at import has the value it had.
    pub fn fresh_for(&self, env: impl Fn(&str) -> Option<String>) -> bool {
        self.stale.is_empty() && self.env.iter().all(|(k, v)| env(k) == *v)
    }
}

/// A file as pytest collected it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectedFile {
    pub file: String,
    pub outcome: crate::outcome::Outcome,
    pub nodes: Vec<String>,
    /// `[path, lineno, reason]` when importing the file skipped.
    #[serde(default)]
    pub skip: serde_json::Value,
}

/// Events streamed by the session child (and the daemon's final `exit`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Started {
        pid: i32,
    },
    Collected {
        files: Vec<CollectedFile>,
    },
    Result {
        nodeid: String,
        file: String,
        outcome: crate::outcome::Outcome,
        duration: f64,
        #[serde(default)]
        location: serde_json::Value,
        #[serde(default)]
        longrepr: serde_json::Value,
        #[serde(default)]
        wasxfail: Option<String>,
        /// Replayed from the cache, not run.
        #[serde(default)]
        cached: bool,
        /// Per-phase durations, a skip's phase and report sections.
        #[serde(default)]
        output: serde_json::Value,
    },
    /// A warning a test raised (pytest's `pytest_warning_recorded`), stored
    /// with its result.
    NodeWarning {
        nodeid: String,
        warning: serde_json::Value,
    },
    /// Results replayed from the cache, in bulk: `(nodeid, file, outcome,
    /// duration)` each.
    CachedResults {
        nodes: Vec<(String, String, crate::outcome::Outcome, f64)>,
    },
    /// Results replayed from the cache, as `[start, end)` runs of positions
    /// in the session config's `cached` list (sent when the config asks for
    /// it, `replay_indices`); `session::run` hands them on as `CachedResults`.
    CachedReplayed {
        ranges: Vec<(usize, usize)>,
    },
    Deps {
        file: Option<String>,
        #[serde(default)]
        imports: Vec<String>,
        #[serde(default)]
        reads: Vec<String>,
        #[serde(default)]
        env: Vec<String>,
        /// Directories whose listing a test read (os.listdir, glob, os.walk...).
        #[serde(default)]
        lists: Vec<String>,
        /// The key started a subprocess (its reads are invisible).
        #[serde(default)]
        spawns: bool,
        /// Inputs written during this very session.
        #[serde(default)]
        generated: Vec<String>,
        /// It imported code outside the project and outside installed packages.
        #[serde(default)]
        outside: bool,
        /// Its results must never be stored (it read something no key can
        /// name: stdin, a clock, a socket...).
        #[serde(default)]
        volatile: bool,
        /// It read pytest's options (`config.get_verbosity()`,
        /// `config.getoption(...)`): every argument, output-only ones
        /// included, is an input.
        #[serde(default)]
        options: bool,
        /// `sys.path` entries inside the project at the end of the session
        /// (rootdir-relative, `""` for the rootdir; the session's event only):
        /// where the static import resolution searches from now on.
        #[serde(default)]
        paths: Vec<String>,
    },
    Edges {
        edges: Vec<(String, String)>,
    },
    /// A hermetic session: how many project files its sandbox showed, and per
    /// test file what it denied (undeclared reads, connections).
    Sandbox {
        #[serde(default)]
        visible: usize,
        #[serde(default)]
        denied: BTreeMap<String, Vec<String>>,
    },
    /// Installed module files the session imported: `(portable name, path
    /// on this machine)` (python/rpytest/installed.py).
    Installed {
        files: Vec<(String, String)>,
    },
    Finish {
        exitstatus: i32,
        #[serde(default)]
        interrupted: bool,
        #[serde(default)]
        shouldstop: bool,
        #[serde(default)]
        duration: f64,
        /// `file: hook` for every hook the project's own plugins (conftests,
        /// `-p` and `pytest_plugins` modules under rootdir) implement.
        #[serde(default)]
        project_hooks: Vec<String>,
    },
    /// A test file's coverage data, measured while all of its tests ran.
    Coverage {
        file: String,
        sig: String,
        data: String,
    },
    Exit {
        #[serde(default)]
        code: Option<i32>,
        #[serde(default)]
        signal: Option<i32>,
    },
    /// The options plugins and conftest files registered (python/rpytest/options.py).
    Options {
        options: Vec<crate::project::args::LearnedOption>,
    },
    /// Anything newer than this CLI: ignored, never fatal.
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Each fixture of `tests/protocol/<dir>/` with its name (the messages'
    /// tests here and in `parallel.rs`).
    pub(crate) fn fixtures(dir: &str) -> Vec<(String, Value)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/protocol")
            .join(dir);
        let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                (name, serde_json::from_str(&text).unwrap())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(!out.is_empty(), "no fixtures in {}", dir.display());
        out
    }

    /// Where `part` has a field `whole` lacks or holds otherwise (`""`: none).
    fn not_within(part: &Value, whole: &Value, at: &str) -> Option<String> {
        match (part, whole) {
            (Value::Object(p), Value::Object(w)) => p.iter().find_map(|(k, v)| match w.get(k) {
                Some(wv) => not_within(v, wv, &format!("{at}.{k}")),
                None => Some(format!("{at}.{k}")),
            }),
            (Value::Array(p), Value::Array(w)) if p.len() == w.len() => p
                .iter()
                .zip(w)
                .enumerate()
                .find_map(|(i, (a, b))| not_within(a, b, &format!("{at}[{i}]"))),
            // An integer read into a float field is the same number.
            (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
            _ if part == whole => None,
            _ => Some(at.to_owned()),
        }
    }

    /// Every session event the Python side builds (`tests/protocol/session/`)
    /// is an [`Event`] the CLI knows, and nothing in it is left unread: written
    /// back, the event holds every field of the fixture, with its value.
    #[test]
    fn every_session_event_fixture_is_an_event_read_whole() {
        for (name, fixture) in fixtures("session") {
            let event: Event =
                serde_json::from_value(fixture.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                !matches!(event, Event::Unknown),
                "{name}: not a known event"
            );
            let back = serde_json::to_value(&event).unwrap();
            if let Some(at) = not_within(&fixture, &back, "") {
                panic!("{name}: {at} is not read as sent\n{back}");
            }
        }
    }

    /// The daemon's replies (`tests/protocol/daemon/`): a `pong` holds every
    /// field [`Pong`] reads; `stopping` and `error` are no event of a run
    /// (the daemon closes the connection after them).
    #[test]
    fn every_daemon_reply_fixture_reads_as_the_cli_reads_it() {
        for (name, fixture) in fixtures("daemon") {
            match fixture["type"].as_str() {
                Some("pong") => {
                    let pong: Pong = serde_json::from_value(fixture.clone())
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    let read = serde_json::to_value(&pong).unwrap();
                    if let Some(at) = not_within(&read, &fixture, "") {
                        panic!("{name}: {at} is not sent");
                    }
                }
                Some("stopping" | "error") => {
                    let e: Event = serde_json::from_value(fixture.clone()).unwrap();
                    assert!(matches!(e, Event::Unknown), "{name}");
                    assert!(serde_json::from_value::<Pong>(fixture).is_err(), "{name}");
                }
                other => panic!("{name}: unexpected reply {other:?}"),
            }
        }
    }

    #[test]
    fn deps_flags_default_to_false_when_absent() {
        let old: Event = serde_json::from_str(r#"{"type": "deps", "file": "t.py"}"#).unwrap();
        assert!(matches!(
            old,
            Event::Deps {
                volatile: false,
                options: false,
                ..
            }
        ));
        let new: Event = serde_json::from_str(
            r#"{"type": "deps", "file": null, "volatile": true, "options": true}"#,
        )
        .unwrap();
        assert!(matches!(
            new,
            Event::Deps {
                file: None,
                volatile: true,
                options: true,
                ..
            }
        ));
    }
}
