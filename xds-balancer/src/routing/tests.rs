//! Route matching and weighted choice, on hand-made tables.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderValue};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

fn route(path: PathMatcher, action: RouteAction) -> Route {
    Route {
        name: String::new(),
        matcher: RouteMatcher {
            path,
            ignore_case: false,
            headers: Vec::new(),
            per_million: None,
        },
        action,
    }
}

fn prefix(p: &str) -> PathMatcher {
    PathMatcher::Prefix(p.into())
}

fn clusters(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(16)
}

fn header(name: &str, kind: HeaderMatch, invert: bool) -> HeaderMatcher {
    HeaderMatcher {
        name: name.into(),
        kind,
        invert,
    }
}

fn exact(value: &str) -> HeaderMatch {
    HeaderMatch::Str(StringMatch::Exact {
        value: value.into(),
        ignore_case: false,
    })
}

/// Whether a table of one route with `matcher` takes the call.
fn takes(matcher: RouteMatcher, path: &str, map: &HeaderMap) -> bool {
    let table = Routes::new(
        clusters(&["c"]),
        vec![Route {
            name: "r".into(),
            matcher,
            action: RouteAction::Cluster(0),
        }],
    );
    table.choose(path, map, &mut rng()).is_ok()
}

fn on_path(path: PathMatcher, ignore_case: bool) -> RouteMatcher {
    RouteMatcher {
        path,
        ignore_case,
        headers: Vec::new(),
        per_million: None,
    }
}

fn on_headers(list: Vec<HeaderMatcher>) -> RouteMatcher {
    RouteMatcher {
        path: prefix(""),
        ignore_case: false,
        headers: list,
        per_million: None,
    }
}

#[test]
fn the_first_matching_route_wins() {
    // A28's example: the service prefix comes first, so it takes the
    // method too.
    let table = Routes::new(
        clusters(&["v1", "v2", "other"]),
        vec![
            route(prefix("/greet.Greeter/"), RouteAction::Cluster(0)),
            route(
                PathMatcher::Exact("/greet.Greeter/SayHello".into()),
                RouteAction::Cluster(1),
            ),
            route(prefix(""), RouteAction::Cluster(2)),
        ],
    );
    let none = HeaderMap::new();
    let mut rng = rng();
    assert_eq!(
        table.choose("/greet.Greeter/SayHello", &none, &mut rng),
        Ok(0)
    );
    assert_eq!(
        table.choose("/grpc.health.v1.Health/Check", &none, &mut rng),
        Ok(2)
    );
    assert_eq!(table.single(), None);
}

#[test]
fn a_call_no_route_matches_is_refused() {
    let table = Routes::new(
        clusters(&["v2", "v1"]),
        vec![
            route(
                PathMatcher::Exact("/greet.Greeter/SayHello".into()),
                RouteAction::Cluster(0),
            ),
            route(prefix("/grpc.health.v1.Health/"), RouteAction::Cluster(1)),
        ],
    );
    let none = HeaderMap::new();
    assert_eq!(
        table.choose("/greet.Greeter/SayHello", &none, &mut rng()),
        Ok(0)
    );
    assert_eq!(
        table.choose("/grpc.health.v1.Health/Watch", &none, &mut rng()),
        Ok(1)
    );
    assert_eq!(
        table.choose("/greet.Greeter/SayGoodbye", &none, &mut rng()),
        Err(NoCluster::NoRoute)
    );
    let nowhere = Routes::new(
        Vec::new(),
        vec![Route {
            name: "moved".into(),
            ..route(prefix(""), RouteAction::Unsupported("a redirect".into()))
        }],
    );
    assert_eq!(
        nowhere.choose("/a/b", &none, &mut rng()),
        Err(NoCluster::Unsupported("moved".into(), "a redirect".into()))
    );
}

#[test]
fn paths_match_by_prefix_exactly_or_by_expression_with_or_without_case() {
    let none = HeaderMap::new();
    let path = "/greet.Greeter/SayHello";
    assert!(takes(on_path(prefix("/greet."), false), path, &none));
    assert!(!takes(on_path(prefix("/GREET."), false), path, &none));
    assert!(takes(on_path(prefix("/GREET."), true), path, &none));
    assert!(!takes(
        on_path(prefix("/greet.Greeter/SayHelloAgain"), false),
        path,
        &none
    ));
    assert!(takes(
        on_path(PathMatcher::Exact(path.into()), false),
        path,
        &none
    ));
    assert!(!takes(
        on_path(PathMatcher::Exact("/greet.greeter/sayhello".into()), false),
        path,
        &none
    ));
    assert!(takes(
        on_path(PathMatcher::Exact("/greet.greeter/sayhello".into()), true),
        path,
        &none
    ));
    let regex = |source: &str, ignore_case| {
        on_path(
            PathMatcher::Regex(Pattern::new(source, ignore_case).expect("valid")),
            ignore_case,
        )
    };
    assert!(takes(regex("/greet\\.Greeter/Say.*", false), path, &none));
    // The whole path must match, not a part of it.
    assert!(!takes(regex("Say.*", false), path, &none));
    assert!(!takes(regex("/greet\\.greeter/.*", false), path, &none));
    assert!(takes(regex("/greet\\.greeter/.*", true), path, &none));
    assert!(Pattern::new("(unclosed", false).is_err());
}

#[test]
fn headers_match_as_grpc_matches_them() {
    let map = headers(&[
        ("x-canary", "yes"),
        ("x-tier", "Gold"),
        ("x-multi", "a"),
        ("x-multi", "b"),
        ("x-n", "42"),
        ("x-trace-bin", "AAEC"),
    ]);
    let check = |matcher: HeaderMatcher| takes(on_headers(vec![matcher]), "/s/m", &map);
    let string = |m: StringMatch| HeaderMatch::Str(m);

    assert!(check(header("x-canary", exact("yes"), false)));
    assert!(!check(header("x-canary", exact("no"), false)));
    assert!(check(header("x-canary", exact("no"), true)), "inverted");
    // An absent header matches no string condition, inverted or not.
    assert!(!check(header("x-absent", exact("yes"), false)));
    assert!(!check(header("x-absent", exact("yes"), true)));
    // Present and its inversion.
    assert!(check(header("x-canary", HeaderMatch::Present(true), false)));
    assert!(!check(header(
        "x-absent",
        HeaderMatch::Present(true),
        false
    )));
    assert!(check(header(
        "x-absent",
        HeaderMatch::Present(false),
        false
    )));
    assert!(check(header("x-absent", HeaderMatch::Present(true), true)));
    // Several values are joined with a comma.
    assert!(check(header("x-multi", exact("a,b"), false)));
    // Binary headers are never seen.
    assert!(!check(header(
        "x-trace-bin",
        HeaderMatch::Present(true),
        false
    )));
    // Ranges: start inclusive, end exclusive; a non-number is outside.
    assert!(check(header(
        "x-n",
        HeaderMatch::Range { start: 42, end: 43 },
        false
    )));
    assert!(!check(header(
        "x-n",
        HeaderMatch::Range { start: 0, end: 42 },
        false
    )));
    assert!(!check(header(
        "x-tier",
        HeaderMatch::Range { start: 0, end: 100 },
        false
    )));

    let tier = |m: StringMatch| check(header("x-tier", string(m), false));
    let s = |v: &str| v.to_owned();
    assert!(tier(StringMatch::Prefix {
        value: s("Go"),
        ignore_case: false
    }));
    assert!(!tier(StringMatch::Prefix {
        value: s("go"),
        ignore_case: false
    }));
    assert!(tier(StringMatch::Prefix {
        value: s("go"),
        ignore_case: true
    }));
    assert!(tier(StringMatch::Suffix {
        value: s("old"),
        ignore_case: false
    }));
    assert!(tier(StringMatch::Suffix {
        value: s("OLD"),
        ignore_case: true
    }));
    assert!(!tier(StringMatch::Suffix {
        value: s("OLD"),
        ignore_case: false
    }));
    assert!(tier(StringMatch::Contains {
        value: s("ol"),
        ignore_case: false
    }));
    assert!(tier(StringMatch::Contains {
        value: s("OL"),
        ignore_case: true
    }));
    assert!(!tier(StringMatch::Contains {
        value: s("silver"),
        ignore_case: true
    }));
    assert!(tier(StringMatch::Exact {
        value: s("gold"),
        ignore_case: true
    }));
    assert!(tier(StringMatch::Regex(
        Pattern::new("G[a-z]+", false).expect("valid")
    )));
    assert!(!tier(StringMatch::Regex(
        Pattern::new("G", false).expect("valid")
    )));

    // Every header condition must hold.
    let both = on_headers(vec![
        header("x-canary", exact("yes"), false),
        header("x-tier", exact("Silver"), false),
    ]);
    assert!(!takes(both, "/s/m", &map));
}

#[test]
fn weighted_clusters_are_chosen_in_proportion() {
    let table = Routes::new(
        clusters(&["stable", "canary"]),
        vec![route(
            prefix(""),
            RouteAction::Weighted(Weighted::new([(0, 80), (1, 20)])),
        )],
    );
    assert_eq!(table.single(), None);
    let none = HeaderMap::new();
    let mut rng = rng();
    let mut counts = BTreeMap::new();
    for _ in 0..100_000 {
        *counts
            .entry(table.choose("/s/m", &none, &mut rng).expect("routed"))
            .or_insert(0u32) += 1;
    }
    let stable = f64::from(counts[&0]) / 100_000.0;
    assert!((stable - 0.8).abs() < 0.01, "{counts:?}");

    // The draw maps onto the running totals: 0..80 stable, 80..100 canary.
    let weighted = Weighted::new([(0, 80), (1, 20)]);
    assert_eq!(weighted.pick(0), 0);
    assert_eq!(weighted.pick(79), 0);
    assert_eq!(weighted.pick(80), 1);
    assert_eq!(weighted.pick(99), 1);
}

#[test]
fn fractions_consider_a_route_for_their_share_of_calls() {
    let mut split = route(prefix(""), RouteAction::Cluster(0));
    split.matcher.per_million = Some(250_000);
    let table = Routes::new(
        clusters(&["quarter", "rest"]),
        vec![split, route(prefix(""), RouteAction::Cluster(1))],
    );
    let none = HeaderMap::new();
    let mut rng = rng();
    let quarter = (0..40_000)
        .filter(|_| table.choose("/s/m", &none, &mut rng) == Ok(0))
        .count();
    assert!((9_400..10_600).contains(&quarter), "{quarter}");
}

#[test]
fn a_single_catch_all_route_to_one_cluster_skips_matching() {
    for catch_all in ["", "/"] {
        let table = Routes::new(
            clusters(&["greeter"]),
            vec![
                route(prefix(catch_all), RouteAction::Cluster(0)),
                route(prefix("/never"), RouteAction::Cluster(0)),
            ],
        );
        assert_eq!(table.single(), Some(0));
    }
    let one_weighted = Routes::new(
        clusters(&["greeter"]),
        vec![route(
            prefix(""),
            RouteAction::Weighted(Weighted::new([(0, 5)])),
        )],
    );
    assert_eq!(one_weighted.single(), Some(0));
    let mut by_header = route(prefix(""), RouteAction::Cluster(0));
    by_header.matcher.headers = vec![header("x-canary", HeaderMatch::Present(true), false)];
    assert_eq!(
        Routes::new(clusters(&["c"]), vec![by_header]).single(),
        None
    );
    let narrower = Routes::new(
        clusters(&["c"]),
        vec![route(prefix("/greet."), RouteAction::Cluster(0))],
    );
    assert_eq!(narrower.single(), None);
}
