//! The `/metrics` HTTP endpoint (HTTP/1.1, what Prometheus scrapes), in
//! the format the scraper's `Accept` header asks for ([`Format`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Format, Metrics, Observed};

/// Reads the current state for the gauges, on every scrape.
pub type Observer = Arc<dyn Fn() -> Observed + Send + Sync>;
/// How long a scraper may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error (for example too many open files).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `GET /metrics` on `listener` until `stopped` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    observer: Observer,
    stopped: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stopped.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let observer = observer.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let metrics = metrics.clone();
                let observer = observer.clone();
                async move { Ok::<_, Infallible>(respond(&metrics, &*observer, &request)) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "metrics endpoint: connection ended with an error");
                    }
                }
                () = stopped.cancelled() => {}
            }
        });
    }
}

fn respond(
    metrics: &Metrics,
    observer: &(dyn Fn() -> Observed + Send + Sync),
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            let accept = request
                .headers()
                .get(header::ACCEPT)
                .and_then(|value| value.to_str().ok());
            let format = Format::negotiate(accept);
            let text = metrics.render(format, &observer(), SystemTime::now());
            (StatusCode::OK, format.content_type(), text)
        }
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
