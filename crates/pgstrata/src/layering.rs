//! The layering of the crate, checked: every module may use the modules of its own layer and of the layers below,
//! never one above (see ARCHITECTURE.md). The test reads the source files, collects the `crate::…` and `super::…`
//! paths outside comments, and fails naming each upward reference; import cycles must stay inside one layer and
//! span at most [`MAX_CYCLE`] modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest import cycle allowed (it must also stay inside one layer).
const MAX_CYCLE: usize = 6;

/// The layers, lowest first: (top-level module, rank). A module may use a lower rank, or its own top-level module.
const LAYERS: &[(&str, u8)] = &[
    ("report", 0),
    ("order", 0),
    ("error", 1),
    ("observe", 1),
    ("source", 2),
    ("db", 3),
    ("decide", 4),
    ("run", 5),
    ("export", 5),
];

/// A source file as a module: its path in the crate (`["decide", "plan"]`) and its text without comments.
struct Module {
    path: Vec<String>,
    file: PathBuf,
    code: String,
}

fn rank(top: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, r)| *r)
}

/// Whether a module of layer `from` may use layer `to`.
fn allowed(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    match (rank(from), rank(to)) {
        (Some(f), Some(t)) => t < f,
        // The crate root (lib.rs) re-exports from every layer; nothing may use the root.
        (None, _) => true,
        (Some(_), None) => false,
    }
}

fn modules() -> Vec<Module> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Module>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(root, &path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap();
        let mut segments: Vec<String> = rel
            .iter()
            .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if segments.last().is_some_and(|s| s == "mod" || s == "lib") {
            segments.pop();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        out.push(Module {
            path: segments,
            file: rel.to_path_buf(),
            code: without_comments(&text),
        });
    }
}

/// The text without comments (comment lines, and trailing ` // …` outside string literals). Test modules are
/// checked like the rest.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("//") {
                ""
            } else {
                match l.find(" // ") {
                    Some(i) if !l[..i].contains('"') => &l[..i],
                    _ => l,
                }
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path the module refers to, resolved to a path from the crate root (`crate::a::b`, `super::x`, and
/// `use child::…` of its own submodules).
fn references(m: &Module, children: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let code = &m.code;
    let bytes = code.as_bytes();
    for (start, prefix) in [("crate::", 0usize), ("super::", 1)] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            // Part of a longer identifier (`my_crate::`)?
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let mut base: Vec<String> = if prefix == 0 {
                Vec::new()
            } else {
                // `super` of a file module is its parent; count every further `super::`.
                let mut b = m.path.clone();
                b.pop();
                b
            };
            let mut rest = &code[from..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            let path = segments(rest);
            if path.is_empty() {
                continue;
            }
            base.extend(path);
            out.push(base);
        }
    }
    // `use child::…;` in a module with submodules.
    for line in code.lines() {
        let t = line.trim_start();
        let t = t.strip_prefix("pub ").unwrap_or(t);
        let t = t.strip_prefix("pub(crate) ").unwrap_or(t);
        if let Some(rest) = t.strip_prefix("use ") {
            let path = segments(rest);
            let mut full = m.path.clone();
            full.extend(path.iter().cloned());
            if path.first().is_some_and(|first| {
                children.iter().any(|c| {
                    c.len() == m.path.len() + 1 && c.starts_with(&m.path) && c.last() == Some(first)
                })
            }) {
                out.push(full);
            }
        }
    }
    out
}

/// The leading `a::b::c` of a path (stops at `{`, `(`, `;`, whitespace, …; keeps only lower-case segments, the
/// module part).
fn segments(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..end];
        if word.is_empty() {
            break;
        }
        out.push(word.to_string());
        match rest[end..].strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out
}

/// The module a referenced path lands in: its longest prefix that is a module of the crate.
fn owner<'a>(path: &[String], modules: &'a [Module]) -> Option<&'a Module> {
    (1..=path.len())
        .rev()
        .find_map(|n| modules.iter().find(|m| m.path == path[..n]))
}

fn top(m: &Module) -> &str {
    m.path.first().map_or("", String::as_str)
}

#[test]
fn no_module_uses_a_higher_layer() {
    let modules = modules();
    let paths: Vec<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let mut upward = Vec::new();
    for m in &modules {
        if top(m) == "layering" {
            continue;
        }
        for r in references(m, &paths) {
            let Some(target) = r.first() else { continue };
            let target_top = target.as_str();
            let from = top(m);
            if from.is_empty() {
                continue;
            }
            let export_to_run = from == "export" && target_top == "run";
            if !allowed(from, target_top) || export_to_run {
                upward.push(format!("{} uses crate::{}", m.file.display(), r.join("::")));
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "upward imports (allowed: report/order ← error/observe ← source ← db ← decide ← run; export may use \
         anything but run):\n  {}",
        upward.join("\n  ")
    );
}

#[test]
fn import_cycles_stay_small_and_inside_one_layer() {
    let modules = modules();
    let paths: Vec<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let index: BTreeMap<&Vec<String>, usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (&m.path, i))
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); modules.len()];
    for (i, m) in modules.iter().enumerate() {
        // The crate root re-exports from everywhere and is used by nothing.
        if m.path.is_empty() {
            continue;
        }
        for r in references(m, &paths) {
            if let Some(target) = owner(&r, &modules) {
                let j = index[&target.path];
                if j != i && !edges[i].contains(&j) {
                    edges[i].push(j);
                }
            }
        }
        edges[i].sort_unstable();
    }
    let mut problems = Vec::new();
    for component in crate::order::components(&edges) {
        if component.len() < 2 {
            continue;
        }
        let names: Vec<String> = component
            .iter()
            .map(|&i| modules[i].path.join("::"))
            .collect();
        let layers: Vec<&str> = component.iter().map(|&i| top(&modules[i])).collect();
        eprintln!("import cycle: {}", names.join(" ↔ "));
        if component.len() > MAX_CYCLE || layers.iter().any(|l| *l != layers[0]) {
            problems.push(names.join(" ↔ "));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles across layers or of more than {MAX_CYCLE} modules:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_checker_sees_paths() {
    let m = Module {
        path: vec!["decide".into(), "plan".into()],
        file: PathBuf::from("decide/plan.rs"),
        code: without_comments(
            "//! see crate::run::up\nuse crate::db::history::{self, X};\nfn f() { super::lint::g(); crate::run::up::up(); }",
        ),
    };
    let refs: Vec<String> = references(&m, &[]).iter().map(|r| r.join("::")).collect();
    assert_eq!(refs, ["db::history", "run::up::up", "decide::lint::g"]);
    assert!(allowed("run", "decide") && !allowed("decide", "run") && !allowed("report", "error"));
}
