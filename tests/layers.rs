//! The modules of `src/` depend on each other bottom up, without cycles: time, versions and
//! text → snapshot and calendars → the engine (`policy`: rules → evaluate → report) → check,
//! controller and metrics. Read from the source (every `crate::…` and `super::…` path outside
//! test code), so a new import that closes a cycle fails here, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/policy/rules/image/mod.rs` → `policy::rules::image`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The node a module belongs to: its top-level module, or `policy::<child>` inside the engine.
fn node(path: &[String]) -> Option<String> {
    match path {
        [] => None,
        [top] if top == "policy" => None,
        [top, child, ..] if top == "policy" => Some(format!("policy::{child}")),
        [top, ..] => Some(top.clone()),
    }
}

fn idents(s: &str) -> Vec<String> {
    s.split("::").map(|p| p.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()).collect()
}

/// Every module path the non-test code of `text` refers to, resolved from `module`.
fn references(module: &[String], text: &str) -> Vec<Vec<String>> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    for line in code.lines().map(str::trim_start).filter(|l| !l.starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            out.push(idents(&line[i + "crate::".len()..]).into_iter().take(2).collect());
        }
        if let Some(i) = line.find("super::") {
            let mut base: Vec<String> = module.to_vec();
            let mut rest = &line[i..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            base.extend(idents(rest).into_iter().take(1).filter(|s| !s.is_empty()));
            out.push(base);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in all {
        let name = file.file_name().unwrap().to_string_lossy();
        if name == "tests.rs" || name == "testing.rs" || name == "main.rs" {
            continue;
        }
        let module = module_of(&src, &file);
        let Some(from) = node(&module) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        edges.entry(from.clone()).or_default();
        for target in references(&module, &text) {
            // `crate::policy::Evaluation` from outside the engine: the engine as a whole.
            let to = match node(&target) {
                Some(n) if n.starts_with("policy::") && !from.starts_with("policy") => "policy".to_string(),
                Some(n) => n,
                None if target.first().is_some_and(|t| t == "policy") => "policy".to_string(),
                None => continue,
            };
            let to = if to.starts_with("policy::") && !module.iter().any(|m| m == "policy") {
                "policy".to_string()
            } else {
                to
            };
            if to != from && !(from.starts_with("policy::") && to == "policy") {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// The nodes in dependency order, or the first cycle found.
fn order(edges: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>, Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match state.get(n) {
            Some(2) => return Ok(()),
            Some(1) => {
                let start = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(n.to_string());
                return Err(cycle);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, state, stack, out)?;
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        out.push(n.to_string());
        Ok(())
    }
    let (mut state, mut stack, mut out) = (BTreeMap::new(), Vec::new(), Vec::new());
    for n in edges.keys() {
        visit(n, edges, &mut state, &mut stack, &mut out)?;
    }
    Ok(out)
}

#[test]
fn modules_have_no_import_cycle() {
    let edges = graph();
    // The engine as one node for the crate-level order, its submodules for its own order.
    let mut crate_level: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &edges {
        let from = if from.starts_with("policy::") { "policy".to_string() } else { from.clone() };
        let entry = crate_level.entry(from.clone()).or_default();
        for to in tos {
            let to = if to.starts_with("policy::") { "policy".to_string() } else { to.clone() };
            if to != from {
                entry.insert(to);
            }
        }
    }
    let engine: BTreeMap<String, BTreeSet<String>> = edges
        .iter()
        .filter(|(from, _)| from.starts_with("policy::"))
        .map(|(from, tos)| (from.clone(), tos.iter().filter(|t| t.starts_with("policy::")).cloned().collect()))
        .collect();
    for (what, g) in [("crate", &crate_level), ("policy", &engine)] {
        match order(g) {
            Ok(order) => println!("{what}: {}", order.join(" → ")),
            Err(cycle) => panic!("{what}: import cycle {}", cycle.join(" → ")),
        }
    }
}

#[test]
fn lower_layers_do_not_reach_up() {
    let edges = graph();
    let forbidden = [
        ("time", "any module"),
        ("version", "any module but text"),
        ("text", "any module"),
        ("snapshot", "policy"),
        ("calendar", "policy"),
        ("crd", "policy"),
        ("policy::rules", "policy::evaluate"),
        ("policy::evaluate", "policy::report"),
    ];
    for (from, not) in forbidden {
        let deps = edges.get(from).cloned().unwrap_or_default();
        let bad: Vec<&String> = match not {
            "any module" => deps.iter().collect(),
            "any module but text" => deps.iter().filter(|d| *d != "text").collect(),
            n => deps.iter().filter(|d| *d == n || d.starts_with(&format!("{n}::"))).collect(),
        };
        assert!(bad.is_empty(), "{from} depends on {bad:?}");
    }
    // The engine reads no client and runs no I/O.
    for (from, deps) in &edges {
        if from.starts_with("policy") {
            for up in ["check", "controller", "k8s", "metrics", "server"] {
                assert!(!deps.contains(up), "{from} depends on {up}");
            }
        }
    }
}
