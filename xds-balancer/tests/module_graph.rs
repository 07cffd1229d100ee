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

#[test]
fn modules_depend_on_each_other_one_way() {
    tests::module_graph::assert_layered(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &LAYERS,
        "pool",
    );
}
