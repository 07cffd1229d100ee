//! The static source: services given on the command line.
//!
//! `--static <service>[:<port>]=<host:port>[,<host:port>...]` (repeatable)
//! defines a service whose Service port is `<port>` (default 80) and whose
//! endpoints are the listed addresses, served as ready.

use std::net::SocketAddr;

use crate::model::{Endpoint, Service, ServicePort};
use crate::source::{SourceHandle, SourceState};

/// Service port of a `--static` service given without one.
pub const DEFAULT_SERVICE_PORT: u16 = 80;

/// Command-line options of the static source.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StaticArgs {
    /// A service and its endpoints: `<service>[:<port>]=<host:port>[,<host:port>...]`.
    /// Repeatable. The Service port defaults to 80; endpoints are dialled at
    /// their own host:port (like a targetPort).
    #[arg(long = "static", value_name = "SERVICE=ENDPOINTS")]
    pub services: Vec<String>,
}

/// Errors in static source options.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--static` value is malformed.
    #[error("invalid --static {value:?}: {reason}")]
    InvalidFlag {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses one `--static` value.
pub fn parse_flag(value: &str, namespace: &str) -> Result<Service, Error> {
    let invalid = |reason: &str| Error::InvalidFlag {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let (head, endpoints) = value
        .split_once('=')
        .ok_or_else(|| invalid("expected <service>[:<port>]=<host:port>[,...]"))?;
    let (name, port) = match head.split_once(':') {
        Some((name, port)) => (
            name,
            port.parse::<u16>()
                .map_err(|_| invalid("the service port must be a number from 1 to 65535"))?,
        ),
        None => (head, DEFAULT_SERVICE_PORT),
    };
    let endpoints = endpoints
        .split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<SocketAddr>()
                .map(Endpoint::ready)
                .map_err(|_| invalid(&format!("{e:?} is not an IP:port address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Service {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        ports: vec![ServicePort {
            name: None,
            port,
            endpoints,
        }],
    })
}

/// Publishes the `--static` services and returns.
pub async fn run(args: StaticArgs, handle: SourceHandle) -> Result<(), Error> {
    let services = args
        .services
        .iter()
        .map(|value| parse_flag(value, handle.namespace()))
        .collect::<Result<Vec<_>, _>>()?;
    let count = services.len();
    let rejected = handle.replace_all(services, format!("loaded {count} --static services"));
    if let Some(rejected) = rejected.into_iter().next() {
        return Err(Error::InvalidFlag {
            value: rejected.name,
            reason: rejected.error.to_string(),
        });
    }
    handle.set_state(SourceState::Connected, None);
    Ok(())
}
