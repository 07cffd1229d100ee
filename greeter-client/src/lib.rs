//! Client library: xDS-fed round-robin channel (work in progress).
