//! One call's HTTP/2 stream, on h2 directly: the request body piped out,
//! the response body read in.
//!
//! A call opens its stream from its own task (`h2::client::SendRequest`
//! cloned per call), and a request body whose frames are ready at once (every
//! unary call) is handed to h2 in the same poll. The frames wait in h2's send
//! queue until the connection task runs and writes everything queued, of
//! every call, at once. Only a body that is not ready gets a task of its own
//! ([`Pipe`]), and only while it is not done.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use super::conn::{RequestBody, Slot};

/// Sends `body` on `stream`: at once as far as its frames are ready, the rest
/// from a task of its own. Returns the guard whose drop cancels that task
/// (dropping the call resets the stream), when there is one.
pub(crate) fn pipe(body: RequestBody, stream: h2::SendStream<Bytes>) -> Option<CancelPipe> {
    let mut pipe = Pipe {
        body,
        stream,
        held: None,
        sent: false,
        cancel: None,
    };
    let waker = futures::task::noop_waker();
    if pipe.step(&mut Context::from_waker(&waker)).is_ready() {
        return None;
    }
    let (guard, cancel) = oneshot::channel();
    pipe.cancel = Some(cancel);
    tokio::spawn(pipe);
    Some(CancelPipe(guard))
}

/// While it lives, the request body goes on being sent.
#[derive(Debug)]
pub(crate) struct CancelPipe(
    #[expect(dead_code, reason = "held for its drop")] oneshot::Sender<()>,
);

/// A request body on its way out.
struct Pipe {
    body: RequestBody,
    stream: h2::SendStream<Bytes>,
    /// A DATA frame read from the body and not yet handed to h2: it goes
    /// with the end of the stream when the body ends next.
    held: Option<Bytes>,
    /// Whether a DATA frame was handed to h2 (the first needs no capacity:
    /// it waits in h2's queue until the stream opens, and leaves with the
    /// HEADERS).
    sent: bool,
    cancel: Option<oneshot::Receiver<()>>,
}

impl Pipe {
    /// Sends what is ready; `Ready` once done (or failed: the response
    /// tells why).
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.sent {
                // Bounded buffering: one frame at a time within the window.
                self.stream.reserve_capacity(1);
                while self.stream.capacity() == 0 {
                    match ready!(self.stream.poll_capacity(cx)) {
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => return Poll::Ready(()),
                    }
                }
            }
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    // The rest comes later: what was read goes now.
                    if !self.send_held() {
                        return Poll::Ready(());
                    }
                    return Poll::Pending;
                }
            };
            match frame {
                None => {
                    let last = self.held.take().unwrap_or_default();
                    let _ = self.stream.send_data(last, true);
                    return Poll::Ready(());
                }
                Some(Err(status)) => {
                    tracing::debug!(%status, "request body failed; resetting the stream");
                    self.stream.send_reset(h2::Reason::CANCEL);
                    return Poll::Ready(());
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if !self.send_held() {
                            return Poll::Ready(());
                        }
                        if http_body::Body::is_end_stream(&self.body) {
                            let _ = self.stream.send_data(data, true);
                            return Poll::Ready(());
                        }
                        self.held = Some(data);
                    }
                    Err(frame) => {
                        if self.send_held() {
                            let _ = match frame.into_trailers() {
                                Ok(trailers) => self.stream.send_trailers(trailers),
                                Err(_) => self.stream.send_data(Bytes::new(), true),
                            };
                        }
                        return Poll::Ready(());
                    }
                },
            }
        }
    }

    /// Hands the held frame (if any) to h2; false when the stream is gone.
    fn send_held(&mut self) -> bool {
        match self.held.take() {
            None => true,
            Some(data) => {
                self.sent = true;
                self.stream.send_data(data, false).is_ok()
            }
        }
    }
}

impl Future for Pipe {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Some(cancel) = &mut this.cancel
            && Pin::new(cancel).poll(cx).is_ready()
        {
            this.stream.send_reset(h2::Reason::CANCEL);
            return Poll::Ready(());
        }
        this.step(cx)
    }
}

/// A response body: h2's DATA frames (their window given back as they are
/// read), then the trailers.
#[derive(Debug)]
pub(crate) struct RecvBody {
    stream: h2::RecvStream,
    state: RecvState,
    _pipe: Option<CancelPipe>,
    _slot: Slot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    Data,
    Trailers,
    Done,
}

impl RecvBody {
    pub(crate) fn new(stream: h2::RecvStream, pipe: Option<CancelPipe>, slot: Slot) -> Self {
        Self {
            stream,
            state: RecvState::Data,
            _pipe: pipe,
            _slot: slot,
        }
    }
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if this.state == RecvState::Data {
            match ready!(this.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => {
                    this.state = RecvState::Done;
                    return Poll::Ready(Some(Err(error)));
                }
                None => this.state = RecvState::Trailers,
            }
        }
        if this.state == RecvState::Trailers {
            let trailers = ready!(this.stream.poll_trailers(cx));
            this.state = RecvState::Done;
            return Poll::Ready(match trailers {
                Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
                Ok(None) => None,
                Err(error) => Some(Err(error)),
            });
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.state == RecvState::Done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use http_body_util::{BodyExt, Full, StreamBody};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    use super::*;
    use crate::pool::conn::{self, ConnHandle, ConnSettings, Driver};

    /// An HTTP/2 server answering every request with the length of its
    /// body, then `grpc-status: 0` in the trailers.
    async fn server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(socket).await else {
                        return;
                    };
                    while let Some(Ok((request, mut respond))) = conn.accept().await {
                        tokio::spawn(async move {
                            let mut body = request.into_body();
                            let mut len = 0;
                            while let Some(Ok(chunk)) = body.data().await {
                                len += chunk.len();
                                let _ = body.flow_control().release_capacity(chunk.len());
                            }
                            let mut send = respond
                                .send_response(http::Response::new(()), false)
                                .expect("response");
                            send.send_data(Bytes::from(len.to_string()), false)
                                .expect("data");
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                            send.send_trailers(trailers).expect("trailers");
                        });
                    }
                });
            }
        });
        addr
    }

    async fn connect(addr: SocketAddr) -> (Arc<ConnHandle>, Driver) {
        let settings = ConnSettings {
            connect_timeout: Duration::from_secs(5),
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(5),
        };
        conn::connect(addr, "server".into(), &settings, None)
            .await
            .expect("connect")
    }

    fn request(addr: SocketAddr, body: RequestBody) -> http::Request<RequestBody> {
        let mut request = http::Request::new(body);
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = format!("http://{addr}/greet.Greeter/SayHello")
            .parse()
            .expect("uri");
        request
            .headers_mut()
            .insert("te", http::HeaderValue::from_static("trailers"));
        request
    }

    /// The body's text and trailers.
    async fn answer(response: http::Response<RecvBody>) -> (String, Option<http::HeaderMap>) {
        let collected = response.into_body().collect().await.expect("body");
        let trailers = collected.trailers().cloned();
        let text = String::from_utf8(collected.to_bytes().to_vec()).expect("utf-8");
        (text, trailers)
    }

    #[tokio::test]
    async fn requests_sent_together_leave_in_one_write() {
        let addr = server().await;
        let (conn, _driver) = connect(addr).await;
        let unary = |text: &'static str| {
            request(
                addr,
                RequestBody::new(Full::new(Bytes::from_static(text.as_bytes()))),
            )
        };
        // One call first, so the connection's own frames (SETTINGS ACK,
        // WINDOW_UPDATE) are out of the way.
        let (text, trailers) = answer(conn.send(unary("hello")).await.expect("sent")).await;
        assert_eq!(text, "5");
        assert_eq!(trailers.expect("trailers")["grpc-status"], "0");

        let before = conn.signals.writes.load(Ordering::Relaxed);
        // Eight calls started before the connection's task runs: their
        // HEADERS and DATA are queued in h2 at once, with no task of their
        // own.
        let calls = (0..8).map(|_| conn.send(unary("0123456789")));
        for response in futures::future::join_all(calls).await {
            let (text, _) = answer(response.expect("sent")).await;
            assert_eq!(text, "10");
        }
        let writes = conn.signals.writes.load(Ordering::Relaxed) - before;
        assert_eq!(writes, 1, "eight requests should leave in one write");
    }

    #[tokio::test]
    async fn a_body_that_is_not_ready_is_sent_as_it_comes() {
        let addr = server().await;
        let (conn, _driver) = connect(addr).await;
        let (chunks, rx) = mpsc::channel::<Result<Frame<Bytes>, tonic::Status>>(1);
        let body = RequestBody::new(StreamBody::new(ReceiverStream::new(rx)));
        let call = tokio::spawn(conn.send(request(addr, body)));
        for chunk in ["abc", "defg", "h"] {
            tokio::task::yield_now().await;
            chunks
                .send(Ok(Frame::data(Bytes::from_static(chunk.as_bytes()))))
                .await
                .expect("the pipe takes the body");
        }
        drop(chunks);
        let response = call.await.expect("task").expect("sent");
        assert_eq!(answer(response).await.0, "8");
    }

    #[tokio::test]
    async fn a_request_on_a_closed_connection_comes_back_unsent() {
        let addr = server().await;
        let (conn, driver) = connect(addr).await;
        driver.abort();
        let _ = driver.await;
        let body = RequestBody::new(Full::new(Bytes::from_static(b"kept")));
        match conn.send(request(addr, body)).await {
            Err(conn::SendError::Unsent { request, .. }) => {
                let body = request.into_body().collect().await.expect("body");
                assert_eq!(body.to_bytes(), "kept");
            }
            other => panic!("expected the request back, got {:?}", other.map(|_| ())),
        }
    }
}
