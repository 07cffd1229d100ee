//! The library's modules depend on each other one way: its own types at the
//! bottom, then discovery, the connection pool, the router over pools,
//! calls, the channel, and the builder that wires them together.

use std::path::Path;

/// Each layer may use only the layers before it (and itself).
const LAYERS: [&[&str]; 8] = [
    &[
        "backoff",
        "bootstrap",
        "error",
        "frames",
        "model",
        "options",
        "routing",
        "sniff",
        "target",
        "unavailable",
        "view",
    ],
    &["xds", "fuzzing"],
    &["pool"],
    &["router"],
    &["body"],
    &["call"],
    &["channel"],
    &["builder"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module {module} is in no layer: add it to LAYERS"))
}

#[test]
fn modules_depend_on_each_other_one_way() {
    let graph = tests::module_graph::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.contains_key("pool"), "read the sources: {graph:?}");
    if let Some(cycle) = tests::module_graph::cycle(&graph) {
        panic!("the modules form a cycle: {}", cycle.join(" -> "));
    }
    for (module, uses) in &graph {
        for used in uses {
            assert!(
                layer(used) <= layer(module),
                "{module} uses {used}, a layer above it"
            );
        }
    }
}
