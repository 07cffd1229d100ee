//! Convergence: whatever happens to endpoints, the control plane and the
//! clients, once things settle every client sees exactly the endpoints the
//! source has.
//!
//! Each case is a seeded random sequence of: endpoints added and removed,
//! turning ready, not ready and terminating (draining); control plane
//! restarts (stopped, then started on the same port from the source's
//! current state); client reconnects (a client replaced by a new one); and
//! settle points, where every client must have caught up. At the end of
//! each case every client's endpoint set (`Channel::endpoints`) must equal
//! the source's, address by address and state by state.
//!
//! The control plane runs in the test process on its library API (the real
//! store, the real ADS server on a loopback port); the clients are the real
//! greeter-client library. Endpoints are addresses nothing listens on: what
//! is compared is what the control plane told each client.
//!
//! Reproducing: a failure names its case seed; run
//! `CONVERGENCE_SEED=<seed> CONVERGENCE_CASES=1 cargo test -p tests --test
//! convergence`. `CONVERGENCE_CASES` also runs more (or fewer) cases.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use control_plane::metrics::Metrics;
use control_plane::model::{Endpoint, Readiness, Service, ServicePort};
use control_plane::names::Naming;
use control_plane::server::{self, Outcome};
use control_plane::source::{SourceKind, SourceState, SourceStatus};
use control_plane::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use xds_balancer::{Backoff, Channel, EndpointHealth, EndpointSet, ServiceStatus};

/// Cases run by default.
const DEFAULT_CASES: u64 = 100;
/// Seed of the first case by default (case `i` uses seed + i).
const DEFAULT_SEED: u64 = 0x5eed_c0de;
/// Operations per case.
const OPS_PER_CASE: usize = 16;
/// Services, and addresses per service that endpoints are drawn from.
const SERVICES: [&str; 2] = ["greeter", "billing"];
const ADDRESSES: u8 = 8;
/// How long clients get to catch up at a settle point.
const SETTLE_WITHIN: Duration = Duration::from_secs(10);

/// The source's truth: per service, each endpoint's state.
type Model = BTreeMap<&'static str, BTreeMap<SocketAddr, Readiness>>;

fn address(service: usize, i: u8) -> SocketAddr {
    // 127.77.0.0/16 on port 9: loopback addresses nothing listens on.
    SocketAddr::from(([127, 77, service as u8, i + 1], 9))
}

fn service(name: &str, endpoints: &BTreeMap<SocketAddr, Readiness>) -> Service {
    Service {
        name: name.to_owned(),
        namespace: "default".to_owned(),
        ports: vec![ServicePort {
            name: Some("grpc".to_owned()),
            port: 80,
            endpoints: endpoints
                .iter()
                .map(|(addr, state)| Endpoint {
                    state: *state,
                    ..Endpoint::ready(*addr)
                })
                .collect(),
        }],
        tls: None,
        policy: Default::default(),
    }
}

/// A control plane on its library API, serving the model.
struct Plane {
    store: Arc<Store>,
    stop: mpsc::UnboundedSender<&'static str>,
    task: JoinHandle<Result<Outcome, server::Error>>,
}

impl Plane {
    async fn start(listener: TcpListener, model: &Model) -> Self {
        let store = Store::new(
            Naming::new("default"),
            SourceStatus::starting(SourceKind::Static, "convergence test"),
        );
        let services = model
            .iter()
            .map(|(name, endpoints)| service(name, endpoints))
            .collect();
        let rejected = store.source_handle().replace_all(services, "initial state");
        assert!(rejected.is_empty(), "{rejected:?}");
        store
            .source_handle()
            .set_state(SourceState::Connected, None);
        let (stop, stops) = mpsc::unbounded_channel();
        let task = tokio::spawn(server::run(
            listener,
            store.clone(),
            Arc::new(Metrics::new()),
            server::Config::default(),
            UnboundedReceiverStream::new(stops),
        ));
        Self { store, stop, task }
    }

    fn publish(&self, name: &'static str, model: &Model) {
        self.store
            .source_handle()
            .upsert(service(name, &model[name]), "test change")
            .expect("valid service");
    }

    async fn stop(mut self) {
        let _ = self.stop.send("restart");
        let outcome = (&mut self.task)
            .await
            .expect("server task")
            .expect("server ran");
        assert_eq!(outcome, Outcome::Clean);
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client of one service.
struct Client {
    service: &'static str,
    channel: Channel,
}

async fn client(addr: SocketAddr, service: &'static str, id: usize) -> Client {
    let channel = xds_balancer::Builder::new(format!("xds:///{service}"))
        .control_plane(format!("http://{addr}"))
        .node_id(format!("convergence-{id}"))
        .backoff(Backoff::fast(), Backoff::fast())
        .connect()
        .await
        .expect("client connects");
    Client { service, channel }
}

/// What a client should see for `endpoints`.
fn expected(endpoints: &BTreeMap<SocketAddr, Readiness>) -> BTreeMap<SocketAddr, EndpointHealth> {
    endpoints
        .iter()
        .map(|(addr, state)| {
            let health = match state {
                Readiness::Ready => EndpointHealth::Healthy,
                Readiness::Draining => EndpointHealth::Draining,
                Readiness::NotReady => EndpointHealth::NotReady,
            };
            (*addr, health)
        })
        .collect()
}

/// What a client sees: the endpoints the control plane lists (not those
/// only still closing), once the service is resolved.
fn seen(set: &EndpointSet) -> Option<BTreeMap<SocketAddr, EndpointHealth>> {
    matches!(set.service, ServiceStatus::Resolved { .. }).then(|| {
        set.endpoints
            .iter()
            .filter_map(|e| Some((e.addr, e.health?)))
            .collect()
    })
}

/// Waits until every client sees the model; panics with `context` if one
/// does not in time.
async fn settle(clients: &[Client], model: &Model, context: &dyn Fn() -> String) {
    for (i, client) in clients.iter().enumerate() {
        let want = expected(&model[client.service]);
        let mut view = client.channel.endpoints();
        let converged = tokio::time::timeout(
            SETTLE_WITHIN,
            view.wait_for(|set| seen(set).as_ref() == Some(&want)),
        )
        .await
        .is_ok_and(|seen| seen.is_ok());
        if !converged {
            let got = view.borrow().clone();
            panic!(
                "client {i} ({}) did not converge within {SETTLE_WITHIN:?}\n  want {want:?}\n  \
                 sees {:?} ({:?}, control plane connected: {})\n{}",
                client.service,
                seen(&got),
                got.service,
                got.control_plane.connected,
                context()
            );
        }
    }
}

/// One random operation.
#[derive(Debug, Clone)]
enum Op {
    Set(usize, u8, Readiness),
    Remove(usize, u8),
    RestartControlPlane,
    ReconnectClient(usize),
    Settle,
}

fn random_op(rng: &mut StdRng, clients: usize) -> Op {
    let service = rng.random_range(0..SERVICES.len());
    let i = rng.random_range(0..ADDRESSES);
    match rng.random_range(0..100) {
        0..30 => Op::Set(service, i, Readiness::Ready),
        30..40 => Op::Set(service, i, Readiness::NotReady),
        40..50 => Op::Set(service, i, Readiness::Draining),
        50..68 => Op::Remove(service, i),
        68..76 => Op::RestartControlPlane,
        76..88 => Op::ReconnectClient(rng.random_range(0..clients)),
        _ => Op::Settle,
    }
}

async fn run_case(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: Model = SERVICES.iter().map(|s| (*s, BTreeMap::new())).collect();
    // A few endpoints to start with.
    for _ in 0..rng.random_range(0..6) {
        let s = rng.random_range(0..SERVICES.len());
        let i = rng.random_range(0..ADDRESSES);
        model
            .get_mut(SERVICES[s])
            .expect("service")
            .insert(address(s, i), Readiness::Ready);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut plane = Plane::start(listener, &model).await;
    let mut clients = Vec::new();
    for id in 0..rng.random_range(1..=3) {
        let service = SERVICES[rng.random_range(0..SERVICES.len())];
        clients.push(client(addr, service, id).await);
    }
    let mut next_id = clients.len();
    let mut log: Vec<Op> = Vec::new();

    for _ in 0..OPS_PER_CASE {
        let op = random_op(&mut rng, clients.len());
        log.push(op.clone());
        let context = || {
            format!(
                "case seed {seed} (replay: CONVERGENCE_SEED={seed} CONVERGENCE_CASES=1); \
                 operations so far: {log:?}"
            )
        };
        match op {
            Op::Set(s, i, state) => {
                let name = SERVICES[s];
                model
                    .get_mut(name)
                    .expect("service")
                    .insert(address(s, i), state);
                plane.publish(name, &model);
            }
            Op::Remove(s, i) => {
                let name = SERVICES[s];
                model.get_mut(name).expect("service").remove(&address(s, i));
                plane.publish(name, &model);
            }
            Op::RestartControlPlane => {
                plane.stop().await;
                let listener = TcpListener::bind(addr).await.expect("rebind the same port");
                plane = Plane::start(listener, &model).await;
            }
            Op::ReconnectClient(c) => {
                let service = clients[c].service;
                clients[c] = client(addr, service, next_id).await;
                next_id += 1;
            }
            Op::Settle => settle(&clients, &model, &context).await,
        }
    }
    let context = || {
        format!(
            "case seed {seed} (replay: CONVERGENCE_SEED={seed} CONVERGENCE_CASES=1); \
             operations: {log:?}"
        )
    };
    settle(&clients, &model, &context).await;
    drop(clients);
    plane.stop().await;
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_converges_to_the_sources_endpoints() {
    let seed = env_u64("CONVERGENCE_SEED", DEFAULT_SEED);
    let cases = env_u64("CONVERGENCE_CASES", DEFAULT_CASES);
    // Generous: a case takes well under a second when things work.
    let limit = Duration::from_secs(30 + 5 * cases);
    tests::bounded(limit, async {
        for case in 0..cases {
            run_case(seed.wrapping_add(case)).await;
        }
    })
    .await;
}
