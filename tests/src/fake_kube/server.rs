//! The HTTP/1.1 side: accept loop, routing, GET / LIST handlers and request
//! accounting. WATCH bodies come from [`super::watch`].
//!
//! Routes, for each [`Resource`] (`<prefix>` is `/api/v1` or
//! `/apis/discovery.k8s.io/v1`):
//!
//! - `<prefix>/namespaces/<ns>/<plural>`: LIST, or WATCH with `watch=true`;
//! - `<prefix>/<plural>`: the same across all namespaces;
//! - `<prefix>/namespaces/<ns>/<plural>/<name>`: GET one object;
//! - `/version`: a version document.
//!
//! Everything else is a 404 `Status`, every method but GET a 405, as the real
//! server answers them; so are GRPCRoutes while their CRD is "not
//! installed".

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::list::{self, ListQuery};
use super::resource::Resource;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Key, Store};
use super::watch::{self, BodyFrame, Filter, WatchRequest};
use super::{RequestRecord, Verb};

type Body = BoxBody<Bytes, std::io::Error>;

/// State shared by the handle, the accept loop and every request.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) requests: Mutex<Vec<RequestRecord>>,
    /// Woken on every request and every change in open watches.
    pub(crate) activity: Notify,
    pub(crate) open_watches: AtomicUsize,
    /// Cancelled to close every open connection; replaced afterwards.
    pub(crate) connections: Mutex<CancellationToken>,
    /// Whether the GRPCRoute CRD is installed (else its URLs answer 404).
    pub(crate) grpc_routes: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn connection_token(&self) -> CancellationToken {
        self.connections.lock().expect("connections lock").clone()
    }

    /// Closes every open connection abruptly.
    pub(crate) fn cut_connections(&self) {
        let mut token = self.connections.lock().expect("connections lock");
        token.cancel();
        *token = CancellationToken::new();
    }
}

/// Accepts connections until `stop` fires, then hands the listener back.
/// With `reset`, every connection is reset at once instead of served.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    reset: bool,
) -> TcpListener {
    loop {
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => return listener,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "fake API server: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if reset {
            // SO_LINGER 0: closing sends RST, like a crashed server's host.
            let _ = stream.set_zero_linger();
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let closing = shared.connection_token();
        tokio::spawn(async move {
            let service = service_fn(|request| handle(shared.clone(), request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = closing.cancelled() => {}
            }
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |name: &str| param(&query, name);
    let route = route(&path);
    let verb = match (&route, request.method()) {
        (_, m) if m != Method::GET => Verb::Other,
        (Some((_, _, Some(_))), _) => Verb::Get,
        (Some(_), _) if matches!(param("watch"), Some("true" | "1")) => Verb::Watch,
        (Some(_), _) => Verb::List,
        (None, _) => Verb::Other,
    };
    shared
        .requests
        .lock()
        .expect("requests lock")
        .push(RequestRecord {
            verb,
            resource: route.as_ref().map(|(resource, _, _)| *resource),
            namespace: route.as_ref().and_then(|(_, ns, _)| ns.clone()),
            path: path.clone(),
            query: query.clone(),
        });
    shared.activity.notify_waiters();

    if request.method() != Method::GET {
        return Ok(status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "only GET is served",
        ));
    }
    if path == "/version" {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "platform": "linux/amd64"}),
        ));
    }
    let installed =
        |resource| resource != Resource::GrpcRoutes || shared.grpc_routes.load(Ordering::SeqCst);
    let Some((resource, namespace, name)) = route.filter(|(resource, _, _)| installed(*resource))
    else {
        // As a real server answers for a resource type it does not have
        // (a CRD not installed): a bare 404.
        return Ok(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    let labels = match LabelSelector::parse(param("labelSelector").unwrap_or("")) {
        Ok(labels) => labels,
        Err(message) => return Ok(status(StatusCode::BAD_REQUEST, "BadRequest", &message)),
    };
    let fields = match FieldSelector::parse(param("fieldSelector").unwrap_or("")) {
        Ok(fields) => fields,
        Err(message) => return Ok(status(StatusCode::BAD_REQUEST, "BadRequest", &message)),
    };
    let filter = Filter {
        resource,
        namespace,
        labels,
        fields,
    };
    let response = match verb {
        Verb::Get => get(&shared, &filter, name.as_deref().unwrap_or_default()),
        Verb::Watch => start_watch(&shared, filter, &query),
        _ => {
            let query = ListQuery {
                limit: param("limit")
                    .and_then(|l| l.parse().ok())
                    .filter(|l| *l > 0),
                continue_token: param("continue")
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
                resource_version: param("resourceVersion").map(str::to_owned),
                exact: param("resourceVersionMatch") == Some("Exact"),
            };
            let store = shared.store.lock().expect("store lock");
            match list::list(&store, &filter, &query) {
                Ok(body) => json_response(StatusCode::OK, &body),
                Err((code, reason, message)) => status(code, reason, &message),
            }
        }
    };
    Ok(response)
}

/// The value of query parameter `name`.
fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Splits a resource path into (resource, namespace, name).
fn route(path: &str) -> Option<(Resource, Option<String>, Option<String>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("/api/v1".to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("/apis/{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        _ => return None,
    };
    let resource = Resource::from_url(&prefix, plural)?;
    Some((
        resource,
        namespace.map(str::to_owned),
        name.map(str::to_owned),
    ))
}

fn get(shared: &Shared, filter: &Filter, name: &str) -> Response<Body> {
    let Some(namespace) = &filter.namespace else {
        return status(StatusCode::NOT_FOUND, "NotFound", "a namespace is required");
    };
    let key = Key {
        resource: filter.resource,
        namespace: namespace.clone(),
        name: name.to_owned(),
    };
    let store = shared.store.lock().expect("store lock");
    match store.get(&key) {
        Some(object) => json_response(StatusCode::OK, object),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{} \"{name}\" not found", filter.resource.plural()),
        ),
    }
}

fn start_watch(shared: &Arc<Shared>, filter: Filter, query: &[(String, String)]) -> Response<Body> {
    let param = |name: &str| param(query, name);
    let resource_version = match param("resourceVersion").unwrap_or("") {
        "" | "0" => None,
        text => match text.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("invalid resourceVersion {text:?}"),
                );
            }
        },
    };
    let request = WatchRequest {
        filter,
        resource_version,
        timeout: Duration::from_secs(
            param("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1800),
        ),
        bookmarks: param("allowWatchBookmarks") == Some("true"),
        send_initial_events: param("sendInitialEvents") == Some("true"),
    };
    let (tx, mut rx) = mpsc::channel::<BodyFrame>(64);
    let task_shared = shared.clone();
    let cancel = shared.connection_token();
    task_shared.open_watches.fetch_add(1, Ordering::SeqCst);
    shared.activity.notify_waiters();
    tokio::spawn(async move {
        watch::run(task_shared.store.clone(), request, tx, cancel).await;
        task_shared.open_watches.fetch_sub(1, Ordering::SeqCst);
        task_shared.activity.notify_waiters();
    });
    let frames = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("valid response")
}

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("valid response")
}

/// A `Status` error response like the real server's.
fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(
        code,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = route("/api/v1/namespaces/ns/services").unwrap();
        assert_eq!(r, (Resource::Services, Some("ns".into()), None));
        let r = route("/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices/s1").unwrap();
        assert_eq!(
            r,
            (
                Resource::EndpointSlices,
                Some("ns".into()),
                Some("s1".into())
            )
        );
        assert_eq!(
            route("/api/v1/services").unwrap(),
            (Resource::Services, None, None)
        );
        assert!(route("/api/v1/namespaces/ns/pods").is_none());
        assert!(route("/apis/discovery.k8s.io/v1beta1/endpointslices").is_none());
        assert!(route("/healthz").is_none());
    }
}
