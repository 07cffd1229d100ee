//! The first step: something answers at the address, but not a control
//! plane.

use tests::bounded;
use tests::greeters::backends;

use crate::support::{LIMIT, closed_port, diagnose, http1_server};

#[tokio::test]
async fn names_a_server_that_is_not_a_control_plane() {
    bounded(LIMIT, async {
        // A gRPC server without ADS: a backend's port given as the control
        // plane's.
        let servers = backends(&["a"]).await;
        let backend = format!("http://{}", servers[0].addr);
        let json = diagnose(&backend, "greeter:80", &[])
            .await
            .assert_cause("not_ads_server", &["does not implement xDS ADS"]);
        assert_eq!(json["checks"].as_array().map(Vec::len), Some(1), "{json:#}");

        // An HTTP/1.1 server (a web or metrics port), written host:port.
        let web = http1_server().await;
        diagnose(&web.addr.to_string(), "greeter:80", &[])
            .await
            .assert_cause("not_ads_server", &["HTTP/1.x response"]);

        // Nothing at all is another cause.
        let nothing = format!("http://{}", closed_port());
        diagnose(&nothing, "greeter:80", &[])
            .await
            .assert_cause("control_plane_unreachable", &["refused"]);
    })
    .await;
}
