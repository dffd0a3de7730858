//! The messages between the CLI and the daemon / session child (see `docs/protocol.md`).
//!
//! Every message is one JSON object per line. The version is checked on `ping`;
//! a daemon speaking another version is restarted, never trusted.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
        umask: u32,
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
    pub outcome: String,
    pub duration: f64,
    pub location: serde_json::Value,
    pub longrepr: serde_json::Value,
    pub wasxfail: Option<String>,
}

/// The daemon's answer to `ping`.
#[derive(Debug, Deserialize)]
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
}

/// A file as pytest collected it.
#[derive(Debug, Clone, Deserialize)]
pub struct CollectedFile {
    pub file: String,
    pub outcome: String,
    pub nodes: Vec<String>,
    /// `[path, lineno, reason]` when importing the file skipped.
    #[serde(default)]
    pub skip: serde_json::Value,
}

/// Events streamed by the session child (and the daemon's final `exit`).
#[derive(Debug, Clone, Deserialize)]
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
        outcome: String,
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
    },
    Edges {
        edges: Vec<(String, String)>,
    },
    Finish {
        exitstatus: i32,
        #[serde(default)]
        interrupted: bool,
        #[serde(default)]
        shouldstop: bool,
        #[serde(default)]
        duration: f64,
    },
    Exit {
        #[serde(default)]
        code: Option<i32>,
        #[serde(default)]
        signal: Option<i32>,
    },
    /// Anything newer than this CLI: ignored, never fatal.
    #[serde(other)]
    Unknown,
}
