//! `-n` and friends: how many workers a run asks for and how it
//! distributes tests (`src/parallel` runs them).

/// `--dist`, as pytest-xdist spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dist {
    /// Files longest-first; a file that dominates the total is split by node.
    Load,
    /// As `Load`, but a dominating file is split only by class (or module).
    LoadScope,
    /// Files are never split.
    LoadFile,
    /// No distribution: one session.
    No,
}

impl Dist {
    /// Parses `--dist`; `load`, `loadgroup` and `worksteal` schedule the same
    /// way here (idle workers always take more work; `xdist_group` is always kept together).
    pub fn parse(s: &str) -> Option<Dist> {
        Some(match s {
            "load" | "loadgroup" | "worksteal" | "each" => Dist::Load,
            "loadscope" => Dist::LoadScope,
            "loadfile" => Dist::LoadFile,
            "no" => Dist::No,
            _ => return None,
        })
    }
}

/// How to distribute a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub workers: usize,
    pub dist: Dist,
    /// The number of workers asked for (`-n`): what workers see as the
    /// worker count (PYTEST_XDIST_WORKER_COUNT, `workerinput["workercount"]`),
    /// as under pytest-xdist, even when fewer are started.
    pub asked: usize,
    /// `--max-worker-restart` (else four per worker, as pytest-xdist): once
    /// more workers than this crashed, none is replaced and the run stops
    /// after each worker's current test.
    pub max_restart: usize,
    /// The arguments allow each worker's collector to collect only its
    /// share of the files (`src/parallel/partition.rs`): no unit of work can
    /// span files (`--dist` load, worksteal, loadfile or loadscope), nothing
    /// stops early (`-x`, `--maxfail`), pytest does not narrow or reorder
    /// what it collects from the last run (`--lf`, `--ff`, `--nf`, `--sw`),
    /// tests are run, no doctest collects non-test files, and no path on the
    /// command line selects part of the suite, and `RPYTEST_PARTITION=1` asks
    /// for it (see `partitionable`). The collectors still fall back to collecting once when the
    /// suite's hooks need the whole collection (`src/parallel/partition.rs`).
    pub partitionable: bool,
}

/// The last `--max-worker-restart` value of the command line.
fn max_worker_restart(args: &crate::project::args::PytestArgs) -> Result<Option<usize>, String> {
    let given = args
        .all_args
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == "--max-worker-restart")
        .filter_map(|(i, _)| args.all_args.get(i + 1))
        .next_back();
    match given {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            format!("argument --max-worker-restart: invalid value: '{v}' (a number of restarts)")
        }),
    }
}

/// See [`Options::partitionable`].
fn partitionable(args: &crate::project::args::PytestArgs) -> bool {
    let dist_ok = match args.dist.as_deref() {
        None => true,
        Some(d) => matches!(d, "load" | "worksteal" | "loadfile" | "loadscope"),
    };
    // Paths or node IDs on the command line select part of the suite: the
    // shares, made from the whole suite's durations, could leave a share idle.
    // Opt-in (`RPYTEST_PARTITION=1`): a share's collector imports the other
    // shares' test modules before its own (an import-order dependent suite,
    // pytest-randomly's per-module seeds), a worker's `session.items` holds
    // its share only, and those imports are recorded as inputs of every test.
    let on = std::env::var("RPYTEST_PARTITION").is_ok_and(|v| v == "1");
    on && dist_ok
        && args.positional.is_empty()
        && !args.stops_early
        && !args.narrows_collection
        && !args.no_run
        && !args.doctests
}

impl Options {
    /// `-n` / `--dist` / `--maxprocesses` (command line or addopts), else
    /// `[tool.rpytest] workers`. `None`: `-n` was not asked for at all.
    /// `workers == 0` or `--dist no`: one session, but still `-p no:xdist`.
    pub fn resolve(
        args: &crate::project::args::PytestArgs,
        config: Option<&toml::Value>,
    ) -> Result<Option<Options>, String> {
        let spec = match (&args.numprocesses, config) {
            (Some(n), _) => n.clone(),
            (None, Some(toml::Value::Integer(n))) => n.to_string(),
            (None, Some(toml::Value::String(s))) => s.clone(),
            (None, Some(other)) => {
                return Err(format!(
                    "[tool.rpytest] workers must be a number or \"auto\", not {other}"
                ))
            }
            (None, None) => return Ok(None),
        };
        let cpus = || {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        };
        let mut workers = match spec.as_str() {
            "auto" => std::env::var("PYTEST_XDIST_AUTO_NUM_WORKERS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(cpus),
            "logical" => cpus(),
            n => n.parse::<usize>().map_err(|_| {
                format!("argument -n/--numprocesses: invalid value: '{n}' (a number, 'auto' or 'logical')")
            })?,
        };
        if let Some(max) = args.maxprocesses {
            workers = workers.min(max);
        }
        let dist = match &args.dist {
            Some(d) => Dist::parse(d).ok_or_else(|| {
                format!("argument --dist: invalid choice: '{d}' (choose from 'each', 'load', 'loadscope', 'loadfile', 'loadgroup', 'worksteal', 'no')")
            })?,
            None => Dist::Load,
        };
        if workers > 0 && dist != Dist::No && args.debugger {
            return Err("--pdb is incompatible with distributing tests; try using -n0".into());
        }
        let max_restart = max_worker_restart(args)?.unwrap_or(workers * 4);
        Ok(Some(Options {
            workers,
            dist,
            asked: workers,
            max_restart,
            partitionable: partitionable(args),
        }))
    }

    /// Tests are distributed (not one session).
    pub fn distributes(&self) -> bool {
        self.workers > 0 && self.dist != Dist::No
    }
}
