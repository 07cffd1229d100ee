//! Unit tests: flags, the file format and resolution (the prober's pure
//! parts are tested in `probe/verdict.rs`). The running source is tested in
//! `control-plane/tests/`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::args::parse_flag;
use super::config::{self, ConfigError, EndpointDef, HostPort, PortDef, ServiceDef};
use super::resolve::{ResolveError, resolve};
use super::*;
use crate::model::ModelError;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: StaticArgs,
}

fn cli(args: &[&str]) -> Result<StaticArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).map(|c| c.args)
}

fn host(text: &str) -> HostPort {
    text.parse().unwrap()
}

fn endpoint(text: &str) -> EndpointDef {
    EndpointDef::at(host(text))
}

#[test]
fn flag_values_parse() {
    let def = parse_flag("greeter=10.0.0.1:8080, localhost:8081").unwrap();
    assert_eq!(
        def,
        ServiceDef {
            name: "greeter".into(),
            ports: vec![PortDef {
                name: None,
                port: DEFAULT_SERVICE_PORT,
                endpoints: vec![endpoint("10.0.0.1:8080"), endpoint("localhost:8081")],
            }],
            tls: None,
            policy: Default::default(),
        }
    );
    assert_eq!(def.ports[0].endpoints[1].address.host, "localhost");

    let def = parse_flag("greeter:9000=[::1]:8080").unwrap();
    assert_eq!(def.ports[0].port, 9000);
    assert_eq!(def.ports[0].endpoints[0].address.host, "::1");
    assert_eq!(def.ports[0].endpoints[0].address.to_string(), "[::1]:8080");
}

#[test]
fn bad_flag_values_say_what_is_wrong() {
    for (value, expected) in [
        ("greeter", "expected <service>[:<port>]="),
        ("greeter:http=10.0.0.1:80", "not a number from 1 to 65535"),
        ("greeter:0=10.0.0.1:80", "not a number from 1 to 65535"),
        ("=10.0.0.1:80", "the service name is empty"),
        ("greeter=", "no endpoints"),
        ("greeter=10.0.0.1", "the port is missing"),
        ("greeter=10.0.0.1:0", "port 0"),
        ("greeter=::1:80", "brackets"),
        ("greeter=a/b:80", "neither an IP address nor a DNS name"),
        ("greeter=:80", "the host is missing"),
    ] {
        let error = parse_flag(value).expect_err(value).to_string();
        assert!(
            error.contains(expected) && error.contains(value),
            "{value}: {error}"
        );
    }
}

#[test]
fn flags_defaults_and_durations() {
    let args = cli(&[]).unwrap();
    assert!(args.services.is_empty());
    assert_eq!(args.probe_interval, DEFAULT_PROBE_INTERVAL);
    assert_eq!(args.probe_timeout, DEFAULT_PROBE_TIMEOUT);
    assert_eq!(args.file_poll_interval, DEFAULT_FILE_POLL_INTERVAL);
    assert!(!args.no_probe);
    let default = StaticArgs::default();
    assert_eq!(default.probe_interval, args.probe_interval);
    assert_eq!(default.probe_timeout, args.probe_timeout);
    assert_eq!(default.file_poll_interval, args.file_poll_interval);

    let args = cli(&[
        "--static",
        "a=10.0.0.1:80",
        "--static",
        "b=10.0.0.2:80;c:81=10.0.0.3:80,10.0.0.4:80",
        "--static-file",
        "/etc/services.yaml",
        "--probe-interval",
        "500ms",
        "--probe-timeout",
        "2s",
        "--file-poll-interval",
        "250ms",
        "--no-probe",
    ])
    .unwrap();
    assert_eq!(
        args.services,
        [
            "a=10.0.0.1:80",
            "b=10.0.0.2:80",
            "c:81=10.0.0.3:80,10.0.0.4:80"
        ]
    );
    assert_eq!(args.probe_interval, Duration::from_millis(500));
    assert_eq!(args.probe_timeout, Duration::from_secs(2));
    assert_eq!(args.file_poll_interval, Duration::from_millis(250));
    assert!(args.no_probe);
    assert_eq!(
        args.describe(),
        "3 --static services, file /etc/services.yaml, not probed"
    );

    for bad in [["--probe-interval", "0s"], ["--probe-timeout", "soon"]] {
        assert!(cli(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn every_flag_can_come_from_the_environment() {
    Cli::command().debug_assert();
    for arg in Cli::command().get_arguments() {
        if arg.get_id() == "help" {
            continue;
        }
        let env = arg
            .get_env()
            .unwrap_or_else(|| panic!("{} has no env", arg.get_id()));
        assert!(env.to_str().unwrap().starts_with("CONTROL_PLANE_"));
    }
}

const LONG_AND_SHORT: &str = r#"
services:
  - name: greeter
    ports:
      - name: grpc
        port: 80
        endpoints:
          - address: 10.0.0.1:8080
            zone: zone-a
            instance: pod-a
          - 10.0.0.2:8080
      - port: 9000
  - name: billing
    port: 9000
    endpoints: ["localhost:9001", "[::1]:9002"]
  - name: empty
"#;

#[test]
fn file_long_and_short_forms() {
    let defs = config::parse(LONG_AND_SHORT).unwrap();
    assert_eq!(defs.len(), 3);
    let greeter = &defs[0];
    assert_eq!(greeter.ports.len(), 2);
    assert_eq!(greeter.ports[0].name.as_deref(), Some("grpc"));
    assert_eq!(
        greeter.ports[0].endpoints,
        [
            EndpointDef {
                address: host("10.0.0.1:8080"),
                zone: Some("zone-a".into()),
                instance: Some("pod-a".into()),
            },
            endpoint("10.0.0.2:8080"),
        ]
    );
    assert!(greeter.ports[1].endpoints.is_empty());
    let billing = &defs[1];
    assert_eq!(billing.ports.len(), 1);
    assert_eq!(billing.ports[0].port, 9000);
    assert_eq!(
        billing.ports[0].endpoints,
        [endpoint("localhost:9001"), endpoint("[::1]:9002")]
    );
    assert_eq!(defs[2].ports[0].port, DEFAULT_SERVICE_PORT);
}

#[test]
fn file_in_json() {
    let json = r#"{"services": [{"name": "greeter", "ports": [{"port": 80,
        "endpoints": [{"address": "10.0.0.1:8080", "zone": "z"}, "10.0.0.2:8080"]}]}]}"#;
    let defs = config::parse(json).unwrap();
    assert_eq!(defs[0].ports[0].endpoints.len(), 2);
    assert_eq!(defs[0].ports[0].endpoints[0].zone.as_deref(), Some("z"));
}

#[test]
fn file_errors() {
    for (text, expected) in [
        (
            "services:\n  - name: a\n    ports:\n      - prot: 80\n",
            "unknown field `prot`",
        ),
        ("servics: []\n", "unknown field `servics`"),
        (
            "services:\n  - name: a\n    endpoint: [\"10.0.0.1:80\"]\n",
            "unknown field `endpoint`",
        ),
        (
            "services:\n  - name: a\n    endpoints:\n      - address: 10.0.0.1:80\n        zones: z\n",
            "unknown field `zones`",
        ),
        (
            "services:\n  - name: a\n    endpoints: [\"10.0.0.1\"]\n",
            "\"10.0.0.1\" is not a <host>:<port> address: the port is missing",
        ),
        (
            "services:\n  - name: a\n    port: 70000\n",
            "invalid value: integer `70000`",
        ),
        ("services: [\n", "line 2 column 1"),
        ("{\"services\": [}", "line 1"),
        (
            "services:\n  - name: a\n  - name: a\n",
            "\"a\" is defined twice",
        ),
        (
            "services:\n  - name: a\n    port: 80\n    ports: []\n",
            "mixes `ports`",
        ),
    ] {
        let error = config::parse(text).expect_err(text).to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
    assert!(matches!(config::parse(" \n"), Err(ConfigError::Empty)));
    assert!(matches!(
        config::parse("# all commented out\n"),
        Err(ConfigError::Empty)
    ));
    assert_eq!(config::parse("services: []").unwrap(), []);
}

#[test]
fn syntax_errors_give_a_location() {
    let error = config::parse("services:\n  - name: a\n    ports:\n      - prot: 80\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("line 4"), "{error}");
    assert!(error.contains("services[0].ports[0]"), "{error}");
}

#[tokio::test]
async fn resolution_prefers_ipv4_and_keeps_zone_and_instance() {
    let defs = config::parse(LONG_AND_SHORT).unwrap();
    let services = resolve(defs, "default").await.unwrap();
    let billing = &services[1];
    assert_eq!(billing.namespace, "default");
    let addrs: Vec<_> = billing.ports[0]
        .endpoints
        .iter()
        .map(|e| e.socket_addr().to_string())
        .collect();
    assert_eq!(addrs, ["127.0.0.1:9001", "[::1]:9002"]);
    let first = &services[0].ports[0].endpoints[0];
    assert_eq!(first.address, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(first.zone.as_deref(), Some("zone-a"));
    assert_eq!(first.instance.as_deref(), Some("pod-a"));
}

#[tokio::test]
async fn resolution_errors() {
    let error = resolve(
        vec![parse_flag("greeter=no-such-host.invalid:8080").unwrap()],
        "default",
    )
    .await
    .unwrap_err();
    assert!(error.is_transient());
    let text = error.to_string();
    assert!(
        text.contains("greeter") && text.contains("\"no-such-host.invalid\""),
        "{text}"
    );

    let error = resolve(
        vec![parse_flag("greeter=localhost:8080,127.0.0.1:8080").unwrap()],
        "default",
    )
    .await
    .unwrap_err();
    assert!(!error.is_transient());
    assert!(
        matches!(&error, ResolveError::DuplicateEndpoint { first, second, .. }
            if first == "localhost:8080" && second == "127.0.0.1:8080"),
        "{error}"
    );

    let error = resolve(
        vec![
            parse_flag("a=10.0.0.1:80").unwrap(),
            parse_flag("a:81=10.0.0.1:80").unwrap(),
        ],
        "default",
    )
    .await
    .unwrap_err();
    assert_eq!(error, ResolveError::DuplicateService("a".into()));

    let error = resolve(vec![parse_flag("Greeter=10.0.0.1:80").unwrap()], "default")
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        ResolveError::Invalid(ModelError::InvalidName(_))
    ));

    let text = "services:\n  - name: a\n    ports:\n      - {name: grpc, port: 80}\n      - {name: grpc, port: 81}\n";
    let error = resolve(config::parse(text).unwrap(), "default")
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        ResolveError::Invalid(ModelError::DuplicatePort { .. })
    ));
}

#[test]
fn documented_examples_parse() {
    // The module documentation's YAML example.
    let docs = include_str!("mod.rs");
    let yaml: String = docs
        .lines()
        .skip_while(|line| !line.contains("```yaml"))
        .skip(1)
        .take_while(|line| !line.contains("```"))
        .map(|line| {
            format!(
                "{}\n",
                line.trim_start_matches("//!")
                    .strip_prefix(' ')
                    .unwrap_or("")
            )
        })
        .collect();
    let defs = config::parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(defs.len(), 2);
    assert_eq!(defs[0].ports[0].endpoints.len(), 2);

    // The --static-file help's example.
    let help = r#"services: [{name: greeter, port: 80, endpoints: ["10.0.0.1:8080",
        {address: "10.0.0.2:8080", zone: zone-a, instance: pod-b}]}]"#;
    let defs = config::parse(help).unwrap();
    assert_eq!(
        defs[0].ports[0].endpoints[1].zone.as_deref(),
        Some("zone-a")
    );
}

#[test]
fn file_tls_marks_services_with_their_san_matchers() {
    use crate::model::{SanMatcher, ServiceTls};
    let text = r#"
services:
  - name: plain
    endpoints: ["10.0.0.1:8080"]
  - name: secure
    endpoints: ["10.0.0.2:8080"]
    tls:
      subject_alt_names:
        - greeter.default.svc.cluster.local
        - exact: other.example
        - prefix: "spiffe://cluster.local/ns/default/"
  - name: any-cert
    endpoints: ["10.0.0.3:8080"]
    tls: {subject_alt_names: []}
"#;
    let defs = config::parse(text).unwrap();
    assert_eq!(defs[0].tls, None);
    assert_eq!(
        defs[1].tls,
        Some(ServiceTls {
            subject_alt_names: vec![
                SanMatcher::Exact("greeter.default.svc.cluster.local".into()),
                SanMatcher::Exact("other.example".into()),
                SanMatcher::Prefix("spiffe://cluster.local/ns/default/".into()),
            ],
        })
    );
    assert_eq!(defs[2].tls, Some(ServiceTls::default()));
    let error = config::parse(
        "services: [{name: a, endpoints: [\"10.0.0.1:1\"], tls: {subject_alt_names: [{suffix: x}]}}]",
    )
    .expect_err("unknown matcher kind");
    assert!(error.to_string().contains("tls"), "{error}");
}
