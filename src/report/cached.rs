//! The output of a run answered from the cache without Python, in pytest's
//! layout: `-v` lines (`path::test CACHED  [ 50%]`, as the plugin's replay
//! prints them), the warnings summary of the cached tests and the count
//! line. Pure text here; `report::fully_cached` prints it.

/// One cached node as the terminal shows it.
pub struct Line<'a> {
    /// The node ID relative to the invocation directory (pytest's
    /// `cwd_relative_nodeid`).
    pub shown: String,
    /// `CACHED`, `SKIPPED`, `XFAIL`.
    pub word: &'static str,
    /// The skip or xfail reason, when there is one.
    pub reason: Option<&'a str>,
    /// Green (passed) or yellow (skipped, xfailed) under `--color`.
    pub green: bool,
}

/// One stored warning: where it was raised (the node ID) and pytest's
/// formatted message (`warning_record_to_str`).
pub struct Warning {
    pub nodeid: String,
    pub text: String,
}

const PROGRESS_WIDTH: usize = " [100%]".len();

fn width_of(s: &str) -> usize {
    s.chars().count()
}

/// pytest's `_format_trimmed(" ({})", reason, available)`: the first line
/// of the reason, ellipsized to fit; None when not even "..." fits.
fn trimmed_reason(reason: &str, available: isize) -> Option<String> {
    let first = reason.split('\n').next().unwrap_or("");
    let format_width = 3; // " (" and ")"
    if format_width + 3 > available {
        return None;
    }
    if format_width + width_of(first) as isize > available {
        let keep = (available - 3 - format_width).max(0) as usize;
        let cut: String = first.chars().take(keep).collect();
        return Some(format!(" ({cut}...)"));
    }
    Some(format!(" ({first})"))
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color && !text.is_empty() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// The `-v` lines, with pytest's progress column (`[ NN%]` filling the
/// terminal `width`). `warned[i]` says whether node `i` raised warnings
/// (pytest's progress turns yellow after one).
pub fn verbose_lines(
    lines: &[Line],
    warned: &[bool],
    width: usize,
    verbosity: i32,
    color: bool,
) -> Vec<String> {
    let total = lines.len().max(1);
    let mut out = Vec::with_capacity(lines.len());
    let mut passed_seen = false;
    let mut warnings_seen = false;
    for (i, l) in lines.iter().enumerate() {
        let mut plain = format!("{} {}", l.shown, l.word);
        let mut text = format!(
            "{} {}",
            l.shown,
            paint(l.word, if l.green { "32" } else { "33" }, color)
        );
        if let Some(reason) = l.reason {
            let formatted = if verbosity < 2 {
                let available =
                    width as isize - width_of(&plain) as isize - PROGRESS_WIDTH as isize - 1;
                trimmed_reason(reason, available)
            } else {
                Some(format!(" ({reason})"))
            };
            if let (false, Some(f)) = (reason.is_empty(), formatted) {
                plain.push_str(&f);
                text.push_str(&f);
            }
        }
        passed_seen |= l.green;
        let progress = format!(" [{:3}%]", (i + 1) * 100 / total);
        let fill = (width as isize - width_of(&plain) as isize - 1).max(0) as usize;
        let padded = format!("{progress:>fill$}");
        // pytest's main colour: yellow once a warning was recorded (after
        // the node's own line), green while anything passed or more follow.
        let last = i + 1 == lines.len();
        let code = if warnings_seen || (!passed_seen && last) {
            "33"
        } else {
            "32"
        };
        text.push_str(&paint(&padded, code, color));
        warnings_seen |= warned.get(i).copied().unwrap_or(false);
        out.push(text);
    }
    out
}

/// pytest's `write_sep("=", title)` at `width`.
pub fn sep(title: &str, width: usize) -> String {
    let inner = format!(" {title} ");
    let fill = width.saturating_sub(width_of(&inner));
    let left = fill / 2;
    format!("{}{}{}", "=".repeat(left), inner, "=".repeat(fill - left))
}

/// pytest's warnings summary (without its closing count): grouped by
/// message in first-seen order, each group under the node IDs that raised
/// it (per file counts from ten locations on).
pub fn warnings_summary(warnings: &[Warning], width: usize) -> Vec<String> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for w in warnings {
        match groups.iter_mut().find(|(m, _)| *m == w.text) {
            Some((_, nodes)) => nodes.push(&w.nodeid),
            None => groups.push((&w.text, vec![&w.nodeid])),
        }
    }
    let mut out = vec![sep("warnings summary", width)];
    for (message, nodes) in groups {
        if nodes.len() < 10 {
            out.extend(nodes.iter().map(|n| n.to_string()));
        } else {
            let mut counts: Vec<(&str, usize)> = Vec::new();
            for n in &nodes {
                let file = n.split("::").next().unwrap_or(n);
                match counts.iter_mut().find(|(f, _)| *f == file) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((file, 1)),
                }
            }
            out.extend(
                counts
                    .iter()
                    .map(|(f, c)| format!("{f}: {c} warning{}", if *c > 1 { "s" } else { "" })),
            );
        }
        let indented: Vec<String> = message.lines().map(|l| format!("  {l}")).collect();
        out.push(indented.join("\n").trim_end().to_owned());
        out.push(String::new());
    }
    out.push("-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_lines_fill_the_width_like_pytest() {
        let lines = [
            Line {
                shown: "tests/test_b.py::test_fx".into(),
                word: "CACHED",
                reason: None,
                green: true,
            },
            Line {
                shown: "tests/test_b.py::test_skip".into(),
                word: "SKIPPED",
                reason: Some("nope"),
                green: false,
            },
        ];
        let out = verbose_lines(&lines, &[false, false], 80, 1, false);
        assert_eq!(
            out[0],
            "tests/test_b.py::test_fx CACHED                                          [ 50%]"
        );
        assert_eq!(
            out[1],
            "tests/test_b.py::test_skip SKIPPED (nope)                                [100%]"
        );
        assert_eq!(out[0].len(), 79);
    }

    #[test]
    fn long_reasons_are_ellipsized() {
        let long = "x".repeat(200);
        let lines = [Line {
            shown: "t.py::test".into(),
            word: "SKIPPED",
            reason: Some(&long),
            green: false,
        }];
        let out = verbose_lines(&lines, &[false], 80, 1, false);
        assert!(out[0].contains("...) [100%]"), "{}", out[0]);
        assert_eq!(out[0].chars().count(), 79);
    }

    #[test]
    fn warnings_group_by_message() {
        let w = |n: &str, t: &str| Warning {
            nodeid: n.into(),
            text: t.into(),
        };
        let out = warnings_summary(
            &[
                w("a.py::t", "/r/a.py:1: UserWarning: x\n  warn()\n"),
                w("a.py::u", "/r/a.py:1: UserWarning: x\n  warn()\n"),
            ],
            80,
        );
        assert_eq!(out[1], "a.py::t");
        assert_eq!(out[2], "a.py::u");
        assert_eq!(out[3], "  /r/a.py:1: UserWarning: x\n    warn()");
    }
}
