//! Reading pytest's configuration files the way pytest does.
//!
//! pytest looks, in each candidate directory, for `pytest.toml`/`.pytest.toml`
//! (pytest 9), `pytest.ini`, `.pytest.ini`, `pyproject.toml`, `tox.ini` and
//! `setup.cfg`; each counts only when it holds a pytest section (`pytest.ini`
//! always counts). Values are kept as pytest would read them: ini strings are
//! split later by the option's type, TOML lists stay lists.

use std::collections::BTreeMap;
use std::path::Path;

/// A configuration value: ini files give strings, TOML may give lists.
#[derive(Debug, Clone, PartialEq)]
pub enum IniValue {
    Str(String),
    List(Vec<String>),
}

impl IniValue {
    /// The value as pytest's "args" type: shell-split strings, lists as is.
    pub fn as_args(&self) -> Vec<String> {
        match self {
            IniValue::Str(s) => shell_split(s),
            IniValue::List(v) => v.clone(),
        }
    }

    /// The value as pytest's "linelist"/"paths" type: whitespace-separated words.
    pub fn as_words(&self) -> Vec<String> {
        match self {
            IniValue::Str(s) => s.split_whitespace().map(str::to_owned).collect(),
            IniValue::List(v) => v.clone(),
        }
    }
}

/// The pytest section of one configuration file.
pub type IniConfig = BTreeMap<String, IniValue>;

/// Which file names pytest tries, in order, in each directory.
pub const CONFIG_NAMES: &[&str] = &[
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
];

/// Why a configuration file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IniError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML: {message}")]
    Toml { path: String, message: String },
    #[error("{path}:{line}: unexpected line in ini file: {text}")]
    Ini {
        path: String,
        line: usize,
        text: String,
    },
}

/// Loads the pytest section of `path`; `Ok(None)` when the file has none.
pub fn load_config(path: &Path) -> Result<Option<IniConfig>, IniError> {
    parse_config(path, &read_config_text(path)?)
}

/// The text of a configuration file (read once per run: the caller keeps it).
pub fn read_config_text(path: &Path) -> Result<String, IniError> {
    std::fs::read_to_string(path).map_err(|source| IniError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The pytest section of `text`, the contents of `path`; `Ok(None)` when it has none.
pub fn parse_config(path: &Path, text: &str) -> Result<Option<IniConfig>, IniError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name {
        "pytest.toml" | ".pytest.toml" => {
            let doc = parse_toml(path, text)?;
            // pytest 9: the whole file is `[pytest]`.
            Ok(Some(
                doc.get("pytest")
                    .and_then(|v| v.as_table())
                    .map(table_to_config)
                    .unwrap_or_default(),
            ))
        }
        "pyproject.toml" => {
            let doc = parse_toml(path, text)?;
            let tool = doc.get("tool").and_then(|t| t.get("pytest"));
            let Some(tool) = tool else { return Ok(None) };
            if let Some(ini) = tool.get("ini_options").and_then(|v| v.as_table()) {
                return Ok(Some(table_to_config(ini)));
            }
            // pytest 9's native `[tool.pytest]` table.
            match tool.as_table() {
                Some(t) if !t.is_empty() => Ok(Some(table_to_config(t))),
                _ => Ok(None),
            }
        }
        "setup.cfg" => Ok(parse_ini(path, text)?.remove("tool:pytest")),
        "pytest.ini" | ".pytest.ini" => Ok(Some(
            parse_ini(path, text)?.remove("pytest").unwrap_or_default(),
        )),
        _ => Ok(parse_ini(path, text)?.remove("pytest")),
    }
}

/// What of a configuration file enters every key: for `pyproject.toml`,
/// only the tables pytest and rpytest read (`[tool.pytest]`, with pytest 8's
/// `ini_options` and pytest 9's native keys, and `[tool.rpytest]`), so an
/// edit of `[tool.black]` or `[project]` re-runs nothing. `None`: the whole
/// file counts (other formats, and a file that does not parse, which pytest
/// reports itself). `text` is the file's contents, as the invocation read it.
pub fn keyed_sections(path: &Path, text: &str) -> Option<String> {
    if path.file_name().and_then(|n| n.to_str()) != Some("pyproject.toml") {
        return None;
    }
    let doc = text.parse::<toml::Table>().ok()?;
    let tool = doc.get("tool");
    let mut out = String::new();
    for name in ["pytest", "rpytest"] {
        out.push_str(name);
        out.push('=');
        match tool.and_then(|t| t.get(name)) {
            Some(v) => out.push_str(&v.to_string()),
            None => out.push_str("(absent)"),
        }
        out.push('\n');
    }
    Some(out)
}

fn parse_toml(path: &Path, text: &str) -> Result<toml::Table, IniError> {
    text.parse::<toml::Table>().map_err(|e| IniError::Toml {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn table_to_config(t: &toml::Table) -> IniConfig {
    t.iter()
        .map(|(k, v)| {
            let value = match v {
                toml::Value::String(s) => IniValue::Str(s.clone()),
                toml::Value::Array(a) => IniValue::List(
                    a.iter()
                        .map(|x| match x {
                            toml::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect(),
                ),
                toml::Value::Boolean(b) => IniValue::Str(if *b { "true" } else { "false" }.into()),
                other => IniValue::Str(other.to_string()),
            };
            (k.clone(), value)
        })
        .collect()
}

/// A small ini reader with iniconfig's rules: `[section]`, `key = value` or
/// `key: value`, indented continuation lines, `#`/`;` comment lines.
fn parse_ini(path: &Path, text: &str) -> Result<BTreeMap<String, IniConfig>, IniError> {
    let mut sections: BTreeMap<String, IniConfig> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut last_key: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let stripped = line.trim_start();
        if stripped.is_empty() || stripped.starts_with('#') || stripped.starts_with(';') {
            continue;
        }
        let indented = line.len() != stripped.len();
        if indented {
            if let (Some(sec), Some(key)) = (&current, &last_key) {
                if let Some(IniValue::Str(v)) = sections.get_mut(sec).and_then(|s| s.get_mut(key)) {
                    if !v.is_empty() {
                        v.push('\n');
                    }
                    v.push_str(stripped);
                    continue;
                }
            }
        }
        if stripped.starts_with('[') {
            if let Some(end) = stripped.find(']') {
                let name = stripped[1..end].trim().to_owned();
                sections.entry(name.clone()).or_default();
                current = Some(name);
                last_key = None;
                continue;
            }
        }
        let split = stripped.find(['=', ':']);
        match (split, &current) {
            (Some(pos), Some(sec)) => {
                let key = stripped[..pos].trim().to_owned();
                let value = stripped[pos + 1..].trim().to_owned();
                sections
                    .get_mut(sec)
                    .expect("section exists")
                    .insert(key.clone(), IniValue::Str(value));
                last_key = Some(key);
            }
            (None, Some(_)) | (_, None) => {
                return Err(IniError::Ini {
                    path: path.display().to_string(),
                    line: i + 1,
                    text: raw.to_owned(),
                })
            }
        }
    }
    Ok(sections)
}

/// Splits a string like POSIX `shlex.split` does (quotes, backslashes).
pub fn shell_split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.peek() {
                            Some('"') | Some('\\') | Some('$') | Some('`') => {
                                cur.push(chars.next().expect("peeked"))
                            }
                            _ => cur.push('\\'),
                        },
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    if n != '\n' {
                        cur.push(n);
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_split_handles_quotes() {
        assert_eq!(
            shell_split(r#"-m 'not stress' -k "a b" x\ y"#),
            vec!["-m", "not stress", "-k", "a b", "x y"]
        );
        assert_eq!(shell_split("  "), Vec::<String>::new());
        assert_eq!(shell_split("''"), vec![""]);
    }

    #[test]
    fn reads_each_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("tox.ini"), "[tox]\nx=1\n").unwrap();
        assert_eq!(load_config(&p.join("tox.ini")).unwrap(), None);
        std::fs::write(
            p.join("setup.cfg"),
            "[tool:pytest]\naddopts = -q\ntestpaths =\n    a\n    b\n",
        )
        .unwrap();
        let c = load_config(&p.join("setup.cfg")).unwrap().unwrap();
        assert_eq!(c["testpaths"].as_words(), vec!["a", "b"]);
        std::fs::write(p.join("pytest.ini"), "# nothing\n").unwrap();
        assert_eq!(
            load_config(&p.join("pytest.ini")).unwrap(),
            Some(IniConfig::new())
        );
        std::fs::write(
            p.join("pyproject.toml"),
            "[tool.pytest.ini_options]\naddopts = \"-ra\"\ntestpaths = [\"tests\"]\n",
        )
        .unwrap();
        let c = load_config(&p.join("pyproject.toml")).unwrap().unwrap();
        assert_eq!(c["testpaths"], IniValue::List(vec!["tests".into()]));
        std::fs::write(p.join("pyproject.toml"), "[project]\nname='x'\n").unwrap();
        assert_eq!(load_config(&p.join("pyproject.toml")).unwrap(), None);
    }

    #[test]
    fn pyproject_keys_only_the_tables_pytest_and_rpytest_read() {
        let p = Path::new("/project/pyproject.toml");
        let base = "[project]\nname = 'x'\n[tool.pytest.ini_options]\naddopts = '-q'\n[tool.black]\nline-length = 88\n";
        let k = keyed_sections(p, base).unwrap();
        assert_eq!(
            keyed_sections(p, &base.replace("88", "100").replace("'x'", "'y'")).unwrap(),
            k,
            "black and project are not keyed"
        );
        assert_ne!(keyed_sections(p, &base.replace("-q", "-v")).unwrap(), k);
        let with = |t: &str| format!("{base}{t}");
        assert_ne!(
            keyed_sections(p, &with("[tool.rpytest]\ndaemon = false\n")).unwrap(),
            k
        );
        assert_ne!(
            keyed_sections(p, &with("[tool.pytest]\nminversion = '9'\n")).unwrap(),
            k
        );
        assert_eq!(keyed_sections(p, "not toml ["), None);
        assert_eq!(keyed_sections(Path::new("/project/tox.ini"), base), None);
    }

    #[test]
    fn bad_ini_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tox.ini");
        std::fs::write(&f, "[pytest]\naddopts = -q\nnot a pair\n").unwrap();
        let err = load_config(&f).unwrap_err().to_string();
        assert!(err.contains("tox.ini:3"), "{err}");
    }
}
