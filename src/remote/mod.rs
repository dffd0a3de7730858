//! A shared result cache over the Bazel HTTP remote-cache protocol.
//!
//! Entries live in the action-cache namespace: `GET`/`PUT {url}/ac/{hex}`,
//! where `hex` is blake3 of (format, test file, file key). Any server that
//! stores what is `PUT` and returns it on `GET` works: bazel-remote (with
//! `--disable_http_ac_validation`: rpytest's entries are not Bazel
//! ActionResults), nginx with WebDAV `PUT`, most artifact stores.
//!
//! Lookups go to the local cache first; only its misses are asked here, in
//! parallel, and hits are stored locally. Writes happen only when enabled.
//!
//! Keys include what sessions recorded (files read, environment variables,
//! import edges), which a fresh machine does not have. Beside the result
//! entries, an uploading run stores its recorded dependencies as one snapshot
//! addressed by the global key computed without recorded inputs; a machine
//! with misses fetches it first, merges it into its own, and computes the
//! keys the results were stored under. (DESIGN.md names only the entries;
//! this second kind is what makes them findable.)
//! The remote is never a reason to fail and never a reason to pass: an entry
//! is used only if it parses, names the file and key that were asked for, and
//! holds only reusable outcomes; a timeout, a 5xx, garbage or an unreachable
//! server gives one warning and the run goes on with the local cache.

use crate::store::{FileEntry, NodeResult};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Version tag inside every entry (and in the hashed address).
const FORMAT: &str = "rpytest-remote/1";
/// Largest entry accepted.
const MAX_ENTRY: u64 = 16 * 1024 * 1024;
/// Requests in flight at once.
const PARALLEL: usize = 16;

/// Where the remote cache is and what may be done with it.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub url: String,
    pub upload: bool,
    /// `Name: value` from `RPYTEST_REMOTE_CACHE_HEADER` (e.g. an Authorization header).
    pub header: Option<(String, String)>,
    /// From `RPYTEST_REMOTE_CACHE_KEY`: entries are signed with it on upload,
    /// and only entries with a valid signature are used.
    pub signing: Option<SigningKey>,
}

/// The key that signs and checks entries: blake3 in keyed mode (a MAC)
/// under a key derived from the secret the user configured.
#[derive(Clone)]
pub struct SigningKey([u8; 32]);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// From the secret's bytes (any length; the derivation spreads it).
    pub fn from_secret(secret: &[u8]) -> SigningKey {
        SigningKey(blake3::derive_key(
            "rpytest remote cache entry signature v1",
            secret,
        ))
    }

    fn mac(&self, body: &[u8]) -> blake3::Hash {
        blake3::keyed_hash(&self.0, body)
    }

    /// Whether `signature` (hex) is the MAC of `body`. Constant time.
    fn verifies(&self, body: &[u8], signature: Option<&str>) -> Result<(), String> {
        let Some(sig) = signature else {
            return Err("it is not signed (RPYTEST_REMOTE_CACHE_KEY is set)".into());
        };
        match blake3::Hash::from_hex(sig) {
            Ok(h) if h == self.mac(body) => Ok(()),
            _ => Err("its signature does not match RPYTEST_REMOTE_CACHE_KEY".into()),
        }
    }
}

impl RemoteConfig {
    /// `--remote-cache URL`, else `RPYTEST_REMOTE_CACHE`, else `[tool.rpytest]
    /// remote-cache`; uploads with `--remote-cache-upload`,
    /// `RPYTEST_REMOTE_CACHE_UPLOAD=1` or `remote-cache-upload = true`.
    pub fn resolve(
        flag_url: Option<&str>,
        flag_upload: bool,
        config_url: Option<&str>,
        config_upload: Option<bool>,
    ) -> Result<Option<RemoteConfig>, String> {
        let env_url = std::env::var("RPYTEST_REMOTE_CACHE")
            .ok()
            .filter(|v| !v.is_empty());
        let Some(url) = flag_url
            .map(str::to_owned)
            .or(env_url)
            .or(config_url.map(str::to_owned))
        else {
            if flag_upload {
                return Err("--remote-cache-upload needs a remote cache: --remote-cache URL (or RPYTEST_REMOTE_CACHE)".into());
            }
            return Ok(None);
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "remote cache URL {url:?} must start with http:// or https://"
            ));
        }
        let env_upload = std::env::var("RPYTEST_REMOTE_CACHE_UPLOAD")
            .map(|v| matches!(v.as_str(), "1" | "true" | "yes"))
            .unwrap_or(false);
        let header = match std::env::var("RPYTEST_REMOTE_CACHE_HEADER") {
            Ok(h) if !h.trim().is_empty() => {
                let (name, value) = h.split_once(':').ok_or_else(|| {
                    "RPYTEST_REMOTE_CACHE_HEADER must look like 'Name: value'".to_owned()
                })?;
                Some((name.trim().to_owned(), value.trim().to_owned()))
            }
            _ => None,
        };
        let signing = std::env::var_os("RPYTEST_REMOTE_CACHE_KEY")
            .filter(|k| !k.is_empty())
            .map(|k| {
                SigningKey::from_secret(std::os::unix::ffi::OsStrExt::as_bytes(k.as_os_str()))
            });
        Ok(Some(RemoteConfig {
            url: url.trim_end_matches('/').to_owned(),
            upload: flag_upload || env_upload || config_upload.unwrap_or(false),
            header,
            signing,
        }))
    }
}

/// One cache entry: a test file's collection under a key and its reusable results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub format: String,
    pub file: String,
    pub key: String,
    pub entry: FileEntry,
    pub results: Vec<NodeResult>,
    /// MAC (hex) of the entry serialized without this field, when uploads are signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Entry {
    pub fn new(file: String, key: String, entry: FileEntry, results: Vec<NodeResult>) -> Entry {
        Entry {
            format: FORMAT.to_owned(),
            file,
            key,
            entry,
            results,
            signature: None,
        }
    }

    /// The bytes a signature covers: the entry without its signature.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    /// Why this entry must not be used for `(file, key)`, if it must not.
    fn invalid(&self, file: &str, key: &str) -> Option<String> {
        if self.format != FORMAT {
            return Some(format!("format {:?}", self.format));
        }
        if self.file != file || self.key != key {
            return Some(format!(
                "it is for {} under key {}, not {file} under {key}",
                self.file, self.key
            ));
        }
        let prefix = format!("{file}::");
        for r in &self.results {
            if r.file != file || !(r.nodeid.starts_with(&prefix) || r.nodeid == file) {
                return Some(format!("result {} is not in {file}", r.nodeid));
            }
            if !r.outcome.reusable() {
                return Some(format!("result {} is {}", r.nodeid, r.outcome));
            }
            if !self.entry.nodes.contains(&r.nodeid) {
                return Some(format!("result {} was not collected", r.nodeid));
            }
        }
        None
    }
}

/// The recorded dependencies of a project (what the session observed: files
/// read, environment variables, directory listings, import edges). Keys are
/// computed from them, so a machine with an empty local cache first fetches
/// them, addressed by the part of the global key that needs no recording.
/// Extra or missing dependencies only make keys differ (a miss), never match.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: String,
    pub global: String,
    pub deps: Vec<(String, String, String)>,
    pub edges: Vec<(String, String)>,
    /// Installed module files the sessions imported (inputs/installed.rs):
    /// portable name and portable location.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installed: Vec<(String, String)>,
    /// As `Entry::signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Snapshot {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }
}

/// Largest dependency snapshot accepted.
const MAX_SNAPSHOT: u64 = 64 * 1024 * 1024;

fn snapshot_address(global: &str) -> String {
    address("<recorded dependencies>", global)
}

fn relative(p: &str) -> bool {
    !p.starts_with('/') && !p.split('/').any(|c| c == "..")
}

/// A recorded input's name: root-relative, or absolute for a file outside
/// the project (a config file in $HOME); never climbing with `..`.
fn input_name(p: &str) -> bool {
    !p.split('/').any(|c| c == "..")
}

/// The address of `(file, key)` in the remote cache.
pub fn address(file: &str, key: &str) -> String {
    let mut h = blake3::Hasher::new();
    for part in [FORMAT, file, key] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    h.finalize().to_hex().to_string()
}

/// Counts for the summary line and the benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub lookups: AtomicUsize,
    pub hits: AtomicUsize,
    pub invalid: AtomicUsize,
    pub uploads: AtomicUsize,
}

/// A remote cache for one run.
pub struct Remote {
    pub config: RemoteConfig,
    agent: ureq::Agent,
    /// Set at the first transport failure or server error: no more requests.
    broken: AtomicBool,
    why_broken: Mutex<Option<String>>,
    first_invalid: Mutex<Option<String>>,
    pub stats: Stats,
}

enum Got {
    Entry(Box<Entry>),
    Missing,
    Invalid(String),
}

impl Remote {
    pub fn new(config: RemoteConfig) -> Remote {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(3))
            .timeout(Duration::from_secs(20))
            .max_idle_connections_per_host(PARALLEL)
            .build();
        Remote {
            config,
            agent,
            broken: AtomicBool::new(false),
            why_broken: Mutex::new(None),
            first_invalid: Mutex::new(None),
            stats: Stats::default(),
        }
    }

    fn url(&self, file: &str, key: &str) -> String {
        format!("{}/ac/{}", self.config.url, address(file, key))
    }

    fn request(&self, method: &str, url: &str) -> ureq::Request {
        let mut r = self.agent.request(method, url);
        if let Some((name, value)) = &self.config.header {
            r = r.set(name, value);
        }
        r
    }

    fn fail(&self, why: String) {
        if !self.broken.swap(true, Ordering::SeqCst) {
            *self.why_broken.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        }
    }

    fn get(&self, file: &str, key: &str) -> Got {
        let body = match self.get_bytes(&self.url(file, key), MAX_ENTRY) {
            Ok(Some(b)) => b,
            Ok(None) => return Got::Missing,
            Err(why) => return Got::Invalid(why),
        };
        match serde_json::from_slice::<Entry>(&body) {
            Ok(e) => match e.invalid(file, key) {
                None => match &self.config.signing {
                    Some(k) => match k.verifies(&e.signed_bytes(), e.signature.as_deref()) {
                        Ok(()) => Got::Entry(Box::new(e)),
                        Err(why) => Got::Invalid(why),
                    },
                    None => Got::Entry(Box::new(e)),
                },
                Some(why) => Got::Invalid(why),
            },
            Err(e) => Got::Invalid(format!("not an rpytest entry ({e})")),
        }
    }

    fn put(&self, e: &Entry) {
        let mut e = e.clone();
        if let Some(k) = &self.config.signing {
            e.signature = Some(k.mac(&e.signed_bytes()).to_hex().to_string());
        }
        let body = match serde_json::to_vec(&e) {
            Ok(b) => b,
            Err(_) => return,
        };
        self.put_bytes(&self.url(&e.file, &e.key), &body);
    }

    fn put_bytes(&self, url: &str, body: &[u8]) {
        match self
            .request("PUT", url)
            .set("Content-Type", "application/json")
            .send_bytes(body)
        {
            Ok(_) => {
                self.stats.uploads.fetch_add(1, Ordering::Relaxed);
            }
            Err(ureq::Error::Status(code, _)) => self.fail(format!("the server answered {code}")),
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Runs `work` on every item with up to PARALLEL threads, stopping once broken.
    fn each<T: Sync>(&self, items: &[T], work: impl Fn(&T) + Sync) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..PARALLEL.min(items.len()) {
                s.spawn(|| loop {
                    if self.broken.load(Ordering::SeqCst) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { return };
                    work(item);
                });
            }
        });
    }

    fn get_bytes(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>, String> {
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        match self.request("GET", url).call() {
            Ok(resp) => {
                // An oversized answer is a fault of the server, as a 5xx is:
                // stop asking it for this run rather than download it again
                // for every lookup. The declared length is checked before any
                // byte of the body is read.
                let declared = resp
                    .header("Content-Length")
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if let Some(n) = declared.filter(|n| *n > limit) {
                    self.fail(format!(
                        "it answered {n} bytes for one entry (more than {limit})"
                    ));
                    return Ok(None);
                }
                let mut body = Vec::new();
                resp.into_reader()
                    .take(limit + 1)
                    .read_to_end(&mut body)
                    .map_err(|e| {
                        self.fail(format!("reading an entry failed: {e}"));
                        String::new()
                    })?;
                if body.len() as u64 > limit {
                    self.fail(format!("it answered more than {limit} bytes for one entry"));
                    return Ok(None);
                }
                Ok(Some(body))
            }
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(ureq::Error::Status(code, _)) if code >= 500 => {
                self.fail(format!("the server answered {code}"));
                Ok(None)
            }
            Err(ureq::Error::Status(code, _)) => Err(format!("the server answered {code}")),
            Err(e) => {
                self.fail(e.to_string());
                Ok(None)
            }
        }
    }

    fn note_invalid(&self, what: &str, why: String) {
        self.stats.invalid.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_invalid.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(format!("{what}: {why}"));
        }
    }

    /// The recorded dependencies stored for `global`, if any (validated).
    pub fn fetch_snapshot(&self, global: &str) -> Option<Snapshot> {
        if self.broken.load(Ordering::SeqCst) {
            return None;
        }
        let url = format!("{}/ac/{}", self.config.url, snapshot_address(global));
        let body = match self.get_bytes(&url, MAX_SNAPSHOT) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(why) => {
                self.note_invalid("recorded dependencies", why);
                return None;
            }
        };
        let snap: Snapshot = match serde_json::from_slice(&body) {
            Ok(s) => s,
            Err(e) => {
                self.note_invalid(
                    "recorded dependencies",
                    format!("not an rpytest entry ({e})"),
                );
                return None;
            }
        };
        let paths_ok = snap
            .deps
            .iter()
            .all(|(f, kind, name)| relative(f) && (kind == "env" || input_name(name)))
            && snap.edges.iter().all(|(a, b)| relative(a) && relative(b));
        if snap.format != FORMAT || snap.global != global || !paths_ok {
            self.note_invalid(
                "recorded dependencies",
                "wrong format, key or paths".to_owned(),
            );
            return None;
        }
        if let Some(k) = &self.config.signing {
            if let Err(why) = k.verifies(&snap.signed_bytes(), snap.signature.as_deref()) {
                self.note_invalid("recorded dependencies", why);
                return None;
            }
        }
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(snap)
    }

    /// Stores the recorded dependencies under `global` (uploads enabled only).
    pub fn upload_snapshot(&self, snap: &Snapshot) {
        if !self.config.upload || self.broken.load(Ordering::SeqCst) {
            return;
        }
        let mut snap = snap.clone();
        if let Some(k) = &self.config.signing {
            snap.signature = Some(k.mac(&snap.signed_bytes()).to_hex().to_string());
        }
        let Ok(body) = serde_json::to_vec(&snap) else {
            return;
        };
        let url = format!("{}/ac/{}", self.config.url, snapshot_address(&snap.global));
        self.put_bytes(&url, &body);
    }

    /// Looks up `(file, key)` pairs; returns the valid entries found.
    pub fn fetch(&self, wanted: &[(String, String)]) -> Vec<Entry> {
        let found: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
        self.each(wanted, |(file, key)| match self.get(file, key) {
            Got::Entry(e) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                found.lock().unwrap_or_else(|e| e.into_inner()).push(*e);
            }
            Got::Missing => {}
            Got::Invalid(why) => self.note_invalid(file, why),
        });
        found.into_inner().unwrap_or_default()
    }

    /// A snapshot of `global`'s recorded dependencies.
    pub fn snapshot(
        global: String,
        deps: Vec<(String, String, String)>,
        edges: Vec<(String, String)>,
        installed: Vec<(String, String)>,
    ) -> Snapshot {
        Snapshot {
            format: FORMAT.to_owned(),
            global,
            deps,
            edges,
            installed,
            signature: None,
        }
    }

    /// Stores entries (only when uploads are enabled).
    pub fn upload(&self, entries: &[Entry]) {
        if self.config.upload {
            self.each(entries, |e| self.put(e));
        }
    }

    /// What this run's use of the remote cache comes to, for the report:
    /// what went wrong (if anything) and the counts.
    pub fn summary(&self) -> Summary {
        let invalid = self.stats.invalid.load(Ordering::Relaxed);
        let why_broken = self
            .why_broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let problem = match why_broken {
            Some(why) => Some(Problem::Unusable(why)),
            None if invalid > 0 => Some(Problem::Invalid {
                count: invalid,
                first: self
                    .first_invalid
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_default(),
            }),
            None => None,
        };
        Summary {
            url: self.config.url.clone(),
            problem,
            lookups: self.stats.lookups.load(Ordering::Relaxed),
            hits: self.stats.hits.load(Ordering::Relaxed),
            uploads: self.stats.uploads.load(Ordering::Relaxed),
        }
    }
}

/// A run's use of the remote cache, as `report::remote` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub url: String,
    /// At most one thing went wrong worth a warning.
    pub problem: Option<Problem>,
    pub lookups: usize,
    pub hits: usize,
    pub uploads: usize,
}

/// What went wrong with the remote cache during a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A transport failure or server error: no requests after it.
    Unusable(String),
    /// Entries that failed validation and were ignored (`first`: which and why).
    Invalid { count: usize, first: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, key: &str) -> Entry {
        Entry::new(
            file.into(),
            key.into(),
            FileEntry {
                outcome: "passed".into(),
                nodes: vec![format!("{file}::t")],
                inputs: "{}".into(),
                detail: "null".into(),
            },
            vec![NodeResult {
                nodeid: format!("{file}::t"),
                file: file.into(),
                outcome: "passed".into(),
                duration: 0.1,
                location: "null".into(),
                longrepr: "null".into(),
                wasxfail: None,
                output: String::new(),
            }],
        )
    }

    #[test]
    fn entries_are_checked_against_what_was_asked() {
        let e = entry("t.py", "k1");
        assert!(e.invalid("t.py", "k1").is_none());
        assert!(e.invalid("t.py", "k2").is_some());
        assert!(e.invalid("u.py", "k1").is_some());
        let mut failed = entry("t.py", "k1");
        failed.results[0].outcome = "failed".into();
        assert!(failed.invalid("t.py", "k1").is_some());
        let mut foreign = entry("t.py", "k1");
        foreign.results[0].nodeid = "other.py::t".into();
        assert!(foreign.invalid("t.py", "k1").is_some());
    }

    #[test]
    fn signatures_cover_the_whole_entry() {
        let k = SigningKey::from_secret(b"team secret");
        let mut e = entry("t.py", "k1");
        e.signature = Some(k.mac(&e.signed_bytes()).to_hex().to_string());
        assert!(k
            .verifies(&e.signed_bytes(), e.signature.as_deref())
            .is_ok());
        let other = SigningKey::from_secret(b"another secret");
        assert!(other
            .verifies(&e.signed_bytes(), e.signature.as_deref())
            .is_err());
        let mut forged = e.clone();
        forged.results[0].duration = 0.2;
        assert!(k
            .verifies(&forged.signed_bytes(), forged.signature.as_deref())
            .is_err());
        let mut unsigned = e.clone();
        unsigned.signature = None;
        assert!(k.verifies(&unsigned.signed_bytes(), None).is_err());
    }

    #[test]
    fn the_summary_names_what_went_wrong_first_and_the_counts() {
        let r = Remote::new(RemoteConfig {
            url: "http://cache.invalid".into(),
            upload: false,
            header: None,
            signing: None,
        });
        assert_eq!(r.summary().problem, None);
        r.note_invalid("t.py", "not an rpytest entry".into());
        r.note_invalid("u.py", "its signature does not match".into());
        let invalid = Some(Problem::Invalid {
            count: 2,
            first: "t.py: not an rpytest entry".into(),
        });
        assert_eq!(r.summary().problem, invalid);
        assert_eq!(r.summary().problem, invalid, "asking again changes nothing");
        r.fail("the server answered 503".into());
        r.fail("connection refused".into());
        let s = r.summary();
        assert_eq!(
            s.problem,
            Some(Problem::Unusable("the server answered 503".into()))
        );
        assert_eq!((s.lookups, s.hits, s.uploads), (0, 0, 0));
        assert_eq!(s.url, "http://cache.invalid");
    }

    #[test]
    fn addresses_depend_on_file_and_key() {
        assert_ne!(address("a.py", "k"), address("b.py", "k"));
        assert_ne!(address("a.py", "k"), address("a.py", "j"));
        assert_eq!(address("a.py", "k").len(), 64);
    }
}
