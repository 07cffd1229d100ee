//! The control plane: watches service endpoints and serves them over xDS (work in progress).
