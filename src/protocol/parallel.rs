//! The messages of a distributed (`-n`) run (docs/protocol.md, "Distributed
//! runs"): what the sessions send the CLI ([`WorkerMsg`]) and what the CLI
//! sends them on their control channel ([`ControlMsg`]).
//!
//! Test reports, `workerinput`/`workeroutput` and the collection's reports,
//! replays and warnings are carried as raw JSON ([`Raw`]): the CLI forwards
//! them to the controller without building a tree of them.
//!
//! serde cannot read a [`RawValue`] through an internally tagged enum (it
//! buffers the fields first), so both enums are read with `parse`: the `type`
//! first, then the variant's fields straight from the line.

use super::Event;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// JSON the CLI passes on unread.
pub type Raw = Box<RawValue>;

/// A session of a distributed run → the CLI (its event stream, or a fork's
/// socket). The controller sends `nodes` and `stop`; the collector `hello`,
/// `forked` and `worker_exit`; workers the rest.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMsg {
    /// First line on a fork's socket: which worker the connection is.
    Hello(Hello),
    Forked(Forked),
    WorkerExit(WorkerExit),
    Collection(Collection),
    Unpartitionable(Unpartitionable),
    /// The worker needs work.
    Want,
    Ready(Ready),
    Logstart(LogPoint),
    Logfinish(LogPoint),
    Report(Report),
    Warning(Warning),
    Workerfinished(WorkerFinished),
    InternalError(InternalError),
    /// The controller configured these workers (`pytest_configure_node`).
    Nodes(Nodes),
    /// The controller reached `-x` / `--maxfail`: stop the workers.
    Stop,
    /// Any session event (`started`, `result`, `deps`, `finish`, `exit`...).
    #[serde(untagged)]
    Event(Event),
}

/// The CLI → a session of a distributed run (its control pipe, or a fork's
/// socket). Worker messages forwarded to the controller carry `worker`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMsg {
    /// A started worker's `workerinput`, first thing on its pipe.
    Workerinput(WorkerInput),
    /// To the collector: fork this worker.
    Fork(Fork),
    /// Indexes into the collection's `items`, in collection order.
    Run(Run),
    /// No more work (a worker), no more forks (the collector).
    Stop,
    /// To the controller: configure a replacement worker.
    ConfigureNode(NodeRef),
    Collection(Collection),
    Logstart(LogPoint),
    Logfinish(LogPoint),
    Report(Report),
    Warning(Warning),
    Ready(Ready),
    Workerfinished(WorkerFinished),
    InternalError(InternalError),
    /// A test whose worker died (or that no worker could run).
    Crash(Crash),
    /// A worker died: `pytest_testnodedown(node, error)`.
    Nodedown(NodeDown),
    /// No worker could collect.
    Abort(Abort),
    /// Every worker ended.
    Done,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub idx: usize,
    pub worker: String,
}

/// The collector forked worker `idx`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Forked {
    pub idx: usize,
    pub worker: String,
    pub pid: i32,
}

/// The collector reaped worker `idx` (both `None`: it was never forked).
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerExit {
    pub idx: usize,
    #[serde(default)]
    pub code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    /// Why it could not be forked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A worker's collection, scheduled by the CLI and replayed by the controller.
#[derive(Debug, Serialize, Deserialize)]
pub struct Collection {
    pub worker: String,
    /// `(nodeid, file, xdist_group)` per collected item.
    pub items: Vec<(String, String, Option<String>)>,
    pub numcollected: usize,
    /// Collection errors end the session: nothing is scheduled.
    #[serde(default)]
    pub stop: bool,
    /// The collector forks the workers (it runs no thread).
    #[serde(default)]
    pub fork: bool,
    /// Serialized collect reports that failed or skipped.
    pub reports: Raw,
    pub deselected: Vec<String>,
    /// Cached entries the controller replays.
    pub replay: Raw,
    /// Warnings raised while collecting.
    pub warnings: Raw,
    /// A partitioned run's first collector found the collection cannot be
    /// split before collecting: it collected every file, for every worker.
    /// (Why: the reason it found.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole: Option<String>,
    /// To the controller: workers whose collection differs from this one
    /// (pytest-xdist's "Different tests were collected"; nothing runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub different: Vec<Different>,
}

/// A worker that collected other tests than the first worker.
#[derive(Debug, Serialize, Deserialize)]
pub struct Different {
    /// The worker whose collection is compared against.
    pub first: String,
    pub worker: String,
    /// Its node IDs, in its order.
    pub items: Vec<String>,
}

/// A collector of a partitioned run: its collection cannot be split (a
/// whole-list collection hook of a conftest or an unknown plugin, or the pid
/// read while collecting). It ends without collecting.
#[derive(Debug, Serialize, Deserialize)]
pub struct Unpartitionable {
    pub reason: String,
    /// Found before collecting (every collector finds it; share 0's
    /// collector then collects the whole suite).
    #[serde(default)]
    pub early: bool,
}

/// Which worker sent a forwarded message (set by the CLI, absent from the worker).
type WorkerId = Option<String>;

#[derive(Debug, Serialize, Deserialize)]
pub struct Ready {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: WorkerId,
}

/// `pytest_runtest_logstart` / `pytest_runtest_logfinish`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogPoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: WorkerId,
    pub nodeid: String,
    /// `[path, lineno, name]`.
    pub location: serde_json::Value,
}

/// A test report (`pytest_report_to_serializable`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: WorkerId,
    pub data: Raw,
}

/// A warning a worker recorded (`pytest_warning_recorded`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Warning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: WorkerId,
    pub message: String,
    /// `[module, qualname]` of the warning's class.
    pub category: (String, String),
    pub filename: String,
    #[serde(default)]
    pub lineno: Option<i64>,
    pub when: String,
    pub nodeid: String,
    pub location: serde_json::Value,
}

/// The worker's `config.workeroutput` as its session ends.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerFinished {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: WorkerId,
    pub workeroutput: Raw,
}

/// A worker's `pytest_internalerror`.
#[derive(Debug, Serialize, Deserialize)]
pub struct InternalError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: WorkerId,
    pub formatted_error: String,
}

/// Each worker's `workerinput`, as the controller's plugins configured it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Nodes {
    pub nodes: BTreeMap<String, Raw>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerInput {
    pub data: Raw,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Fork {
    pub worker: String,
    pub idx: usize,
    pub workerinput: Raw,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Run {
    pub indexes: Vec<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NodeRef {
    pub worker: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Crash {
    pub worker: String,
    pub nodeid: String,
    pub location: serde_json::Value,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NodeDown {
    pub worker: String,
    pub error: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Abort {
    pub message: String,
}

/// The `type` of a message. The sessions write it first (`rpytest.protocol`
/// encodes compactly, `type` first): then it is read without scanning the
/// rest of the line, which the variant's parse reads anyway.
fn tag(line: &str) -> serde_json::Result<Cow<'_, str>> {
    if let Some(rest) = line.strip_prefix("{\"type\":\"") {
        if let Some(t) = rest.split('"').next().filter(|t| !t.contains('\\')) {
            if rest.len() > t.len() {
                return Ok(Cow::Borrowed(t));
            }
        }
    }
    tag_anywhere(line)
}

fn tag_anywhere(line: &str) -> serde_json::Result<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Tag<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
    }
    Ok(serde_json::from_str::<Tag>(line)?.kind)
}

impl WorkerMsg {
    /// Reads one line; an unknown `type` is an [`Event::Unknown`].
    pub fn parse(line: &str) -> serde_json::Result<WorkerMsg> {
        use serde_json::from_str;
        Ok(match tag(line)?.as_ref() {
            "hello" => WorkerMsg::Hello(from_str(line)?),
            "forked" => WorkerMsg::Forked(from_str(line)?),
            "worker_exit" => WorkerMsg::WorkerExit(from_str(line)?),
            "collection" => WorkerMsg::Collection(from_str(line)?),
            "unpartitionable" => WorkerMsg::Unpartitionable(from_str(line)?),
            "want" => WorkerMsg::Want,
            "ready" => WorkerMsg::Ready(from_str(line)?),
            "logstart" => WorkerMsg::Logstart(from_str(line)?),
            "logfinish" => WorkerMsg::Logfinish(from_str(line)?),
            "report" => WorkerMsg::Report(from_str(line)?),
            "warning" => WorkerMsg::Warning(from_str(line)?),
            "workerfinished" => WorkerMsg::Workerfinished(from_str(line)?),
            "internal_error" => WorkerMsg::InternalError(from_str(line)?),
            "nodes" => WorkerMsg::Nodes(from_str(line)?),
            "stop" => WorkerMsg::Stop,
            _ => WorkerMsg::Event(from_str(line)?),
        })
    }
}

impl ControlMsg {
    /// Reads one line (the sessions are the readers; the CLI's tests use it).
    pub fn parse(line: &str) -> serde_json::Result<ControlMsg> {
        use serde_json::from_str;
        Ok(match tag(line)?.as_ref() {
            "workerinput" => ControlMsg::Workerinput(from_str(line)?),
            "fork" => ControlMsg::Fork(from_str(line)?),
            "run" => ControlMsg::Run(from_str(line)?),
            "stop" => ControlMsg::Stop,
            "configure_node" => ControlMsg::ConfigureNode(from_str(line)?),
            "collection" => ControlMsg::Collection(from_str(line)?),
            "logstart" => ControlMsg::Logstart(from_str(line)?),
            "logfinish" => ControlMsg::Logfinish(from_str(line)?),
            "report" => ControlMsg::Report(from_str(line)?),
            "warning" => ControlMsg::Warning(from_str(line)?),
            "ready" => ControlMsg::Ready(from_str(line)?),
            "workerfinished" => ControlMsg::Workerfinished(from_str(line)?),
            "internal_error" => ControlMsg::InternalError(from_str(line)?),
            "crash" => ControlMsg::Crash(from_str(line)?),
            "nodedown" => ControlMsg::Nodedown(from_str(line)?),
            "abort" => ControlMsg::Abort(from_str(line)?),
            "done" => ControlMsg::Done,
            other => {
                return Err(serde::de::Error::unknown_variant(
                    other,
                    &["a control message"],
                ));
            }
        })
    }

    /// The message as one line (without its `\n`).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("control messages serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Each fixture of `tests/protocol/<dir>/`, as one wire line, with its name.
    fn fixtures(dir: &str) -> Vec<(String, String)> {
        crate::protocol::tests::fixtures(dir)
            .into_iter()
            .map(|(name, v)| (name, serde_json::to_string(&v).unwrap()))
            .collect()
    }

    fn value(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn every_worker_message_fixture_reads_and_writes_back_the_same() {
        for (name, line) in fixtures("worker") {
            let m = WorkerMsg::parse(&line).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                !matches!(m, WorkerMsg::Event(Event::Unknown)),
                "{name}: not a known message"
            );
            let back = serde_json::to_string(&m).unwrap();
            assert_eq!(value(&back), value(&line), "{name}");
        }
    }

    #[test]
    fn every_control_message_fixture_reads_and_writes_back_the_same() {
        for (name, line) in fixtures("control") {
            let m = ControlMsg::parse(&line).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(value(&m.to_line()), value(&line), "{name}");
        }
    }

    #[test]
    fn reports_are_forwarded_byte_for_byte() {
        let line = r#"{"type":"report","data":{"b": 1.50, "a":[1,  2],"s":"\u00e9"}}"#;
        let WorkerMsg::Report(mut r) = WorkerMsg::parse(line).unwrap() else {
            panic!("not a report");
        };
        r.worker = Some("gw3".into());
        assert_eq!(
            ControlMsg::Report(r).to_line(),
            r#"{"type":"report","worker":"gw3","data":{"b": 1.50, "a":[1,  2],"s":"\u00e9"}}"#
        );
    }

    #[test]
    fn the_type_is_read_wherever_it_is() {
        let m = WorkerMsg::parse(r#"{"pid":7,"type":"started"}"#).unwrap();
        assert!(matches!(m, WorkerMsg::Event(Event::Started { pid: 7 })));
        assert!(matches!(
            WorkerMsg::parse(r#"{ "type" : "want" }"#).unwrap(),
            WorkerMsg::Want
        ));
        assert!(matches!(
            WorkerMsg::parse(r#"{"type":"w\u0061nt"}"#).unwrap(),
            WorkerMsg::Want
        ));
        assert!(WorkerMsg::parse(r#"{"type":"want"#).is_err());
    }

    #[test]
    fn the_daemon_exit_is_an_event_and_unknown_types_are_tolerated() {
        let exit = WorkerMsg::parse(r#"{"type":"exit","code":null,"signal":9}"#).unwrap();
        assert!(matches!(
            exit,
            WorkerMsg::Event(Event::Exit {
                code: None,
                signal: Some(9)
            })
        ));
        let newer = WorkerMsg::parse(r#"{"type":"from_the_future","x":1}"#).unwrap();
        assert!(matches!(newer, WorkerMsg::Event(Event::Unknown)));
        assert!(ControlMsg::parse(r#"{"type":"from_the_future"}"#).is_err());
    }
}

/// The share of the test files one collector of a `-n` run collects
/// (`src/parallel/partition.rs`): `files` are its own, `others` the other
/// shares'; any other file (one no run has timed) is its own when the CRC-32
/// of its rootdir-relative path, modulo `count`, is `index`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Partition {
    pub index: usize,
    pub count: usize,
    pub files: Vec<String>,
    #[serde(default)]
    pub others: Vec<String>,
}
