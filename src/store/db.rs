//! The SQLite database (`.rpytest/cache.db`): its rows and queries. Opening,
//! the schema and recovery are in `open.rs`.
//!
//! Every run's writes happen in one transaction, so a crash or a kill leaves
//! either all of a run's rows or none.

use crate::inputs::fasthash::{map_with_capacity, FastMap};
use crate::inputs::hash::{Digest, StatEntry};
use crate::inputs::ImportRef;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::PathBuf;

/// Something the user should hear about, but that does not stop the run.
#[derive(Debug, Clone)]
pub struct StoreWarning(pub String);

/// The local store.
pub struct Store {
    pub(super) conn: Connection,
    pub path: Option<PathBuf>,
    pub warnings: Vec<StoreWarning>,
    /// Which results imported from a remote cache this run may reuse: a
    /// remote's answer is only as trusted as the run that trusts the remote.
    pub remote_trust: RemoteTrust,
    /// What `import_entries` records as the origin of what it stores.
    pub import_origin: Origin,
    /// `(file, key)` entries a lookup found that are not their file's newest
    /// (`touch` updates only these).
    pub(super) stale: std::collections::HashSet<(String, String)>,
}

/// Where a cached result came from (`node_cache.origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// This machine ran the test.
    #[default]
    Local,
    /// A remote cache, unsigned (no key was configured).
    Remote,
    /// A remote cache, with a valid signature under the configured key.
    RemoteSigned,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Local => "local",
            Origin::Remote => "remote",
            Origin::RemoteSigned => "remote-signed",
        }
    }
}

/// Which remote-origin results may be reused in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteTrust {
    /// No remote cache in this run: only what ran here.
    #[default]
    None,
    /// A remote cache with a signing key: what was signed, too.
    Signed,
    /// A remote cache without a key: anything it gave.
    Any,
}

impl RemoteTrust {
    fn allows(self, origin: &str) -> bool {
        match origin {
            "local" => true,
            "remote-signed" => self != RemoteTrust::None,
            _ => self == RemoteTrust::Any,
        }
    }
}

/// One per-node result as the CLI records it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodeResult {
    pub nodeid: String,
    pub file: String,
    pub outcome: crate::outcome::Outcome,
    pub duration: f64,
    pub location: String,
    pub longrepr: String,
    pub wasxfail: Option<String>,
    /// JSON object of what is replayed beside the outcome (`node_output`),
    /// empty when there is nothing.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
}

/// A test file's cached collection under one key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    pub outcome: crate::outcome::Outcome,
    pub nodes: Vec<String>,
    pub inputs: String,
    /// JSON: the skip reason `[path, lineno, reason]` of a file whose import skipped.
    pub detail: String,
}

/// What the cache holds for one `(file, key)`.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub entry: FileEntry,
    pub results: Vec<NodeResult>,
    /// The nodes pytest's own selection (`-k`, `-m`, `--deselect`) kept from
    /// this file the last time it ran with the same selection and key.
    pub selected: Option<Vec<String>>,
}

/// A finished run, for history.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub started: f64,
    pub finished: f64,
    pub argv: String,
    pub exit_code: i32,
    pub ran: i64,
    pub cached: i64,
}

pub(super) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Store {
    /// Adds the stat cache's `ctime_ns` column to a database made before it
    /// existed (rows without it hold -1 and are never trusted). Two runs may
    /// race to add it; the loser's "duplicate column" is harmless.
    fn ensure_stat_ctime(&self) {
        let has = self
            .conn
            .prepare("SELECT ctime_ns FROM stat_cache LIMIT 0")
            .is_ok();
        if !has {
            let _ = self.conn.execute_batch(
                "ALTER TABLE stat_cache ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT -1",
            );
        }
    }

    /// The stat cache, for the hasher.
    pub fn load_stat_cache(&self) -> rusqlite::Result<crate::inputs::hash::StatMap> {
        self.ensure_stat_ctime();
        let mut stmt = self.conn.prepare(
            "SELECT path, size, mtime_ns, ino, recorded_ns, digest, ctime_ns FROM stat_cache",
        )?;
        let rows = stmt.query_map([], |r| {
            let digest: Vec<u8> = r.get(5)?;
            let mut d: Digest = [0; 32];
            if digest.len() == 32 {
                d.copy_from_slice(&digest);
            }
            Ok((
                r.get::<_, String>(0)?,
                StatEntry {
                    size: r.get::<_, i64>(1)? as u64,
                    mtime_ns: r.get(2)?,
                    ctime_ns: r.get(6)?,
                    ino: r.get::<_, i64>(3)? as u64,
                    recorded_ns: r.get(4)?,
                    digest: d,
                },
            ))
        })?;
        rows.collect()
    }

    /// Saves new or changed stat-cache entries.
    pub fn save_stat_cache<'a>(
        &mut self,
        entries: impl Iterator<Item = (&'a String, &'a StatEntry)>,
    ) -> rusqlite::Result<()> {
        self.ensure_stat_ctime();
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT OR REPLACE INTO stat_cache(path, size, mtime_ns, ino, recorded_ns, digest, ctime_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (p, e) in entries {
                stmt.execute(params![
                    p,
                    e.size as i64,
                    e.mtime_ns,
                    e.ino as i64,
                    e.recorded_ns,
                    &e.digest[..],
                    e.ctime_ns
                ])?;
            }
        }
        tx.commit()
    }

    /// Parsed imports by content digest (parsing is a pure function of the bytes).
    pub fn load_parse_cache(&self) -> HashMap<Digest, Vec<ImportRef>> {
        let mut out = HashMap::new();
        let Ok(mut stmt) = self.conn.prepare("SELECT digest, imports FROM parse_cache") else {
            return out;
        };
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
        });
        if let Ok(rows) = rows {
            for (d, imports) in rows.flatten() {
                if let (Ok(d), Ok(v)) = (
                    <Digest>::try_from(d.as_slice()),
                    serde_json::from_str(&imports),
                ) {
                    out.insert(d, v);
                }
            }
        }
        out
    }

    /// Saves newly parsed files' imports.
    pub fn save_parse_cache<'a>(
        &mut self,
        entries: impl Iterator<Item = (&'a Digest, &'a Vec<ImportRef>)>,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare("INSERT OR REPLACE INTO parse_cache(digest, imports) VALUES (?1, ?2)")?;
            for (d, v) in entries {
                stmt.execute(params![
                    &d[..],
                    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
                ])?;
            }
        }
        tx.commit()
    }

    /// A value in the meta table.
    pub fn meta(&self, key: &str) -> Option<String> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
    }

    /// Sets a value in the meta table.
    pub fn set_meta(&self, key: &str, value: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    /// The remembered description of an interpreter, by its stamp.
    pub fn interpreter(&self, stamp: &str) -> Option<String> {
        self.conn
            .query_row(
                "SELECT info FROM interpreters WHERE stamp=?1",
                [stamp],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten()
    }

    /// Remembers an interpreter's description.
    pub fn set_interpreter(&self, stamp: &str, info: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO interpreters(stamp, info) VALUES (?1, ?2)",
            params![stamp, info],
        )?;
        Ok(())
    }

    /// Recorded dependencies: file ("" = global) → kind → names.
    pub fn deps(&self) -> rusqlite::Result<HashMap<String, HashMap<String, Vec<String>>>> {
        let mut out: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT file, kind, name FROM deps ORDER BY file, kind, name")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (f, k, n) = row?;
            out.entry(f).or_default().entry(k).or_default().push(n);
        }
        Ok(out)
    }

    /// Recorded import edges: importer → imported files.
    /// How many dependency rows and import edges are recorded.
    pub fn deps_count(&self) -> i64 {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM deps) + (SELECT count(*) FROM edges)",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0)
    }

    pub fn edges(&self) -> rusqlite::Result<HashMap<String, Vec<String>>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT importer, imported FROM edges ORDER BY importer, imported")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (a, b) = row?;
            out.entry(a).or_default().push(b);
        }
        Ok(out)
    }

    /// The cached collection of `file` under `key`.
    pub fn file_entry(&self, file: &str, key: &str) -> rusqlite::Result<Option<FileEntry>> {
        self.conn
            .query_row(
                "SELECT outcome, nodes, inputs, detail FROM file_cache WHERE file=?1 AND key=?2",
                params![file, key],
                |r| {
                    let nodes: String = r.get(1)?;
                    Ok(FileEntry {
                        outcome: r.get(0)?,
                        nodes: serde_json::from_str(&nodes).unwrap_or_default(),
                        inputs: r.get(2)?,
                        detail: r.get(3)?,
                    })
                },
            )
            .optional()
    }

    /// The cached collections and node results of many `(file, key)` pairs
    /// at once (one round trip through a temporary table instead of two
    /// queries per file). `inputs` is left empty: only `--why` needs it.
    pub fn lookup_many(
        &mut self,
        pairs: &[(&str, &str)],
        selection: Option<&str>,
    ) -> rusqlite::Result<HashMap<String, Lookup>> {
        let got = self.lookup_many_inner(pairs, selection);
        self.suspect(got)
    }

    /// Passes `result` on; a "database disk image is malformed" error
    /// leaves a mark beside the file, so the next open runs `PRAGMA
    /// quick_check` and moves a damaged database aside (damage below a
    /// table's root page shows only when a query reaches it).
    pub(super) fn suspect<T>(&self, result: rusqlite::Result<T>) -> rusqlite::Result<T> {
        if let (Err(e), Some(path)) = (&result, &self.path) {
            use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
            if matches!(e.sqlite_error_code(), Some(DatabaseCorrupt | NotADatabase)) {
                let _ = std::fs::write(super::open::suspect_mark(path), b"");
            }
        }
        result
    }

    fn lookup_many_inner(
        &mut self,
        pairs: &[(&str, &str)],
        selection: Option<&str>,
    ) -> rusqlite::Result<HashMap<String, Lookup>> {
        // One read transaction: every row comes from one state of the store,
        // whatever another run writes meanwhile.
        let tx = self.conn.transaction()?;
        let mut out: HashMap<String, Lookup> = HashMap::with_capacity(pairs.len());
        {
            let scan = scan_pays(&tx, pairs.len())?;
            let rows = match scan {
                true => scan_entries(&tx, pairs)?,
                false => point_entries(&tx, pairs)?,
            };
            // What the selection kept: read through once with the entries
            // scanned, else a point query per entry found.
            let mut kept = match (scan, selection) {
                (true, Some(sig)) => Some(scan_selections(&tx, pairs, sig)?),
                _ => None,
            };
            let mut nodes_q = tx.prepare(NODE_ROWS)?;
            let mut sel_q = match (selection, &kept) {
                (Some(_), None) => Some(tx.prepare(SELECTION_ROW)?),
                _ => None,
            };
            for (i, (&(file, key), row)) in pairs.iter().zip(rows).enumerate() {
                let Some(row) = row else { continue };
                // The node rows are read only for an entry that has no
                // (readable) packed row.
                let packed = match row.packed {
                    Some(packed) => packed,
                    None => node_rows(&mut nodes_q, file, key)?,
                };
                // A file with one result this run may not trust runs whole.
                if !packed.iter().all(|p| self.remote_trust.allows(&p.6)) {
                    continue;
                }
                let results: Vec<NodeResult> =
                    packed.into_iter().map(|p| unpacked(file, p)).collect();
                let selected = match (&mut kept, &mut sel_q, selection) {
                    (Some(kept), _, _) => kept[i].take(),
                    (None, Some(q), Some(sig)) => q
                        .query_row(params![file, key, sig], |r| r.get::<_, String>(0))
                        .optional()?
                        .and_then(|nodes| serde_json::from_str(&nodes).ok()),
                    _ => None,
                };
                if row.stale {
                    self.stale.insert((file.to_owned(), key.to_owned()));
                }
                out.insert(
                    file.to_owned(),
                    Lookup {
                        entry: FileEntry {
                            outcome: row.outcome,
                            nodes: row.nodes,
                            inputs: String::new(),
                            detail: row.detail,
                        },
                        results,
                        selected,
                    },
                );
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Marks `(file, key)` entries as used now: `at` is when an entry was
    /// last stored or used, and eviction keeps the most recently used keys
    /// of a file, so the key in use is never the one pushed out. (Node rows
    /// keep the time they were stored.) Its own write transaction, taken at
    /// once: a read transaction upgraded to a write fails at once with
    /// "database is locked" when another run wrote meanwhile.
    pub fn touch(&mut self, pairs: &[(&str, &str)]) -> rusqlite::Result<()> {
        // An entry already its file's newest needs no write: eviction compares
        // `at` within a file, so a no-change run writes no page at all.
        let pairs: Vec<&(&str, &str)> = pairs
            .iter()
            .filter(|(f, k)| self.stale.contains(&(f.to_string(), k.to_string())))
            .collect();
        if pairs.is_empty() {
            return Ok(());
        }
        let at = now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare("UPDATE file_cache SET at=?3 WHERE file=?1 AND key=?2")?;
            for (f, k) in pairs {
                st.execute(params![f, k, at])?;
            }
        }
        tx.commit()
    }

    /// Whether `nodeid` ever had a reusable result, and under which key.
    pub fn node_key(&self, nodeid: &str) -> rusqlite::Result<Option<(String, String)>> {
        self.conn
            .query_row(
                "SELECT file, key FROM node_cache WHERE nodeid=?1 ORDER BY at DESC LIMIT 1",
                [nodeid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
    }

    /// Writes everything a finished run learned, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn record_run(
        &mut self,
        run: &RunRecord,
        results: &[NodeResult],
        files: &[(String, String, FileEntry)],
        reusable: &[(String, NodeResult)],
    ) -> rusqlite::Result<()> {
        let done = self.record_run_inner(run, results, files, reusable);
        self.suspect(done)
    }

    fn record_run_inner(
        &mut self,
        run: &RunRecord,
        results: &[NodeResult],
        files: &[(String, String, FileEntry)],
        reusable: &[(String, NodeResult)],
    ) -> rusqlite::Result<()> {
        let at = now();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO runs(started, finished, argv, exit_code, ran, cached) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run.started, run.finished, run.argv, run.exit_code, run.ran, run.cached],
        )?;
        let run_id = tx.last_insert_rowid();
        {
            let mut ins = tx.prepare(
                "INSERT INTO results(run_id, nodeid, file, outcome, duration, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut dur = tx.prepare(
                "INSERT OR REPLACE INTO durations(nodeid, file, duration) VALUES (?1, ?2, ?3)",
            )?;
            for r in results {
                ins.execute(params![run_id, r.nodeid, r.file, r.outcome, r.duration, at])?;
                dur.execute(params![r.nodeid, r.file, r.duration])?;
            }
            insert_entries(&tx, files, reusable, at, Origin::Local)?;
        }
        // Keep old keys from growing without bound: only the 3 most recently
        // stored or used keys per file (see `touch`; only a run that stored
        // new keys can have pushed one out).
        if !files.is_empty() {
            tx.execute_batch(
            "DELETE FROM node_cache WHERE (file, key) IN (
                 SELECT file, key FROM file_cache f WHERE
                 (SELECT count(*) FROM file_cache g WHERE g.file=f.file AND g.at > f.at) >= 3);
             DELETE FROM node_output WHERE (file, key) IN (
                 SELECT file, key FROM file_cache f WHERE
                 (SELECT count(*) FROM file_cache g WHERE g.file=f.file AND g.at > f.at) >= 3);
             DELETE FROM file_results WHERE (file, key) IN (
                 SELECT file, key FROM file_cache f WHERE
                 (SELECT count(*) FROM file_cache g WHERE g.file=f.file AND g.at > f.at) >= 3);
             DELETE FROM file_cache WHERE
                 (SELECT count(*) FROM file_cache g WHERE g.file=file_cache.file AND g.at > file_cache.at) >= 3;",
            )?;
        }
        tx.commit()
    }

    /// Stores entries fetched from a remote cache (already validated).
    pub fn import_entries(
        &mut self,
        files: &[(String, String, FileEntry)],
        reusable: &[(String, NodeResult)],
    ) -> rusqlite::Result<()> {
        let origin = self.import_origin;
        let tx = self.conn.transaction()?;
        insert_entries(&tx, files, reusable, now(), origin)?;
        tx.commit()
    }

    /// The files pytest collected for a collection signature (fast path).
    pub fn collection(&self, signature: &str) -> Option<Vec<String>> {
        self.conn
            .query_row(
                "SELECT files FROM collections WHERE signature=?1",
                [signature],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .ok()
            .flatten()
            .and_then(|s| serde_json::from_str(&s).ok())
    }

    /// The files of the most recently recorded collection, whatever its signature.
    pub fn last_collection(&self) -> Option<Vec<String>> {
        self.conn
            .query_row(
                "SELECT files FROM collections ORDER BY at DESC LIMIT 1",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .ok()
            .flatten()
            .and_then(|s| serde_json::from_str(&s).ok())
    }

    /// Remembers what a full session collected for `signature`.
    pub fn set_collection(&self, signature: &str, files: &[String]) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO collections(signature, files, at) VALUES (?1, ?2, ?3)",
            params![
                signature,
                serde_json::to_string(files).unwrap_or_default(),
                now()
            ],
        )?;
        Ok(())
    }

    /// The labelled inputs of the global key whose hex starts with `prefix`.
    pub fn global_inputs_by_prefix(&self, prefix: &str) -> Option<String> {
        self.conn
            .query_row(
                "SELECT inputs FROM globals WHERE substr(key, 1, length(?1)) = ?1 ORDER BY at DESC LIMIT 1",
                [prefix],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten()
    }

    /// Stores the labelled inputs of a global key.
    pub fn set_global_inputs(&self, key: &str, inputs: &str) -> rusqlite::Result<()> {
        // The same inputs already stored as the newest global row: writing
        // them again would change nothing a reader sees (the newest-first
        // order included), so a no-change run leaves the page alone.
        let same: Option<bool> = self
            .conn
            .query_row(
                "SELECT inputs = ?2 AND at >= (SELECT max(at) FROM globals) FROM globals WHERE key = ?1",
                params![key, inputs],
                |r| r.get(0),
            )
            .optional()?;
        if same == Some(true) {
            return Ok(());
        }
        self.conn.execute(
            "INSERT OR REPLACE INTO globals(key, inputs, at) VALUES (?1, ?2, ?3)",
            params![key, inputs, now()],
        )?;
        Ok(())
    }

    /// Remembers which nodes of each file a selection kept.
    pub fn record_selections(
        &mut self,
        sig: &str,
        rows: &[(String, String, Vec<String>)],
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare(
                "INSERT OR REPLACE INTO selections(file, key, sig, nodes, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (file, key, nodes) in rows {
                st.execute(params![
                    file,
                    key,
                    sig,
                    serde_json::to_string(nodes).unwrap_or_default(),
                    now()
                ])?;
            }
        }
        tx.execute(
            "DELETE FROM selections WHERE (file, key) NOT IN (SELECT file, key FROM file_cache)",
            [],
        )?;
        tx.commit()
    }

    /// Adds recorded dependencies and import edges (they only accumulate:
    /// an input once seen stays an input).
    pub fn record_deps(
        &mut self,
        deps: &[(String, String, Vec<String>)],
        edges: &[(String, String)],
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut dp =
                tx.prepare("INSERT OR IGNORE INTO deps(file, kind, name) VALUES (?1, ?2, ?3)")?;
            for (file, kind, names) in deps {
                for n in names {
                    dp.execute(params![file, kind, n])?;
                }
            }
            let mut ed =
                tx.prepare("INSERT OR IGNORE INTO edges(importer, imported) VALUES (?1, ?2)")?;
            for (a, b) in edges {
                ed.execute(params![a, b])?;
            }
        }
        tx.commit()
    }

    /// The last recorded duration of every node (scheduling `-n` and `--shard`).
    pub fn durations(&self) -> rusqlite::Result<HashMap<String, (String, f64)>> {
        let mut st = self
            .conn
            .prepare("SELECT nodeid, file, duration FROM durations")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, (r.get::<_, String>(1)?, r.get(2)?)))
        })?;
        rows.collect()
    }

    /// Counts for `--result-cache stats`.
    pub fn stats(&self) -> rusqlite::Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for (label, sql) in [
            ("runs recorded", "SELECT count(*) FROM runs"),
            (
                "files with cached results",
                "SELECT count(DISTINCT file) FROM file_cache",
            ),
            ("cached node results", "SELECT count(*) FROM node_cache"),
            ("files in the stat cache", "SELECT count(*) FROM stat_cache"),
            ("recorded dependencies", "SELECT count(*) FROM deps"),
            ("recorded import edges", "SELECT count(*) FROM edges"),
        ] {
            out.push((
                label.to_owned(),
                self.conn.query_row(sql, [], |r| r.get(0))?,
            ));
        }
        Ok(out)
    }

    /// Deletes every cached result and recorded input (history stays).
    pub fn clear(&mut self) -> rusqlite::Result<()> {
        self.conn.execute_batch(
            "BEGIN; DELETE FROM file_cache; DELETE FROM node_cache; DELETE FROM node_output; DELETE FROM file_results; DELETE FROM deps;
             DELETE FROM edges; DELETE FROM stat_cache; DELETE FROM collections;
             DELETE FROM globals; DELETE FROM parse_cache; DELETE FROM selections;
             DELETE FROM coverage; COMMIT;",
        )
    }
}

/// Stores file entries and their reusable node results (a run's, or a remote cache's).
fn insert_entries(
    tx: &rusqlite::Transaction,
    files: &[(String, String, FileEntry)],
    reusable: &[(String, NodeResult)],
    at: f64,
    origin: Origin,
) -> rusqlite::Result<()> {
    let mut fc = tx.prepare(
        "INSERT OR REPLACE INTO file_cache(file, key, outcome, nodes, at, inputs, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (file, key, e) in files {
        let nodes = serde_json::to_string(&e.nodes).unwrap_or_else(|_| "[]".into());
        fc.execute(params![file, key, e.outcome, nodes, at, e.inputs, e.detail])?;
    }
    // A run stores the results it replayed again, unchanged: those keep the
    // origin they had (a remote's answer never becomes "ran here" by being
    // replayed); a result that really ran again has a new duration.
    let mut nc = tx.prepare(
        "INSERT INTO node_cache(file, key, nodeid, outcome, duration, location, longrepr, wasxfail, at, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(file, key, nodeid) DO UPDATE SET
           origin = CASE WHEN excluded.origin = 'local' AND node_cache.origin <> 'local'
                          AND node_cache.duration = excluded.duration
                          AND node_cache.outcome = excluded.outcome
                         THEN node_cache.origin ELSE excluded.origin END,
           outcome = excluded.outcome, duration = excluded.duration,
           location = excluded.location, longrepr = excluded.longrepr,
           wasxfail = excluded.wasxfail, at = excluded.at",
    )?;
    // What is replayed beside the outcome: a row only when there is something.
    let mut out_ins = tx.prepare(
        "INSERT OR REPLACE INTO node_output(file, key, nodeid, output) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut out_del =
        tx.prepare("DELETE FROM node_output WHERE file = ?1 AND key = ?2 AND nodeid = ?3")?;
    for (key, r) in reusable {
        if r.output.is_empty() {
            out_del.execute(params![r.file, key, r.nodeid])?;
        } else {
            out_ins.execute(params![r.file, key, r.nodeid, r.output])?;
        }
        nc.execute(params![
            r.file,
            key,
            r.nodeid,
            r.outcome,
            r.duration,
            r.location,
            r.longrepr,
            r.wasxfail,
            at,
            origin.as_str()
        ])?;
    }
    let touched: std::collections::BTreeSet<(&str, &str)> = reusable
        .iter()
        .map(|(key, r)| (r.file.as_str(), key.as_str()))
        .collect();
    pack_results(tx, &touched)
}

/// A node's stored result as `file_results` packs it: node ID, outcome,
/// duration (its bits: exact), location, report, xfail reason, origin and
/// output, the JSON texts as they are stored.
type Packed = (
    String,
    String,
    u64,
    String,
    String,
    Option<String>,
    String,
    String,
);

/// A `file_cache` entry as a lookup reads it, with its packed results
/// (`None`: no packed row, or one this build cannot read).
#[cfg_attr(test, derive(Debug, PartialEq))]
struct EntryRow {
    outcome: crate::outcome::Outcome,
    nodes: Vec<String>,
    detail: String,
    /// A newer key of the same file was stored or used after this one.
    stale: bool,
    packed: Option<Vec<Packed>>,
}

/// Below this many pairs a lookup is point queries whatever the store holds.
const SCAN_FROM: usize = 256;

/// Whether reading every entry of the store once costs less than a point
/// query per pair: when the pairs are many and at least a quarter of the
/// entries (`max(rowid)` bounds their number from above, at the cost of one
/// index step).
fn scan_pays(tx: &rusqlite::Transaction, pairs: usize) -> rusqlite::Result<bool> {
    if pairs < SCAN_FROM {
        return Ok(false);
    }
    let rows: i64 = tx.query_row("SELECT coalesce(max(rowid), 0) FROM file_cache", [], |r| {
        r.get(0)
    })?;
    Ok(rows <= 4 * pairs as i64)
}

fn packed_of(v: rusqlite::types::ValueRef) -> Option<Vec<Packed>> {
    match v {
        rusqlite::types::ValueRef::Blob(b) => unpack(b),
        _ => None,
    }
}

type RawJson = Box<serde_json::value::RawValue>;

/// The embedded form of a packed row.
#[derive(serde::Serialize, serde::Deserialize)]
struct Embedded {
    raw: Vec<PackedRaw>,
}

/// A packed result whose JSON texts (location, report, output) are embedded
/// as JSON rather than as strings holding JSON: read back without
/// unescaping, as exactly the text stored.
type PackedRaw = (
    String,
    String,
    u64,
    RawJson,
    RawJson,
    Option<String>,
    String,
    RawJson,
);

/// The packed row's text: `{"raw": [...]}` when every JSON text is one
/// embeddable exactly (valid JSON without surrounding whitespace), else
/// the array of [`Packed`] (which an earlier build wrote too; one that
/// reads only arrays falls back to the node rows on the other form).
fn pack(rows: Vec<Packed>) -> Vec<u8> {
    fn raw(text: &str) -> Option<RawJson> {
        match text.trim() == text {
            true => serde_json::value::RawValue::from_string(text.to_owned()).ok(),
            false => None,
        }
    }
    let embedded: Option<Vec<PackedRaw>> = rows
        .iter()
        .map(|p| {
            Some((
                p.0.clone(),
                p.1.clone(),
                p.2,
                raw(&p.3)?,
                raw(&p.4)?,
                p.5.clone(),
                p.6.clone(),
                raw(&p.7)?,
            ))
        })
        .collect();
    match embedded {
        Some(raw) => serde_json::to_vec(&Embedded { raw }),
        None => serde_json::to_vec(&rows),
    }
    .unwrap_or_default()
}

/// The results of a packed row, either form (`None`: not a row this
/// build reads; the node rows are read instead).
fn unpack(blob: &[u8]) -> Option<Vec<Packed>> {
    if blob.first() != Some(&b'{') {
        return serde_json::from_slice(blob).ok();
    }
    let e: Embedded = serde_json::from_slice(blob).ok()?;
    let text = |r: RawJson| Box::<str>::from(r).into_string();
    Some(
        e.raw
            .into_iter()
            .map(|(n, o, d, l, r, w, g, out)| (n, o, d, text(l), text(r), w, g, text(out)))
            .collect(),
    )
}

fn entry_fields(
    row: &rusqlite::Row,
    at: usize,
) -> rusqlite::Result<(crate::outcome::Outcome, Vec<String>, String)> {
    let nodes = match row.get_ref(at + 1)? {
        rusqlite::types::ValueRef::Text(t) => serde_json::from_slice(t).unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok((row.get(at)?, nodes, row.get(at + 2)?))
}

/// The entries of `pairs`, in their order, by a point query each.
fn point_entries(
    tx: &rusqlite::Transaction,
    pairs: &[(&str, &str)],
) -> rusqlite::Result<Vec<Option<EntryRow>>> {
    let mut q = tx.prepare(
        "SELECT c.outcome, c.nodes, c.detail,
                c.at < (SELECT max(g.at) FROM file_cache g WHERE g.file = c.file),
                r.results
         FROM file_cache c
         LEFT JOIN file_results r ON r.file = c.file AND r.key = c.key
         WHERE c.file = ?1 AND c.key = ?2",
    )?;
    let mut out = Vec::with_capacity(pairs.len());
    for &(file, key) in pairs {
        let mut rows = q.query(params![file, key])?;
        out.push(match rows.next()? {
            Some(row) => {
                let (outcome, nodes, detail) = entry_fields(row, 0)?;
                Some(EntryRow {
                    outcome,
                    nodes,
                    detail,
                    stale: row.get(3)?,
                    packed: packed_of(row.get_ref(4)?),
                })
            }
            None => None,
        });
    }
    Ok(out)
}

/// Per asked file: the newest `at` of its keys, and its asked keys with
/// their positions among the pairs.
type AskedFiles<'a> = FastMap<&'a str, (f64, Vec<(&'a str, usize)>)>;

/// The entries of `pairs`, in their order, by reading `file_cache` and
/// `file_results` through once: what the point queries give, for a
/// fraction of their cost when most of the store is asked for.
fn scan_entries(
    tx: &rusqlite::Transaction,
    pairs: &[(&str, &str)],
) -> rusqlite::Result<Vec<Option<EntryRow>>> {
    let mut files: AskedFiles = FastMap::default();
    for (i, &(file, key)) in pairs.iter().enumerate() {
        let e = files.entry(file).or_insert((f64::NEG_INFINITY, Vec::new()));
        e.1.push((key, i));
    }
    let position = |files: &AskedFiles, file: &str, key: &str| {
        let keys = &files.get(file)?.1;
        keys.iter().find(|(k, _)| *k == key).map(|&(_, i)| i)
    };
    // The rows' texts are copied out as they are read and decoded after
    // the scan, on every core (decoding is most of a lookup's work).
    let mut raw: Vec<Option<RawEntry>> = (0..pairs.len()).map(|_| None).collect();
    let mut ats = vec![0f64; pairs.len()];
    let mut q = tx.prepare("SELECT file, key, at, outcome, nodes, detail FROM file_cache")?;
    let mut rows = q.query([])?;
    while let Some(row) = rows.next()? {
        let file = row.get_ref(0)?.as_str()?;
        let Some(newest) = files.get_mut(file).map(|e| &mut e.0) else {
            continue;
        };
        let at: f64 = row.get(2)?;
        if at > *newest {
            *newest = at;
        }
        let Some(i) = position(&files, file, row.get_ref(1)?.as_str()?) else {
            continue;
        };
        ats[i] = at;
        raw[i] = Some(RawEntry {
            outcome: row.get(3)?,
            nodes: match row.get_ref(4)? {
                rusqlite::types::ValueRef::Text(t) => Some(t.to_vec()),
                _ => None,
            },
            detail: row.get(5)?,
            packed: None,
        });
    }
    drop(rows);
    let mut q = tx.prepare("SELECT file, key, results FROM file_results")?;
    let mut rows = q.query([])?;
    while let Some(row) = rows.next()? {
        let file = row.get_ref(0)?.as_str()?;
        let Some(i) = position(&files, file, row.get_ref(1)?.as_str()?) else {
            continue;
        };
        if let Some(entry) = &mut raw[i] {
            entry.packed = match row.get_ref(2)? {
                rusqlite::types::ValueRef::Blob(b) => Some(b.to_vec()),
                _ => None,
            };
        }
    }
    let mut out = par_map(raw, |r| r.map(RawEntry::decoded));
    for (i, &(file, _)) in pairs.iter().enumerate() {
        if let (Some(entry), Some((newest, _))) = (&mut out[i], files.get(file)) {
            entry.stale = ats[i] < *newest;
        }
    }
    Ok(out)
}

/// The nodes a selection kept of one `(file, key)`.
const SELECTION_ROW: &str =
    "SELECT nodes FROM selections WHERE file = ?1 AND key = ?2 AND sig = ?3";

/// What the selection `sig` kept of each of `pairs`, in their order, by
/// reading `selections` through once: what a [`SELECTION_ROW`] query per
/// pair gives (`None`: nothing stored, or not a list of node IDs).
fn scan_selections(
    tx: &rusqlite::Transaction,
    pairs: &[(&str, &str)],
    sig: &str,
) -> rusqlite::Result<Vec<Option<Vec<String>>>> {
    let mut at: FastMap<(&str, &str), Vec<usize>> = map_with_capacity(pairs.len());
    for (i, &pair) in pairs.iter().enumerate() {
        at.entry(pair).or_default().push(i);
    }
    let mut raw: Vec<Option<String>> = (0..pairs.len()).map(|_| None).collect();
    let mut q = tx.prepare("SELECT file, key, nodes FROM selections WHERE sig = ?1")?;
    let mut rows = q.query([sig])?;
    while let Some(row) = rows.next()? {
        let pair = (row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?);
        for &i in at.get(&pair).into_iter().flatten() {
            raw[i] = Some(row.get(2)?);
        }
    }
    Ok(par_map(raw, |nodes| {
        nodes.and_then(|n| serde_json::from_str(&n).ok())
    }))
}

/// A `file_cache` entry and its packed row as a scan copies them out,
/// not decoded yet.
struct RawEntry {
    outcome: crate::outcome::Outcome,
    nodes: Option<Vec<u8>>,
    detail: String,
    packed: Option<Vec<u8>>,
}

impl RawEntry {
    /// The entry as [`entry_fields`] and [`packed_of`] read it from the row.
    fn decoded(self) -> EntryRow {
        EntryRow {
            outcome: self.outcome,
            nodes: self
                .nodes
                .and_then(|t| serde_json::from_slice(&t).ok())
                .unwrap_or_default(),
            detail: self.detail,
            stale: false,
            packed: self.packed.and_then(|b| unpack(&b)),
        }
    }
}

/// `f` over `items`, in their order, on up to four threads (the items in
/// contiguous chunks); on one thread below a few hundred items.
pub(crate) fn par_map<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    if threads < 2 || items.len() < 256 {
        return items.into_iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut it = items.into_iter();
    loop {
        let chunk: Vec<T> = it.by_ref().take(per).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let f = &f;
    std::thread::scope(|s| {
        let mut chunks = chunks.into_iter();
        let first = chunks.next().unwrap_or_default();
        let handles: Vec<_> = chunks
            .map(|c| s.spawn(move || c.into_iter().map(f).collect::<Vec<U>>()))
            .collect();
        let mut out: Vec<U> = first.into_iter().map(f).collect();
        for h in handles {
            out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}

/// Rewrites the `file_results` row of each `(file, key)` from its node rows,
/// in the transaction that changed them: the row is always what the node
/// rows say (none when they are gone).
fn pack_results(
    tx: &rusqlite::Transaction,
    pairs: &std::collections::BTreeSet<(&str, &str)>,
) -> rusqlite::Result<()> {
    let mut q = tx.prepare(NODE_ROWS)?;
    let mut put =
        tx.prepare("INSERT OR REPLACE INTO file_results(file, key, results) VALUES (?1, ?2, ?3)")?;
    let mut del = tx.prepare("DELETE FROM file_results WHERE file = ?1 AND key = ?2")?;
    for (file, key) in pairs {
        let rows = node_rows(&mut q, file, key)?;
        if rows.is_empty() {
            del.execute(params![file, key])?;
            continue;
        }
        put.execute(params![file, key, pack(rows)])?;
    }
    Ok(())
}

/// The node rows of one `(file, key)`, with their outputs, in the fields
/// of a packed result.
const NODE_ROWS: &str =
    "SELECT n.nodeid, n.outcome, n.duration, n.location, n.longrepr, n.wasxfail, n.origin, o.output
     FROM node_cache n
     LEFT JOIN node_output o ON o.file = n.file AND o.key = n.key AND o.nodeid = n.nodeid
     WHERE n.file = ?1 AND n.key = ?2";

/// Reads [`NODE_ROWS`] of `(file, key)` with the prepared `q`.
fn node_rows(q: &mut rusqlite::Statement, file: &str, key: &str) -> rusqlite::Result<Vec<Packed>> {
    q.query_map(params![file, key], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get::<_, f64>(2)?.to_bits(),
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        ))
    })?
    .collect()
}

/// A packed result of `file` as a node result (its origin is dropped: the
/// lookup has checked it).
fn unpacked(file: &str, p: Packed) -> NodeResult {
    let (nodeid, outcome, duration, location, longrepr, wasxfail, _origin, output) = p;
    NodeResult {
        nodeid,
        file: file.to_owned(),
        outcome: crate::outcome::Outcome::from(outcome),
        duration: f64::from_bits(duration),
        location,
        longrepr,
        wasxfail,
        output,
    }
}

#[cfg(test)]
mod file_results {
    use super::*;

    fn node(file: &str, name: &str, outcome: &str, duration: f64) -> NodeResult {
        NodeResult {
            nodeid: format!("{file}::{name}"),
            file: file.into(),
            outcome: outcome.into(),
            duration,
            location: format!("[\"{file}\",1,\"{name}\"]"),
            longrepr: "null".into(),
            wasxfail: None,
            output: String::new(),
        }
    }

    fn entry(nodes: &[&NodeResult]) -> FileEntry {
        FileEntry {
            outcome: "passed".into(),
            nodes: nodes.iter().map(|n| n.nodeid.clone()).collect(),
            inputs: "{}".into(),
            detail: "null".into(),
        }
    }

    fn run() -> RunRecord {
        RunRecord {
            started: 0.0,
            finished: 0.0,
            argv: String::new(),
            exit_code: 0,
            ran: 0,
            cached: 0,
        }
    }

    /// What a lookup gives for `(file, key)`: each node's outcome, duration
    /// bits and output, sorted by node ID.
    fn looked_up(store: &mut Store, file: &str, key: &str) -> Vec<(String, String, u64, String)> {
        let found = store.lookup_many(&[(file, key)], None).unwrap();
        let mut v: Vec<_> = found
            .get(file)
            .map(|l| {
                l.results
                    .iter()
                    .map(|r| {
                        (
                            r.nodeid.clone(),
                            r.outcome.as_str().to_owned(),
                            r.duration.to_bits(),
                            r.output.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The same lookup through the node rows alone (no packed row).
    fn from_node_rows(
        store: &mut Store,
        file: &str,
        key: &str,
    ) -> Vec<(String, String, u64, String)> {
        store.conn.execute("DELETE FROM file_results", []).unwrap();
        looked_up(store, file, key)
    }

    /// The packed row is rewritten with the node rows, in their transaction:
    /// a later run that stores one node again (another duration, an
    /// output) and adds one is what the next lookup reads, exactly as the
    /// node rows say; eviction and clearing remove it with them.
    #[test]
    fn the_packed_row_is_what_the_node_rows_say() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path());
        let a = node("t.py", "a", "passed", 0.1 + 0.2);
        let b = node("t.py", "b", "skipped", 1e-7);
        store
            .record_run(
                &run(),
                &[],
                &[("t.py".into(), "k1".into(), entry(&[&a, &b]))],
                &[("k1".into(), a.clone()), ("k1".into(), b.clone())],
            )
            .unwrap();
        let packed: i64 = store
            .conn
            .query_row("SELECT count(*) FROM file_results", [], |r| r.get(0))
            .unwrap();
        assert_eq!(packed, 1);
        let first = looked_up(&mut store, "t.py", "k1");
        assert_eq!(first[0].2, (0.1f64 + 0.2).to_bits(), "durations are exact");
        let mut a2 = a.clone();
        a2.duration = 2.5;
        a2.output = "{\"phases\":[1,2,3]}".into();
        let c = node("t.py", "c", "xfailed", 0.0);
        store
            .record_run(
                &run(),
                &[],
                &[("t.py".into(), "k1".into(), entry(&[&a2, &b, &c]))],
                &[("k1".into(), a2.clone()), ("k1".into(), c.clone())],
            )
            .unwrap();
        let second = looked_up(&mut store, "t.py", "k1");
        assert_eq!(second.len(), 3);
        assert_eq!(second[0].2, 2.5f64.to_bits());
        assert_eq!(second[0].3, "{\"phases\":[1,2,3]}");
        assert_eq!(second, from_node_rows(&mut store, "t.py", "k1"));
        store.clear().unwrap();
        let left: i64 = store
            .conn
            .query_row("SELECT count(*) FROM file_results", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    /// Keys pushed out of a file's three most recent lose their packed row
    /// with their node rows.
    #[test]
    fn eviction_removes_packed_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path());
        let a = node("t.py", "a", "passed", 0.5);
        for (i, k) in ["k1", "k2", "k3", "k4"].into_iter().enumerate() {
            store
                .record_run(
                    &run(),
                    &[],
                    &[("t.py".into(), k.into(), entry(&[&a]))],
                    &[(k.into(), a.clone())],
                )
                .unwrap();
            // Stored in this order (the clock may not tell them apart).
            store
                .conn
                .execute(
                    "UPDATE file_cache SET at = ?1 WHERE key = ?2",
                    params![i as f64, k],
                )
                .unwrap();
        }
        let keys: Vec<String> = store
            .conn
            .prepare("SELECT key FROM file_results ORDER BY key")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(keys, ["k2", "k3", "k4"]);
        assert!(looked_up(&mut store, "t.py", "k1").is_empty());
    }
    fn packed(nodeid: &str, location: &str, output: &str) -> Packed {
        (
            nodeid.into(),
            "passed".into(),
            0.25f64.to_bits(),
            location.into(),
            "null".into(),
            None,
            "local".into(),
            output.into(),
        )
    }

    /// Packed rows give back each JSON text exactly as stored: embedded
    /// when every text can be (inner whitespace, escapes and key order
    /// kept), else in the array form, which an earlier build's rows use too.
    #[test]
    fn packed_texts_come_back_exactly() {
        let embeddable = vec![
            packed(
                "t.py::a",
                "[\"t.py\", 1, \"a\\u00e9\"]",
                "{\"z\": 1, \"a\": [1.50]}",
            ),
            packed("t.py::b", "[\"t.py\",2,\"b\"]", "null"),
        ];
        let blob = pack(embeddable.clone());
        assert_eq!(blob.first(), Some(&b'{'), "the embedded form");
        assert_eq!(unpack(&blob), Some(embeddable.clone()));
        for odd in ["", " {\"a\":1}", "not json", "{\"a\":1}\n"] {
            let mut rows = embeddable.clone();
            rows.push(packed("t.py::c", "[\"t.py\",3,\"c\"]", odd));
            let blob = pack(rows.clone());
            assert_eq!(blob.first(), Some(&b'['), "the array form for {odd:?}");
            assert_eq!(unpack(&blob), Some(rows));
        }
        let earlier = serde_json::to_vec(&embeddable).unwrap();
        assert_eq!(unpack(&earlier), Some(embeddable));
        assert_eq!(unpack(b"{\"other\": 1}"), None);
    }

    /// The global inputs are rewritten only when they differ from the newest
    /// row: the same inputs again leave the row (and its time) alone, other
    /// inputs or an older key used again are written, so the newest-first
    /// lookup by prefix answers as if every run wrote.
    #[test]
    fn global_inputs_are_written_only_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let at_of = |k: &str| -> i64 {
            store
                .conn
                .query_row("SELECT at FROM globals WHERE key = ?1", [k], |r| {
                    r.get::<_, f64>(0).map(|v| (v * 1e6) as i64)
                })
                .unwrap()
        };
        store.set_global_inputs("aaaa1", "{\"x\": 1}").unwrap();
        store
            .conn
            .execute("UPDATE globals SET at = 1.0 WHERE key = 'aaaa1'", [])
            .unwrap();
        store.set_global_inputs("aaaa1", "{\"x\": 1}").unwrap();
        assert_eq!(at_of("aaaa1"), 1_000_000, "same inputs: no write");
        store.set_global_inputs("aaaa1", "{\"x\": 2}").unwrap();
        assert_eq!(
            store.global_inputs_by_prefix("aaaa").as_deref(),
            Some("{\"x\": 2}"),
            "other inputs: written"
        );
        store.set_global_inputs("aaaa2", "{\"y\": 1}").unwrap();
        store
            .conn
            .execute("UPDATE globals SET at = 1.0 WHERE key = 'aaaa1'", [])
            .unwrap();
        // aaaa1 is used again but is not the newest row: it is written, so
        // the prefix finds it first, as it did when every run wrote.
        store.set_global_inputs("aaaa1", "{\"x\": 2}").unwrap();
        assert_eq!(
            store.global_inputs_by_prefix("aaaa").as_deref(),
            Some("{\"x\": 2}")
        );
        assert!(at_of("aaaa1") > 1_000_000);
    }

    /// A lookup of most of the store reads it through once; it finds what a
    /// point query per pair finds: the asked key of each file (not another
    /// key of it), whether a newer key of the file exists, the packed row
    /// or none, and nothing for a key or file not stored.
    #[test]
    fn a_scan_finds_what_point_queries_find() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path());
        let files: Vec<String> = (0..SCAN_FROM + 20).map(|i| format!("d/t{i}.py")).collect();
        for (i, f) in files.iter().enumerate() {
            let mut a = node(f, "a", "passed", i as f64);
            a.output = format!("{{\"phases\": [{i}]}}");
            let keys: &[&str] = if i % 3 == 0 {
                &["old", "new"]
            } else {
                &["new"]
            };
            for k in keys {
                store
                    .record_run(
                        &run(),
                        &[],
                        &[(f.clone(), (*k).into(), entry(&[&a]))],
                        &[((*k).into(), a.clone())],
                    )
                    .unwrap();
            }
            // Every third file's asked key was used before its newest one.
            store
                .conn
                .execute(
                    "UPDATE file_cache SET at = CASE key WHEN 'old' THEN 1.0 ELSE 2.0 END WHERE file = ?1",
                    params![f],
                )
                .unwrap();
        }
        store
            .conn
            .execute("DELETE FROM file_results WHERE file = 'd/t1.py'", [])
            .unwrap();
        let mut pairs: Vec<(&str, &str)> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.as_str(), if i % 3 == 0 { "old" } else { "new" }))
            .collect();
        pairs.push(("d/t2.py", "absent"));
        pairs.push(("d/none.py", "new"));
        // What selections kept: under the asked sig for every other file
        // (its asked key, or another), under another sig for every file.
        let kept = |sig: &str, i: usize| vec![format!("{sig}::{i}")];
        let mut s1 = Vec::new();
        let mut s2 = Vec::new();
        for (i, (f, k)) in pairs.iter().enumerate().take(files.len()) {
            let other = if *k == "new" { "old" } else { "new" };
            match i % 4 {
                0 => s1.push((f.to_string(), k.to_string(), kept("s1", i))),
                2 => s1.push((f.to_string(), other.to_string(), kept("s1", i))),
                _ => {}
            }
            s2.push((f.to_string(), k.to_string(), kept("s2", i)));
        }
        store.record_selections("s1", &s1).unwrap();
        store.record_selections("s2", &s2).unwrap();
        let tx = store.conn.transaction().unwrap();
        assert!(scan_pays(&tx, pairs.len()).unwrap());
        let scanned = scan_entries(&tx, &pairs).unwrap();
        let pointed = point_entries(&tx, &pairs).unwrap();
        assert_eq!(scanned, pointed);
        let kept_scanned = scan_selections(&tx, &pairs, "s1").unwrap();
        let mut q = tx.prepare(SELECTION_ROW).unwrap();
        let kept_pointed: Vec<Option<Vec<String>>> = pairs
            .iter()
            .map(|(f, k)| {
                q.query_row(params![f, k, "s1"], |r| r.get::<_, String>(0))
                    .optional()
                    .unwrap()
                    .and_then(|n| serde_json::from_str(&n).ok())
            })
            .collect();
        drop(q);
        assert_eq!(kept_scanned, kept_pointed);
        assert_eq!(kept_scanned[0], Some(kept("s1", 0)));
        assert_eq!(kept_scanned[1], None);
        assert_eq!(kept_scanned[2], None);
        assert!(scanned[0].as_ref().unwrap().stale);
        assert!(!scanned[2].as_ref().unwrap().stale);
        assert!(scanned[1].as_ref().unwrap().packed.is_none());
        assert!(scanned[2].as_ref().unwrap().packed.is_some());
        assert!(scanned[pairs.len() - 1].is_none() && scanned[pairs.len() - 2].is_none());
        assert!(!scan_pays(&tx, SCAN_FROM - 1).unwrap());
    }
}
