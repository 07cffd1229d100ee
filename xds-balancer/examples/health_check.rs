//! Balances calls of a service that is not the example greeter: the standard
//! `grpc.health.v1.Health/Check`, through tonic-health's generated client,
//! over every ready endpoint of a target.
//!
//! ```text
//! cargo run -p xds-balancer --example health_check -- http://127.0.0.1:18000 greeter 30
//! ```
//!
//! Arguments: the control plane's address, the target (`<service>[:<port>]`)
//! and the number of calls (default 10). It prints the ready endpoints, then
//! how many calls answered SERVING, and exits non-zero when any call failed.

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(control_plane), Some(target)) = (args.next(), args.next()) else {
        return Err("usage: health_check <control-plane address> <target> [calls]".into());
    };
    let calls: usize = args.next().map_or(Ok(10), |n| n.parse())?;

    let channel = xds_balancer::Builder::new(target)
        .control_plane(control_plane)
        .connect()
        .await?;
    // Wait until every ready endpoint is connected, so the calls are spread
    // over all of them from the first one on.
    let endpoints = channel.settled(Duration::from_secs(10)).await?;
    let ready: Vec<String> = endpoints
        .ready()
        .map(|e| format!("{} ({})", e.hostname, e.addr))
        .collect();
    println!("ready endpoints: {}", ready.join(", "));

    let mut client = HealthClient::new(channel);
    let mut serving = 0;
    for _ in 0..calls {
        let reply = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner();
        if reply.status() == ServingStatus::Serving {
            serving += 1;
        }
    }
    println!("{serving} of {calls} calls answered SERVING");
    if serving == calls {
        Ok(())
    } else {
        Err("some endpoints are not serving".into())
    }
}
