//! Whether rpytest's own output is coloured: decided as pytest's terminal
//! writer decides it, so rpytest's lines match the session's.

use std::io::IsTerminal;

/// `--color` (the last one pytest parsed: command line, addopts or
/// PYTEST_ADDOPTS): `yes` and `no` decide; `auto` (or none) looks at the
/// environment and stdout, as pytest's `should_do_markup` does.
pub fn colour(flag: Option<&str>) -> bool {
    match flag {
        Some("yes") => true,
        Some("no") => false,
        _ => auto(|k| std::env::var(k).ok(), std::io::stdout().is_terminal()),
    }
}

/// PY_COLORS=1/0 first, then a non-empty NO_COLOR, then a non-empty
/// FORCE_COLOR, then a terminal that is not `TERM=dumb`.
fn auto(env: impl Fn(&str) -> Option<String>, terminal: bool) -> bool {
    match env("PY_COLORS").as_deref() {
        Some("1") => return true,
        Some("0") => return false,
        _ => {}
    }
    if env("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if env("FORCE_COLOR").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    terminal && env("TERM").as_deref() != Some("dumb")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_flag_decides_before_the_environment() {
        assert!(colour(Some("yes")));
        assert!(!colour(Some("no")));
    }

    #[test]
    fn auto_follows_pytests_order() {
        assert!(!auto(env(&[]), false));
        assert!(auto(env(&[]), true));
        assert!(!auto(env(&[("TERM", "dumb")]), true));
        assert!(auto(env(&[("PY_COLORS", "1"), ("NO_COLOR", "1")]), false));
        assert!(!auto(
            env(&[("PY_COLORS", "0"), ("FORCE_COLOR", "1")]),
            true
        ));
        assert!(!auto(env(&[("NO_COLOR", "1"), ("FORCE_COLOR", "1")]), true));
        assert!(auto(env(&[("NO_COLOR", ""), ("FORCE_COLOR", "1")]), false));
        assert!(!auto(env(&[("FORCE_COLOR", "")]), false));
    }
}
