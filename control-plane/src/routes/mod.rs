//! Traffic routes: the control plane's own form of a Gateway API
//! `GRPCRoute` attached to Services (GAMMA, the mesh profile), and how a set
//! of them turns into one route table per Service port.
//!
//! # Design
//!
//! Sources (the static file's `routes:`, Kubernetes `GRPCRoute`s) convert
//! their input into [`TrafficRoute`]s, noting what they could not express
//! in [`TrafficRoute::problems`]. [`resolve()`] then decides, against the
//! Services currently served, which routes are in force: a route that
//! cannot be honoured as written (a problem, a backend Service or port that
//! does not exist, a rule that sends nowhere) is refused whole, never half
//! applied, and the Services it names keep their default route. The
//! result is a [`RouteTable`] per Service port that has routes in force,
//! and a [`RouteStatus`] per route for the status API.
//!
//! Semantics followed (Gateway API `GRPCRoute` v1 and GEP-1426):
//! - A route attaches to the Services its `parentRefs` name (kind Service,
//!   this namespace), to one port when the parent names a port, else to
//!   every port. A route attached to a Service port *replaces* its default
//!   route: a call that matches no rule is not routed (gRPC clients fail it
//!   with UNAVAILABLE).
//! - Matches of one rule are alternatives; a rule without matches matches
//!   every call. Precedence across all routes of one Service port: the
//!   longest service name, then the longest method name, then the most
//!   header matches; ties go to the oldest route, then the route first by
//!   name, then the earlier rule and match.
//! - Each rule's backends share its calls by weight; a backend of weight 0
//!   gets none (but must still exist).

mod resolve;

#[cfg(test)]
mod tests;

pub use resolve::{Resolution, resolve};

/// Longest service or method name accepted in a match (the Gateway API's
/// own limit).
pub const MAX_NAME_LEN: usize = 1024;

/// A route attached to Services of the namespace: the `GRPCRoute`
/// equivalent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrafficRoute {
    /// The route's name, unique among routes.
    pub name: String,
    /// Precedence between routes whose matches tie: lower first (a
    /// creation time in seconds, or the position in a file).
    pub order: u64,
    /// The Services it attaches to.
    pub parents: Vec<RouteParent>,
    /// Its rules, in the order written.
    pub rules: Vec<RouteRule>,
    /// What the source could not express (an unsupported filter, a backend
    /// in another namespace). Any problem refuses the route.
    pub problems: Vec<String>,
}

/// A Service a route attaches to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteParent {
    /// The Service.
    pub service: String,
    /// The Service port, or every port when `None`.
    pub port: Option<u16>,
}

/// One rule: calls matching any of `matches` go to `backends`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteRule {
    /// Alternatives; empty matches every call.
    pub matches: Vec<CallMatch>,
    /// Where matching calls go, shared by weight.
    pub backends: Vec<Backend>,
}

/// What a call must be to match: its method and every header matcher.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CallMatch {
    /// The gRPC method.
    pub method: MethodMatch,
    /// Header matchers, all of which must hold.
    pub headers: Vec<HeaderMatch>,
}

/// A match on the call's gRPC service and method (the path
/// `/<service>/<method>`); a part that is `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MethodMatch {
    /// Fully qualified gRPC service, for example `greet.Greeter`.
    pub service: Option<String>,
    /// Method, for example `SayHello`.
    pub method: Option<String>,
    /// Whether `service` and `method` are regular expressions (RE2 syntax)
    /// rather than exact names.
    pub regex: bool,
}

impl MethodMatch {
    /// Matches every call.
    pub fn any() -> Self {
        Self::default()
    }

    /// Matches `service`/`method` exactly; either may be `None`.
    pub fn exact(service: Option<&str>, method: Option<&str>) -> Self {
        Self {
            service: service.map(Into::into),
            method: method.map(Into::into),
            regex: false,
        }
    }
}

/// A match on one request header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderMatch {
    /// Header name, lowercase.
    pub name: String,
    /// The value, or a regular expression (RE2 syntax) the whole value must
    /// match.
    pub value: String,
    /// Whether `value` is a regular expression.
    pub regex: bool,
}

/// A backend of a rule: a Service port and its share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backend {
    /// The Service (in this namespace).
    pub service: String,
    /// Its Service port.
    pub port: u16,
    /// Its share of the rule's calls, relative to the other backends.
    pub weight: u32,
}

/// The route table of one Service port: entries in match order, each one
/// match of one rule with the rule's backends of nonzero weight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RouteTable {
    /// Entries, first match wins.
    pub entries: Vec<RouteEntry>,
}

/// One entry of a [`RouteTable`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteEntry {
    /// Which route, rule and match it comes from (`<route>/rule-<i>/match-<j>`).
    pub origin: String,
    /// What calls it takes.
    pub matcher: CallMatch,
    /// Where they go (weights all nonzero).
    pub backends: Vec<Backend>,
}

/// Whether the source reads routes at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSupport {
    /// Routes are read (they may still be none).
    pub enabled: bool,
    /// Where routes come from, or why they are not read (for example "the
    /// GRPCRoute API is not installed").
    pub detail: String,
}

impl RouteSupport {
    /// Routes are read from `detail`.
    pub fn enabled(detail: impl Into<String>) -> Self {
        Self {
            enabled: true,
            detail: detail.into(),
        }
    }

    /// Routes are not read, because of `reason`.
    pub fn disabled(reason: impl Into<String>) -> Self {
        Self {
            enabled: false,
            detail: reason.into(),
        }
    }
}

/// What became of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteState {
    /// In force for every parent listed in [`RouteStatus::attached`].
    Accepted,
    /// Cannot be honoured as written; in force nowhere.
    Refused(String),
    /// Valid, but none of its parent Services (or ports) exists.
    NotAttached(String),
}

/// The status of one route, for the status API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatus {
    /// The route.
    pub name: String,
    /// Accepted, refused or not attached.
    pub state: RouteState,
    /// The Service ports it is in force for (`(service, port)`).
    pub attached: Vec<(String, u16)>,
    /// Parents that do not exist (the route is in force for the others).
    pub missing_parents: Vec<String>,
    /// Number of rules.
    pub rules: usize,
}

/// Routes as the source last reported them, with their support state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSet {
    /// Whether routes are read, and from where or why not.
    pub support: RouteSupport,
    /// The routes, by name order.
    pub routes: Vec<TrafficRoute>,
}

impl Default for RouteSet {
    fn default() -> Self {
        Self {
            support: RouteSupport::disabled("the source has not reported routes"),
            routes: Vec::new(),
        }
    }
}
