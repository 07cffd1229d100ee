//! Errors of setting up a channel. Failed calls are `tonic::Status`es,
//! made at the call boundary ([`crate::Channel`]).

use crate::bootstrap::BootstrapError;
use crate::target::TargetError;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a channel could not be built.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target is malformed.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The xDS bootstrap could not be used.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// Neither a control plane nor a bootstrap was given.
    #[error(
        "no control plane: give its address (e.g. http://control-plane:18000), or set \
         GRPC_XDS_BOOTSTRAP to a bootstrap file (or GRPC_XDS_BOOTSTRAP_CONFIG to its contents)"
    )]
    NoControlPlane,
    /// The control plane address is malformed.
    #[error("{uri:?} is not a valid control plane address (expected http://host:port): {reason}")]
    ControlPlaneUri {
        /// The address given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The first connection to the control plane failed.
    #[error("cannot reach the control plane at {uri}: {reason}")]
    ControlPlaneUnreachable {
        /// The control plane's address.
        uri: String,
        /// The connection error.
        reason: String,
    },
    /// The address answers gRPC, but not the xDS ADS service: another
    /// server's port, such as a backend's.
    #[error(
        "the server at {uri} does not implement xDS ADS (it answered the discovery stream with \
         UNIMPLEMENTED); is this the control plane's port (18000)?"
    )]
    NotAds {
        /// The control plane's address.
        uri: String,
    },
    /// Not called within a Tokio runtime.
    #[error("the channel needs a Tokio runtime: build it from within one")]
    NoRuntime,
}

/// An error and its sources, as one line: each cause is appended after a
/// colon unless the text already contains it (many errors repeat their
/// source in their own message).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
