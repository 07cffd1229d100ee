//! The greeter-server binary on a loopback port: greeting, validation,
//! health and its runtime switch, reflection, and the graceful drain.

use std::time::Duration;

use futures_like::next_status;
use nix::sys::signal::Signal;
use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use tests::{Process, bounded, channel};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const BIN: &str = env!("CARGO_BIN_EXE_greeter-server");

fn spawn(name: &str, extra: &[&str]) -> Process {
    let mut args = vec!["--listen", "127.0.0.1:0", "--name", name];
    args.extend_from_slice(extra);
    Process::spawn(name, BIN, &args)
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
        delay_ms: 0,
    }
}

mod futures_like {
    use tokio_stream::StreamExt;
    use tonic::Streaming;
    use tonic_health::pb::HealthCheckResponse;
    use tonic_health::pb::health_check_response::ServingStatus;

    /// The next status on a health Watch stream.
    pub(crate) async fn next_status(stream: &mut Streaming<HealthCheckResponse>) -> ServingStatus {
        let message = stream
            .next()
            .await
            .expect("watch stream ended")
            .expect("watch stream failed");
        ServingStatus::try_from(message.status).expect("known status")
    }
}

#[tokio::test]
async fn greets_reports_health_and_flips_it_at_runtime() {
    bounded(Duration::from_secs(60), async {
        let mut server = spawn("alpha", &[]);
        let addr = server.wait_listening().await;
        let channel = channel(addr).await;
        let mut greeter = GreeterClient::new(channel.clone());

        let reply = greeter
            .say_hello(hello("world"))
            .await
            .expect("SayHello")
            .into_inner();
        assert_eq!(reply.message, "Hello world");
        assert_eq!(reply.served_by, "alpha");
        assert!(reply.connection_id >= 1);
        let again = greeter
            .say_hello(hello("again"))
            .await
            .expect("SayHello")
            .into_inner();
        assert_eq!(
            again.connection_id, reply.connection_id,
            "same channel, same connection"
        );

        // 1 KiB is the limit: exactly 1024 bytes is fine, one more is not.
        let at_limit = "é".repeat(512);
        assert_eq!(at_limit.len(), 1024);
        greeter
            .say_hello(hello(&at_limit))
            .await
            .expect("1024-byte name");
        let error = greeter
            .say_hello(hello(&"x".repeat(1025)))
            .await
            .expect_err("1025-byte name");
        assert_eq!(error.code(), Code::InvalidArgument);
        assert!(
            error.message().contains("1025 bytes"),
            "{}",
            error.message()
        );
        assert!(error.message().contains("1024"), "{}", error.message());

        let mut health = HealthClient::new(channel.clone());
        for service in ["", "greet.Greeter"] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .expect("Check")
                .into_inner()
                .status;
            assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
        }
        let unknown = health
            .check(HealthCheckRequest {
                service: "no.Such".into(),
            })
            .await
            .expect_err("unknown service");
        assert_eq!(unknown.code(), Code::NotFound);

        let mut watch = health
            .watch(HealthCheckRequest {
                service: "greet.Greeter".into(),
            })
            .await
            .expect("Watch")
            .into_inner();
        assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);
        server.signal(Signal::SIGUSR1);
        assert_eq!(next_status(&mut watch).await, ServingStatus::NotServing);
        let overall = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("Check")
            .into_inner()
            .status;
        assert_eq!(overall, ServingStatus::NotServing as i32);
        // Not serving is a discovery signal only: calls still succeed.
        greeter
            .say_hello(hello("still"))
            .await
            .expect("SayHello while NOT_SERVING");
        server.signal(Signal::SIGUSR1);
        assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);
    })
    .await;
}

#[tokio::test]
async fn serves_reflection() {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    bounded(Duration::from_secs(60), async {
        let mut server = spawn("reflect", &[]);
        let addr = server.wait_listening().await;
        let mut client = ServerReflectionClient::new(channel(addr).await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection")
            .into_inner();
        let response = responses.next().await.expect("a response").expect("ok");
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("unexpected reflection answer: {response:?}");
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"greet.Greeter"), "{names:?}");
        assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    })
    .await;
}

#[tokio::test]
async fn sigterm_drains_without_failing_calls() {
    const DRAIN: Duration = Duration::from_secs(2);
    const GRACE: Duration = Duration::from_secs(10);
    bounded(Duration::from_secs(60), async {
        let mut server = spawn("drainer", &["--drain-delay", "2s", "--grace", "10s"]);
        let addr = server.wait_listening().await;
        let channel = channel(addr).await;
        let mut health = HealthClient::new(channel.clone());
        let mut watch = health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("Watch")
            .into_inner();
        assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);

        // A client calling in a loop until the server goes away.
        let looper = {
            let mut greeter = GreeterClient::new(channel.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let result = greeter.say_hello(hello("loop")).await;
                    let failed = result.is_err();
                    outcomes.push((tokio::time::Instant::now(), result.map(|_| ())));
                    if failed {
                        return outcomes;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;

        let sent_at = tokio::time::Instant::now();
        server.signal(Signal::SIGTERM);
        assert_eq!(
            next_status(&mut watch).await,
            ServingStatus::NotServing,
            "the first thing a watcher sees after SIGTERM"
        );
        let noticed = sent_at.elapsed();
        assert!(
            noticed < DRAIN,
            "NOT_SERVING took {noticed:?}, longer than the drain delay"
        );

        // A slow call that is still running when the drain delay ends and
        // GOAWAY goes out must complete.
        tokio::time::sleep(DRAIN / 2).await;
        let mut slow_client = GreeterClient::new(channel.clone());
        let slow = tokio::spawn(async move {
            slow_client
                .say_hello(HelloRequest {
                    name: "slow".into(),
                    delay_ms: 2500,
                })
                .await
        });

        // The watch stream ends when the server stops instead of holding the drain.
        let end = tokio_stream::StreamExt::next(&mut watch).await;
        assert!(
            matches!(&end, None | Some(Err(_))),
            "watch should end after the drain delay, got {end:?}"
        );

        let reply = slow
            .await
            .expect("join")
            .expect("in-flight call finished during grace");
        assert_eq!(reply.into_inner().message, "Hello slow");

        let status = server.wait_exit(DRAIN + GRACE).await;
        assert!(status.success(), "exit status {status}");
        let exited = sent_at.elapsed();
        // The open health Watch must not hold the drain until the grace runs out.
        assert!(exited < DRAIN + GRACE / 2, "took {exited:?}");

        let outcomes = looper.await.expect("join");
        let ok_during_drain = outcomes
            .iter()
            .filter(|(at, result)| *at > sent_at && result.is_ok())
            .count();
        assert!(
            ok_during_drain > 10,
            "calls kept succeeding during the drain delay"
        );
        for (at, result) in &outcomes {
            if let Err(error) = result {
                assert!(
                    at.duration_since(sent_at) >= DRAIN,
                    "a call failed {:?} after SIGTERM, inside the drain delay: {error}",
                    at.duration_since(sent_at)
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn second_signal_stops_at_once() {
    bounded(Duration::from_secs(60), async {
        let mut server = spawn("impatient", &["--drain-delay", "30s", "--grace", "30s"]);
        server.wait_listening().await;
        server.signal(Signal::SIGTERM);
        server
            .wait_for_log(
                "stop requested: health is NOT_SERVING; still answering during the drain delay",
                Duration::from_secs(10),
            )
            .await;
        server.signal(Signal::SIGINT);
        let status = server.wait_exit(Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(130));
    })
    .await;
}

#[tokio::test]
async fn bad_listen_address_fails_with_a_clear_error() {
    bounded(Duration::from_secs(30), async {
        // Occupy a port, then ask the server to listen on it.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr").to_string();
        let mut server = Process::spawn("clash", BIN, &["--listen", &addr]);
        let status = server.wait_exit(Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(1));
        assert!(
            server
                .log_text()
                .contains(&format!("failed to listen on {addr}")),
            "{}",
            server.log_text()
        );
    })
    .await;
}
