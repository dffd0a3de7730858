//! `--why NODEID` and `--show-rules`: what a test's key is made of, and what changed.

use super::keys::{search_roots, session_wide_conftests, KeyContext};
use super::plan::{scope, Plan};
use crate::exit::Failure;
use crate::inputs::key::{self, Inputs, Key};
use crate::project::interpreter::InterpreterInfo;
use crate::report;
use crate::rules::Rule;
use crate::settings::Invocation;
use crate::store::Store;

/// `--why NODEID`: whether this command line would serve the node from the
/// cache and, when it would run it, which inputs changed since its last
/// reusable result. The answer is the run's own plan (`Plan::make` with the
/// same arguments), never a second opinion: `--why` cannot claim a test is
/// cached when the run executes it.
///
/// A command line without path arguments collects the invocation directory
/// (or testpaths): asked about a path outside it (`--why ..` from a
/// subdirectory, `--why ../test_x.py`), the answer is the plan of that
/// path given as the argument (`rpytest ..`), which is what would run it.
pub fn why(
    inv: &mut Invocation,
    store: &mut Store,
    info: &InterpreterInfo,
    node: &str,
) -> Result<i32, Failure> {
    let shown = node;
    let node = &rootdir_node(inv, node);
    let file = node.split("::").next().unwrap_or(node).to_owned();
    let under_root = !file.starts_with('/')
        && !file.split('/').any(|c| c == "..")
        && inv.setup.rootdir.join(&file).exists();
    if inv.args.positional.is_empty() && under_root {
        let inside = super::plan::scope_dirs(inv)
            .iter()
            .any(|d| d.is_empty() || file == *d || file.starts_with(&format!("{d}/")));
        if !inside {
            let path = shown.split("::").next().unwrap_or(shown);
            inv.args.positional = vec![path.to_owned()];
        }
    }
    let inv: &Invocation = inv;
    let rules = &inv.rules;
    for line in super::hermetic::sandbox_report(store, rules, inv.hermetic, &file) {
        report::out(&format!("{shown}: {line}"));
    }
    let plan = Plan::make(inv, store, info, rules, None)?;
    let lines = match verdict(inv, store, &plan, node, &file) {
        Err(verdict) => verdict
            .map(|v| vec![format!("{shown}: {v}")])
            .unwrap_or_default(),
        Ok((old_key, now_key)) => changed_inputs(store, &plan, node, &file, &old_key, now_key),
    };
    for line in lines {
        report::out(&line);
    }
    Ok(0)
}

/// Why the node is served or runs, when one sentence says it (`Err`; `None`:
/// nothing to say); else the key of its last pass and its key now.
fn verdict<'p>(
    inv: &Invocation,
    store: &Store,
    plan: &'p Plan,
    node: &str,
    file: &str,
) -> Result<(String, &'p Key), Option<String>> {
    if !plan.caching {
        return Err(Some(
            "the result cache is off for this command line; it runs".into(),
        ));
    }
    if !inv.args.run_all.is_empty() {
        return Err(Some(format!(
            "it runs: {} needs every test to run",
            inv.args.run_all.join(", ")
        )));
    }
    if plan.cached.iter().any(|c| c.nodeid == node) {
        return Err(Some(
            "inputs unchanged since its last pass; it is served from the cache".into(),
        ));
    }
    let dir = file.trim_end_matches('/');
    if node == file && (dir.is_empty() || inv.setup.rootdir.join(dir).is_dir()) {
        return Err(Some(directory_verdict(plan, dir)));
    }
    if node == file {
        // A whole file: its results are recorded per test.
        let prefix = format!("{file}::");
        let served = plan.skipped_files.iter().any(|f| f.file == file)
            || plan.cached.iter().any(|c| c.nodeid.starts_with(&prefix));
        return Err(Some(if served {
            "inputs unchanged since its last run; its results are served from the cache".into()
        } else {
            format!("it runs; name one of its tests ({file}::NAME) to see which inputs changed")
        }));
    }
    let Some((_, old_key)) = store.node_key(node).ok().flatten() else {
        let ran = store
            .durations()
            .map(|d| d.contains_key(node))
            .unwrap_or(false);
        return Err(Some(if ran {
            "it runs: no reusable result is recorded for it (its runs here did not pass, or their results are never stored: its file read something the same session wrote, read stdin, or has two tests with one node ID)".into()
        } else {
            "it runs: it never ran here (no result is recorded for it)".into()
        }));
    };
    let Some(planned) = plan.pre_keys.get(file) else {
        return Err(Some(format!(
            "it runs: rpytest does not key {file} for these arguments (it is neither a test file rpytest discovers nor a file pytest collected in the last recorded collection)"
        )));
    };
    // The plan's own keys, computed in the run's key context.
    let (Some(ctx), Some(_)) = (&plan.keys, &plan.global) else {
        return Err(None);
    };
    if !ctx.cacheable(file) {
        return Err(Some("its rule says cache = false; it always runs".into()));
    }
    if planned.hex == old_key {
        let reason = if inv.settings.refresh_cache {
            "RPYTEST_CACHE=refresh runs everything"
        } else {
            "its last reusable result is not usable by this run"
        };
        return Err(Some(format!(
            "inputs unchanged since its last pass, but it runs: {reason}"
        )));
    }
    Ok((old_key, planned))
}

/// The node ID pytest would give `arg` (a node ID or a path, as pytest takes
/// them on its command line: `./x`, `.`, `dir/`, an absolute path, a path from
/// a subdirectory): its path part made rootdir-relative, `::` and the rest
/// kept. The rootdir itself is "". A path outside the rootdir stays as given.
fn rootdir_node(inv: &Invocation, arg: &str) -> String {
    let (path, rest) = match arg.find("::") {
        Some(i) => (&arg[..i], &arg[i..]),
        None => (arg, ""),
    };
    if path.is_empty() {
        return arg.to_owned();
    }
    let given = std::path::Path::new(path);
    let absolute = if given.is_absolute() {
        given.to_path_buf()
    } else {
        inv.cwd.join(given)
    };
    let lexical = |p: &std::path::Path| {
        let mut out = std::path::PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other.as_os_str()),
            }
        }
        out
    };
    let root = &inv.setup.rootdir;
    let found = lexical(&absolute)
        .strip_prefix(lexical(root))
        .map(|r| r.to_path_buf())
        .ok()
        .or_else(|| {
            let real = absolute.canonicalize().ok()?;
            let real_root = root.canonicalize().ok()?;
            real.strip_prefix(real_root).map(|r| r.to_path_buf()).ok()
        });
    let Some(rel) = found else {
        return arg.to_owned();
    };
    let rel: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    format!("{}{rest}", rel.join("/"))
}

/// `--why DIR`: which of the directory's test files the run serves from
/// the cache and which it runs (a file's inputs are asked per test).
fn directory_verdict(plan: &Plan, dir: &str) -> String {
    // The rootdir itself ("") holds every file.
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut files: Vec<&str> = plan
        .pre_keys
        .keys()
        .map(String::as_str)
        .filter(|f| f.starts_with(&prefix))
        .collect();
    files.sort_unstable();
    if files.is_empty() {
        return "a directory holding no test file rpytest keys for these arguments".into();
    }
    let served = |f: &str| {
        let nodes = format!("{f}::");
        plan.skipped_files.iter().any(|s| s.file == f)
            || plan.cached.iter().any(|c| c.nodeid.starts_with(&nodes))
    };
    let runs: Vec<&str> = files.iter().copied().filter(|f| !served(f)).collect();
    let total = files.len();
    if runs.is_empty() {
        return format!(
            "a directory; its {total} test {} served from the cache",
            if total == 1 { "file is" } else { "files are" }
        );
    }
    let files_word = |n: usize| if n == 1 { "file" } else { "files" };
    const SHOWN: usize = 10;
    let mut names = runs[..runs.len().min(SHOWN)].join(", ");
    if runs.len() > SHOWN {
        names.push_str(&format!(" and {} more", runs.len() - SHOWN));
    }
    format!(
        "a directory; of its {total} test {}, {} served from the cache and {} {}: {names} (name one of their tests, FILE::NAME, to see which inputs changed)",
        files_word(total),
        total - runs.len(),
        runs.len(),
        if runs.len() == 1 { "runs" } else { "run" }
    )
}

/// The inputs that changed since the node's last pass, its key's and (when
/// that changed) every test's.
fn changed_inputs(
    store: &Store,
    plan: &Plan,
    node: &str,
    file: &str,
    old_key: &str,
    now_key: &Key,
) -> Vec<String> {
    let (Some(ctx), Some(global)) = (&plan.keys, &plan.global) else {
        return Vec::new();
    };
    let Some(old) = store
        .file_entry(file, old_key)
        .ok()
        .flatten()
        .and_then(|e| serde_json::from_str::<Inputs>(&e.inputs).ok())
    else {
        return vec![format!(
            "{node}: its inputs changed, but the inputs of its last pass are no longer stored"
        )];
    };
    let mut out = vec![format!("{node}: inputs changed since its last pass:")];
    out.extend(
        key::diff(&old, &now_key.inputs)
            .into_iter()
            .filter(|line| !line.starts_with("global:"))
            .map(|line| format!("  {line}")),
    );
    if old.get("global") != now_key.inputs.get("global") {
        // A hermetic file's global key is the sandbox's (hermetic.rs).
        let global = match (&ctx.hermetic, ctx.is_hermetic(file)) {
            (Some(h), true) => &h.1,
            _ => global,
        };
        match find_global(store, old.get("global")) {
            Some(prev) => out.extend(
                key::diff(&prev, &global.inputs)
                    .into_iter()
                    .map(|line| format!("  (input of every test) {line}")),
            ),
            None => out.push("  an input of every test changed (arguments, interpreter, packages or configuration)".into()),
        }
    }
    out
}

fn find_global(store: &Store, short: Option<&String>) -> Option<Inputs> {
    let short = short?;
    store
        .global_inputs_by_prefix(short)
        .and_then(|s| serde_json::from_str(&s).ok())
}

/// `--show-rules`: for every test file rpytest discovers, the rules that
/// govern it and every input of its key.
pub fn show_rules(
    inv: &Invocation,
    store: &mut Store,
    info: &InterpreterInfo,
) -> Result<i32, Failure> {
    let rules = &inv.rules;
    let (found, _) = scope(inv);
    let mut scanned = found.test_files.clone();
    scanned.extend(found.conftests.iter().cloned());
    let roots = search_roots(inv, store, &scanned);
    let mut ctx = KeyContext::new(inv, store, rules.clone(), roots);
    let session_conftests = session_wide_conftests(&inv.setup.rootdir, &found.conftests);
    let global = ctx.global_key(inv, info, &session_conftests);
    ctx.attach_hermetic(inv, store, info, &session_conftests);
    let mut out = String::from("every test (rule \"default\"):\n");
    for name in global.inputs.keys() {
        out.push_str(&format!("    {name}\n"));
    }
    for file in &found.test_files {
        let governing: Vec<&Rule> = rules.iter().skip(1).filter(|r| r.governs(file)).collect();
        let names: Vec<String> = governing
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let n = if r.name.is_empty() {
                    format!("#{}", i + 1)
                } else {
                    r.name.clone()
                };
                if r.extends.is_empty() {
                    n
                } else {
                    format!("{n} (extends {})", r.extends.join(", "))
                }
            })
            .collect();
        let (k, cache) = ctx.file_key(&global, file);
        out.push_str(&format!("{file}\n"));
        out.push_str(&format!(
            "  rules: {}\n",
            if names.is_empty() {
                "default".to_owned()
            } else {
                format!("default, {}", names.join(", "))
            }
        ));
        out.push_str(&format!(
            "  cache: {}\n",
            if cache { "yes" } else { "no (always runs)" }
        ));
        for line in super::hermetic::sandbox_report(store, rules, inv.hermetic, file) {
            out.push_str(&format!("  {line}\n"));
        }
        for r in &governing {
            if !r.args.is_empty() {
                out.push_str(&format!("  args: {}\n", r.args.join(" ")));
            }
            if let Some(w) = &r.workers {
                out.push_str(&format!("  workers: {w}\n"));
            }
            if let Some(t) = r.timeout {
                out.push_str(&format!("  timeout: {t}s per test\n"));
            }
        }
        out.push_str("  inputs:\n");
        for name in k.inputs.keys().filter(|n| *n != "global") {
            out.push_str(&format!("    {name}\n"));
        }
    }
    report::out(out.trim_end());
    Ok(crate::exit::OK)
}
