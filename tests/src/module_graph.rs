//! The `use crate::` graph between a crate's top-level modules, for tests
//! that keep it one-way.
//!
//! A file belongs to the top-level module of its first path component
//! (`src/pool/conn.rs` to `pool`); every `crate::<module>` it names outside
//! comments is an edge. Edges inside one module, and to items of the crate
//! root, are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules it refers to.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// Reads the graph of the crate whose sources are under `src`.
pub fn read(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut files = vec![src.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read source folder") {
                files.push(entry.expect("folder entry").path());
            }
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).expect("under src");
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a file name");
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source file");
        let uses = graph.entry(module.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let preceded = code[..at].chars().next_back();
                let own_path =
                    !matches!(preceded, Some(c) if c.is_ascii_alphanumeric() || c == '_');
                if own_path && !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
    }
    // Items of the crate root (`crate::VERSION`) are not modules.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|name| modules.contains(name));
    }
    graph
}

/// A cycle in `graph`, as the modules along it, if there is one.
pub fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        graph: &Graph,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(graph, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

/// Panics unless the crate under `src` is one-way: no cycle, and each
/// module uses only modules of its own layer or the layers before it
/// (`layers` from the bottom up; a module in no layer is an error too).
/// `expected` is a module that must be found, proving the sources were read.
pub fn assert_layered(src: &Path, layers: &[&[&str]], expected: &str) {
    let graph = read(src);
    assert!(graph.contains_key(expected), "read the sources: {graph:?}");
    if let Some(cycle) = cycle(&graph) {
        panic!("the modules form a cycle: {}", cycle.join(" -> "));
    }
    let layer = |module: &str| {
        layers
            .iter()
            .position(|layer| layer.contains(&module))
            .unwrap_or_else(|| panic!("module {module} is in no layer: add it to the layers"))
    };
    for (module, uses) in &graph {
        for used in uses {
            assert!(
                layer(used) <= layer(module),
                "{module} uses {used}, a layer above it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges
            .iter()
            .map(|(from, to)| {
                (
                    (*from).to_owned(),
                    to.iter().map(|t| (*t).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn finds_a_cycle_and_only_a_cycle() {
        let one_way = graph(&[("a", &["b", "c"]), ("b", &["c"]), ("c", &[])]);
        assert_eq!(cycle(&one_way), None);
        let circle = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        assert_eq!(
            cycle(&circle),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
    }
}
