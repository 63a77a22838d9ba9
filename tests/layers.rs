//! The crate reads top to bottom: no top-level module of `src/` reaches, through `crate::`
//! paths, a module that reaches back to it. This test reads the sources (comments skipped),
//! builds the graph of top-level modules, and fails naming the first cycle it finds.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// The top-level module a file of `src/` belongs to (`src/db/messages.rs` → `db`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The source without comments (line comments, doc comments and block comments), so that a
/// doc link to a module is not counted as using it.
fn code_only(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            // A string: kept as it is, escapes included.
            '"' => {
                out.push('"');
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        out.push(c[i]);
                        i += 1;
                    }
                    if i < c.len() {
                        out.push(c[i]);
                    }
                    i += 1;
                }
                out.push('"');
                i += 1;
            }
            // A char literal such as '"', '\'' or '\\' (not a lifetime).
            '\'' if c.get(i + 1) == Some(&'\\') => {
                i = (i + 3..c.len()).find(|&k| c[k] == '\'').unwrap_or(c.len()) + 1;
            }
            '\'' if c.get(i + 2) == Some(&'\'') => i += 3,
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

/// Top-level modules named after `crate::` in `code`, including those inside `use crate::{…}`
/// groups (only the group's first level).
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group at commas of depth 0.
            let mut depth = 0;
            let mut item_start = 0;
            let bytes: Vec<char> = group.chars().collect();
            let mut items = Vec::new();
            for (i, c) in bytes.iter().enumerate() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(bytes[item_start..i].iter().collect::<String>());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(bytes[item_start..i].iter().collect::<String>());
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
            for item in items {
                let name = ident(item.trim());
                if !name.is_empty() && name != "self" {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = module_of(rel);
        if module == "lib" || module == "main" {
            continue;
        }
        let code = code_only(&fs::read_to_string(&file).unwrap());
        let entry = edges.entry(module.clone()).or_default();
        for used in used_modules(&code) {
            if used != module {
                entry.insert(used);
            }
        }
    }
    let known: BTreeSet<String> = edges.keys().cloned().collect();
    for targets in edges.values_mut() {
        targets.retain(|t| known.contains(t));
    }
    edges
}

/// A cycle through the graph, as a list of modules, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match marks.get(next.as_str()) {
                Some(Mark::Open) => {
                    let start = path.iter().position(|p| p == next).unwrap();
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, marks, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if !marks.contains_key(node.as_str())
            && let Some(cycle) = visit(node, edges, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

/// No two top-level modules import each other, directly or through others.
#[test]
fn top_level_modules_form_no_cycle() {
    let edges = graph();
    assert!(edges.len() > 5, "the sources were found: {edges:?}");
    if let Some(cycle) = find_cycle(&edges) {
        panic!(
            "import cycle between top-level modules: {}\nfull graph: {edges:#?}",
            cycle.join(" -> ")
        );
    }
}

/// The checker itself sees a cycle, and ignores comments.
#[test]
fn the_checker_finds_a_cycle_and_skips_comments() {
    let code = code_only(
        "use crate::{a::X, b};\n/// see crate::c\nfn f() { let q = ['\"', '\\\\', '\\'']; crate::d::g(); } /* crate::e */ // crate::f",
    );
    assert_eq!(
        used_modules(&code),
        ["a", "b", "d"].iter().map(|s| s.to_string()).collect()
    );
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    edges.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
    edges.get_mut("c").unwrap().clear();
    assert!(find_cycle(&edges).is_none());
}
