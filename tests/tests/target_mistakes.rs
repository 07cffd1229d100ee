//! The target mistakes users make most, against the real control plane:
//! the container port instead of the Service port, a multi-port Service
//! without a port, a name in another namespace. The control plane explains
//! (its status API's ExplainTarget); our client's UNAVAILABLE says it.

use std::time::Duration;

use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use serde_json::json;
use tests::bounded;
use tests::control_plane::static_source;
use tests::greeters::backends;
use tests::static_file::StaticFile;
use tonic::Code;
use xds_balancer::Builder;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn unknown_targets_say_what_to_write_instead() {
    bounded(LIMIT, async {
        let servers = backends(&["a"]).await;
        let backend = servers[0].addr;
        let file = StaticFile::new(
            "mistakes",
            &json!({"services": [
                {"name": "greeter", "ports": [
                    {"name": "grpc", "port": 80, "endpoints": [backend.to_string()]}]},
                {"name": "multi", "ports": [
                    {"name": "grpc", "port": 80, "endpoints": [backend.to_string()]},
                    {"port": 9090, "endpoints": [backend.to_string()]}]},
            ]}),
        );
        let path = file.path().display().to_string();
        let (_control_plane, addr) =
            static_source(&["--namespace", "team-a", "--static-file", &path]).await;
        let uri = format!("http://{addr}");

        let container_port = format!("greeter:{}", backend.port());
        let cases = [
            (
                container_port.as_str(),
                format!(
                    "service greeter has no port {port}; its ports: 80 (grpc). {port} is the \
                     container port (targetPort) of port 80. A target names the Service port, \
                     not the container port",
                    port = backend.port()
                ),
            ),
            (
                "multi",
                "service multi has 2 ports: 80 (grpc), 9090; a target must name one, e.g. \
                 multi:80"
                    .to_owned(),
            ),
            (
                "greeter.team-b:80",
                "\"greeter.team-b:80\" names namespace \"team-b\", but this control plane \
                 serves namespace \"team-a\""
                    .to_owned(),
            ),
        ];
        for (target, expected) in cases {
            let channel = Builder::new(target)
                .control_plane(uri.clone())
                .connect()
                .await
                .expect("channel");
            let mut request = tonic::Request::new(HelloRequest::default());
            request.set_timeout(Duration::from_secs(5));
            let status = GreeterClient::new(channel)
                .say_hello(request)
                .await
                .expect_err("the target does not exist");
            assert_eq!(status.code(), Code::Unavailable, "{target}: {status:?}");
            assert!(
                status.message().contains(&expected),
                "{target}: {:?} does not contain {expected:?}",
                status.message()
            );
        }
        // A name that exists is served as ever.
        let channel = Builder::new("greeter:grpc")
            .control_plane(uri)
            .connect()
            .await
            .expect("channel");
        let reply = GreeterClient::new(channel)
            .say_hello(HelloRequest::default())
            .await
            .expect("served");
        assert_eq!(reply.into_inner().served_by, "a");
    })
    .await;
}
