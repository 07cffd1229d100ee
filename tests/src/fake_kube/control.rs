//! [`FakeKube`]: start the fake API server, hand out its kubeconfig and a
//! client, control its open watches and count the requests it got.
//!
//! - `control/objects.rs`: creating, changing and deleting its objects.
//! - `control/outage.rs`: taking it down and bringing it back on the same
//!   port.

mod objects;
mod outage;

pub use outage::Outage;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::resource::Resource;
use super::server::{Shared, accept_loop};
use super::store::Signal;
use super::{RequestRecord, Verb};

#[derive(Debug)]
struct AcceptState {
    stop: CancellationToken,
    task: Option<JoinHandle<TcpListener>>,
    down: Option<Outage>,
}

/// A running fake API server on `127.0.0.1`, plus a kubeconfig file that
/// points at it. Stops (and removes the file) when dropped.
#[derive(Debug)]
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: tokio::sync::Mutex<AcceptState>,
    shutdown: CancellationToken,
    dir: PathBuf,
    kubeconfig: PathBuf,
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

impl FakeKube {
    /// Starts a server on `127.0.0.1:0` and writes its kubeconfig.
    ///
    /// # Panics
    ///
    /// When it cannot bind or write the file.
    pub async fn start() -> Self {
        let listener =
            bind("127.0.0.1:0".parse().expect("address")).expect("bind the fake API server");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let shutdown = CancellationToken::new();
        let stop = shutdown.child_token();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop.clone(), false));
        let dir = std::env::temp_dir().join(format!(
            "fake-kube-{}-{}-{}",
            std::process::id(),
            addr.port(),
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the kubeconfig directory");
        let kubeconfig = dir.join("kubeconfig");
        let fake = Self {
            shared,
            addr,
            accept: tokio::sync::Mutex::new(AcceptState {
                stop,
                task: Some(task),
                down: None,
            }),
            shutdown,
            dir,
            kubeconfig,
        };
        fake.write_kubeconfig(&fake.kubeconfig, None);
        fake
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file whose current context points at this server (no
    /// namespace set), for `KUBECONFIG=<path>`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Writes a kubeconfig for this server to `path`, with `namespace` as
    /// the current context's namespace when given.
    ///
    /// # Panics
    ///
    /// When the file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path, namespace: Option<&str>) {
        let namespace = namespace
            .map(|ns| format!("\n    namespace: {ns}"))
            .unwrap_or_default();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake{namespace}\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            url = self.url()
        );
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A real `kube::Client`, built from the kubeconfig file as a user's
    /// program would.
    ///
    /// # Panics
    ///
    /// When the kubeconfig is not accepted.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let options = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .expect("kubeconfig accepted");
        kube::Client::try_from(config).expect("kube client")
    }

    // ----- watch control -----

    /// Sends a BOOKMARK at the current resourceVersion to every open watch
    /// that allows bookmarks.
    pub fn send_bookmark(&self) {
        let store = self.shared.store.lock().expect("store lock");
        store.signal(Signal::Bookmark(store.resource_version()));
    }

    /// Forgets the change history: a watch resuming from an older
    /// resourceVersion (and a continued list) gets 410 Gone. Open watches
    /// go on.
    pub fn compact(&self) {
        self.shared.store.lock().expect("store lock").compact();
    }

    /// Compacts, then ends every open watch with an ERROR event carrying
    /// 410 Expired: watchers must re-list.
    pub fn expire_watches(&self) {
        let mut store = self.shared.store.lock().expect("store lock");
        store.compact();
        store.signal(Signal::Expire);
    }

    /// Cuts every open watch connection in the middle of its response;
    /// watchers resume from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.shared
            .store
            .lock()
            .expect("store lock")
            .signal(Signal::Drop);
    }

    /// How many watches are open now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    // ----- request accounting -----

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// How many `verb` requests for `resource` were received.
    pub fn count(&self, resource: Resource, verb: Verb) -> usize {
        let requests = self.shared.requests.lock().expect("requests lock");
        requests
            .iter()
            .filter(|r| r.resource == Some(resource) && r.verb == verb)
            .count()
    }

    /// Waits until `condition` holds, re-checking on every request and
    /// watch change (and every 50 ms).
    ///
    /// # Panics
    ///
    /// When it does not hold within `timeout`, naming `what`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&FakeKube) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let activity = self.shared.activity.notified();
            if condition(self) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("fake API server: {what} did not happen within {timeout:?}");
            }
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
                activity,
            )
            .await;
        }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.shared.cut_connections();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // Connections closed by the outage linger in TIME_WAIT on this port.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
