//! The whole path against a real cluster: greeter-server processes are the
//! pods of Service `greeter`, the kubelet's part (pod IPs and the Ready
//! condition) is played through the status subresource, the real
//! EndpointSlice controller writes the slices, the control plane serves
//! them, and the client library calls the greeters.
//!
//! The EndpointSlice controller (and the API's validation) refuses loopback
//! addresses, so the greeters listen on addresses of a network namespace
//! that `tests::netns` joins to this machine by a veth pair: the pods'
//! IPs are real, reachable from the test and from nowhere else. Creating
//! it needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), as CI runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use serde_json::json;
use tests::kube_apiserver::{Options, skipped};
use tests::netns::Netns;
use tests::{Process, bounded};
use tokio::time::{Instant, MissedTickBehavior};
use xds_balancer::{Builder, Channel};

use crate::harness::WAIT;
use crate::{LIMIT, NS, SERIAL, cluster, control_plane_sa, serve, service};

const PODS: [&str; 3] = ["greeter-a", "greeter-b", "greeter-c"];
/// The pods' container port `grpc`, where each greeter listens.
const PORT: u16 = 8080;
/// The label the EndpointSlice controller puts on the slices it manages.
const MANAGED_BY: (&str, &str) = (
    "endpointslice.kubernetes.io/managed-by",
    "endpointslice-controller.k8s.io",
);
/// Pause between two calls of the steady stream.
const INTERVAL: Duration = Duration::from_millis(10);

/// Sets pod `name`'s IP and Ready condition through the status
/// subresource, as a kubelet would.
async fn set_ready(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({ "status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{ "ip": ip }],
        "conditions": [
            { "type": "Ready", "status": status },
            { "type": "ContainersReady", "status": status },
        ],
    } });
    pods.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch {name}'s status: {e}"));
}

/// Pod `name` of Service `greeter`, on node-1, with container port `grpc`.
fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": "greeter" } },
        "spec": {
            "nodeName": "node-1",
            "containers": [{
                "name": "greeter",
                "image": "greeter-server",
                "ports": [{ "name": "grpc", "containerPort": PORT }],
            }],
        },
    }))
    .expect("a Pod")
}

/// Waits until the slices of Service `greeter` hold every pod IP of `ips`,
/// the one `ip` with Ready `ready` and the others ready, and checks that
/// the EndpointSlice controller made them (not this test).
async fn wait_slices(slices: &Api<EndpointSlice>, ips: &[String], ip: &str, ready: bool) {
    let params = kube::api::ListParams::default().labels("kubernetes.io/service-name=greeter");
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = slices.list(&params).await.expect("list slices");
        let mut seen: Vec<(String, bool)> = listed
            .items
            .iter()
            .flat_map(|s| &s.endpoints)
            .flat_map(|e| {
                let ready = e.conditions.as_ref().and_then(|c| c.ready) == Some(true);
                e.addresses.iter().map(move |a| (a.clone(), ready))
            })
            .collect();
        seen.sort();
        let mut want: Vec<(String, bool)> =
            ips.iter().map(|a| (a.clone(), a != ip || ready)).collect();
        want.sort();
        if seen == want {
            for slice in &listed.items {
                let labels = slice.metadata.labels.clone().unwrap_or_default();
                assert_eq!(
                    labels.get(MANAGED_BY.0).map(String::as_str),
                    Some(MANAGED_BY.1),
                    "{slice:?}"
                );
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the slices never held {want:?} within {WAIT:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the channel takes calls on exactly the endpoints `pods`
/// (named after their pod, from the slices' targetRef).
async fn wait_channel(channel: &Channel, pods: &[&str]) {
    let mut view = channel.endpoints();
    let ready = |set: &xds_balancer::EndpointSet| {
        let mut names: Vec<&str> = set.ready().map(|e| e.hostname.as_str()).collect();
        names.sort_unstable();
        names == pods
    };
    if tokio::time::timeout(WAIT, view.wait_for(ready))
        .await
        .is_err()
    {
        panic!(
            "the channel never took calls on exactly {pods:?}: {:?}",
            *view.borrow()
        );
    }
}

/// One call of the steady stream: the phase of the test it started in, and
/// who served it.
type Call = (usize, Result<String, tonic::Status>);

/// SayHello every [`INTERVAL`], one at a time, each tagged with the phase
/// the test was in when it started.
struct Caller {
    phase: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<Call>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Caller {
    fn start(channel: Channel) -> Self {
        let phase = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (phase, calls, stop) = (phase.clone(), calls.clone(), stop.clone());
            async move {
                let mut tick = tokio::time::interval(INTERVAL);
                tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let at = phase.load(Ordering::SeqCst);
                    let mut request = tonic::Request::new(HelloRequest {
                        name: "kube-real".into(),
                        delay_ms: 0,
                    });
                    request.set_timeout(Duration::from_secs(5));
                    let result = GreeterClient::new(channel.clone())
                        .say_hello(request)
                        .await
                        .map(|reply| reply.into_inner().served_by);
                    calls.lock().expect("calls").push((at, result));
                }
            }
        });
        Self {
            phase,
            calls,
            stop,
            task,
        }
    }

    /// Moves to phase `phase` (calls that start from now on carry it).
    fn enter(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Waits until `count` calls of the current phase have finished.
    async fn wait_calls(&self, count: usize) {
        let phase = self.phase.load(Ordering::SeqCst);
        let deadline = Instant::now() + WAIT;
        loop {
            let done = self.of(phase).len();
            if done >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{done} calls of phase {phase} within {WAIT:?}, not {count}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The results of the calls of phase `phase`.
    fn of(&self, phase: usize) -> Vec<Result<String, tonic::Status>> {
        let calls = self.calls.lock().expect("calls");
        calls
            .iter()
            .filter(|(p, _)| *p == phase)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Stops and returns every call.
    async fn stop(self) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the calling task");
        std::mem::take(&mut *self.calls.lock().expect("calls"))
    }
}

/// Calls per backend among `calls` of phase `phase` (failures left out).
fn served(calls: &[Call], phase: usize) -> BTreeMap<String, usize> {
    let mut by_backend = BTreeMap::new();
    for (_, result) in calls.iter().filter(|(p, _)| *p == phase) {
        if let Ok(backend) = result {
            *by_backend.entry(backend.clone()).or_default() += 1;
        }
    }
    by_backend
}

/// A pod turning unready, as its kubelet reports it, leaves the real
/// EndpointSlice's ready set, and the client library stops calling it
/// while calls go on at a steady rate, none failing; ready again, it is
/// called again.
#[tokio::test]
async fn a_pod_turning_unready_stops_the_clients_calls_through_the_real_endpointslice() {
    if skipped() {
        return;
    }
    // Before the cluster: without root this fails at once, saying so.
    let netns = Netns::create(PODS.len() as u8);
    let ips: Vec<String> = netns.addresses().iter().map(|a| a.to_string()).collect();
    let _serial = SERIAL.lock().await;
    let cluster = cluster(Options {
        endpointslice_controller: true,
        ..Options::default()
    })
    .await;
    bounded(LIMIT, async {
        let mut greeters: Vec<Process> = Vec::new();
        for (name, ip) in PODS.iter().zip(&ips) {
            let listen = format!("{ip}:{PORT}");
            let mut greeter = netns.spawn(
                name,
                "greeter-server",
                &["--listen", &listen, "--name", name],
            );
            greeter.wait_listening().await;
            greeters.push(greeter);
        }

        let admin = cluster.admin_client().await;
        let post = PostParams::default();
        let node =
            serde_json::from_value(json!({ "metadata": { "name": "node-1" } })).expect("a Node");
        Api::<Node>::all(admin.clone())
            .create(&post, &node)
            .await
            .expect("create Node");
        Api::<Service>::namespaced(admin.clone(), NS)
            .create(&post, &service("greeter", json!("grpc"), false))
            .await
            .expect("create Service");
        let pods: Api<Pod> = Api::namespaced(admin.clone(), NS);
        for (name, ip) in PODS.iter().zip(&ips) {
            pods.create(&post, &pod(name)).await.expect("create Pod");
            set_ready(&pods, name, ip, true).await;
        }
        let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), NS);
        wait_slices(&slices, &ips, &ips[1], true).await;

        let control_plane = serve(&cluster, &control_plane_sa(), &[]).await;
        let channel = Builder::new("xds:///greeter")
            .control_plane(format!("http://{}", control_plane.addr))
            .node_id("kube-real-pods")
            .connect()
            .await
            .expect("channel");
        wait_channel(&channel, &PODS).await;

        // 0: all ready. 1: greeter-b reported unready, until the channel
        // has left it. 2: after that. 3: greeter-b reported ready again,
        // until the channel has it back. 4: after that.
        let started = Instant::now();
        let caller = Caller::start(channel.clone());
        caller.wait_calls(90).await;
        caller.enter(1);
        let flipped = Instant::now();
        set_ready(&pods, "greeter-b", &ips[1], false).await;
        wait_slices(&slices, &ips, &ips[1], false).await;
        wait_channel(&channel, &["greeter-a", "greeter-c"]).await;
        let left = flipped.elapsed();
        caller.enter(2);
        caller.wait_calls(150).await;
        caller.enter(3);
        set_ready(&pods, "greeter-b", &ips[1], true).await;
        wait_slices(&slices, &ips, &ips[1], true).await;
        wait_channel(&channel, &PODS).await;
        caller.enter(4);
        caller.wait_calls(90).await;
        let calls = caller.stop().await;

        let phases: Vec<_> = (0..=4).map(|p| served(&calls, p)).collect();
        eprintln!(
            "{} calls in {:?} (greeter-b left the channel {left:?} after its status turned unready); per phase: {phases:?}",
            calls.len(),
            started.elapsed()
        );
        let failed: Vec<_> = calls.iter().filter(|(_, r)| r.is_err()).collect();
        assert!(failed.is_empty(), "failed calls: {failed:?}");
        for phase in [0, 4] {
            for pod in PODS {
                assert!(
                    phases[phase].get(pod).is_some_and(|n| *n >= 20),
                    "phase {phase}: every pod is called: {phases:?}"
                );
            }
        }
        assert_eq!(
            phases[2].get("greeter-b"),
            None,
            "no call to the unready pod: {phases:?}"
        );
        for pod in ["greeter-a", "greeter-c"] {
            assert!(
                phases[2].get(pod).is_some_and(|n| *n >= 60),
                "phase 2: the ready pods share the calls: {phases:?}"
            );
        }
    })
    .await;
}
