//! The client's own model of discovery results, apart from the xDS wire
//! types: the xDS client converts into it in one place, the connection pool
//! and the picker only ever see these types.

use std::net::SocketAddr;
use std::sync::Arc;

/// An endpoint (a pod) of the target service, as the control plane
/// describes it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address and port to connect to.
    pub addr: SocketAddr,
    /// Instance name (the pod name), empty when the control plane gave none.
    pub hostname: String,
    /// Zone of the endpoint's locality, empty when unknown.
    pub zone: String,
    /// Whether it may take calls.
    pub health: EndpointHealth,
}

impl Endpoint {
    /// `hostname (addr)`, or just the address when there is no host name.
    pub fn label(&self) -> String {
        label(&self.hostname, self.addr)
    }
}

/// `hostname (addr)`, or `addr` alone.
pub(crate) fn label(hostname: &str, addr: SocketAddr) -> String {
    if hostname.is_empty() {
        addr.to_string()
    } else {
        format!("{hostname} ({addr})")
    }
}

/// What the control plane says about an endpoint's readiness.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointHealth {
    /// Ready: takes calls (xDS HEALTHY or UNKNOWN).
    Healthy,
    /// Terminating but still serving: takes no new calls, its in-flight
    /// calls finish (xDS DRAINING).
    Draining,
    /// Not ready: takes no calls (xDS UNHEALTHY, TIMEOUT, DEGRADED).
    NotReady,
}

/// How far the Listener → RouteConfiguration → Cluster →
/// ClusterLoadAssignment chain for the target is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Still waiting for a resource, e.g. `listener "greeter"`.
    Waiting(String),
    /// The control plane says a resource does not exist, e.g.
    /// `listener "greeter"`.
    DoesNotExist(String),
    /// The resources exist but cannot be used by this client (the reason).
    Unusable(String),
    /// Fully resolved.
    Endpoints {
        /// The cluster the route leads to.
        cluster: String,
        /// Its endpoints, in the control plane's order.
        endpoints: Arc<[Endpoint]>,
    },
}

/// TLS to a cluster's endpoints, as its Cluster's `transport_socket` says
/// (gRPC A29): certificate provider instances of the bootstrap, and the
/// SAN matchers a server certificate must satisfy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct UpstreamTls {
    /// The provider instance of the client's certificate and key, when the
    /// client presents one.
    pub(crate) identity: Option<String>,
    /// The provider instance of the root CAs.
    pub(crate) roots: String,
    /// A server certificate must have a SAN one of these accepts; an empty
    /// list accepts any certificate that chains to the roots.
    pub(crate) san_matchers: Vec<SanMatch>,
    /// The server name to send (SNI), when the Cluster sets one.
    pub(crate) sni: Option<String>,
}

/// One SAN matcher of a Cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SanMatch {
    pub(crate) pattern: SanPattern,
    pub(crate) ignore_case: bool,
}

/// How a SAN is compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum SanPattern {
    /// The whole SAN, by DNS rules: case-insensitive, and a certificate's
    /// `*.example.com` covers `a.example.com` (as gRPC's clients compare).
    Exact(String),
    /// The SAN starts with this.
    Prefix(String),
    /// The SAN ends with this.
    Suffix(String),
    /// The SAN contains this.
    Contains(String),
}

impl SanMatch {
    /// Whether the certificate SAN `san` satisfies this matcher.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "used by the pool's TLS connector")
    )]
    pub(crate) fn matches(&self, san: &str) -> bool {
        let fold = |s: &str| {
            if self.ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        };
        match &self.pattern {
            SanPattern::Exact(expected) => {
                san.eq_ignore_ascii_case(expected) || wildcard_covers(san, expected)
            }
            SanPattern::Prefix(prefix) => fold(san).starts_with(&fold(prefix)),
            SanPattern::Suffix(suffix) => fold(san).ends_with(&fold(suffix)),
            SanPattern::Contains(part) => fold(san).contains(&fold(part)),
        }
    }
}

impl std::fmt::Display for SanMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, value) = match &self.pattern {
            SanPattern::Exact(v) => ("exact", v),
            SanPattern::Prefix(v) => ("prefix", v),
            SanPattern::Suffix(v) => ("suffix", v),
            SanPattern::Contains(v) => ("contains", v),
        };
        write!(f, "{kind} {value:?}")?;
        if self.ignore_case {
            f.write_str(" (any case)")?;
        }
        Ok(())
    }
}

/// Whether a certificate's wildcard SAN (`*.example.com`) covers `name`
/// (`a.example.com`: one label).
fn wildcard_covers(cert_san: &str, name: &str) -> bool {
    let Some(suffix) = cert_san.strip_prefix("*.") else {
        return false;
    };
    match name.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(pattern: SanPattern, ignore_case: bool) -> SanMatch {
        SanMatch {
            pattern,
            ignore_case,
        }
    }

    #[test]
    fn san_matchers_compare_as_grpc_does() {
        let exact = matcher(
            SanPattern::Exact("greeter.bars.svc.cluster.local".into()),
            false,
        );
        assert!(
            exact.matches("Greeter.Bars.svc.cluster.local"),
            "DNS rules: any case"
        );
        assert!(
            exact.matches("*.bars.svc.cluster.local"),
            "a wildcard certificate"
        );
        assert!(!exact.matches("*.svc.cluster.local"), "one label only");
        assert!(!exact.matches("other.bars.svc.cluster.local"));
        let prefix = matcher(
            SanPattern::Prefix("spiffe://cluster.local/ns/bars/".into()),
            false,
        );
        assert!(prefix.matches("spiffe://cluster.local/ns/bars/sa/greeter"));
        assert!(!prefix.matches("SPIFFE://cluster.local/ns/bars/sa/greeter"));
        let any_case = matcher(SanPattern::Prefix("SPIFFE://".into()), true);
        assert!(any_case.matches("spiffe://cluster.local/ns/bars/sa/greeter"));
        let suffix = matcher(SanPattern::Suffix("/sa/greeter".into()), false);
        assert!(suffix.matches("spiffe://cluster.local/ns/bars/sa/greeter"));
        assert!(!suffix.matches("spiffe://cluster.local/ns/bars/sa/other"));
        let contains = matcher(SanPattern::Contains("/ns/bars/".into()), false);
        assert!(contains.matches("spiffe://cluster.local/ns/bars/sa/greeter"));
        assert!(!contains.matches("spiffe://cluster.local/ns/foo/sa/greeter"));
        assert_eq!(any_case.to_string(), "prefix \"SPIFFE://\" (any case)");
    }
}
