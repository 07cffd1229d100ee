//! The causes `diagnose` can name: each with its stable code (what
//! scripts match in `--json`'s `verdict`) and the fix it suggests.

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
