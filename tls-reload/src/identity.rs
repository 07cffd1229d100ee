//! Who a peer is, by the subject alternative names (SANs) of its
//! certificate, and the matchers that decide whether it is acceptable.

use std::fmt;

use rustls::pki_types::CertificateDer;

/// The identity a peer proved in a TLS handshake: its leaf certificate's
/// URI and DNS SANs and serial number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// URI SANs (SPIFFE IDs such as `spiffe://cluster.local/ns/a/sa/b`).
    pub uris: Vec<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// The certificate's serial number, as lowercase hex.
    pub serial: String,
}

impl PeerIdentity {
    /// The identity in a DER certificate; `None` if it does not parse.
    pub fn from_certificate(cert: &CertificateDer<'_>) -> Option<Self> {
        let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
        Some(Self {
            uris: parsed.valid_uri_names().map(str::to_owned).collect(),
            dns_names: parsed.valid_dns_names().map(str::to_owned).collect(),
            serial: hex(parsed.serial()),
        })
    }

    /// Every SAN, URIs first.
    pub fn sans(&self) -> impl Iterator<Item = &str> {
        self.uris.iter().chain(&self.dns_names).map(String::as_str)
    }

    /// The one name that stands for the peer: its first URI SAN, else its
    /// first DNS SAN.
    pub fn principal(&self) -> Option<&str> {
        self.uris
            .first()
            .or(self.dns_names.first())
            .map(String::as_str)
    }
}

impl fmt::Display for PeerIdentity {
    /// `[a, b]`, or `[] (no URI or DNS SAN)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sans: Vec<&str> = self.sans().collect();
        if sans.is_empty() {
            f.write_str("[] (no URI or DNS SAN)")
        } else {
            write!(f, "[{}]", sans.join(", "))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One rule a SAN may satisfy, as xDS `StringMatcher`s say it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SanMatcher {
    /// The whole SAN, compared as DNS names are (ASCII case-insensitive;
    /// a certificate's `*.example.com` covers `a.example.com`), as gRPC's
    /// clients compare `exact`.
    Exact(String),
    /// The SAN starts with this (case-sensitive).
    Prefix(String),
    /// The SAN ends with this (case-sensitive).
    Suffix(String),
    /// The SAN contains this (case-sensitive).
    Contains(String),
    /// The inner matcher, comparing ASCII case-insensitively (build it with
    /// [`SanMatcher::ignoring_case`]).
    IgnoreCase(Box<SanMatcher>),
}

impl SanMatcher {
    /// Parses an allow-list pattern: a trailing `*` makes a prefix match,
    /// anything else an exact one.
    pub fn from_pattern(pattern: &str) -> Self {
        match pattern.strip_suffix('*') {
            Some(prefix) => Self::Prefix(prefix.to_owned()),
            None => Self::Exact(pattern.to_owned()),
        }
    }

    /// `matcher`, comparing ASCII case-insensitively (xDS `ignore_case`).
    pub fn ignoring_case(matcher: SanMatcher) -> Self {
        let lower = |value: String| value.to_ascii_lowercase();
        Self::IgnoreCase(Box::new(match matcher {
            Self::Exact(value) => Self::Exact(lower(value)),
            Self::Prefix(value) => Self::Prefix(lower(value)),
            Self::Suffix(value) => Self::Suffix(lower(value)),
            Self::Contains(value) => Self::Contains(lower(value)),
            Self::IgnoreCase(inner) => return Self::IgnoreCase(inner),
        }))
    }

    /// Whether `san` satisfies this rule.
    pub fn matches(&self, san: &str) -> bool {
        match self {
            Self::Exact(expected) => {
                san.eq_ignore_ascii_case(expected) || wildcard_covers(san, expected)
            }
            Self::Prefix(prefix) => san.starts_with(prefix.as_str()),
            Self::Suffix(suffix) => san.ends_with(suffix.as_str()),
            Self::Contains(part) => san.contains(part.as_str()),
            Self::IgnoreCase(inner) => inner.matches(&san.to_ascii_lowercase()),
        }
    }

    /// Whether any of `matchers` accepts any SAN of `identity`; an empty
    /// list accepts everything.
    pub fn any_accepts(matchers: &[SanMatcher], identity: &PeerIdentity) -> bool {
        matchers.is_empty()
            || identity
                .sans()
                .any(|san| matchers.iter().any(|matcher| matcher.matches(san)))
    }
}

impl fmt::Display for SanMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(value) => write!(f, "{value}"),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Suffix(suffix) => write!(f, "*{suffix}"),
            Self::Contains(part) => write!(f, "*{part}*"),
            Self::IgnoreCase(inner) => write!(f, "{inner} (any case)"),
        }
    }
}

/// Whether a certificate's wildcard DNS SAN (`*.example.com`) covers
/// `name` (`a.example.com`, one label).
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

    #[test]
    fn patterns_and_matching() {
        let spiffe = SanMatcher::from_pattern("spiffe://cluster.local/ns/team-a/*");
        assert_eq!(
            spiffe,
            SanMatcher::Prefix("spiffe://cluster.local/ns/team-a/".into())
        );
        assert!(spiffe.matches("spiffe://cluster.local/ns/team-a/sa/x"));
        assert!(!spiffe.matches("spiffe://cluster.local/ns/team-b/sa/x"));
        let exact = SanMatcher::from_pattern("greeter.bars.svc.cluster.local");
        assert!(exact.matches("Greeter.Bars.svc.cluster.local"));
        assert!(exact.matches("*.bars.svc.cluster.local"));
        assert!(!exact.matches("other.bars.svc.cluster.local"));
        assert!(!exact.matches("*.svc.cluster.local"));
        assert_eq!(spiffe.to_string(), "spiffe://cluster.local/ns/team-a/*");
    }

    #[test]
    fn suffix_contains_and_any_case_as_xds_string_matchers() {
        let san = "spiffe://cluster.local/ns/bars/sa/greeter";
        assert!(SanMatcher::Suffix("/sa/greeter".into()).matches(san));
        assert!(!SanMatcher::Suffix("/sa/other".into()).matches(san));
        assert!(SanMatcher::Contains("/ns/bars/".into()).matches(san));
        assert!(!SanMatcher::Contains("/ns/foo/".into()).matches(san));
        assert!(!SanMatcher::Prefix("SPIFFE://".into()).matches(san));
        let any_case = SanMatcher::ignoring_case(SanMatcher::Prefix("SPIFFE://".into()));
        assert!(any_case.matches(san));
        assert!(any_case.matches("Spiffe://x"));
        assert_eq!(any_case.to_string(), "spiffe://* (any case)");
        assert_eq!(SanMatcher::Contains("/ns/".into()).to_string(), "*/ns/*");
    }

    #[test]
    fn an_empty_list_accepts_anyone_and_principal_prefers_uris() {
        let identity = PeerIdentity {
            uris: vec!["spiffe://x/a".into()],
            dns_names: vec!["a.example".into()],
            serial: "01".into(),
        };
        assert!(SanMatcher::any_accepts(&[], &identity));
        assert!(SanMatcher::any_accepts(
            &[SanMatcher::Exact("a.example".into())],
            &identity
        ));
        assert!(!SanMatcher::any_accepts(
            &[SanMatcher::Exact("b.example".into())],
            &identity
        ));
        assert_eq!(identity.principal(), Some("spiffe://x/a"));
        assert_eq!(identity.to_string(), "[spiffe://x/a, a.example]");
        assert_eq!(
            PeerIdentity::default().to_string(),
            "[] (no URI or DNS SAN)"
        );
    }
}
