//! The route table of a target, as gRPC's xDS clients read it (gRPC A28):
//! an ordered list of routes, each a matcher (path, headers, a random
//! fraction) and an action (one cluster, or clusters chosen by weight).
//!
//! Per call, the first route whose matcher holds wins; its action names the
//! cluster, chosen at random by weight when there are several. A call that
//! no route matches fails (UNAVAILABLE), as does one whose route does not
//! forward to a cluster.
//!
//! Clusters are numbered in the order the routes first name them, so routes
//! naming the same cluster share its endpoint pool. A table whose first
//! route matches every call and names one cluster (what a control plane
//! without traffic policy sends) is marked [`Routes::single`]: calls then
//! skip matching altogether.
//!
//! These are the client's own types: `xds::routes` converts Envoy's into
//! them (and decides what is refused), the channel's router matches calls
//! against them.

use std::borrow::Cow;
use std::fmt;

use http::HeaderMap;
use rand::Rng;

/// The routes of the virtual host a target resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Routes {
    /// The cluster names, each once, in the order routes first name them.
    pub(crate) clusters: Vec<String>,
    routes: Vec<Route>,
    /// When every call goes to one cluster: its index.
    single: Option<usize>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// Its name in the RouteConfiguration (for messages), maybe empty.
    pub(crate) name: String,
    pub(crate) matcher: RouteMatcher,
    pub(crate) action: RouteAction,
}

/// What a call must satisfy for a route to take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteMatcher {
    pub(crate) path: PathMatcher,
    /// Whether the path is compared ignoring ASCII case.
    pub(crate) ignore_case: bool,
    pub(crate) headers: Vec<HeaderMatcher>,
    /// The route is considered for this many calls in a million (chosen at
    /// random); `None`: every call.
    pub(crate) per_million: Option<u32>,
}

/// How the call's path (`/package.Service/Method`) is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathMatcher {
    /// The path starts with this.
    Prefix(String),
    /// The path is this.
    Exact(String),
    /// The whole path matches this expression.
    Regex(Pattern),
}

/// A condition on one request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderMatcher {
    /// Lower-case header name.
    pub(crate) name: String,
    pub(crate) kind: HeaderMatch,
    /// Inverts the outcome for a header that is present (and for
    /// [`HeaderMatch::Present`] either way).
    pub(crate) invert: bool,
}

/// What a header's value must be. Several values of one header are joined
/// with `,` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderMatch {
    /// A string condition.
    Str(StringMatch),
    /// The value is an integer in `start..end`.
    Range { start: i64, end: i64 },
    /// The header is present (`true`) or absent (`false`).
    Present(bool),
}

/// A condition on a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StringMatch {
    Exact {
        value: String,
        ignore_case: bool,
    },
    Prefix {
        value: String,
        ignore_case: bool,
    },
    Suffix {
        value: String,
        ignore_case: bool,
    },
    Contains {
        value: String,
        ignore_case: bool,
    },
    /// The whole string matches.
    Regex(Pattern),
}

/// What a route does with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteAction {
    /// Sends it to this cluster (an index into [`Routes::clusters`]).
    Cluster(usize),
    /// Sends it to one of these clusters, chosen at random by weight.
    Weighted(Weighted),
    /// Fails it: the route does not forward to a cluster (a redirect, a
    /// direct response, ...), which a gRPC client cannot do.
    Unsupported(String),
}

/// Clusters with weights; `cumulative` holds each cluster's running total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Weighted {
    clusters: Vec<(usize, u64)>,
    total: u64,
}

impl Weighted {
    /// From `(cluster index, weight)` pairs with weights of at least 1.
    pub(crate) fn new(weights: impl IntoIterator<Item = (usize, u32)>) -> Self {
        let mut total = 0u64;
        let clusters = weights
            .into_iter()
            .map(|(cluster, weight)| {
                total += u64::from(weight);
                (cluster, total)
            })
            .collect();
        Self { clusters, total }
    }

    /// The cluster for a random draw `r` in `0..total`.
    fn pick(&self, r: u64) -> usize {
        let at = self.clusters.partition_point(|(_, upto)| *upto <= r);
        self.clusters[at.min(self.clusters.len() - 1)].0
    }

    /// The cluster, when there is only one.
    fn only(&self) -> Option<usize> {
        match self.clusters.as_slice() {
            [(cluster, _)] => Some(*cluster),
            _ => None,
        }
    }
}

/// A regular expression that must match a whole string (RE2 syntax, as
/// Envoy's `safe_regex`; linear time).
#[derive(Clone)]
pub(crate) struct Pattern {
    source: String,
    ignore_case: bool,
    regex: regex::Regex,
}

/// Compiled expressions larger than this are refused: a control plane must
/// not make the client build huge automata.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Pattern {
    /// Compiles `source`, anchored at both ends.
    pub(crate) fn new(source: &str, ignore_case: bool) -> Result<Self, String> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .case_insensitive(ignore_case)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("regular expression {source:?} is invalid: {e}"))?;
        Ok(Self {
            source: source.to_owned(),
            ignore_case,
            regex,
        })
    }

    fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?}", self.source)?;
        if self.ignore_case {
            f.write_str(", ignoring case")?;
        }
        f.write_str(")")
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.ignore_case == other.ignore_case
    }
}

impl Eq for Pattern {}

/// Why a call found no cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoCluster {
    /// No route matches the call.
    NoRoute,
    /// The matching route (its name) does not forward to a cluster (why).
    Unsupported(String, String),
}

impl Routes {
    /// A table from routes whose actions index into `clusters`.
    pub(crate) fn new(clusters: Vec<String>, routes: Vec<Route>) -> Self {
        let single = routes.first().and_then(|route| {
            let every_call = route.matcher.matches_every_call();
            match &route.action {
                RouteAction::Cluster(cluster) if every_call => Some(*cluster),
                RouteAction::Weighted(weighted) if every_call => weighted.only(),
                _ => None,
            }
        });
        Self {
            clusters,
            routes,
            single,
        }
    }

    /// The cluster every call goes to, when it is one whatever the call.
    pub(crate) fn single(&self) -> Option<usize> {
        self.single
    }

    /// The routes, in order.
    pub(crate) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The cluster (an index into [`Routes::clusters`]) for a call to
    /// `path` with `headers`: the first matching route's, chosen by weight
    /// with `rng` when it names several.
    pub(crate) fn choose(
        &self,
        path: &str,
        headers: &HeaderMap,
        rng: &mut impl Rng,
    ) -> Result<usize, NoCluster> {
        if let Some(cluster) = self.single {
            return Ok(cluster);
        }
        let route = self
            .routes
            .iter()
            .find(|route| route.matcher.matches(path, headers, rng))
            .ok_or(NoCluster::NoRoute)?;
        match &route.action {
            RouteAction::Cluster(cluster) => Ok(*cluster),
            RouteAction::Weighted(weighted) => {
                Ok(weighted.pick(rng.random_range(0..weighted.total)))
            }
            RouteAction::Unsupported(why) => {
                Err(NoCluster::Unsupported(route.name.clone(), why.clone()))
            }
        }
    }
}

impl RouteMatcher {
    /// Whether every gRPC call matches (every path starts with `/`).
    fn matches_every_call(&self) -> bool {
        matches!(&self.path, PathMatcher::Prefix(p) if p.is_empty() || p == "/")
            && self.headers.is_empty()
            && self.per_million.is_none_or(|n| n >= 1_000_000)
    }

    fn matches(&self, path: &str, headers: &HeaderMap, rng: &mut impl Rng) -> bool {
        let path_matches = match &self.path {
            PathMatcher::Prefix(prefix) => starts_with(path, prefix, self.ignore_case),
            PathMatcher::Exact(exact) if self.ignore_case => path.eq_ignore_ascii_case(exact),
            PathMatcher::Exact(exact) => path == exact,
            PathMatcher::Regex(pattern) => pattern.matches(path),
        };
        path_matches
            && self.headers.iter().all(|h| h.matches(headers))
            // The random draw comes last, as in gRPC: it is taken only for
            // calls that match otherwise.
            && self
                .per_million
                .is_none_or(|n| rng.random_range(0..1_000_000) < n)
    }
}

impl HeaderMatcher {
    fn matches(&self, headers: &HeaderMap) -> bool {
        let value = header_value(headers, &self.name);
        match (&self.kind, value) {
            (HeaderMatch::Present(want), value) => (value.is_some() == *want) != self.invert,
            // A header that is absent matches no other condition, inverted
            // or not (as in gRPC and Envoy).
            (_, None) => false,
            (HeaderMatch::Range { start, end }, Some(value)) => {
                let inside = value.parse::<i64>().is_ok_and(|n| *start <= n && n < *end);
                inside != self.invert
            }
            (HeaderMatch::Str(string), Some(value)) => string.matches(&value) != self.invert,
        }
    }
}

impl StringMatch {
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            StringMatch::Exact { value, ignore_case } => {
                if *ignore_case {
                    text.eq_ignore_ascii_case(value)
                } else {
                    text == value
                }
            }
            StringMatch::Prefix { value, ignore_case } => starts_with(text, value, *ignore_case),
            StringMatch::Suffix { value, ignore_case } => {
                text.len() >= value.len()
                    && eq_bytes(
                        &text.as_bytes()[text.len() - value.len()..],
                        value,
                        *ignore_case,
                    )
            }
            StringMatch::Contains { value, ignore_case } => {
                if *ignore_case {
                    let value = value.as_bytes();
                    value.is_empty()
                        || text
                            .as_bytes()
                            .windows(value.len())
                            .any(|window| window.eq_ignore_ascii_case(value))
                } else {
                    text.contains(value.as_str())
                }
            }
            StringMatch::Regex(pattern) => pattern.matches(text),
        }
    }
}

fn starts_with(text: &str, prefix: &str, ignore_case: bool) -> bool {
    text.len() >= prefix.len() && eq_bytes(&text.as_bytes()[..prefix.len()], prefix, ignore_case)
}

fn eq_bytes(bytes: &[u8], value: &str, ignore_case: bool) -> bool {
    if ignore_case {
        bytes.eq_ignore_ascii_case(value.as_bytes())
    } else {
        bytes == value.as_bytes()
    }
}

/// The value of header `name` as header matchers see it: several values
/// joined with `,`; binary headers (`-bin`) are never seen, as in gRPC.
fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    if name.ends_with("-bin") {
        return None;
    }
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let text = |v: &'a http::HeaderValue| String::from_utf8_lossy(v.as_bytes());
    match values.next() {
        None => Some(text(first)),
        Some(second) => {
            let mut joined = text(first).into_owned();
            for value in std::iter::once(second).chain(values) {
                joined.push(',');
                joined.push_str(&text(value));
            }
            Some(Cow::Owned(joined))
        }
    }
}

#[cfg(test)]
mod tests;
