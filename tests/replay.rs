//! A cached run says what pytest says: warnings, captured output under
//! `-rA`, `--durations`, `-v` lines and pytest's own cache, whether a
//! session replays the cached results or the CLI answers alone. Each test
//! compares stock pytest with rpytest fresh, partly cached and fully cached,
//! with bytecode written as on users' machines.

mod common;

use common::{Pair, Run};

/// A fully cached run answered without Python prints no session header.
fn answered_alone(run: &Run) -> bool {
    !run.stdout.contains("test session starts")
}

/// Output with the project's path and timings masked.
fn normalized(run: &Run, pair: &Pair, pytest: bool) -> String {
    let root = if pytest {
        &pair.pytest.root
    } else {
        &pair.rpytest.root
    };
    let text = run.stdout.replace(&root.display().to_string(), "<root>");
    text.lines()
        .map(|l| {
            // "... in 0.12s ===", "0.02s call  path"
            let l = match l.find(" in ").filter(|_| l.contains("passed")) {
                Some(i) => format!("{} in <t>", &l[..i]),
                None => l.to_owned(),
            };
            match l.split_once("s ") {
                Some((t, rest)) if t.parse::<f64>().is_ok() => format!("<t>s {rest}"),
                _ => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of the section that starts with a `=` line containing `title`,
/// up to the next `=` line.
fn section(text: &str, title: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with('=') && l.contains(title) {
            inside = true;
            continue;
        }
        if inside && l.starts_with("==") {
            break;
        }
        if inside && !l.contains("generated xml file") {
            out.push(l.to_owned());
        }
    }
    out
}

/// The closing count line without its time.
fn counts(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| l.contains(" passed"))
        .unwrap_or("")
        .trim_matches(|c| c == '=' || c == ' ')
        .split(" in ")
        .next()
        .unwrap_or("")
        .to_owned()
}

fn pair() -> Pair {
    let mut pair = Pair::new("replay_output");
    pair.write_bytecode();
    pair
}

/// Changes one test file, so the next run runs it and replays the others.
fn touch(pair: &Pair, n: u32) {
    pair.write(
        "tests/test_touched.py",
        &format!("def test_touched():\n    assert {n}\n"),
    );
}

#[test]
fn warnings_summary_and_count_survive_the_cache() {
    let pair = pair();
    let (py, fresh) = pair.check(&[]);
    let want = section(&normalized(&py, &pair, true), "warnings summary");
    assert!(want.len() > 5, "{}", py.transcript());
    assert!(counts(&py.stdout).contains("4 warnings"), "{}", py.stdout);
    let check = |rp: &Run, how: &str| {
        assert_eq!(
            section(&normalized(rp, &pair, false), "warnings summary"),
            want,
            "{how}\n{}",
            rp.transcript()
        );
        assert_eq!(counts(&rp.stdout), counts(&py.stdout), "{how}");
    };
    check(&fresh, "fresh");
    touch(&pair, 2);
    let (_, partly) = pair.check(&[]);
    check(&partly, "partly cached (a session replays)");
    let (_, replayed) = pair.check(&[]);
    check(
        &replayed,
        "fully cached, replayed by a session (--junitxml)",
    );
    let alone = pair.rpytest.rpytest(&[]).no_junit().run();
    alone.assert_code(0);
    assert!(answered_alone(&alone), "{}", alone.transcript());
    check(&alone, "fully cached, answered without Python");
    let alone_q = pair.rpytest.rpytest(&["-q"]).no_junit().run();
    let py_q = pair.pytest.pytest(&["-q"]).run();
    assert_eq!(
        section(&normalized(&alone_q, &pair, false), "warnings summary"),
        section(&normalized(&py_q, &pair, true), "warnings summary"),
    );
}

#[test]
fn passes_section_under_ra_survives_the_cache() {
    let pair = pair();
    let (py, fresh) = pair.check(&["-rA"]);
    let want = section(&normalized(&py, &pair, true), "PASSES");
    assert!(
        want.iter().any(|l| l == "hello out") && want.iter().any(|l| l == "teardown print"),
        "{}",
        py.transcript()
    );
    let check = |rp: &Run, how: &str| {
        assert_eq!(
            section(&normalized(rp, &pair, false), "PASSES"),
            want,
            "{how}\n{}",
            rp.transcript()
        );
    };
    check(&fresh, "fresh");
    touch(&pair, 2);
    let (_, partly) = pair.check(&["-rA"]);
    check(&partly, "partly cached");
    let alone = pair.rpytest.rpytest(&["-rA"]).no_junit().run();
    alone.assert_code(0);
    assert!(
        !answered_alone(&alone),
        "-rA needs a session\n{}",
        alone.transcript()
    );
    check(&alone, "fully cached");
}

/// `(when, nodeid, cached)` of each `--durations` line.
fn durations(run: &Run) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = section(&run.stdout, "slowest durations")
        .iter()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (t, when, node) = (parts.next()?, parts.next()?, parts.next()?);
            t.strip_suffix('s')?.parse::<f64>().ok()?;
            let cached = parts.next() == Some("(cached)");
            Some((when.to_owned(), node.to_owned(), cached))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn durations_list_stored_times_marked_cached() {
    let pair = pair();
    let args = ["--durations=0", "--durations-min=0"];
    let (py, fresh) = pair.check(&args);
    let want: Vec<(String, String)> = durations(&py).into_iter().map(|(w, n, _)| (w, n)).collect();
    assert!(want.len() >= 30, "{}", py.transcript());
    assert!(
        durations(&fresh).iter().all(|d| !d.2),
        "{}",
        fresh.transcript()
    );
    touch(&pair, 2);
    let (py, partly) = pair.check(&args);
    let got = durations(&partly);
    assert_eq!(
        got.iter()
            .map(|(w, n, _)| (w.clone(), n.clone()))
            .collect::<Vec<_>>(),
        durations(&py)
            .into_iter()
            .map(|(w, n, _)| (w, n))
            .collect::<Vec<_>>(),
        "{}",
        partly.transcript()
    );
    for (when, node, cached) in &got {
        assert_eq!(
            *cached,
            !node.contains("test_touched"),
            "{when} {node}\n{}",
            partly.transcript()
        );
    }
    // The stored call time of the slow test is listed (it slept 20 ms).
    let slow = section(&partly.stdout, "slowest durations")
        .into_iter()
        .find(|l| l.contains("call") && l.contains("test_slow"))
        .unwrap_or_default();
    assert!(
        slow.starts_with("0.02s") || slow.starts_with("0.03s"),
        "{slow}"
    );
}

/// The node lines of `-v` output, from the first one to the end, timings masked.
fn body(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.contains("::")).unwrap_or(0);
    lines[start..]
        .iter()
        .filter(|l| !l.contains("generated xml file"))
        .map(|l| {
            l.split(" in ")
                .next()
                .unwrap_or("")
                .trim_end_matches('=')
                .to_owned()
        })
        .collect()
}

#[test]
fn verbose_fully_cached_run_lists_every_test_as_the_replay_does() {
    let pair = pair();
    pair.check(&["-v"]);
    let (py, replayed) = pair.check(&["-v"]);
    let collected = |r: &Run| {
        r.stdout
            .lines()
            .find(|l| l.contains("collected"))
            .map(|l| l.trim_start_matches("collecting ... ").to_owned())
    };
    assert_eq!(
        collected(&replayed),
        collected(&py),
        "{}",
        replayed.transcript()
    );
    let alone = pair.rpytest.rpytest(&["-v"]).no_junit().run();
    alone.assert_code(0);
    assert!(answered_alone(&alone), "{}", alone.transcript());
    let root = |r: &Run, p: &std::path::Path| r.stdout.replace(&p.display().to_string(), "<root>");
    let alone_body = body(&root(&alone, &pair.rpytest.root));
    assert_eq!(
        alone_body,
        body(&root(&replayed, &pair.rpytest.root)),
        "{}\n{}",
        alone.transcript(),
        replayed.transcript()
    );
    // Stock pytest's lines, with the cached status word (same width).
    let stock: Vec<String> = body(&root(&py, &pair.pytest.root));
    let ours: Vec<String> = alone_body
        .iter()
        .map(|l| l.replace(" CACHED ", " PASSED "))
        .collect();
    assert_eq!(ours, stock, "{}", alone.transcript());
    assert_eq!(
        alone.verbose_statuses().len(),
        py.verbose_statuses().len(),
        "every reported test counted"
    );
}

#[test]
fn short_summary_of_cached_skips_needs_a_session() {
    let pair = pair();
    pair.check(&["-rs"]);
    let py = pair.pytest.pytest(&["-rs"]).run();
    let alone = pair.rpytest.rpytest(&["-rs"]).no_junit().run();
    alone.assert_code(0);
    assert_eq!(
        section(&normalized(&alone, &pair, false), "short test summary"),
        section(&normalized(&py, &pair, true), "short test summary"),
        "{}",
        alone.transcript()
    );
}

fn pytest_cache(root: &std::path::Path, name: &str) -> Option<String> {
    std::fs::read_to_string(root.join(".pytest_cache/v/cache").join(name)).ok()
}

#[test]
fn pytests_own_cache_after_a_fully_cached_run_is_pytests() {
    let mut pair = pair();
    pair.check(&[]);
    pair.set_env("REPLAY_FAIL", "1");
    let (py, _) = pair.check(&[]);
    py.assert_code(1);
    pair.unset_env("REPLAY_FAIL");
    let py = pair.pytest.pytest(&[]).run();
    py.assert_code(0);
    let alone = pair.rpytest.rpytest(&[]).no_junit().run();
    alone.assert_code(0);
    assert!(answered_alone(&alone), "{}", alone.transcript());
    for name in ["lastfailed", "nodeids"] {
        assert_eq!(
            pytest_cache(&pair.rpytest.root, name),
            pytest_cache(&pair.pytest.root, name),
            "{name}"
        );
    }
    assert_eq!(
        pytest_cache(&pair.pytest.root, "lastfailed").as_deref(),
        Some("{}")
    );
    // --lf now selects what it selects under pytest: everything.
    let (py, rp) = pair.check(&["--lf", "-v"]);
    assert_eq!(
        rp.verbose_statuses().keys().collect::<Vec<_>>(),
        py.verbose_statuses().keys().collect::<Vec<_>>(),
        "{}",
        rp.transcript()
    );
}

#[test]
fn no_cacheprovider_leaves_no_pytest_cache() {
    let pair = pair();
    let args = ["-p", "no:cacheprovider"];
    pair.check(&args);
    pair.check(&args);
    let alone = pair.rpytest.rpytest(&args).no_junit().run();
    alone.assert_code(0);
    assert!(answered_alone(&alone), "{}", alone.transcript());
    assert!(!pair.pytest.root.join(".pytest_cache").exists());
    assert!(!pair.rpytest.root.join(".pytest_cache").exists());
}
/// rpytest's "collected N items" header and closing counts are pytest's.
fn assert_header_and_counts(py: &Run, rp: &Run, what: &str) {
    assert_eq!(
        collected_line(rp),
        collected_line(py),
        "{what}\n{}",
        rp.transcript()
    );
    assert_eq!(
        counts(&rp.stdout),
        counts(&py.stdout),
        "{what}\n{}",
        rp.transcript()
    );
}

/// A pair whose two copies write `.pyc` files, as on users' machines.
fn bytecode_pair(fixture: &str) -> Pair {
    let mut pair = Pair::new(fixture);
    pair.write_bytecode();
    pair
}

/// The "collected N items / M deselected" header line.
fn collected_line(run: &Run) -> String {
    run.stdout
        .lines()
        .find(|l| l.starts_with("collected "))
        .unwrap_or("")
        .to_owned()
}

/// How many results the run's closing `rpytest:` line says were cached.
fn cached_count(run: &Run) -> usize {
    run.stdout
        .lines()
        .chain(run.stderr.lines())
        .find_map(|l| {
            l.strip_prefix("rpytest: ")?
                .split(" cached")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Files of a fully cached directory are never collected, but pytest still
/// visits the directory: its conftest's `pytest_collection_modifyitems`
/// deselects and reorders the whole session's items and its
/// `pytest_collect_file` collects a file beside the cached ones.
#[test]
fn conftest_of_a_fully_cached_directory_still_applies() {
    let pair = bytecode_pair("onefile_conftest");
    let (py, fresh) = pair.check(&[]);
    assert_eq!(collected_line(&fresh), collected_line(&py));
    assert!(
        py.stdout.contains("5 passed, 2 deselected"),
        "{}",
        py.transcript()
    );
    for n in 2..4 {
        pair.write(
            "tests/test_changed.py",
            &format!(
                "def test_changed():\n    assert {n}\n\n\ndef test_changed_dropped():\n    assert 0\n"
            ),
        );
        let (py, rp) = pair.check(&[]);
        assert_header_and_counts(&py, &rp, "");
        // test_cached.py's and test_other.py's results were served from the cache.
        assert!(cached_count(&rp) >= 3, "{}", rp.transcript());
        let (py, rp) = pair.check(&["-v"]);
        assert_header_and_counts(&py, &rp, "");
    }
}

/// A cached file that `--ignore` names is neither collected nor replayed:
/// pytest's own ignore verdict comes before rpytest drops a cached file.
#[test]
fn ignored_cached_file_is_not_replayed() {
    let pair = bytecode_pair("onefile_conftest");
    pair.check(&[]);
    pair.check(&[]);
    pair.write(
        "tests/test_changed.py",
        "def test_changed():\n    assert 2\n\n\ndef test_changed_dropped():\n    assert 0\n",
    );
    for args in [
        &["--ignore=tests/cached/test_other.py"][..],
        &["--ignore-glob=*/test_oth*.py"][..],
        &["--deselect", "tests/cached/test_other.py::test_other"][..],
    ] {
        let (py, rp) = pair.check(args);
        assert!(
            !rp.outcomes.keys().any(|k| k.contains("test_other")),
            "{}",
            rp.transcript()
        );
        assert_header_and_counts(&py, &rp, &format!("{args:?}"));
    }
}

/// Directories holding nothing but cached files are not walked (tests/a,
/// tests/a/deep); a package (tests/pkg) and a directory with another file
/// (tests/b) are walked as before. Either way pytest's header count, the
/// per-node outcomes and the closing counts are stock pytest's, with and
/// without a selection.
#[test]
fn fully_cached_directories_report_what_pytest_reports() {
    let pair = bytecode_pair("onefile_dirs");
    let (py, fresh) = pair.check(&[]);
    assert_eq!(collected_line(&fresh), collected_line(&py));
    for n in 2..4 {
        pair.write(
            "tests/test_changed.py",
            &format!("def test_changed():\n    assert {n}\n"),
        );
        for args in [
            &[][..],
            &["-v"][..],
            &["-m", "not slow"][..],
            &["-k", "one"][..],
        ] {
            let (py, rp) = pair.check(args);
            assert_header_and_counts(&py, &rp, &format!("{args:?}"));
        }
        let (_, rp) = pair.check(&[]);
        assert!(cached_count(&rp) >= 15, "{}", rp.transcript());
    }
    // A file added to a cached directory is collected and runs.
    pair.write("tests/a/test_new.py", "def test_new():\n    assert 0\n");
    let (_, rp) = pair.check(&[]);
    rp.assert_code(1);
}

/// A conftest that puts its own attribute on every test report (a
/// `pytest_runtest_makereport` wrapper, as reporting plugins do) and reads
/// it back in other hooks, and prints each report's attribute, keywords and
/// `user_properties` in the terminal summary (the rootdir's name masked:
/// pytest's keywords hold it).
const REPORT_ATTRS_CONFTEST: &str = r#"
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if item.name.startswith("test_tuple"):
        rep.my_attr = ("tuple", rep.when)
    else:
        rep.my_attr = {"when": rep.when, "name": item.name, "n": [1, 2.5, None, True]}

def pytest_runtest_logreport(report):
    assert report.my_attr[1 if isinstance(report.my_attr, tuple) else "when"] == report.when

def pytest_report_teststatus(report, config):
    report.my_attr

def pytest_terminal_summary(terminalreporter, config):
    root = config.rootpath.name
    lines = set()
    for reports in terminalreporter.stats.values():
        for r in reports:
            if getattr(r, "when", None) is None:
                continue
            kw = sorted("<root>" if k == root else k for k in r.keywords)
            props = [p for p in r.user_properties if p[0] != "rpytest_cached"]
            lines.add("report: %s %s %r %s %r" % (r.nodeid, r.when, r.my_attr, kw, props))
    for line in sorted(lines):
        terminalreporter.write_line(line)
"#;

const REPORT_ATTRS_TESTS: &str = r#"
import pytest

pytestmark = pytest.mark.filterwarnings("ignore")

@pytest.mark.parametrize("x", [1, 2])
def test_props(x, record_property):
    record_property("x", x)
    record_property("label", "v%d" % x)

@pytest.mark.xfail(reason="known")
def test_marked_xfail():
    assert 0

class TestKlass:
    def test_in_class(self):
        pass
"#;

fn report_lines(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("report: "))
        .collect()
}

/// Attributes a conftest sets on reports, the keywords and the
/// `record_property` pairs of a replayed report are the live run's: hooks
/// reading them do not fail (was: INTERNALERROR, the attribute missing),
/// with and without `-n`.
#[test]
fn report_attributes_keywords_and_properties_survive_the_cache() {
    let pair = pair();
    pair.write("conftest.py", REPORT_ATTRS_CONFTEST);
    pair.write("tests/test_attrs.py", REPORT_ATTRS_TESTS);
    let (py, fresh) = pair.check(&["-q"]);
    py.assert_code(0);
    let want = report_lines(&py);
    assert!(
        want.iter().any(|l| l.contains("test_props[1] teardown")
            && l.contains("'x', 1), ('label', 'v1')")
            && l.contains("'parametrize'")),
        "{}",
        py.transcript()
    );
    assert_eq!(report_lines(&fresh), want, "fresh\n{}", fresh.transcript());
    for (n, args) in [(2, vec!["-q"]), (3, vec!["-q", "-n", "2"])] {
        touch(&pair, n);
        // Stock pytest runs serially: its venv need not have pytest-xdist,
        // and rpytest's -n does not depend on it.
        let py = pair.pytest.pytest(&["-q"]).run();
        let rp = pair.rpytest.rpytest(&args).run();
        common::assert_same(&py, &rp);
        rp.assert_code(0);
        assert!(
            rp.stderr.contains("cached") || rp.stdout.contains("cached"),
            "{}",
            rp.transcript()
        );
        assert_eq!(
            report_lines(&rp),
            report_lines(&py),
            "{args:?} replayed\n{}",
            rp.transcript()
        );
    }
}

/// Asserts that a `-v` run ran `nodeid` and served a test of an unchanged
/// file from the cache.
fn ran_beside_cached(rp: &Run, nodeid: &str) {
    let statuses = rp.verbose_statuses();
    let status = |n: &str| statuses.get(n).map(String::as_str);
    assert_eq!(status(nodeid), Some("PASSED"), "{}", rp.transcript());
    assert_eq!(
        status("tests/test_other.py::test_env"),
        Some("CACHED"),
        "{}",
        rp.transcript()
    );
}

/// An attribute JSON cannot keep as it is (a tuple comes back a list) is
/// never replayed without it: the test's file runs every time, its
/// neighbours are served from the cache.
#[test]
fn report_attribute_that_cannot_be_stored_keeps_its_file_running() {
    let pair = pair();
    pair.write("conftest.py", REPORT_ATTRS_CONFTEST);
    pair.write("tests/test_tuple.py", "def test_tuple_attr():\n    pass\n");
    pair.check(&["-v"]);
    touch(&pair, 2);
    let (py, rp) = pair.check(&["-v"]);
    ran_beside_cached(&rp, "tests/test_tuple.py::test_tuple_attr");
    assert_eq!(report_lines(&rp), report_lines(&py), "{}", rp.transcript());
}

/// `--junitxml` of a run replaying `record_property` tests: each test
/// case's properties are stock pytest's, then the `rpytest_cached` mark.
#[test]
fn junit_properties_of_replayed_tests_are_the_tests_own() {
    let pair = pair();
    pair.write("tests/test_attrs.py", REPORT_ATTRS_TESTS);
    let xml = |p: &common::Project, name: &str| p.out_path(name);
    let stock_xml = xml(&pair.pytest, "stock.xml");
    let ours_xml = xml(&pair.rpytest, "ours.xml");
    let stock_arg = format!("--junitxml={}", stock_xml.display());
    let ours_arg = format!("--junitxml={}", ours_xml.display());
    pair.pytest
        .pytest(&["-q", &stock_arg])
        .no_junit()
        .run()
        .assert_code(0);
    pair.rpytest
        .rpytest(&["-q", &ours_arg])
        .no_junit()
        .run()
        .assert_code(0);
    let cached = pair.rpytest.rpytest(&["-q", &ours_arg]).no_junit().run();
    cached.assert_code(0);
    let properties = |path: &std::path::Path| -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        text.split("<testcase ")
            .skip(1)
            .map(|case| {
                let name = case.split('"').nth(3).unwrap_or("").to_owned();
                let props: Vec<&str> = case
                    .split("<property ")
                    .skip(1)
                    .map(|p| p.split("/>").next().unwrap_or("").trim())
                    .collect();
                format!("{name}: {}", props.join(" | "))
            })
            .collect()
    };
    let mark = r#"name="rpytest_cached" value="true""#;
    let want: Vec<String> = properties(&stock_xml)
        .into_iter()
        .map(|l| match l.ends_with(": ") {
            true => format!("{l}{mark}"),
            false => format!("{l} | {mark}"),
        })
        .collect();
    assert!(
        want.iter()
            .any(|l| l.contains(r#"name="label" value="v2""#)),
        "{want:?}"
    );
    assert_eq!(properties(&ours_xml), want, "{}", cached.transcript());
}

/// A warning whose stored text is whole (a relative path, as
/// `request.node.warn` gives, or a file outside the project) is printed as
/// pytest prints it by a fully cached run answered without Python (was:
/// its path twice, `tests/x.pytests/x.py:2`).
#[test]
fn fully_cached_warning_outside_rootdir_form_shows_its_path_once() {
    let pair = pair();
    pair.write(
        "tests/test_nodewarn.py",
        "import warnings\n\ndef test_node_warn(request):\n    request.node.warn(UserWarning(\"node warn\"))\n\n\
         def test_elsewhere():\n    warnings.warn_explicit(\"far\", UserWarning, \"/nonexistent/far.py\", 3)\n",
    );
    let (py, _) = pair.check(&[]);
    pair.check(&[]);
    let want = section(&normalized(&py, &pair, true), "warnings summary");
    assert!(
        want.iter()
            .any(|l| l.contains("tests/test_nodewarn.py:3: UserWarning: node warn")),
        "{}",
        py.transcript()
    );
    let alone = pair.rpytest.rpytest(&[]).no_junit().run();
    alone.assert_code(0);
    assert!(answered_alone(&alone), "{}", alone.transcript());
    assert_eq!(
        section(&normalized(&alone, &pair, false), "warnings summary"),
        want,
        "{}",
        alone.transcript()
    );
}

/// `record_testsuite_property` and `record_xml_attribute` write to the
/// JUnit writer, not into the test's reports (and only under
/// `--junitxml`): a test using them always runs, so a later `--junitxml`
/// holds what they write.
#[test]
fn tests_writing_to_the_junit_writer_directly_always_run() {
    let pair = pair();
    pair.write(
        "tests/test_suite_prop.py",
        "def test_suite_prop(record_testsuite_property):\n    record_testsuite_property(\"build\", \"7\")\n",
    );
    pair.check(&["-v"]);
    touch(&pair, 2);
    let xml = pair.rpytest.out_path("suite.xml");
    let arg = format!("--junitxml={}", xml.display());
    let rp = pair.rpytest.rpytest(&["-v", &arg]).no_junit().run();
    rp.assert_code(0);
    ran_beside_cached(&rp, "tests/test_suite_prop.py::test_suite_prop");
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(
        text.contains(r#"<property name="build" value="7" />"#),
        "{text}"
    );
}
