//! What `diagnose` found: one row per check, the causes it can name with
//! their fixes, and the table and JSON object it prints.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// As it should be.
    Ok,
    /// Works, but worth knowing (some endpoints not ready, no health
    /// service).
    Warn,
    /// Calls fail, or some do, because of this.
    Fail,
    /// Not checked (an earlier step failed, or nothing to check).
    Skip,
    /// Seen, not judged (endpoints that take no calls anyway).
    Info,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
            Outcome::Info => "info",
        }
    }
}

/// A cause `diagnose` can name. The codes are stable: scripts match them
/// in `--json`'s `verdict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    ControlPlaneUnreachable,
    NotAdsServer,
    ControlPlaneNoAnswer,
    UnknownService,
    OtherNamespace,
    NotAServiceName,
    PortRequired,
    WrongPort,
    ServiceUnusable,
    NoEndpoints,
    NoReadyEndpoints,
    EndpointUnreachable,
    EndpointHttp1Only,
    EndpointHttp11Required,
    EndpointTlsOnly,
    EndpointTlsFailed,
    EndpointNotHttp2,
    EndpointNotServing,
    HealthServiceUnknown,
    MethodUnimplemented,
    CallFailed,
}

impl Cause {
    /// The code in the verdict.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Cause::ControlPlaneUnreachable => "control_plane_unreachable",
            Cause::NotAdsServer => "not_ads_server",
            Cause::ControlPlaneNoAnswer => "control_plane_no_answer",
            Cause::UnknownService => "unknown_service",
            Cause::OtherNamespace => "other_namespace",
            Cause::NotAServiceName => "not_a_service_name",
            Cause::PortRequired => "port_required",
            Cause::WrongPort => "wrong_port",
            Cause::ServiceUnusable => "service_unusable",
            Cause::NoEndpoints => "no_endpoints",
            Cause::NoReadyEndpoints => "no_ready_endpoints",
            Cause::EndpointUnreachable => "endpoint_unreachable",
            Cause::EndpointHttp1Only => "endpoint_http1_only",
            Cause::EndpointHttp11Required => "endpoint_http_1_1_required",
            Cause::EndpointTlsOnly => "endpoint_tls_only",
            Cause::EndpointTlsFailed => "endpoint_tls_failed",
            Cause::EndpointNotHttp2 => "endpoint_not_http2",
            Cause::EndpointNotServing => "endpoint_not_serving",
            Cause::HealthServiceUnknown => "health_service_unknown",
            Cause::MethodUnimplemented => "method_unimplemented",
            Cause::CallFailed => "call_failed",
        }
    }

    /// What to do about it.
    pub(crate) fn fix(self) -> &'static str {
        match self {
            Cause::ControlPlaneUnreachable => {
                "start the control plane, or fix its address: the control-plane Service and port \
                 18000 (http://control-plane:18000; http://control-plane.<namespace>:18000 from \
                 another namespace); check NetworkPolicies and DNS"
            }
            Cause::NotAdsServer => {
                "point --control-plane (CONTROL_PLANE) at the control plane's port, 18000 \
                 (http://control-plane:18000), not at a backend's, a metrics or a web port; for a \
                 TLS control plane use https:// with --ca"
            }
            Cause::ControlPlaneNoAnswer => {
                "the control plane accepted the subscription but sent nothing: look at \
                 `control-plane status` (its source's state) and its logs"
            }
            Cause::UnknownService => {
                "name the Service (not the Deployment), check its spelling, and run a control \
                 plane in the Service's namespace: `kubectl get services`"
            }
            Cause::OtherNamespace => {
                "each control plane serves only its own namespace: point CONTROL_PLANE at the \
                 control plane of the Service's namespace (http://control-plane.<namespace>:18000), \
                 or name a Service of this one"
            }
            Cause::NotAServiceName => {
                "write the Service as <service>, <service>.<namespace>, \
                 <service>.<namespace>.svc or <service>.<namespace>.svc.<cluster domain>"
            }
            Cause::PortRequired => {
                "the Service has several ports: name one in the target, <service>:<port> or \
                 <service>:<port name>"
            }
            Cause::WrongPort => {
                "targets name the Service port (e.g. greeter-service:80 or greeter-service:grpc), \
                 not the container port the pods listen on"
            }
            Cause::ServiceUnusable => {
                "this client cannot use the service's resources as served: see the detail (a TLS \
                 service needs certificate providers in the bootstrap)"
            }
            Cause::NoEndpoints => {
                "the Service has no endpoints: its selector must match the pods' labels, and a \
                 named targetPort must match a container port's name (`kubectl get \
                 endpointslices -l kubernetes.io/service-name=<service>`)"
            }
            Cause::NoReadyEndpoints => {
                "make the pods ready: the detail says why they are not (`kubectl describe pod` \
                 shows the failing readiness probe); a gRPC service needs a `grpc:` probe on its \
                 port, and rollouts need maxUnavailable: 0"
            }
            Cause::EndpointUnreachable => {
                "nothing takes connections at the endpoint's address: the Service's targetPort \
                 must be the port the server listens on, on 0.0.0.0 (not 127.0.0.1); a \
                 NetworkPolicy must allow the container port"
            }
            Cause::EndpointHttp1Only => {
                "the port serves HTTP/1.1 only, and gRPC needs HTTP/2: point the Service's \
                 targetPort at the gRPC port, or enable cleartext HTTP/2 on this one"
            }
            Cause::EndpointHttp11Required => {
                "ASP.NET Core's Kestrel refuses cleartext HTTP/2 on an endpoint with Protocols = \
                 Http1AndHttp2: give the gRPC endpoint Protocols = Http2 (appsettings.json \
                 Kestrel:Endpoints:<name>:Protocols, or ConfigureKestrel ListenAnyIP(8080, o => \
                 o.Protocols = HttpProtocols.Http2))"
            }
            Cause::EndpointTlsOnly => {
                "the endpoint serves TLS but the service is plaintext, so clients speak \
                 cleartext HTTP/2 to it: serve h2c on the port, or mark the service TLS (the \
                 Service annotation grpc-lb.io/tls: \"true\", or `tls:` in the static file)"
            }
            Cause::EndpointTlsFailed => {
                "the TLS connection to the endpoint fails: see the detail (its certificate, the \
                 CA and SANs of the bootstrap's certificate providers, or a plaintext port)"
            }
            Cause::EndpointNotHttp2 => {
                "the port does not speak gRPC: point the Service's targetPort at the server's \
                 gRPC port"
            }
            Cause::EndpointNotServing => {
                "the server says NOT_SERVING, so clients that check health skip it and its \
                 readiness probe should fail: look at the server's logs and at what turns its \
                 health off (a drain, a failed dependency)"
            }
            Cause::HealthServiceUnknown => {
                "the server's health service does not know that name: use the name the server \
                 registers (often the full service name, e.g. greet.Greeter), or \"\""
            }
            Cause::MethodUnimplemented => {
                "the server has no such method: check the package, service and method names \
                 (case matters) against the .proto, and that every pod runs a version that has \
                 it (server reflection lists them: grpcurl -plaintext <pod>:<port> list)"
            }
            Cause::CallFailed => {
                "the call failed after the checks above passed: see the detail; run again with \
                 RUST_LOG=debug for the client's view"
            }
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    /// Which step: `control plane`, `service`, `port`, `endpoints`,
    /// `endpoint`, `call`, ...
    pub(crate) step: &'static str,
    /// What was checked: an address, a name, an endpoint.
    pub(crate) subject: String,
    pub(crate) outcome: Outcome,
    /// What was found.
    pub(crate) detail: String,
    /// With [`Outcome::Fail`]: the cause.
    pub(crate) cause: Option<Cause>,
}

impl Check {
    /// A row that is not a failure.
    pub(crate) fn new(
        step: &'static str,
        subject: impl Into<String>,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            step,
            subject: subject.into(),
            outcome,
            detail: detail.into(),
            cause: None,
        }
    }

    /// A failed check and its cause.
    pub(crate) fn fail(
        step: &'static str,
        subject: impl Into<String>,
        cause: Cause,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            cause: Some(cause),
            ..Self::new(step, subject, Outcome::Fail, detail)
        }
    }
}

/// Endpoint counts by the control plane's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) ready: usize,
    pub(crate) not_ready: usize,
    pub(crate) draining: usize,
}

/// Everything found.
#[derive(Debug, Clone)]
pub(crate) struct Diagnosis {
    /// The target as given.
    pub(crate) target: String,
    /// The control plane's address, as used.
    pub(crate) control_plane: String,
    pub(crate) checks: Vec<Check>,
    /// Endpoint counts, once the service resolved.
    pub(crate) counts: Option<Counts>,
    /// One JSON object per endpoint looked at.
    pub(crate) endpoints: Vec<Value>,
}

impl Diagnosis {
    pub(crate) fn new(target: &str, control_plane: &str) -> Self {
        Self {
            target: target.to_owned(),
            control_plane: control_plane.to_owned(),
            checks: Vec::new(),
            counts: None,
            endpoints: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Whether a check failed so far.
    pub(crate) fn failed(&self) -> bool {
        self.first_failure().is_some()
    }

    /// The first failed check: the verdict.
    pub(crate) fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.outcome == Outcome::Fail)
    }

    /// `healthy`, or the first cause's code.
    pub(crate) fn verdict(&self) -> &'static str {
        self.first_failure()
            .and_then(|check| check.cause)
            .map_or("healthy", Cause::code)
    }

    fn warnings(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Warn)
            .count()
    }

    /// The one-line summary under the table.
    fn summary(&self) -> String {
        match self.first_failure() {
            Some(check) => format!("{}: {}", check.subject, check.detail),
            None => match self.warnings() {
                0 => format!("{} takes calls", self.target),
                n => format!(
                    "{} takes calls ({n} warning{})",
                    self.target,
                    if n == 1 { "" } else { "s" }
                ),
            },
        }
    }

    /// The table and the verdict.
    pub(crate) fn text(&self) -> String {
        let mut out = format!(
            "diagnose {} through the control plane at {}\n\n",
            self.target, self.control_plane
        );
        let header = ("STEP", "SUBJECT", "RESULT");
        let step_width = self
            .checks
            .iter()
            .map(|c| c.step.len())
            .chain([header.0.len()])
            .max()
            .unwrap_or(0);
        let subject_width = self
            .checks
            .iter()
            .map(|c| c.subject.chars().count())
            .chain([header.1.len()])
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<step_width$}  {:<subject_width$}  {:<6}  DETAIL",
            header.0, header.1, header.2
        );
        for check in &self.checks {
            let _ = writeln!(
                out,
                "{:<step_width$}  {:<subject_width$}  {:<6}  {}",
                check.step,
                check.subject,
                check.outcome.word(),
                check.detail
            );
        }
        out.push('\n');
        match self.first_failure() {
            Some(check) => {
                let cause = check.cause.unwrap_or(Cause::CallFailed);
                let _ = writeln!(out, "verdict: {}: {}", cause.code(), self.summary());
                let _ = writeln!(out, "fix: {}", cause.fix());
            }
            None => {
                let _ = writeln!(out, "verdict: healthy: {}", self.summary());
            }
        }
        out
    }

    /// One JSON object.
    pub(crate) fn json(&self) -> Value {
        let failure = self.first_failure();
        json!({
            "target": self.target,
            "control_plane": self.control_plane,
            "verdict": self.verdict(),
            "healthy": failure.is_none(),
            "summary": self.summary(),
            "fix": failure.and_then(|c| c.cause).map(Cause::fix),
            "warnings": self.warnings(),
            "counts": self.counts.map(|c| json!({
                "ready": c.ready,
                "not_ready": c.not_ready,
                "draining": c.draining,
            })),
            "checks": self.checks.iter().map(|c| json!({
                "step": c.step,
                "subject": c.subject,
                "result": c.outcome.word().to_ascii_lowercase(),
                "detail": c.detail,
                "cause": c.cause.map(Cause::code),
            })).collect::<Vec<_>>(),
            "endpoints": self.endpoints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_the_verdict() {
        let mut d = Diagnosis::new("greeter:80", "http://cp:18000");
        d.push(Check::new(
            "control plane",
            "http://cp:18000",
            Outcome::Ok,
            "ADS",
        ));
        assert_eq!(d.verdict(), "healthy");
        d.push(Check::new(
            "endpoints",
            "greeter:80",
            Outcome::Warn,
            "1 not ready",
        ));
        assert_eq!(d.verdict(), "healthy");
        assert!(
            d.text()
                .contains("verdict: healthy: greeter:80 takes calls (1 warning)")
        );
        d.push(Check::fail(
            "endpoint",
            "a (10.0.0.1:8080)",
            Cause::EndpointHttp1Only,
            "HTTP/1.1",
        ));
        d.push(Check::fail(
            "call",
            "/x.Y/Z",
            Cause::MethodUnimplemented,
            "UNIMPLEMENTED",
        ));
        assert_eq!(d.verdict(), "endpoint_http1_only");
        let text = d.text();
        assert!(
            text.contains("verdict: endpoint_http1_only: a (10.0.0.1:8080): HTTP/1.1\nfix: "),
            "{text}"
        );
        let json = d.json();
        assert_eq!(json["healthy"], false);
        assert_eq!(json["checks"][2]["result"], "fail");
        assert_eq!(json["checks"][3]["cause"], "method_unimplemented");
        assert_eq!(json["warnings"], 1);
    }
}
