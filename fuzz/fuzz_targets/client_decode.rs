//! The client's handling of what a control plane sends: resource
//! validation (the xDS decode of arbitrary bytes as each resource type,
//! wrapped or not) and the client session fed arbitrary responses.
//!
//! Input: the first byte picks the mode. Below 0x80: the low three bits
//! pick the resource type and wrapping (see
//! `xds_balancer::fuzzing::decode_resource`), the rest of the input is the
//! resource's bytes. From 0x80: the rest is a sequence of responses, each
//! a 2-byte big-endian length and that many bytes of a
//! `DiscoveryResponse`, fed to one client session in order.
//!
//! What must hold: no panic, no abort, no hang; a decoded resource has a
//! name or an error says why.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode < 0x80 {
        let _ = xds_balancer::fuzzing::decode_resource(mode, rest);
        return;
    }
    let mut responses = Vec::new();
    let mut input = rest;
    while input.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
        let end = (2 + len).min(input.len());
        responses.push(&input[2..end]);
        input = &input[end..];
    }
    xds_balancer::fuzzing::feed_responses(responses);
});
