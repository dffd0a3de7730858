//! Coverage data stored with cached results (see `python/rpytest/coverage.py`):
//! one row per test file, key and coverage-configuration signature.

use super::Store;
use rusqlite::params;
use std::collections::{BTreeMap, HashMap};

/// One test file's coverage data under a key and a coverage signature.
#[derive(Debug, Clone, PartialEq)]
pub struct CoverageRow {
    pub file: String,
    pub key: String,
    pub sig: String,
    pub data: String,
}

impl Store {
    /// The coverage data stored for each `(file, key)`: file → signature → data.
    pub fn coverage_for(
        &self,
        pairs: &[(&str, &str)],
    ) -> rusqlite::Result<HashMap<String, BTreeMap<String, String>>> {
        let mut out: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        let mut q = self
            .conn
            .prepare_cached("SELECT sig, data FROM coverage WHERE file = ?1 AND key = ?2")?;
        for (file, key) in pairs {
            let rows = q.query_map(params![file, key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (sig, data) = row?;
                out.entry(file.to_string()).or_default().insert(sig, data);
            }
        }
        Ok(out)
    }

    /// Stores coverage data, and forgets the data of keys no result is kept for.
    pub fn record_coverage(&mut self, rows: &[CoverageRow]) -> rusqlite::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let at = super::db::now();
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare(
                "INSERT OR REPLACE INTO coverage(file, key, sig, data, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in rows {
                ins.execute(params![r.file, r.key, r.sig, r.data, at])?;
            }
        }
        tx.execute(
            "DELETE FROM coverage WHERE (file, key) NOT IN (SELECT file, key FROM node_cache)
                AND (file, key) NOT IN (SELECT file, key FROM file_cache)",
            [],
        )?;
        tx.commit()
    }
}
