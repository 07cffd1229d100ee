//! Shared set-up for the channel's end-to-end tests: greeter-server
//! processes, the scripted control plane, and observations; `traffic`:
//! hand-built traffic policy (routes, priorities, least request).

#![allow(dead_code)]

pub(crate) mod traffic;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proto::greet::greeter_client::GreeterClient;
use proto::greet::{HelloReply, HelloRequest};
use tests::fake_xds::FakeXds;
#[allow(unused_imports)] // Not every test binary starts bare backends.
pub(crate) use tests::greeters::{backends, healthy_greeters};
use xds_balancer::{Backoff, Builder, Channel, ConnectionState, EndpointSet};

/// A builder for `target` against `fake`, with short backoffs.
pub(crate) fn builder(fake: &FakeXds, target: &str) -> Builder {
    Builder::new(target)
        .control_plane(fake.uri())
        .node_id("test-client")
        .connect_timeout(Duration::from_secs(2))
        .backoff(Backoff::fast(), Backoff::fast())
}

/// Waits (at most `timeout`) until `check` holds for the endpoint set.
pub(crate) async fn wait_view(
    channel: &Channel,
    timeout: Duration,
    what: &str,
    check: impl Fn(&EndpointSet) -> bool,
) -> EndpointSet {
    let mut view = channel.endpoints();
    let reached = tokio::time::timeout(timeout, async {
        view.wait_for(|set| check(set)).await.map(|set| set.clone())
    })
    .await;
    match reached {
        Ok(Ok(set)) => set,
        _ => panic!(
            "endpoints did not reach \"{what}\" within {timeout:?}; last:\n{:#?}",
            *channel.endpoints().borrow()
        ),
    }
}

/// Waits until exactly `names` are ready.
pub(crate) async fn wait_ready(channel: &Channel, names: &[&str]) -> EndpointSet {
    let mut want: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    want.sort();
    wait_view(
        channel,
        Duration::from_secs(10),
        &format!("ready = {want:?}"),
        |set| {
            let mut ready: Vec<String> = set.ready().map(|e| e.hostname.clone()).collect();
            ready.sort();
            ready == want
        },
    )
    .await
}

/// The connection state of the endpoint named `name`.
pub(crate) fn state_of(set: &EndpointSet, name: &str) -> Option<ConnectionState> {
    set.endpoints
        .iter()
        .find(|e| e.hostname == name)
        .map(|e| e.connection)
}

/// One SayHello.
pub(crate) async fn hello(
    client: &mut GreeterClient<Channel>,
    delay_ms: u32,
) -> Result<HelloReply, tonic::Status> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "test".into(),
        delay_ms,
    });
    request.set_timeout(Duration::from_secs(10));
    client
        .say_hello(request)
        .await
        .map(tonic::Response::into_inner)
}

/// A call under way.
pub(crate) type Call = Pin<Box<dyn Future<Output = Result<HelloReply, tonic::Status>> + Send>>;

/// Starts a call and polls it once, so that when this returns it has been
/// picked and handed to its connection; await it later.
pub(crate) async fn start_call(client: &GreeterClient<Channel>, delay_ms: u32) -> Call {
    let mut client = client.clone();
    let mut call: Call = Box::pin(async move { hello(&mut client, delay_ms).await });
    assert!(
        futures::poll!(&mut call).is_pending(),
        "a call with a delay finished at once"
    );
    call
}

/// `n` sequential calls; replies counted by backend (failures panic).
pub(crate) async fn spread(
    client: &mut GreeterClient<Channel>,
    n: usize,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for i in 0..n {
        let reply = hello(client, 0)
            .await
            .unwrap_or_else(|status| panic!("call {i} failed: {status:?}"));
        *counts.entry(reply.served_by).or_default() += 1;
    }
    counts
}

/// `BTreeMap` from pairs, for assertions.
pub(crate) fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Established TCP connections from this machine to `port` (client side),
/// from the kernel's tables.
///
/// The kernel produces `/proc/net/tcp*` piecemeal, so a table read while
/// other tests open and close sockets can miss or repeat a line: each table
/// is read in one large read, and counted until two reads agree.
pub(crate) fn established_to(port: u16) -> usize {
    let mut last = count_established(port);
    for _ in 0..10 {
        let again = count_established(port);
        if again == last {
            return again;
        }
        last = again;
    }
    last
}

fn count_established(port: u16) -> usize {
    use std::io::Read;
    let mut count = 0;
    let mut buffer = vec![0u8; 4 << 20];
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(mut file) = std::fs::File::open(table) else {
            continue;
        };
        let mut filled = 0;
        while let Ok(n) = file.read(&mut buffer[filled..]) {
            if n == 0 || filled + n == buffer.len() {
                filled += n;
                break;
            }
            filled += n;
        }
        let text = String::from_utf8_lossy(&buffer[..filled]);
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 4 {
                continue;
            }
            let remote_port = fields[2]
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            // State 01 is ESTABLISHED.
            if remote_port == Some(port) && fields[3] == "01" {
                count += 1;
            }
        }
    }
    count
}

/// Waits until `check` holds, polling the kernel's view (it has no events).
pub(crate) async fn wait_until(timeout: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A call's start time and outcome (the serving backend's name).
pub(crate) type Outcome = (Instant, Result<String, tonic::Status>);

/// Runs calls on `concurrency` workers until `stop`; returns every
/// outcome with its start time.
pub(crate) fn load(
    client: &GreeterClient<Channel>,
    concurrency: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
    (0..concurrency)
        .map(|_| {
            let mut client = client.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let result = hello(&mut client, 0).await.map(|r| r.served_by);
                    outcomes.push((started, result));
                }
                outcomes
            })
        })
        .collect()
}

pub(crate) async fn collect(workers: Vec<tokio::task::JoinHandle<Vec<Outcome>>>) -> Vec<Outcome> {
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    all
}
