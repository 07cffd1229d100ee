//! Protocol definitions shared by the workspace.
//!
//! # Layout
//!
//! - [`greet`]: the `greet.Greeter` example service (server and client).
//! - [`controlplane::v1`]: the control plane's read-only status API.
//! - [`FILE_DESCRIPTOR_SET`]: descriptors of both, for server reflection.
//!
//! Code is generated at build time with a vendored `protoc`, so building
//! needs no system protobuf compiler.

/// The `greet.Greeter` example service.
pub mod greet {
    #![allow(missing_docs, unreachable_pub)]
    tonic::include_proto!("greet");
}

/// The control plane's own APIs.
pub mod controlplane {
    /// Version 1 of the status API.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub)]
        tonic::include_proto!("controlplane.v1");
    }
}

/// Encoded `FileDescriptorSet` of every proto in this crate, for
/// `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");

/// Largest `HelloRequest.name` the greeter-server accepts, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// Largest `HelloRequest.delay_ms` the greeter-server honours.
pub const MAX_DELAY_MS: u32 = 60_000;
