//! The crate's modules import each other without cycles: at the top (`data`, `engine`, `model`,
//! `train`, ...) and among the files of each module. Run with `cargo test --test layering`.
//!
//! A file's references are read from its source: `crate::a::b` and `super::b` paths (also inside
//! `use` groups), with names re-exported by a `mod.rs` (`pub use child::Name`) traced to the file
//! that defines them. Unit-test modules (`#[cfg(test)]`) are left out: a test may look anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path from the crate root, e.g. `["data", "pipeline"]`.
type ModPath = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/data/pipeline.rs` -> `data::pipeline`; `src/data/mod.rs` -> `data`; binaries -> None.
fn module_of(src: &Path, file: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: ModPath = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop()?.trim_end_matches(".rs").to_string();
    if parts.first().is_some_and(|p| p == "bin") || (parts.is_empty() && last == "main") {
        return None;
    }
    if last != "mod" && last != "lib" {
        parts.push(last);
    }
    Some(parts)
}

/// The source without comments and without `#[cfg(test)]` items.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path that starts at `crate::` or `super::`, as segments after that root, with `use`
/// groups (`a::{b::C, d}`) expanded.
fn paths(code: &str) -> Vec<(bool, Vec<String>)> {
    let mut found = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !is_ident(chars[i - 1]);
        let rest: String = chars[i..chars.len().min(i + 8)].iter().collect();
        let root = if !starts_word {
            None
        } else if rest.starts_with("crate::") {
            Some((true, 7))
        } else if rest.starts_with("super::") {
            Some((false, 7))
        } else {
            None
        };
        match root {
            Some((is_crate, skip)) => {
                let mut prefixes = Vec::new();
                i = expand(&chars, i + skip, Vec::new(), &mut prefixes);
                found.extend(prefixes.into_iter().map(|p| (is_crate, p)));
            }
            None => i += 1,
        }
    }
    found
}

/// Reads `a::b::{c, d::e}` from `i`, pushing each complete path; returns the index after it.
fn expand(chars: &[char], mut i: usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '{' {
            i += 1;
            loop {
                i = expand(chars, i, prefix.clone(), out);
                while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                    i += 1;
                }
                if i >= chars.len() || chars[i] == '}' {
                    return i + 1;
                }
            }
        }
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        if i > start {
            prefix.push(chars[start..i].iter().collect());
        }
        if i + 1 < chars.len() && chars[i] == ':' && chars[i + 1] == ':' {
            i += 2;
        } else {
            out.push(prefix);
            return i;
        }
    }
}

struct Crate {
    modules: BTreeSet<ModPath>,
    /// `(module, name)` -> the child module a `mod.rs` re-exports `name` from.
    reexports: BTreeMap<(ModPath, String), String>,
    /// File module -> the paths it references, made absolute.
    references: BTreeMap<ModPath, Vec<ModPath>>,
}

fn read_crate() -> Crate {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeSet::new();
    let mut sources = Vec::new();
    for file in files {
        if let Some(module) = module_of(&src, &file) {
            modules.insert(module.clone());
            sources.push((module, code(&std::fs::read_to_string(&file).expect("a source file"))));
        }
    }
    let mut reexports = BTreeMap::new();
    let mut references = BTreeMap::new();
    for (module, code) in &sources {
        // `pub use child::{A, B}` in a module file: A and B live in `child`.
        for line in code.split(';') {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("pub use ") {
                for (_, path) in paths(&format!("super::{rest}")) {
                    if let (Some(child), Some(name)) = (path.first(), path.last()) {
                        let mut child_path = module.clone();
                        child_path.push(child.clone());
                        if modules.contains(&child_path) {
                            reexports.insert((module.clone(), name.clone()), child.clone());
                        }
                    }
                }
            }
        }
        // `super` of `data::pipeline` (data/pipeline.rs) is `data`, of `data` (data/mod.rs) the root.
        let parent: ModPath = module[..module.len().saturating_sub(1)].to_vec();
        let absolute = paths(code)
            .into_iter()
            .map(|(is_crate, rel)| if is_crate { rel } else { parent.iter().cloned().chain(rel).collect() })
            .collect();
        references.insert(module.clone(), absolute);
    }
    Crate { modules, reexports, references }
}

impl Crate {
    /// The deepest module an absolute path lands in, following re-exports of a module's names.
    fn target(&self, path: &[String]) -> ModPath {
        let mut module: ModPath = Vec::new();
        for segment in path {
            let mut next = module.clone();
            next.push(segment.clone());
            if self.modules.contains(&next) {
                module = next;
            } else if let Some(child) = self.reexports.get(&(module.clone(), segment.clone())) {
                module.push(child.clone());
            } else {
                break;
            }
        }
        module
    }

    /// Edges between the children of `parent`: child a -> child b when a file in a references b.
    fn edges(&self, parent: &[String]) -> BTreeMap<String, BTreeSet<String>> {
        let child_at = |m: &ModPath| (m.len() > parent.len() && m.starts_with(parent)).then(|| m[parent.len()].clone());
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (file, refs) in &self.references {
            let Some(from) = child_at(file) else { continue };
            for r in refs {
                if let Some(to) = child_at(&self.target(r)) {
                    if to != from {
                        edges.entry(from.clone()).or_default().insert(to);
                    }
                }
            }
        }
        edges
    }
}

/// A cycle in `edges`, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(n: &str, edges: &BTreeMap<String, BTreeSet<String>>, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn modules_import_each_other_without_cycles() {
    let krate = read_crate();
    let parents: BTreeSet<ModPath> = krate.modules.iter().map(|m| m[..m.len().saturating_sub(1)].to_vec()).collect();
    let cycles: Vec<String> = parents
        .iter()
        .filter_map(|p| cycle(&krate.edges(p)).map(|c| format!("in crate::{}: {}", p.join("::"), c.join(" -> "))))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_references() {
    // Guards the test above against reading nothing: known one-way imports must show up.
    let krate = read_crate();
    let top = krate.edges(&[]);
    assert!(top.get("train").is_some_and(|t| t.contains("model") && t.contains("data")), "{top:?}");
    let data = krate.edges(&["data".to_string()]);
    assert!(data.get("preprocess").is_some_and(|t| t.contains("jpeg")), "{data:?}");
    let engine = krate.edges(&["engine".to_string()]);
    assert!(!engine.is_empty(), "{engine:?}");
}
