//! Rules: extra inputs of a test's key, declared as data.
//!
//! The built-in default (`rules/default.toml`, embedded in the binary) names
//! the environment variables and configuration files that enter every key.
//! Users add rules in `rpytest.toml` or `[tool.rpytest]`: a rule selects test
//! paths with globs and adds input globs, environment variables, extra pytest
//! arguments, a worker count, a per-test timeout, or turns the cache off for
//! them (`cache = false`). A rule can `extends` presets shipped in `rules/`
//! (also embedded): `django`, `hypothesis`, `data-files`, `hermetic-unit`.
//!
//! `hermetic = true` runs the governed tests in a sandbox that shows only
//! what is declared (`python/rpytest/sandbox.py`); their keys are made of the
//! declared inputs and the static import closure (`run/hermetic.rs`).

use serde::Deserialize;

const DEFAULT: &str = include_str!("../../rules/default.toml");

/// Presets a rule can extend, by name.
pub const PRESETS: &[(&str, &str)] = &[
    ("django", include_str!("../../rules/django.toml")),
    ("hypothesis", include_str!("../../rules/hypothesis.toml")),
    ("data-files", include_str!("../../rules/data-files.toml")),
    (
        "hermetic-unit",
        include_str!("../../rules/hermetic-unit.toml"),
    ),
];

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
    /// Presets (`rules/*.toml`) whose inputs this rule adds to its own.
    #[serde(default)]
    pub extends: Vec<String>,
    /// Extra pytest arguments for the tests under this rule (they run in a
    /// session of their own when other tests of the run do not share them).
    #[serde(default)]
    pub args: Vec<String>,
    /// Worker count for these tests when `-n` is not given (`4` or `"auto"`).
    #[serde(default)]
    pub workers: Option<toml::Value>,
    /// Seconds one test may take before it fails.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// `true`: the tests run in a sandbox that shows only the interpreter,
    /// the installed packages, first-party code and the declared `files`,
    /// with only the declared `env`, and no network.
    #[serde(default)]
    pub hermetic: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct DefaultFile {
    rule: Rule,
}

/// Why a rule could not be loaded: where, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{}: invalid rule #{index}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default(), name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default())]
pub struct RuleError {
    pub origin: String,
    pub line: Option<usize>,
    pub index: usize,
    pub name: Option<String>,
    pub message: String,
}

/// The built-in default rule.
pub fn default_rule() -> Rule {
    toml::from_str::<DefaultFile>(DEFAULT)
        .expect("rules/default.toml is valid")
        .rule
}

/// A preset by name.
pub fn preset(name: &str) -> Option<Rule> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, text)| {
        toml::from_str::<DefaultFile>(text)
            .expect("presets in rules/ are valid")
            .rule
    })
}

/// What to look for inside a rule's table to name the line of an error.
#[derive(Clone, Copy)]
enum Needle<'a> {
    /// The line that sets this key (`key = ...`).
    Key(&'a str),
    /// The first line that contains this value.
    Value(&'a str),
}

impl Needle<'_> {
    fn found_in(&self, line: &str) -> bool {
        match self {
            Needle::Value(v) => line.contains(v),
            Needle::Key(k) => {
                let t = line.trim_start();
                let t = t
                    .strip_prefix(&format!("\"{k}\""))
                    .or_else(|| t.strip_prefix(&format!("'{k}'")))
                    .or_else(|| t.strip_prefix(k));
                t.is_some_and(|rest| rest.trim_start().starts_with('='))
            }
        }
    }
}

/// The key of `rule` that does not deserialize on its own: errors about a
/// value's type name no key, and the line to show is that key's.
fn bad_key(rule: &toml::Value) -> Option<String> {
    let table = rule.as_table()?;
    table.iter().find_map(|(k, v)| {
        let mut alone = toml::Table::new();
        alone.insert(k.clone(), v.clone());
        toml::Value::Table(alone)
            .try_into::<Rule>()
            .is_err()
            .then(|| k.clone())
    })
}

/// The line (1-based) of the `index`-th rule table in `text`, or of the first
/// line inside it that matches `needle`.
fn locate(text: &str, index: usize, needle: Option<Needle>) -> Option<usize> {
    let mut seen = 0;
    let mut start = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        if t.starts_with("[[")
            && t.trim_end_matches(|c: char| c == ']' || c.is_whitespace())
                .ends_with("rules")
        {
            seen += 1;
            if seen == index {
                start = Some(i);
                break;
            }
        }
    }
    let start = start?;
    if let Some(n) = needle {
        for (i, l) in lines.iter().enumerate().skip(start + 1) {
            if l.trim_start().starts_with('[') {
                break;
            }
            if n.found_in(l) {
                return Some(i + 1);
            }
        }
    }
    Some(start + 1)
}

/// The default rule followed by the user's rules from the configuration
/// (`origin` names the file, `text` is its contents for line numbers).
pub fn load(
    user: &[toml::Value],
    origin: &str,
    text: Option<&str>,
) -> Result<Vec<Rule>, RuleError> {
    let mut rules = vec![default_rule()];
    for (i, v) in user.iter().enumerate() {
        let index = i + 1;
        let name = v.get("name").and_then(|n| n.as_str()).map(str::to_owned);
        let err = |message: String, needle: Option<Needle>| RuleError {
            origin: origin.to_owned(),
            line: text.and_then(|t| locate(t, index, needle)),
            index,
            name: name.clone(),
            message,
        };
        let mut r: Rule = v.clone().try_into().map_err(|e: toml::de::Error| {
            let msg = e.message().to_owned();
            // "unknown field `pathz`, expected ...": point at that key; a
            // wrong type ("invalid type: string, expected a sequence") names
            // none, so find the key that fails alone.
            let field = match msg.starts_with("unknown field") {
                true => msg.split('`').nth(1).map(str::to_owned),
                false => bad_key(v),
            };
            let message = match &field {
                Some(f) if !msg.contains(&format!("`{f}`")) => format!("{f}: {msg}"),
                _ => msg,
            };
            err(message, field.as_deref().map(Needle::Key))
        })?;
        for g in r.paths.iter().chain(&r.files).chain(&r.exclude) {
            glob::Pattern::new(g)
                .map_err(|e| err(format!("bad glob {g:?}: {e}"), Some(Needle::Value(g))))?;
        }
        if let Some(t) = r.timeout {
            if !(t > 0.0 && t.is_finite()) {
                return Err(err(
                    format!("timeout must be a positive number of seconds, not {t}"),
                    Some(Needle::Key("timeout")),
                ));
            }
        }
        match &r.workers {
            None | Some(toml::Value::Integer(0..)) => {}
            Some(toml::Value::String(s)) if s == "auto" || s == "logical" => {}
            Some(other) => {
                return Err(err(
                    format!("workers must be a number or \"auto\", not {other}"),
                    Some(Needle::Key("workers")),
                ))
            }
        }
        for name in r.extends.clone() {
            let Some(p) = preset(&name) else {
                let known: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                return Err(err(
                    format!(
                        "unknown preset {name:?} in extends (known: {})",
                        known.join(", ")
                    ),
                    Some(Needle::Value(name.as_str())),
                ));
            };
            r.files.extend(p.files);
            r.env.extend(p.env);
            r.exclude.extend(p.exclude);
            r.cache &= p.cache;
            r.hermetic |= p.hermetic;
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

    /// The name shown to users: the rule's `name`, else its first path glob.
    pub fn label(&self) -> String {
        match (self.name.is_empty(), self.paths.first()) {
            (false, _) => self.name.clone(),
            (true, Some(p)) => p.clone(),
            (true, None) => "rules".to_owned(),
        }
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
        // Hypothesis's caches are not inputs; its example database is.
        assert!(d.excludes(".hypothesis/constants/ab12"));
        assert!(!d.excludes(".hypothesis/examples/ab/cd"));
        assert!(d.excludes("pkg/__pycache__/x.pyc"));
        assert!(!d.excludes("data/input.json"));
    }

    #[test]
    fn user_rules_are_validated() {
        let v: toml::Value = toml::from_str("paths = ['tests/net/**']\ncache = false").unwrap();
        let rules = load(&[v], "rpytest.toml", None).unwrap();
        assert!(!rules[1].cache && rules[1].governs("tests/net/test_x.py"));
        assert!(!rules[1].governs("tests/test_y.py"));
        let bad: toml::Value = toml::from_str("pathz = ['x']").unwrap();
        let err = load(&[bad], "rpytest.toml", None).unwrap_err().to_string();
        assert!(err.contains("rule #1"), "{err}");
    }

    #[test]
    fn a_field_error_names_the_field_line_not_the_header() {
        let line_of = |text: &str| {
            let table: toml::Table = toml::from_str(text).unwrap();
            let user: Vec<toml::Value> = table["rules"].as_array().unwrap().clone();
            let err = load(&user, "rpytest.toml", Some(text)).unwrap_err();
            (err.line, err.to_string())
        };
        // A wrong type names no field in toml's message.
        let (line, msg) = line_of("[[rules]]\nname = 'timeout-tests'\npaths = 'tests/*'\n");
        assert_eq!(line, Some(3), "{msg}");
        assert!(msg.contains("paths"), "{msg}");
        // A quoted key; the rule's name mentions the field first.
        let (line, msg) = line_of(
            "[[rules]]\nname = 'ok'\n\n[[rules]]\nname = 'workers timeout'\n\"timeout\" = 'soon'\nworkers = 2\n",
        );
        assert_eq!(line, Some(6), "{msg}");
        let (line, msg) = line_of("[[rules]]\nname = 'workers'\ncache = false\nworkers = -3\n");
        assert_eq!(line, Some(4), "{msg}");
    }

    #[test]
    fn presets_extend_and_errors_point_at_the_line() {
        let text = "[[rules]]\nname = 'db'\npaths = ['tests/db/**']\nextends = ['django', 'hypothesis']\n\n[[rules]]\nname = 'x'\nextends = ['djangoo']\n";
        let table: toml::Table = toml::from_str(text).unwrap();
        let user: Vec<toml::Value> = table["rules"].as_array().unwrap().clone();
        let err = load(&user, "rpytest.toml", Some(text)).unwrap_err();
        assert_eq!(err.line, Some(8), "{err}");
        assert!(
            err.to_string()
                .starts_with("rpytest.toml:8: invalid rule #2 (x): unknown preset"),
            "{err}"
        );
        let rules = load(&user[..1], "rpytest.toml", Some(text)).unwrap();
        assert!(rules[1].env.iter().any(|e| e == "DJANGO_SETTINGS_MODULE"));
        assert!(rules[1].excludes("sub/.hypothesis/unicode_data/15.0.0/charmap.json.gz"));
        assert!(!rules[1].excludes(".hypothesis/examples/x"));
        let bad_glob: toml::Value = toml::from_str("files = ['a[']").unwrap();
        assert!(load(&[bad_glob], "r", None)
            .unwrap_err()
            .message
            .contains("bad glob"));
        let bad_timeout: toml::Value = toml::from_str("timeout = -1.0").unwrap();
        assert!(load(&[bad_timeout], "r", None).is_err());
    }

    #[test]
    fn the_hermetic_unit_preset_makes_a_rule_hermetic() {
        let v: toml::Value =
            toml::from_str("name = 'core'\npaths = ['core/**']\nextends = ['hermetic-unit']")
                .unwrap();
        let rules = load(&[v], "rpytest.toml", None).unwrap();
        assert!(rules[1].hermetic && rules[1].files.is_empty());
        let plain: toml::Value = toml::from_str("paths = ['x/**']").unwrap();
        assert!(!load(&[plain], "r", None).unwrap()[1].hermetic);
    }
}
