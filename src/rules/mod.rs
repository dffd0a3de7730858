//! Rules: extra inputs of a test's key, declared as data.
//!
//! The built-in default (`rules/default.toml`, embedded in the binary) names
//! the environment variables and configuration files that enter every key.
//! Users add rules in `rpytest.toml` or `[tool.rpytest]`: a rule selects test
//! paths with globs and adds input globs, environment variables, or turns the
//! cache off for them (`cache = false`).

use serde::Deserialize;

const DEFAULT: &str = include_str!("../../rules/default.toml");

/// One rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub name: String,
    /// Test paths the rule governs (rootdir-relative globs); empty = every test.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Files hashed into the key (rootdir-relative globs).
    #[serde(default, alias = "inputs")]
    pub files: Vec<String>,
    /// Environment variables whose values enter the key.
    #[serde(default)]
    pub env: Vec<String>,
    /// Recorded reads under these globs are not inputs (tool caches).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `false`: tests under this rule always run.
    #[serde(default = "yes")]
    pub cache: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct DefaultFile {
    rule: Rule,
}

/// Why a rule could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: invalid rule #{index}: {message}")]
pub struct RuleError {
    pub origin: String,
    pub index: usize,
    pub message: String,
}

/// The built-in default rule.
pub fn default_rule() -> Rule {
    toml::from_str::<DefaultFile>(DEFAULT)
        .expect("rules/default.toml is valid")
        .rule
}

/// The default rule followed by the user's rules from the configuration.
pub fn load(user: &[toml::Value], origin: &str) -> Result<Vec<Rule>, RuleError> {
    let mut rules = vec![default_rule()];
    for (i, v) in user.iter().enumerate() {
        let r: Rule = v
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| RuleError {
                origin: origin.to_owned(),
                index: i + 1,
                message: e.message().to_owned(),
            })?;
        for g in r.paths.iter().chain(&r.files) {
            glob::Pattern::new(g).map_err(|e| RuleError {
                origin: origin.to_owned(),
                index: i + 1,
                message: format!("bad glob {g:?}: {e}"),
            })?;
        }
        rules.push(r);
    }
    Ok(rules)
}

impl Rule {
    /// Whether a recorded read of `rel` is excluded from keys by this rule.
    pub fn excludes(&self, rel: &str) -> bool {
        let opts = glob::MatchOptions {
            require_literal_separator: false,
            ..Default::default()
        };
        self.exclude.iter().any(|g| {
            glob::Pattern::new(g)
                .map(|p| p.matches_with(rel, opts))
                .unwrap_or(false)
        })
    }

    /// Whether this rule governs the test file `rel`.
    pub fn governs(&self, rel: &str) -> bool {
        self.paths.is_empty()
            || self.paths.iter().any(|p| {
                glob::Pattern::new(p)
                    .map(|g| g.matches(rel))
                    .unwrap_or(false)
                    || rel.starts_with(&format!("{}/", p.trim_end_matches('/')))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule_names_core_env() {
        let d = default_rule();
        assert!(d.env.iter().any(|e| e == "PYTHONHASHSEED"));
        assert!(d.cache);
        assert!(d.excludes(".hypothesis/examples/ab/cd"));
        assert!(d.excludes("pkg/__pycache__/x.pyc"));
        assert!(!d.excludes("data/input.json"));
    }

    #[test]
    fn user_rules_are_validated() {
        let v: toml::Value = toml::from_str("paths = ['tests/net/**']\ncache = false").unwrap();
        let rules = load(&[v], "rpytest.toml").unwrap();
        assert!(!rules[1].cache && rules[1].governs("tests/net/test_x.py"));
        assert!(!rules[1].governs("tests/test_y.py"));
        let bad: toml::Value = toml::from_str("pathz = ['x']").unwrap();
        let err = load(&[bad], "rpytest.toml").unwrap_err().to_string();
        assert!(err.contains("rule #1"), "{err}");
    }
}
