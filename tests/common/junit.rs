//! Per-test outcomes from the JUnit XML that pytest's `--junitxml` writes
//! (and rpytest's, where cached passes are plain passes).

use std::collections::BTreeMap;
use std::fmt;

/// One test's result as JUnit XML reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// No child element (also XPASS non-strict and rpytest's cached passes).
    Passed,
    Failed,
    Error,
    Skipped,
    /// `<skipped type="pytest.xfail">`.
    Xfailed,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
            Outcome::Xfailed => "xfailed",
        })
    }
}

/// `classname::name` → outcomes of every `<testcase>` with that key, in file
/// order (a test can appear twice, e.g. a failure plus a teardown error).
pub type Outcomes = BTreeMap<String, Vec<Outcome>>;

/// Reads the per-test outcomes out of a JUnit XML document as pytest's
/// `--junitxml` writes it. A deliberately small scanner, not a general XML
/// parser: pytest escapes `<` in text, so tags can be found by searching.
pub fn parse_junit(xml: &str) -> Outcomes {
    let mut outcomes = Outcomes::new();
    let mut rest = xml;
    while let Some(start) = find_tag(rest, "testcase") {
        rest = &rest[start..];
        let tag_end = rest
            .find('>')
            .expect("unterminated <testcase> tag in JUnit XML");
        let tag = &rest[..tag_end];
        let attrs = parse_attributes(&tag["<testcase".len()..]);
        let key = format!(
            "{}::{}",
            attrs.get("classname").map(String::as_str).unwrap_or(""),
            attrs.get("name").map(String::as_str).unwrap_or("")
        );
        let self_closing = tag.ends_with('/');
        rest = &rest[tag_end + 1..];
        let outcome = if self_closing {
            Outcome::Passed
        } else {
            let body_end = rest
                .find("</testcase>")
                .expect("<testcase> without </testcase> in JUnit XML");
            let body = &rest[..body_end];
            rest = &rest[body_end..];
            classify_body(body)
        };
        outcomes.entry(key).or_default().push(outcome);
    }
    outcomes
}

/// The position of the next `<name` tag (not `<name-suffix`).
fn find_tag(haystack: &str, name: &str) -> Option<usize> {
    let needle = format!("<{name}");
    let mut from = 0;
    while let Some(pos) = haystack[from..].find(&needle) {
        let at = from + pos;
        let next = haystack[at + needle.len()..].chars().next();
        if matches!(next, Some(c) if c.is_whitespace() || c == '>' || c == '/') {
            return Some(at);
        }
        from = at + needle.len();
    }
    None
}

fn classify_body(body: &str) -> Outcome {
    let first = [
        ("failure", Outcome::Failed),
        ("error", Outcome::Error),
        ("skipped", Outcome::Skipped),
    ]
    .iter()
    .filter_map(|(name, outcome)| find_tag(body, name).map(|pos| (pos, *name, *outcome)))
    .min_by_key(|(pos, _, _)| *pos);
    match first {
        None => Outcome::Passed,
        Some((pos, "skipped", _)) => {
            let tag_end = body[pos..].find('>').map_or(body.len(), |e| pos + e);
            let attrs = parse_attributes(&body[pos + "<skipped".len()..tag_end]);
            if attrs.get("type").map(String::as_str) == Some("pytest.xfail") {
                Outcome::Xfailed
            } else {
                Outcome::Skipped
            }
        }
        Some((_, _, outcome)) => outcome,
    }
}

fn parse_attributes(tag: &str) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    let mut rest = tag.trim_start();
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let Some(close) = after[1..].find(quote) else {
            break;
        };
        attrs.insert(name, unescape_xml(&after[1..1 + close]));
        rest = after[close + 2..].trim_start();
    }
    attrs
}

/// Resolves the five named entities and numeric character references.
pub fn unescape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_scanner_reads_pytest_output() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="5"><testcase classname="" name="test_broken" time="0.000"><error message="collection failure">Trace &lt;module&gt;</error></testcase><testcase classname="t" name="test_ok[a &amp; b &quot;x&quot; &#10;]" time="0.000" /><testcase classname="t" name="test_bad" time="0.1"><failure message="assert 1 == 2">E  &lt;failure&gt;</failure></testcase><testcase classname="t" name="test_skip" time="0"><skipped type="pytest.skip" message="s">t.py:3: s</skipped></testcase><testcase classname="t" name="test_xf" time="0"><skipped type="pytest.xfail" message="bug" /></testcase><testcase classname="t" name="test_bad" time="0"><error message="teardown">x</error></testcase></testsuite></testsuites>"#;
        let got = parse_junit(xml);
        let want: Outcomes = [
            ("::test_broken", vec![Outcome::Error]),
            ("t::test_ok[a & b \"x\" \n]", vec![Outcome::Passed]),
            ("t::test_bad", vec![Outcome::Failed, Outcome::Error]),
            ("t::test_skip", vec![Outcome::Skipped]),
            ("t::test_xf", vec![Outcome::Xfailed]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unescape_handles_numeric_and_unknown_entities() {
        assert_eq!(
            unescape_xml("&#x65e5;&#26412; &bogus; & end"),
            "日本 &bogus; & end"
        );
    }
}
