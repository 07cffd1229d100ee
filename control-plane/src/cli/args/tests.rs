use super::*;
use crate::server::{DEFAULT_GRACE, DEFAULT_MAX_CONNECTION_AGE, DEFAULT_MAX_CONNECTION_AGE_GRACE};
use crate::status::report::DEFAULT_TIMEOUT;

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

fn serve_args(args: &[&str], in_pod: bool) -> Result<ServeArgs, clap::Error> {
    let mut all = vec!["control-plane", "serve"];
    all.extend_from_slice(args);
    let cli = Cli::parse_checked(all, in_pod)?;
    let Command::Serve(args) = cli.command else {
        panic!("not serve");
    };
    Ok(*args)
}

#[test]
fn serve_defaults() {
    let args = serve_args(&[], false).expect("parses");
    assert_eq!(args.listen.port(), 18000);
    assert_eq!(args.cluster_domain, "cluster.local");
    assert_eq!(args.grace, DEFAULT_GRACE);
    assert_eq!(args.max_connection_age, DEFAULT_MAX_CONNECTION_AGE);
    assert_eq!(
        args.max_connection_age_grace,
        DEFAULT_MAX_CONNECTION_AGE_GRACE
    );
    assert_eq!(args.source(false), SourceChoice::Static);
    assert!(args.metrics_listen.is_none());
    assert_eq!(args.namespace, None);
    assert_eq!(args.kube_args, KubernetesArgs::default());
}

#[test]
fn the_default_source_is_kubernetes_inside_a_pod() {
    let args = serve_args(&[], true).expect("parses");
    assert_eq!(args.source(true), SourceChoice::Kubernetes);
    let args = serve_args(&["--source", "static"], true).expect("parses");
    assert_eq!(args.source(true), SourceChoice::Static);
    let args = serve_args(&["--source", "kubernetes"], false).expect("parses");
    assert_eq!(args.source(false), SourceChoice::Kubernetes);
}

#[test]
fn the_static_namespace_is_the_flag_then_pod_namespace_then_default() {
    let flagged = serve_args(&["--namespace", "team-a"], false).expect("parses");
    assert_eq!(flagged.static_namespace(Some("team-b")), "team-a");
    let empty = serve_args(&["--namespace", ""], false).expect("parses");
    assert_eq!(empty.namespace_flag(), None);
    assert_eq!(empty.static_namespace(Some("team-b")), "team-b");
    let bare = serve_args(&[], false).expect("parses");
    assert_eq!(bare.static_namespace(Some("team-b")), "team-b");
    assert_eq!(bare.static_namespace(Some(" ")), "default");
    assert_eq!(bare.static_namespace(None), "default");
}

#[test]
fn static_flags_are_refused_with_the_kubernetes_source() {
    for flags in [
        &["--static", "greeter=10.0.0.1:8080"][..],
        &["--static-file", "services.yaml"],
        &["--probe-interval", "2s"],
        &["--no-probe"],
    ] {
        let mut args = vec!["--source", "kubernetes"];
        args.extend_from_slice(flags);
        let error = serve_args(&args, false).expect_err("conflicting flags");
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict, "{error}");
        let message = error.to_string();
        assert!(message.contains(flags[0]), "{message}");
        assert!(message.contains("--source kubernetes"), "{message}");
        assert!(message.contains("pass --source static"), "{message}");
    }
    // The default inside a pod is named as such.
    let error =
        serve_args(&["--static", "greeter=10.0.0.1:8080"], true).expect_err("conflicting flags");
    assert!(
        error.to_string().contains("the default inside a pod"),
        "{error}"
    );
    // The same flags with the static source are fine.
    serve_args(
        &[
            "--source",
            "static",
            "--static",
            "greeter=10.0.0.1:8080",
            "--no-probe",
        ],
        true,
    )
    .expect("static flags with the static source");
}

#[test]
fn kubernetes_flags_are_refused_with_the_static_source() {
    let error = serve_args(&["--kube-backoff-max", "1s"], false).expect_err("conflict");
    assert_eq!(error.kind(), ErrorKind::ArgumentConflict, "{error}");
    let message = error.to_string();
    assert!(message.contains("--kube-backoff-max"), "{message}");
    assert!(message.contains("the default outside a pod"), "{message}");
    assert!(message.contains("pass --source kubernetes"), "{message}");
    serve_args(
        &["--kube-backoff-max", "1s", "--kube-watch-timeout", "30s"],
        true,
    )
    .expect("kubernetes flags with the kubernetes source");
}

#[test]
fn status_defaults_and_global_log_format() {
    let cli = Cli::try_parse_from(["control-plane", "status", "--json", "--log-format", "json"])
        .expect("parses");
    assert_eq!(cli.log_format, LogFormat::Json);
    let Command::Status(args) = cli.command else {
        panic!("not status");
    };
    assert!(args.json);
    assert_eq!(args.address(|_| None), DEFAULT_ADDR);
    assert_eq!(args.timeout, DEFAULT_TIMEOUT);
}

#[test]
fn status_takes_the_address_as_the_client_does_and_its_former_spelling() {
    let address = |argv: &[&str], former: Option<&str>| {
        let mut all = vec!["control-plane", "status"];
        all.extend_from_slice(argv);
        let cli = Cli::try_parse_from(all).expect("parses");
        let Command::Status(args) = cli.command else {
            panic!("not status");
        };
        args.address(|name| {
            assert_eq!(name, FORMER_ADDR_ENV);
            former.map(str::to_owned)
        })
    };
    for flag in ["--control-plane", "--addr"] {
        assert_eq!(address(&[flag, "cp:18000"], None), "cp:18000");
        assert_eq!(
            address(&[flag, "https://cp:18000"], Some("http://x:1")),
            "https://cp:18000"
        );
    }
    assert_eq!(address(&[], Some("http://x:1")), "http://x:1");
    assert_eq!(address(&[], Some("")), DEFAULT_ADDR);
}
