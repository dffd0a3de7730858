//! insta filters for rpytest's own output: what differs between machines and
//! runs (the project's temp dir, runtime sockets, interpreter paths, pids,
//! timings, versions, counts of files the machine happens to have).

use std::path::Path;

/// `text` as a regex that matches it literally.
pub fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// `(regex, replacement)` for what varies between machines and runs in
/// every snapshot of rpytest's output, the project's `root` first.
pub fn machine_filters(root: &Path) -> Vec<(String, String)> {
    vec![
        (regex_escape(&root.display().to_string()), "[ROOT]".into()),
        (
            r"/\S*/rpytest/[0-9a-f]{16}\.(sock|log)".into(),
            "[RUNTIME]/[HASH].$1".into(),
        ),
        (r"/\S*/bin/python3?(\.\d+)?".into(), "[PYTHON]".into()),
        (r"pid: \d+".into(), "pid: [PID]".into()),
        (r"\d+\.\d+s\b".into(), "[TIME]s".into()),
        (
            r"\b(rpytest|pytest) \d+\.\d+\.\d+\S*".into(),
            "$1 [VERSION]".into(),
        ),
        (r"warm modules: \d+".into(), "warm modules: [N]".into()),
        (
            r"files in the stat cache: \d+".into(),
            "files in the stat cache: [N]".into(),
        ),
        // What the session read besides the tests follows pytest's version
        // and its plugins (pytest-xdist reads options from its hooks).
        (
            r"recorded dependencies: \d+".into(),
            "recorded dependencies: [N]".into(),
        ),
    ]
}
