//! Opening `.rpytest/cache.db`: the schema, and what happens when the file
//! is locked, broken or unwritable.
//!
//! WAL mode and a busy timeout let concurrent runs read and write safely. A
//! database that cannot be read, or that carries another schema version, is
//! moved aside and rebuilt — never trusted. When `.rpytest/` cannot be
//! written, the run goes on with an in-memory database and a warning.

use super::db::{now, Store, StoreWarning};
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::time::Duration;

/// Bumped on any change to the tables below.
pub const SCHEMA_VERSION: i64 = 3;

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
    PRIMARY KEY (file, key, nodeid));
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
        let mut opened = Self::open_file(&path);
        for _ in 0..50 {
            match &opened {
                Err(OpenError::Busy(_)) => {
                    std::thread::sleep(Duration::from_millis(100));
                    opened = Self::open_file(&path);
                }
                _ => break,
            }
        }
        match opened {
            Ok(conn) => Store {
                conn,
                path: Some(path),
                warnings,
            },
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
                let aside = dir.join(format!("cache.db.broken-{}", now() as u64));
                let moved = std::fs::rename(&path, &aside).is_ok();
                for ext in ["-wal", "-shm"] {
                    let _ = std::fs::rename(
                        dir.join(format!("cache.db{ext}")),
                        dir.join(format!("cache.db.broken-{}{ext}", now() as u64)),
                    );
                }
                warnings.push(StoreWarning(format!(
                    "{} {reason}; {}",
                    path.display(),
                    if moved {
                        format!("moved it to {} and started a new cache", aside.display())
                    } else {
                        "starting a new cache".to_owned()
                    }
                )));
                match Self::open_file(&path) {
                    Ok(conn) => Store {
                        conn,
                        path: Some(path),
                        warnings,
                    },
                    Err(e) => {
                        warnings.push(StoreWarning(format!(
                            "cannot use {}: {e}; results of this run will not be cached",
                            path.display()
                        )));
                        Store::memory(warnings)
                    }
                }
            }
        }
    }

    fn memory(warnings: Vec<StoreWarning>) -> Store {
        let conn = Connection::open_in_memory().expect("in-memory SQLite");
        conn.execute_batch(SCHEMA).expect("schema in memory");
        Store {
            conn,
            path: None,
            warnings,
        }
    }

    fn open_file(path: &Path) -> Result<Connection, OpenError> {
        let broken = |e: rusqlite::Error| classify(e, "is not a usable database");
        let conn = Connection::open(path).map_err(broken)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(broken)?;
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
        // Cheap integrity probe: touches a table's first pages.
        conn.query_row("SELECT count(*) FROM stat_cache", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| classify(e, "is damaged"))?;
        Ok(conn)
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
            Some(v) => Err(OpenError::Broken(format!(
                "has schema version {v}, this rpytest uses {SCHEMA_VERSION}"
            ))),
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
