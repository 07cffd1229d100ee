//! The service a channel balances over, as the user names it.
//!
//! Accepted forms, like gRPC's xDS resolver: `xds:///<name>` and the bare
//! `<name>`, where `<name>` is `host` or `host:port` and the port is a number
//! or a Kubernetes port name. The whole `<name>` is the Listener requested from
//! the control plane and the authority (`:authority`) of every call; the
//! virtual host of the route configuration is chosen by matching it the way
//! gRPC does.

use std::fmt;
use std::str::FromStr;

/// Why a target string was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Nothing to resolve.
    #[error("the target is empty; expected `xds:///<service>[:<port>]` or `<service>[:<port>]`")]
    Empty,
    /// A URI scheme other than `xds`.
    #[error(
        "target {target:?} uses the scheme {scheme:?}; only `xds:///<service>[:<port>]` and \
         `<service>[:<port>]` are supported"
    )]
    UnsupportedScheme {
        /// The target as given.
        target: String,
        /// Its scheme.
        scheme: String,
    },
    /// `xds://authority/name`: federation authorities are not supported.
    #[error(
        "target {target:?} names the xDS authority {authority:?}; write `xds:///<service>` (three \
         slashes) and give the control plane separately"
    )]
    Authority {
        /// The target as given.
        target: String,
        /// The authority found.
        authority: String,
    },
    /// The host part is not a DNS-style name.
    #[error(
        "target {target:?}: {host:?} is not a valid service name (letters, digits, '-' and '.', \
         not starting or ending with '.' or '-')"
    )]
    BadHost {
        /// The target as given.
        target: String,
        /// The host part.
        host: String,
    },
    /// The port part is neither a number in 1..=65535 nor a port name.
    #[error(
        "target {target:?}: {port:?} is not a port (a number from 1 to 65535, or a port name of \
         at most 15 lowercase letters, digits and '-')"
    )]
    BadPort {
        /// The target as given.
        target: String,
        /// The port part.
        port: String,
    },
}

/// A parsed target: the Listener name to ask for, which is also the
/// authority of every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    name: String,
    host_len: usize,
}

impl Target {
    /// Parses `xds:///name[:port]` or `name[:port]`.
    pub fn parse(target: &str) -> Result<Self, TargetError> {
        let trimmed = target.trim();
        if trimmed.is_empty() {
            return Err(TargetError::Empty);
        }
        let name = match trimmed.split_once("://") {
            None => trimmed,
            Some((scheme, rest)) => {
                if !scheme.eq_ignore_ascii_case("xds") {
                    return Err(TargetError::UnsupportedScheme {
                        target: target.to_owned(),
                        scheme: scheme.to_owned(),
                    });
                }
                match rest.strip_prefix('/') {
                    Some(name) => name,
                    None => {
                        let authority = rest.split('/').next().unwrap_or_default();
                        return Err(TargetError::Authority {
                            target: target.to_owned(),
                            authority: authority.to_owned(),
                        });
                    }
                }
            }
        };
        if name.is_empty() {
            return Err(TargetError::Empty);
        }
        let (host, port) = match name.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (name, None),
        };
        if !valid_host(host) {
            return Err(TargetError::BadHost {
                target: target.to_owned(),
                host: host.to_owned(),
            });
        }
        if let Some(port) = port
            && !valid_port(port)
        {
            return Err(TargetError::BadPort {
                target: target.to_owned(),
                port: port.to_owned(),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            host_len: host.len(),
        })
    }

    /// The Listener name, e.g. `greeter` or `greeter:80`: also the
    /// `:authority` of calls and the host matched against virtual hosts.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service part, without the port.
    pub fn host(&self) -> &str {
        &self.name[..self.host_len]
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-'])
}

fn valid_port(port: &str) -> bool {
    if port.bytes().all(|b| b.is_ascii_digit()) {
        return matches!(port.parse::<u32>(), Ok(1..=65535));
    }
    port.len() <= 15
        && port
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && port.bytes().any(|b| b.is_ascii_lowercase())
        && !port.starts_with('-')
        && !port.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (input, name, host) in [
            ("xds:///greeter", "greeter", "greeter"),
            ("xds:///greeter:80", "greeter:80", "greeter"),
            ("greeter", "greeter", "greeter"),
            ("greeter:grpc", "greeter:grpc", "greeter"),
            (
                "greeter.default.svc.cluster.local:8080",
                "greeter.default.svc.cluster.local:8080",
                "greeter.default.svc.cluster.local",
            ),
            ("  XDS:///greeter  ", "greeter", "greeter"),
        ] {
            let target = Target::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(target.name(), name, "{input}");
            assert_eq!(target.host(), host, "{input}");
        }
    }

    #[test]
    fn refuses_malformed_targets_with_a_reason() {
        assert_eq!(Target::parse(""), Err(TargetError::Empty));
        assert_eq!(Target::parse("xds:///"), Err(TargetError::Empty));
        assert!(matches!(
            Target::parse("http://greeter:80"),
            Err(TargetError::UnsupportedScheme { scheme, .. }) if scheme == "http"
        ));
        assert!(matches!(
            Target::parse("xds://authority/greeter"),
            Err(TargetError::Authority { authority, .. }) if authority == "authority"
        ));
        for bad in ["gree ter", "-greeter", "greeter.", "gr_eeter", ":80"] {
            assert!(
                matches!(Target::parse(bad), Err(TargetError::BadHost { .. })),
                "{bad}"
            );
        }
        for bad in [
            "greeter:0",
            "greeter:65536",
            "greeter:",
            "greeter:Grpc",
            "greeter:a-very-long-port-name",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(TargetError::BadPort { .. })),
                "{bad}"
            );
        }
        let message = Target::parse("greeter:99999").unwrap_err().to_string();
        assert!(
            message.contains("99999") && message.contains("65535"),
            "{message}"
        );
    }
}
