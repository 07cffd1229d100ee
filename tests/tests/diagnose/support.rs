//! Set-up shared by the diagnose tests.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tests::Process;
use tests::static_file::StaticFile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Upper bound of each test.
pub(crate) const LIMIT: Duration = Duration::from_secs(60);

/// The namespace the control planes serve.
pub(crate) const NAMESPACE: &str = "team-a";

/// A control plane serving a static file.
pub(crate) struct ControlPlane {
    pub(crate) process: Process,
    /// `http://127.0.0.1:<port>`.
    pub(crate) uri: String,
    _file: StaticFile,
}

/// A static-file service `name` with port 80 (named `grpc`) whose
/// endpoints are `endpoints`.
pub(crate) fn service(name: &str, endpoints: &[SocketAddr]) -> Value {
    let endpoints: Vec<String> = endpoints.iter().map(SocketAddr::to_string).collect();
    json!({"name": name, "ports": [{"name": "grpc", "port": 80, "endpoints": endpoints}]})
}

/// Starts a control plane for namespace [`NAMESPACE`] serving `services`;
/// with `probe` off every endpoint is served ready, as a Kubernetes
/// readiness probe that does not speak gRPC (tcpSocket, httpGet on another
/// port) would let it be.
pub(crate) async fn control_plane(services: Vec<Value>, probe: bool) -> ControlPlane {
    let file = StaticFile::new("diagnose", &json!({ "services": services }));
    let path = file.path().display().to_string();
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--source",
        "static",
        "--namespace",
        NAMESPACE,
        "--static-file",
        &path,
    ];
    if !probe {
        args.push("--no-probe");
    }
    let mut process = Process::spawn("control-plane", "control-plane", &args);
    let uri = format!("http://{}", process.wait_listening().await);
    ControlPlane {
        process,
        uri,
        _file: file,
    }
}

impl ControlPlane {
    /// Waits until the control plane has logged `message` at least `count`
    /// times since it started (its probes report before it listens).
    pub(crate) async fn wait_logged(&self, message: &str, count: usize) {
        let needle = format!("\"message\":\"{message}\"");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.process.log_text();
            if log.matches(&needle).count() >= count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the control plane did not log {message:?} {count} times:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a `diagnose` run printed, and its exit code.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) log: String,
}

impl Run {
    /// The `--json` object.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|error| {
            panic!(
                "not one JSON object ({error}):\n{}\nstderr:\n{}",
                self.stdout, self.log
            )
        })
    }

    /// Asserts that the verdict is `cause` (exit code 1), and that the
    /// failed check's detail contains each of `words`; returns the JSON.
    #[track_caller]
    pub(crate) fn assert_cause(&self, cause: &str, words: &[&str]) -> Value {
        let json = self.json();
        assert_eq!(json["verdict"], cause, "{json:#}");
        assert_eq!(self.code, Some(1), "{json:#}");
        assert_eq!(json["healthy"], false);
        let failed = json["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["result"] == "fail")
            .expect("a failed check");
        assert_eq!(failed["cause"], cause, "{json:#}");
        let said = format!(
            "{}: {}",
            failed["subject"].as_str().unwrap_or_default(),
            failed["detail"].as_str().unwrap_or_default()
        );
        for word in words {
            assert!(said.contains(word), "{word:?} not in {said:?}");
        }
        assert!(
            json["fix"].as_str().is_some_and(|fix| !fix.is_empty()),
            "{json:#}"
        );
        json
    }
}

/// Runs `greeter-client diagnose <target> --control-plane <uri> --json
/// <extra>` to its end.
pub(crate) async fn diagnose(uri: &str, target: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "diagnose",
        target,
        "--control-plane",
        uri,
        "--json",
        "--timeout",
        "3s",
    ];
    args.extend_from_slice(extra);
    run(&args).await
}

/// Runs `greeter-client <args>` (text logs) to its end.
pub(crate) async fn run(args: &[&str]) -> Run {
    let output = tokio::process::Command::new(tests::bin_path("greeter-client"))
        .args(args)
        .env_remove("CONTROL_PLANE")
        .env_remove("TARGET")
        .env_remove("GRPC_XDS_BOOTSTRAP")
        .env_remove("GRPC_XDS_BOOTSTRAP_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(40), output)
        .await
        .expect("diagnose finished")
        .expect("greeter-client ran");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        log: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A stand-in server on a loopback port that answers every connection with
/// `reply` once it has read the client's first bytes, then closes. Stops
/// when dropped.
pub(crate) struct Stub {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn stub(reply: &'static [u8]) -> Stub {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut first = [0u8; 64];
                if socket.read(&mut first).await.is_ok() {
                    let _ = socket.write_all(reply).await;
                    let _ = socket.shutdown().await;
                    // Read what is left, so closing sends FIN, not RST.
                    let mut rest = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut rest).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
            });
        }
    });
    Stub { addr, task }
}

/// A web server that speaks HTTP/1.1 only: the HTTP/2 preface is a bad
/// request to it.
pub(crate) async fn http1_server() -> Stub {
    stub(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await
}

/// What ASP.NET Core's Kestrel answers a cleartext HTTP/2 preface with on
/// an endpoint with `Protocols = Http1AndHttp2`: GOAWAY with error code
/// HTTP_1_1_REQUIRED (0xd).
pub(crate) async fn kestrel_http1_and_http2() -> Stub {
    const GOAWAY: &[u8] = &[
        0, 0, 8, // length
        7, // GOAWAY
        0, // flags
        0, 0, 0, 0, // stream 0
        0, 0, 0, 0, // last stream id
        0, 0, 0, 0xd, // HTTP_1_1_REQUIRED
    ];
    stub(GOAWAY).await
}

/// A free loopback address: nothing listens there.
pub(crate) fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}
