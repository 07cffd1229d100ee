//! The control plane's modules depend on each other one way, along the data
//! path: the model and its vocabulary at the bottom, then the store, the
//! sources writing into it, the xDS side serving it, and the status API,
//! the server and the command line on top.

use std::path::Path;

/// Each layer may use only the layers before it (and itself).
const LAYERS: [&[&str]; 9] = [
    &["model", "kinds"],
    &["names", "routes"],
    &["store"],
    &["metrics"],
    &["source"],
    &["xds"],
    &["status"],
    &["server"],
    &["cli"],
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
    assert!(graph.contains_key("store"), "read the sources: {graph:?}");
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
