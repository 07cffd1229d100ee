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

#[test]
fn modules_depend_on_each_other_one_way() {
    tests::module_graph::assert_layered(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &LAYERS,
        "store",
    );
}
