//! External tools the tests run (kubectl, promtool, prometheus, buildah), installed by
//! `scripts/install-tools.sh`. A test that needs a missing tool fails under CI (`CI` set) and
//! otherwise prints `SKIPPED …` and passes.

#![allow(dead_code)]

use std::path::PathBuf;

pub fn on_path(tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}

pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| !matches!(v.trim(), "" | "0" | "false")).unwrap_or(false)
}

/// True when every tool is on PATH. Otherwise: a failure under CI, a skip notice elsewhere.
pub fn have_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| on_path(t).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    let msg =
        format!("{test}: {} not found on PATH (install with `sudo scripts/install-tools.sh`)", missing.join(" and "));
    if in_ci() {
        panic!("{msg}; CI is set, so this is a failure, not a skip");
    }
    eprintln!("SKIPPED {msg}");
    false
}
