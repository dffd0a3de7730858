//! Builds the native module (`native/`, a cdylib for CPython's abi3) with a
//! nested cargo and leaves it in `$OUT_DIR/rpytest_native.so`, which the
//! binary embeds (`src/daemon/native.rs`) and writes out for its Python
//! sessions. The wheel stays maturin's `bin` kind: one file carries both.
//!
//! The nested build has its own target directory under `$OUT_DIR` (no lock
//! shared with the outer build), its own lock file (`native/Cargo.lock`,
//! used `--locked`), the outer build's profile and target, and `--offline`
//! when the outer build is offline (`CARGO_NET_OFFLINE`).
//!
//! When it fails (no network for its first fetch, a toolchain too old for
//! it, ...) the binary still builds: it embeds nothing and its sessions use
//! the Python audit hook, as with `RPYTEST_NATIVE=0`. A warning says so;
//! `RPYTEST_REQUIRE_NATIVE=1` makes the failure an error (CI sets it), and
//! `RPYTEST_BUILD_NATIVE=0` skips the nested build.

use std::env;
use std::fs;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let native = manifest_dir.join("native");
    for p in ["native/src", "native/Cargo.toml", "native/Cargo.lock"] {
        println!("cargo:rerun-if-changed={p}");
    }
    for v in [
        "RPYTEST_REQUIRE_NATIVE",
        "RPYTEST_BUILD_NATIVE",
        "CARGO_NET_OFFLINE",
    ] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    let dest = out_dir.join("rpytest_native.so");
    let required = env::var("RPYTEST_REQUIRE_NATIVE").is_ok_and(|v| v == "1");
    let bytes = if env::var("RPYTEST_BUILD_NATIVE").is_ok_and(|v| v == "0") {
        println!("cargo:warning=RPYTEST_BUILD_NATIVE=0: rpytest is built without its native module (sessions use the Python audit hook)");
        Vec::new()
    } else {
        match build(&native, &out_dir) {
            Ok(b) => b,
            Err(why) if required => panic!("the native module did not build: {why}"),
            Err(why) => {
                println!("cargo:warning=the native module did not build ({why}); rpytest's sessions will use the Python audit hook");
                Vec::new()
            }
        }
    };
    fs::write(&dest, &bytes).expect("write the native module into OUT_DIR");
    // A content hash of the module: its file name when written out, and part
    // of the daemon's fingerprint.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(&bytes);
    println!(
        "cargo:rustc-env=RPYTEST_NATIVE_HASH={:016x}{:08x}",
        h.finish(),
        bytes.len()
    );
}

fn build(native: &Path, out_dir: &Path) -> Result<Vec<u8>, String> {
    if !native.join("Cargo.toml").is_file() {
        return Err(format!(
            "{} is missing",
            native.join("Cargo.toml").display()
        ));
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = env::var("TARGET").map_err(|e| e.to_string())?;
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let target_dir = out_dir.join("native-target");
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(native.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--target", &target, "--locked", "--quiet"]);
    if release {
        cmd.arg("--release");
    }
    if env::var("CARGO_NET_OFFLINE").is_ok_and(|v| v == "true" || v == "1") {
        cmd.arg("--offline");
    }
    // What the outer cargo set for this build script describes the root
    // crate, not the nested one; the nested build's own is set by its cargo.
    for (k, _) in env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_CFG_")
            || k.starts_with("CARGO_FEATURE_")
            || k.starts_with("DEP_")
            || matches!(
                k,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET_DIR"
                    | "OUT_DIR"
                    | "TARGET"
                    | "HOST"
                    | "NUM_JOBS"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "PROFILE"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = err.lines().rev().take(8).collect();
        return Err(format!(
            "cargo build --manifest-path native/Cargo.toml: {}: {}",
            out.status,
            last.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    let dir = target_dir
        .join(&target)
        .join(if release { "release" } else { "debug" });
    for name in ["librpytest_native.so", "librpytest_native.dylib"] {
        if let Ok(b) = fs::read(dir.join(name)) {
            return Ok(b);
        }
    }
    Err(format!("no librpytest_native in {}", dir.display()))
}
