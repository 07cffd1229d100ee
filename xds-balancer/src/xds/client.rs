//! One xDS client per process and control plane, shared by every channel
//! built for it (as gRPC's XdsClient is): one ADS stream carries the union
//! of their subscriptions, and its cache serves them all.
//!
//! A [`Subscription`] keeps the client alive; when the last one is dropped,
//! the client's task stops and its stream closes. The registry holds the
//! clients weakly, keyed by control plane address and node id, so a channel
//! built later reuses a live client and a new one starts only when none is.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::state::AdsState;
use super::task::{self, Command, ConnectError, TaskSettings};
use crate::bootstrap::ControlPlaneTls;
use crate::model::TargetResolution;
use crate::view::ControlPlaneStatus;

/// What identifies a shared client: the control plane, who we are to it
/// (node id, zone, TLS identity), and the certificate provider instances
/// its Clusters may name.
type Key = (String, String, String, Option<ControlPlaneTls>, Vec<String>);

fn key(settings: &TaskSettings, node: &Node, providers: &BTreeSet<String>) -> Key {
    (
        settings.uri.clone(),
        node.id.clone(),
        node.locality
            .as_ref()
            .map(|l| l.zone.clone())
            .unwrap_or_default(),
        settings.tls_files.clone(),
        providers.iter().cloned().collect(),
    )
}

/// The live clients of this process.
fn registry() -> &'static Mutex<HashMap<Key, Weak<XdsClient>>> {
    static CLIENTS: OnceLock<Mutex<HashMap<Key, Weak<XdsClient>>>> = OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// A running xDS client: a handle to its task.
#[derive(Debug)]
pub(crate) struct XdsClient {
    commands: mpsc::UnboundedSender<Command>,
    control_plane: watch::Receiver<ControlPlaneStatus>,
    next_id: AtomicU64,
    /// Stops the task when the last handle goes.
    _stop: DropGuard,
}

impl XdsClient {
    /// The live client for this control plane and node, if there is one.
    fn existing(key: &Key) -> Option<Arc<XdsClient>> {
        let clients = registry().lock().expect("xDS client registry");
        clients
            .get(key)
            .and_then(Weak::upgrade)
            // A client whose runtime went away cannot serve anyone.
            .filter(|client| !client.commands.is_closed())
    }

    /// The shared client for `settings` and `node`: the live one, or a new
    /// one that connects first, so that a wrong address fails here.
    pub(crate) async fn connect(
        settings: TaskSettings,
        node: Node,
        providers: BTreeSet<String>,
    ) -> Result<Arc<XdsClient>, ConnectError> {
        let key = key(&settings, &node, &providers);
        if let Some(client) = Self::existing(&key) {
            return Ok(client);
        }
        let first = task::open(&settings).await?;
        Ok(Self::start(key, settings, node, providers, Some(first)))
    }

    /// The shared client for `settings` and `node`, started without waiting
    /// for the control plane when there is none.
    pub(crate) fn lazy(
        settings: TaskSettings,
        node: Node,
        providers: BTreeSet<String>,
    ) -> Arc<XdsClient> {
        let key = key(&settings, &node, &providers);
        match Self::existing(&key) {
            Some(client) => client,
            None => Self::start(key, settings, node, providers, None),
        }
    }

    fn start(
        key: Key,
        settings: TaskSettings,
        node: Node,
        providers: BTreeSet<String>,
        first: Option<task::AdsStream>,
    ) -> Arc<XdsClient> {
        let mut clients = registry().lock().expect("xDS client registry");
        // Another channel may have started one while we connected.
        if let Some(client) = clients
            .get(&key)
            .and_then(Weak::upgrade)
            .filter(|client| !client.commands.is_closed())
        {
            return client;
        }
        clients.retain(|_, client| client.strong_count() > 0);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(ControlPlaneStatus::new(&settings.uri));
        let stop = CancellationToken::new();
        task::spawn(
            AdsState::new(node).with_certificate_providers(Arc::new(providers)),
            settings,
            first,
            commands_rx,
            status_tx,
            stop.clone(),
        );
        let client = Arc::new(XdsClient {
            commands,
            control_plane: status_rx,
            next_id: AtomicU64::new(0),
            _stop: stop.drop_guard(),
        });
        clients.insert(key, Arc::downgrade(&client));
        client
    }

    /// Follows `target` (a Listener name) until the subscription is dropped.
    pub(crate) fn subscribe(self: &Arc<Self>, target: &str) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(TargetResolution::Waiting(format!("listener {target:?}")));
        let _ = self.commands.send(Command::Subscribe {
            id,
            target: target.to_owned(),
            tx,
        });
        Subscription {
            id,
            resolution: rx,
            client: self.clone(),
        }
    }
}

/// One channel's interest in one target.
#[derive(Debug)]
pub(crate) struct Subscription {
    id: u64,
    /// The target's resolution; changes only when it changes.
    pub(crate) resolution: watch::Receiver<TargetResolution>,
    client: Arc<XdsClient>,
}

impl Subscription {
    /// The control plane connection's state, shared by every subscription
    /// of the client. `last_update` changes without a notification.
    pub(crate) fn control_plane(&self) -> watch::Receiver<ControlPlaneStatus> {
        self.client.control_plane.clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self
            .client
            .commands
            .send(Command::Unsubscribe { id: self.id });
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use ::tests::fake_xds::{self, FakeXds, Health};

    use super::*;
    use crate::backoff::Backoff;
    use crate::model::Resolution;

    fn settings(uri: String) -> TaskSettings {
        TaskSettings {
            uri,
            tls: None,
            tls_files: None,
            connect_timeout: Duration::from_secs(5),
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(5),
            backoff: Backoff::fast(),
        }
    }

    /// The version of the latest endpoints the client acknowledged.
    async fn acked_after(fake: &FakeXds, after: &str) -> String {
        let request = fake
            .wait_for_request(Duration::from_secs(10), |r| {
                let request = &r.request;
                request.type_url == xds_type_urls::CLUSTER_LOAD_ASSIGNMENT
                    && !request.response_nonce.is_empty()
                    && request.error_detail.is_none()
                    && request.version_info != after
            })
            .await;
        request.request.version_info
    }

    #[tokio::test]
    async fn a_response_that_changes_nothing_wakes_no_one() {
        let fake = FakeXds::start().await;
        let a = SocketAddr::from(([127, 0, 0, 1], 1001));
        let b = SocketAddr::from(([127, 0, 0, 1], 1002));
        fake.set_endpoints("greeter", &[(a, Health::Healthy, "a")]);
        let client = XdsClient::connect(settings(fake.uri()), Node::default(), BTreeSet::new())
            .await
            .expect("connect");
        let mut subscription = client.subscribe("greeter");
        let mut control_plane = subscription.control_plane();
        subscription
            .resolution
            .wait_for(|r| matches!(r.flat(), Resolution::Endpoints { .. }))
            .await
            .expect("resolved");
        let first = acked_after(&fake, "").await;
        control_plane.mark_unchanged();

        // A new version with the same endpoints: acknowledged, and nothing
        // downstream is woken.
        fake.send_raw(
            xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
            vec![fake_xds::any(fake_xds::load_assignment(
                "greeter",
                &[(a, Health::Healthy, "a")],
            ))],
        );
        let second = acked_after(&fake, &first).await;
        assert!(!subscription.resolution.has_changed().expect("open"));
        assert!(!control_plane.has_changed().expect("open"));
        assert!(
            control_plane.borrow().last_update.is_some(),
            "the time is there for whoever looks"
        );

        // A real change does wake it.
        fake.set_endpoints(
            "greeter",
            &[(a, Health::Healthy, "a"), (b, Health::Healthy, "b")],
        );
        acked_after(&fake, &second).await;
        tokio::time::timeout(Duration::from_secs(5), subscription.resolution.changed())
            .await
            .expect("woken by a real change")
            .expect("open");
    }
}
