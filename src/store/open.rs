//! Opening `.rpytest/cache.db`: the schema, and what happens when the file
//! is locked, broken or unwritable.
//!
//! WAL mode and a busy timeout let concurrent runs read and write safely. A
//! database that cannot be read, or that carries another schema version, is
//! moved aside and rebuilt — never trusted. When `.rpytest/` cannot be
//! written, the run goes on with an in-memory database and a warning.

use super::db::{now, Store, StoreWarning};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::time::Duration;

/// Bumped on any change to the tables below.
pub const SCHEMA_VERSION: i64 = 7;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL, finished REAL NOT NULL,
    argv TEXT NOT NULL, exit_code INTEGER NOT NULL,
    ran INTEGER NOT NULL, cached INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    run_id INTEGER NOT NULL, nodeid TEXT NOT NULL, file TEXT NOT NULL,
    outcome TEXT NOT NULL, duration REAL NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS results_node ON results(nodeid);
CREATE TABLE IF NOT EXISTS durations (
    nodeid TEXT PRIMARY KEY, file TEXT NOT NULL, duration REAL NOT NULL);
CREATE TABLE IF NOT EXISTS file_cache (
    file TEXT NOT NULL, key TEXT NOT NULL, outcome TEXT NOT NULL,
    nodes TEXT NOT NULL, at REAL NOT NULL, inputs TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT 'null',
    PRIMARY KEY (file, key));
CREATE TABLE IF NOT EXISTS node_cache (
    file TEXT NOT NULL, key TEXT NOT NULL, nodeid TEXT NOT NULL,
    outcome TEXT NOT NULL, duration REAL NOT NULL,
    location TEXT NOT NULL, longrepr TEXT NOT NULL, wasxfail TEXT,
    at REAL NOT NULL,
    origin TEXT NOT NULL DEFAULT 'local',
    PRIMARY KEY (file, key, nodeid));
CREATE TABLE IF NOT EXISTS node_output (
    file TEXT NOT NULL, key TEXT NOT NULL, nodeid TEXT NOT NULL, output TEXT NOT NULL,
    PRIMARY KEY (file, key, nodeid));
CREATE TABLE IF NOT EXISTS file_results (
    file TEXT NOT NULL, key TEXT NOT NULL, results BLOB NOT NULL,
    PRIMARY KEY (file, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stat_cache (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL, recorded_ns INTEGER NOT NULL, digest BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS deps (
    file TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (file, kind, name));
CREATE TABLE IF NOT EXISTS edges (
    importer TEXT NOT NULL, imported TEXT NOT NULL,
    PRIMARY KEY (importer, imported));
CREATE TABLE IF NOT EXISTS selections (
    file TEXT NOT NULL, key TEXT NOT NULL, sig TEXT NOT NULL, nodes TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (file, key, sig));
CREATE TABLE IF NOT EXISTS collections (
    signature TEXT PRIMARY KEY, files TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS globals (
    key TEXT PRIMARY KEY, inputs TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS parse_cache (
    digest BLOB PRIMARY KEY, imports TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS interpreters (
    stamp TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS coverage (
    file TEXT NOT NULL, key TEXT NOT NULL, sig TEXT NOT NULL, data TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (file, key, sig));
"#;

/// Why the database file could not be opened.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    /// The file is not an rpytest database of this schema: move it aside.
    #[error("{0}")]
    Broken(String),
    /// The file could not be used (read-only, no space): leave it alone.
    #[error("{0}")]
    Unusable(String),
    /// Another process holds a lock: try again.
    #[error("{0}")]
    Busy(String),
    /// Written by an older rpytest: its results cannot be read; replace it.
    #[error("was written by an older rpytest (schema {0})")]
    Older(String),
}

/// After this long waiting for another process's lock, say what is waited on.
const WAIT_NOTICE: Duration = Duration::from_secs(2);
/// After this long, give up on the store for the run (as for an unwritable one).
pub const WAIT_BOUND: Duration = Duration::from_secs(10);
/// How long the busy handler sleeps between tries.
const WAIT_STEP: Duration = Duration::from_millis(25);

/// Who hears that a run is waiting for a lock on the database (the CLI
/// installs `report::warning`; the store itself never prints).
static ON_WAIT: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();
/// The database being opened or used (for the message).
static DB_PATH: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Sets who is told, while a lock is waited for, what is being waited on.
pub fn on_lock_wait(notify: fn(&str)) {
    let _ = ON_WAIT.set(notify);
}

/// SQLite's busy handler: `count` is how many times it was called for this
/// lock. Sleeps, says once what it waits for, gives up after `WAIT_BOUND`.
fn busy(count: i32) -> bool {
    let waited = WAIT_STEP * count.max(0) as u32;
    if waited >= WAIT_BOUND {
        return false;
    }
    if waited == WAIT_NOTICE {
        if let Some(notify) = ON_WAIT.get() {
            let path = DB_PATH.lock().map(|p| p.clone()).unwrap_or_default();
            notify(&format!(
                "waiting for {path}: another process holds a lock on it (another rpytest run, or a program with the database open); giving up on the cache after {} s",
                WAIT_BOUND.as_secs()
            ));
        }
    }
    std::thread::sleep(WAIT_STEP);
    true
}

fn classify(e: rusqlite::Error, what: &str) -> OpenError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => OpenError::Busy(format!("stayed locked ({e})")),
        Some(ReadOnly | CannotOpen | PermissionDenied | DiskFull | SystemIoFailure) => {
            OpenError::Unusable(format!("cannot be used ({e})"))
        }
        _ => OpenError::Broken(format!("{what} ({e})")),
    }
}

impl Store {
    /// Opens (or creates, or rebuilds) `<rootdir>/.rpytest/cache.db`.
    pub fn open(rootdir: &Path) -> Store {
        let dir = rootdir.join(".rpytest");
        let path = dir.join("cache.db");
        let mut warnings = Vec::new();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            warnings.push(StoreWarning(format!(
                "cannot create {}: {e}; results of this run will not be cached",
                dir.display()
            )));
            return Store::memory(warnings);
        }
        let gitignore = dir.join(".gitignore");
        if !gitignore.exists() {
            let _ = std::fs::write(&gitignore, "# created by rpytest\n*\n");
        }
        // Two first runs at once race to create the file and switch it to WAL
        // mode; SQLite answers the loser "locked" without waiting. Retry briefly.
        if let Ok(mut p) = DB_PATH.lock() {
            *p = path.display().to_string();
        }
        let began = std::time::Instant::now();
        let mut opened = Self::open_file(&path);
        while matches!(opened, Err(OpenError::Busy(_))) && began.elapsed() < WAIT_BOUND {
            std::thread::sleep(Duration::from_millis(100));
            opened = Self::open_file(&path);
        }
        match opened {
            Ok(conn) => Self::with(conn, Some(path), warnings),
            Err(e @ OpenError::Older(_)) => {
                // Nothing in it can be read by this rpytest: no copy is kept.
                for ext in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(dir.join(format!("cache.db{ext}")));
                }
                warnings.push(StoreWarning(format!(
                    "{} {e}; started a new cache (every test runs once)",
                    path.display()
                )));
                Self::start_new(path, warnings)
            }
            Err(OpenError::Unusable(reason) | OpenError::Busy(reason)) => {
                // Busy beyond the timeout, read-only, out of space: the file may be
                // fine and in use by another run; never move it aside for that.
                warnings.push(StoreWarning(format!(
                    "{} {reason}; results of this run will not be cached",
                    path.display()
                )));
                Store::memory(warnings)
            }
            Err(OpenError::Broken(reason)) => {
                let aside = move_aside(&dir);
                warnings.push(StoreWarning(format!(
                    "{} {reason}; {}",
                    path.display(),
                    match aside {
                        Some(aside) =>
                            format!("moved it to {} and started a new cache", aside.display()),
                        None => "starting a new cache".to_owned(),
                    }
                )));
                Self::start_new(path, warnings)
            }
        }
    }

    /// Opens the new database that replaces one moved aside or removed; an
    /// in-memory store (nothing cached this run) when that fails too.
    fn start_new(path: std::path::PathBuf, mut warnings: Vec<StoreWarning>) -> Store {
        match Self::open_file(&path) {
            Ok(conn) => Self::with(conn, Some(path), warnings),
            Err(e) => {
                warnings.push(StoreWarning(format!(
                    "cannot use {}: {e}; results of this run will not be cached",
                    path.display()
                )));
                Store::memory(warnings)
            }
        }
    }

    fn memory(warnings: Vec<StoreWarning>) -> Store {
        let conn = Connection::open_in_memory().expect("in-memory SQLite");
        conn.execute_batch(SCHEMA).expect("schema in memory");
        Self::with(conn, None, warnings)
    }

    /// A store on `conn` (a file at `path`, or memory) with nothing read yet.
    fn with(
        conn: Connection,
        path: Option<std::path::PathBuf>,
        warnings: Vec<StoreWarning>,
    ) -> Store {
        Store {
            conn,
            path,
            warnings,
            remote_trust: Default::default(),
            import_origin: Default::default(),
            stale: Default::default(),
        }
    }

    fn open_file(path: &Path) -> Result<Connection, OpenError> {
        let broken = |e: rusqlite::Error| classify(e, "is not a usable database");
        let conn = Connection::open(path).map_err(broken)?;
        // A bounded wait that says what it waits for (a busy timeout is silent).
        conn.busy_handler(Some(busy)).map_err(broken)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(broken)?;
        if mode != "wal" {
            // A read-only directory cannot hold the WAL files.
            return Err(OpenError::Unusable(format!(
                "cannot be opened in WAL mode (got {mode})"
            )));
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;")
            .map_err(broken)?;
        // Closing the last connection would checkpoint the WAL into the
        // database, with its fsyncs, at the end of every run. SQLite's
        // automatic checkpoint (every 1,000 pages) still folds the WAL in;
        // an unfolded WAL is read by the next open like the database itself.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(broken)?;
        // Checking the version and creating the schema is one write
        // transaction, so a concurrent first run never sees tables without
        // their version row (and never takes a live database for a broken one).
        conn.execute_batch("BEGIN IMMEDIATE").map_err(broken)?;
        let checked = Self::check_schema(&conn);
        match checked {
            Ok(()) => conn.execute_batch("COMMIT").map_err(broken)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        Self::probe(&conn)?;
        // A query of an earlier run met damage the probe does not reach.
        let mark = suspect_mark(path);
        if mark.exists() {
            let found = quick_check(&conn);
            let _ = std::fs::remove_file(&mark);
            if !found.is_empty() {
                return Err(OpenError::Broken(format!("is damaged{found}")));
            }
        }
        Ok(conn)
    }

    /// Cheap integrity probe: reads the first row of every table and every
    /// index, which touches each b-tree's root page (where random bytes over
    /// one table show). On an error, `PRAGMA quick_check` says what is wrong.
    fn probe(conn: &Connection) -> Result<(), OpenError> {
        let trees: Vec<(String, String, String)> = conn
            .prepare(
                "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')",
            )
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| classify(e, "is damaged"))?;
        for (kind, name, table) in &trees {
            // Without a hint SQLite reads the smallest covering index instead.
            let sql = match kind.as_str() {
                "table" if name.starts_with("sqlite_") => continue,
                "table" => format!("SELECT * FROM \"{name}\" NOT INDEXED LIMIT 1"),
                _ => format!("SELECT 1 FROM \"{table}\" INDEXED BY \"{name}\" LIMIT 1"),
            };
            let first = conn
                .prepare(&sql)
                .and_then(|mut st| st.query([])?.next().map(|_| ()));
            if let Err(e) = first {
                return Err(match classify(e, "") {
                    OpenError::Broken(why) => OpenError::Broken(format!(
                        "is damaged: {kind} {name}{why}{}",
                        quick_check(conn)
                    )),
                    other => other,
                });
            }
        }
        Ok(())
    }

    /// `--result-cache clear` on any state of `.rpytest/`: empties the
    /// tables, or when they cannot be written (damaged beyond what opening
    /// detected) moves the file aside and starts an empty database.
    pub fn clear_all(&mut self) -> Result<(), String> {
        let Some(path) = self.path.clone() else {
            return Err("the cache database could not be opened (see the warning above)".into());
        };
        let Err(e) = self.clear() else {
            return Ok(());
        };
        if matches!(classify(e, ""), OpenError::Busy(_)) {
            return Err(format!(
                "{} is locked by another process; try again",
                path.display()
            ));
        }
        self.conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        move_aside(dir);
        let conn = Self::open_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.conn = conn;
        Ok(())
    }

    fn check_schema(conn: &Connection) -> Result<(), OpenError> {
        let broken = |e: rusqlite::Error| classify(e, "is not a usable database");
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key='schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .or_else(|e| match e {
                rusqlite::Error::SqliteFailure(_, Some(ref m)) if m.contains("no such table") => {
                    Ok(None)
                }
                other => Err(other),
            })
            .map_err(broken)?;
        match version {
            Some(v) if v == SCHEMA_VERSION.to_string() => Ok(()),
            Some(v) => Err(match v.parse::<i64>() {
                Ok(n) if n < SCHEMA_VERSION => OpenError::Older(v),
                Ok(_) => OpenError::Broken(format!(
                    "was written by a newer rpytest (schema {v}, this one reads {SCHEMA_VERSION})"
                )),
                Err(_) => OpenError::Broken(format!("has schema version {v:?}")),
            }),
            None => {
                let tables: i64 = conn
                    .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                    .map_err(broken)?;
                if tables != 0 {
                    return Err(OpenError::Broken("has no rpytest schema version".into()));
                }
                conn.execute_batch(SCHEMA).map_err(broken)?;
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )
                .map_err(broken)?;
                Ok(())
            }
        }
    }
}

/// The WAL's size past which the last run to close folds it into the
/// database and empties it (below SQLite's automatic checkpoint at 1,000
/// pages, ~4 MB: see `Drop for Store`).
const WAL_FOLD_BYTES: u64 = 2 << 20;

impl Drop for Store {
    /// Closing does not checkpoint (no fsyncs at the end of every run), so
    /// the WAL grows by each run's writes (~25 KB for a one-test project).
    /// Left alone it would reach SQLite's automatic checkpoint, and since a
    /// new process rebuilds the WAL's index from the file and with it
    /// forgets what was already folded, every run from then on would
    /// checkpoint the whole log again, with its fsyncs. So once the WAL
    /// passes `WAL_FOLD_BYTES` the run folds it in and truncates it
    /// (`wal_checkpoint(TRUNCATE)`: a few fsyncs once every ~80 such runs);
    /// when another process is reading or writing it is left for a later
    /// run (no waiting at exit). A kill in the middle loses nothing: the
    /// WAL is only truncated once the database holds all of it.
    fn drop(&mut self) {
        let Some(path) = &self.path else { return };
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let big = std::fs::metadata(&wal).is_ok_and(|m| m.len() >= WAL_FOLD_BYTES);
        if big && self.conn.busy_timeout(Duration::ZERO).is_ok() {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

/// `PRAGMA quick_check`'s first finding, as a suffix for a message.
fn quick_check(conn: &Connection) -> String {
    match conn.query_row("PRAGMA quick_check(1)", [], |r| r.get::<_, String>(0)) {
        Ok(v) if v == "ok" => String::new(),
        Ok(v) => format!(" (quick_check: {v})"),
        Err(e) => format!(" (quick_check: {e})"),
    }
}

/// Moves `cache.db` and its WAL files in `dir` aside; where it went.
fn move_aside(dir: &Path) -> Option<std::path::PathBuf> {
    let stamp = now() as u64;
    let aside = dir.join(format!("cache.db.broken-{stamp}"));
    let moved = std::fs::rename(dir.join("cache.db"), &aside).is_ok();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::rename(
            dir.join(format!("cache.db{ext}")),
            dir.join(format!("cache.db.broken-{stamp}{ext}")),
        );
    }
    moved.then_some(aside)
}

/// The mark a query that met damage leaves beside the database.
pub(super) fn suspect_mark(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".suspect");
    std::path::PathBuf::from(name)
}
