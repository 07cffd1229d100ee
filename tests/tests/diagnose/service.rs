//! The service and port steps: the control plane has no such service, it
//! is in another namespace, or the port is the container port.

use tests::bounded;
use tests::greeters::backends;

use crate::support::{LIMIT, NAMESPACE, control_plane, diagnose, service};

#[tokio::test]
async fn unknown_service() {
    bounded(LIMIT, async {
        let servers = backends(&["a"]).await;
        let cp = control_plane(vec![service("greeter", &[servers[0].addr])], false).await;
        let json = diagnose(&cp.uri, "greter:80", &[])
            .await
            .assert_cause("unknown_service", &["no service \"greter\"", "greeter"]);
        assert_eq!(json["checks"][0]["result"], "ok", "{json:#}");
        assert_eq!(json["checks"][1]["step"], "service", "{json:#}");
    })
    .await;
}

#[tokio::test]
async fn service_in_another_namespace() {
    bounded(LIMIT, async {
        let servers = backends(&["a"]).await;
        let cp = control_plane(vec![service("greeter", &[servers[0].addr])], false).await;
        diagnose(&cp.uri, "greeter.team-b:80", &[])
            .await
            .assert_cause(
                "other_namespace",
                &[
                    "namespace \"team-b\"",
                    &format!("serves namespace \"{NAMESPACE}\""),
                ],
            );
    })
    .await;
}

#[tokio::test]
async fn container_port_instead_of_the_service_port() {
    bounded(LIMIT, async {
        let servers = backends(&["a"]).await;
        let container_port = servers[0].addr.port();
        let cp = control_plane(vec![service("greeter", &[servers[0].addr])], false).await;
        let json = diagnose(&cp.uri, &format!("greeter:{container_port}"), &[])
            .await
            .assert_cause(
                "wrong_port",
                &[&format!(
                    "{container_port} is the container port (targetPort) of port 80"
                )],
            );
        let failed = &json["checks"][1];
        assert_eq!(failed["step"], "port", "{json:#}");
        // The Service port works.
        let healthy = diagnose(&cp.uri, "greeter:80", &[]).await.json();
        assert_eq!(healthy["verdict"], "healthy", "{healthy:#}");
    })
    .await;
}
