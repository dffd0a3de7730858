//! A test's outcome as rpytest stores and replays it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// pytest's outcome of one node (or of a file's collection), with the
/// words rpytest's plugin reports: `xfailed`/`xpassed` for xfail marks,
/// `error` for a setup or teardown that failed. Anything else a plugin
/// reports (pytest-rerunfailures' `rerun`) is kept as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
    Xfailed,
    Xpassed,
    Error,
    Other(String),
}

impl Outcome {
    /// Whether a stored result with this outcome may answer a later run:
    /// only outcomes that say nothing went wrong are reused.
    pub fn reusable(&self) -> bool {
        matches!(self, Outcome::Passed | Outcome::Skipped | Outcome::Xfailed)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Xfailed => "xfailed",
            Outcome::Xpassed => "xpassed",
            Outcome::Error => "error",
            Outcome::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> Outcome {
        match s {
            "passed" => Outcome::Passed,
            "failed" => Outcome::Failed,
            "skipped" => Outcome::Skipped,
            "xfailed" => Outcome::Xfailed,
            "xpassed" => Outcome::Xpassed,
            "error" => Outcome::Error,
            other => Outcome::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Outcome {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Outcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&str> for Outcome {
    fn from(s: &str) -> Outcome {
        Outcome::parse(s)
    }
}

impl From<String> for Outcome {
    fn from(s: String) -> Outcome {
        Outcome::parse(&s)
    }
}

impl rusqlite::types::ToSql for Outcome {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

impl rusqlite::types::FromSql for Outcome {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        v.as_str().map(Outcome::parse)
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Outcome::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_ones_are_kept() {
        for w in [
            "passed", "failed", "skipped", "xfailed", "xpassed", "error", "rerun",
        ] {
            let o = Outcome::parse(w);
            assert_eq!(o.as_str(), w);
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{w}\""));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o);
        }
        assert_eq!(Outcome::parse("rerun"), Outcome::Other("rerun".into()));
    }

    #[test]
    fn only_outcomes_that_say_nothing_went_wrong_are_reusable() {
        let reusable: Vec<&str> = [
            "passed", "failed", "skipped", "xfailed", "xpassed", "error", "rerun",
        ]
        .into_iter()
        .filter(|w| Outcome::parse(w).reusable())
        .collect();
        assert_eq!(reusable, ["passed", "skipped", "xfailed"]);
    }
}
