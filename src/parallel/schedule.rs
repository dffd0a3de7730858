//! Scheduling: which items a worker runs next (`-n`), which files a machine
//! runs (`--shard`). Pure functions over collected items and durations.

use std::collections::{BTreeMap, HashMap, VecDeque};

pub use crate::settings::workers::Dist;

/// One collected item, as a worker reported it.
#[derive(Debug, Clone)]
pub struct Item {
    pub nodeid: String,
    pub file: String,
    /// Its `xdist_group` mark.
    pub group: Option<String>,
}

/// Work handed to one worker at a time: item indexes in collection order.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub indexes: Vec<usize>,
    pub weight: f64,
}

/// Estimate for an item never timed: the median of the suite's known items.
const UNKNOWN_ITEM: f64 = 0.05;

fn estimates(items: &[Item], durations: &HashMap<String, (String, f64)>) -> Vec<f64> {
    let mut known: Vec<f64> = items
        .iter()
        .filter_map(|i| durations.get(&i.nodeid).map(|d| d.1))
        .collect();
    known.sort_by(|a, b| a.total_cmp(b));
    let default = known.get(known.len() / 2).copied().unwrap_or(UNKNOWN_ITEM);
    items
        .iter()
        .map(|i| durations.get(&i.nodeid).map(|d| d.1).unwrap_or(default))
        .collect()
}

fn scope_of(nodeid: &str) -> &str {
    // file::Class::test -> file::Class ; file::test -> file
    let mut parts = nodeid.match_indices("::");
    match (parts.next(), parts.next()) {
        (Some(_), Some((second, _))) => &nodeid[..second],
        (Some((first, _)), None) => &nodeid[..first],
        _ => nodeid,
    }
}

/// Splits the suite into units, longest first. Items of one `xdist_group`
/// form one unit; other items are grouped by file; a file heavier than a
/// worker's fair share is split (by node, or by class under `loadscope`).
pub fn units(
    items: &[Item],
    durations: &HashMap<String, (String, f64)>,
    dist: Dist,
    workers: usize,
) -> VecDeque<Unit> {
    let est = estimates(items, durations);
    let (groups, files) = by_group_and_file(items);
    let weight = |idx: &[usize]| idx.iter().map(|&i| est[i]).sum::<f64>();
    let total: f64 = est.iter().sum();
    let fair = total / workers.max(1) as f64;
    let mut out: Vec<Unit> = groups
        .into_values()
        .map(|indexes| Unit {
            weight: weight(&indexes),
            indexes,
        })
        .collect();
    for indexes in files {
        let w = weight(&indexes);
        // Only a file measured to dominate is split: an estimate is no reason
        // to separate tests that may rely on running in file order.
        let measured = indexes
            .iter()
            .filter(|&&i| durations.contains_key(&items[i].nodeid))
            .count();
        let splittable = workers > 1
            && indexes.len() > 1
            && w > fair
            && dist != Dist::LoadFile
            && measured * 2 >= indexes.len();
        if !splittable {
            out.push(Unit { indexes, weight: w });
        } else if dist == Dist::LoadScope {
            split_by_scope(items, indexes, &weight, &mut out);
        } else {
            // Chunks of about half a fair share: big enough to keep module
            // fixtures warm, small enough that no worker is left waiting.
            split_by_weight(indexes, &est, (fair / 2.0).max(f64::MIN_POSITIVE), &mut out);
        }
    }
    out.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then(a.indexes.first().cmp(&b.indexes.first()))
    });
    out.into()
}

/// Item indexes by `xdist_group`, and the others by file in collection order.
fn by_group_and_file(items: &[Item]) -> (BTreeMap<&str, Vec<usize>>, Vec<Vec<usize>>) {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut files: Vec<Vec<usize>> = Vec::new();
    let mut file_pos: HashMap<&str, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(g) = &item.group {
            groups.entry(g.as_str()).or_default().push(i);
            continue;
        }
        let pos = *file_pos.entry(item.file.as_str()).or_insert_with(|| {
            files.push(Vec::new());
            files.len() - 1
        });
        files[pos].push(i);
    }
    (groups, files)
}

/// A file's items as one unit per class (or module-level run of tests).
fn split_by_scope(
    items: &[Item],
    indexes: Vec<usize>,
    weight: &dyn Fn(&[usize]) -> f64,
    out: &mut Vec<Unit>,
) {
    let mut current: Vec<usize> = Vec::new();
    let mut scope: Option<&str> = None;
    for i in indexes {
        let s = scope_of(&items[i].nodeid);
        if scope.is_some_and(|c| c != s) && !current.is_empty() {
            let chunk = std::mem::take(&mut current);
            out.push(Unit {
                weight: weight(&chunk),
                indexes: chunk,
            });
        }
        scope = Some(s);
        current.push(i);
    }
    if !current.is_empty() {
        out.push(Unit {
            weight: weight(&current),
            indexes: current,
        });
    }
}

/// A file's items in chunks of about `target` estimated seconds.
fn split_by_weight(indexes: Vec<usize>, est: &[f64], target: f64, out: &mut Vec<Unit>) {
    let mut current: Vec<usize> = Vec::new();
    let mut acc = 0.0;
    for i in indexes {
        current.push(i);
        acc += est[i];
        if acc >= target {
            out.push(Unit {
                indexes: std::mem::take(&mut current),
                weight: acc,
            });
            acc = 0.0;
        }
    }
    if !current.is_empty() {
        out.push(Unit {
            indexes: current,
            weight: acc,
        });
    }
}

/// The files of shard `k` (1-based) of `n`: a deterministic, weight-balanced
/// split (heaviest file first onto the lightest shard; ties by name and index).
pub fn shard(files: &[(String, f64)], k: usize, n: usize) -> Vec<String> {
    let mut sorted: Vec<&(String, f64)> = files.iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut load = vec![0.0f64; n.max(1)];
    let mut mine = Vec::new();
    for (file, w) in sorted {
        let (idx, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(&b.0)))
            .expect("at least one shard");
        load[idx] += w;
        if idx + 1 == k {
            mine.push(file.clone());
        }
    }
    mine.sort();
    mine
}

/// The next work for a worker that asked: the first queued unit, with the
/// units after it while the batch holds less than a quarter of a worker's
/// share of what is queued (as pytest-xdist's load scheduler sends items in
/// chunks). Each batch is a round trip between a worker and the CLI: on a
/// suite of many small files, one unit per request costs more than the tests.
/// Batches shrink as the queue drains, so workers still end together.
pub fn take_batch(queue: &mut VecDeque<Unit>, workers: usize) -> Option<Unit> {
    let mut batch = queue.pop_front()?;
    let queued: f64 = batch.weight + queue.iter().map(|u| u.weight).sum::<f64>();
    let target = queued / (workers.max(1) as f64 * 4.0);
    while batch.weight < target {
        let Some(next) = queue.pop_front() else { break };
        batch.indexes.extend(next.indexes);
        batch.weight += next.weight;
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_take_a_quarter_share_and_shrink_as_the_queue_drains() {
        let mut queue: VecDeque<Unit> = (0..100)
            .map(|i| Unit {
                indexes: vec![i],
                weight: 1.0,
            })
            .collect();
        // 100 queued, 2 workers: 100 / 8 = 12.5, so 13 units.
        let first = take_batch(&mut queue, 2).unwrap();
        assert_eq!(first.indexes, (0..13).collect::<Vec<_>>());
        let mut sizes = vec![first.indexes.len()];
        while let Some(b) = take_batch(&mut queue, 2) {
            sizes.push(b.indexes.len());
        }
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert_eq!(*sizes.last().unwrap(), 1);
        // A unit heavier than the target goes alone.
        let mut queue: VecDeque<Unit> = [50.0, 1.0, 1.0]
            .iter()
            .enumerate()
            .map(|(i, &w)| Unit {
                indexes: vec![i],
                weight: w,
            })
            .collect();
        assert_eq!(take_batch(&mut queue, 2).unwrap().indexes, vec![0]);
    }

    fn item(nodeid: &str) -> Item {
        Item {
            nodeid: nodeid.into(),
            file: nodeid.split("::").next().unwrap().into(),
            group: None,
        }
    }

    fn timed(pairs: &[(&str, f64)]) -> HashMap<String, (String, f64)> {
        pairs
            .iter()
            .map(|(n, d)| (n.to_string(), (String::new(), *d)))
            .collect()
    }

    #[test]
    fn longest_file_first_and_files_kept_whole() {
        let items = vec![item("a.py::t1"), item("b.py::t1"), item("b.py::t2")];
        let d = timed(&[("a.py::t1", 0.1), ("b.py::t1", 1.0), ("b.py::t2", 1.0)]);
        let u = units(&items, &d, Dist::Load, 1);
        assert_eq!(u[0].indexes, vec![1, 2]);
        assert_eq!(u[1].indexes, vec![0]);
    }

    #[test]
    fn dominating_file_is_split_by_node_but_not_under_loadfile() {
        let mut items: Vec<Item> = (0..8).map(|i| item(&format!("big.py::t{i}"))).collect();
        items.push(item("small.py::t"));
        let mut pairs: Vec<(String, f64)> =
            (0..8).map(|i| (format!("big.py::t{i}"), 1.0)).collect();
        pairs.push(("small.py::t".into(), 1.0));
        let refs: Vec<(&str, f64)> = pairs.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        let d = timed(&refs);
        // Never timed: kept whole, whatever its test count.
        assert_eq!(units(&items, &HashMap::new(), Dist::Load, 2).len(), 2);
        let split = units(&items, &d, Dist::Load, 2);
        assert!(split.len() > 2, "{split:?}");
        let mut all: Vec<usize> = split.iter().flat_map(|u| u.indexes.clone()).collect();
        all.sort();
        assert_eq!(all, (0..9).collect::<Vec<_>>());
        assert_eq!(units(&items, &d, Dist::LoadFile, 2).len(), 2);
    }

    #[test]
    fn loadscope_splits_by_class_only() {
        let items: Vec<Item> = [
            "m.py::A::a",
            "m.py::A::b",
            "m.py::B::a",
            "m.py::f",
            "o.py::t",
        ]
        .iter()
        .map(|n| item(n))
        .collect();
        let timed_all: Vec<(&str, f64)> = items.iter().map(|i| (i.nodeid.as_str(), 1.0)).collect();
        let u = units(&items, &timed(&timed_all), Dist::LoadScope, 2);
        let mut sets: Vec<Vec<usize>> = u.iter().map(|u| u.indexes.clone()).collect();
        sets.sort();
        assert_eq!(sets, vec![vec![0, 1], vec![2], vec![3], vec![4]]);
    }

    #[test]
    fn xdist_groups_stay_together_across_files() {
        let mut items = vec![item("a.py::x"), item("b.py::y"), item("a.py::z")];
        items[0].group = Some("db".into());
        items[1].group = Some("db".into());
        let u = units(&items, &HashMap::new(), Dist::Load, 2);
        assert!(u.iter().any(|u| u.indexes == vec![0, 1]));
        assert!(u.iter().any(|u| u.indexes == vec![2]));
    }

    #[test]
    fn shards_cover_everything_once_and_balance() {
        let files: Vec<(String, f64)> = (0..10)
            .map(|i| (format!("t{i}.py"), (i + 1) as f64))
            .collect();
        let mut union: Vec<String> = Vec::new();
        let mut loads = Vec::new();
        for k in 1..=3 {
            let s = shard(&files, k, 3);
            assert_eq!(s, shard(&files, k, 3), "deterministic");
            loads.push(
                s.iter()
                    .map(|f| files.iter().find(|x| &x.0 == f).unwrap().1)
                    .sum::<f64>(),
            );
            union.extend(s);
        }
        union.sort();
        let mut expected: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
        expected.sort();
        assert_eq!(union, expected);
        let (min, max) = (
            loads.iter().cloned().fold(f64::MAX, f64::min),
            loads.iter().cloned().fold(0.0, f64::max),
        );
        assert!(max - min <= 10.0, "{loads:?}");
    }
}
