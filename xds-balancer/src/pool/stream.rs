//! One call's HTTP/2 stream, on h2 directly: the request body piped out,
//! the response body read in.
//!
//! A call opens its stream from its own task (`h2::client::SendRequest`
//! cloned per call), and a request body whose frames are ready at once (every
//! unary call) is handed to h2 in the same poll. The frames wait in h2's send
//! queue until the connection task runs and writes everything queued, of
//! every call, at once. Only a body that is not ready gets a task of its own
//! ([`Pipe`]), and only while it is not done.
//!
//! A body handed over whole in that first step (every unary call: one DATA
//! frame) is also kept, as a second handle on the same bytes, until the
//! response: if the connection fails before any write reached the socket,
//! the call goes back unsent with its request (see `ConnHandle::send`).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use super::conn::{RequestBody, Slot};

/// What [`pipe`] did with a request body.
#[derive(Debug)]
pub(crate) enum Piped {
    /// The whole body went to h2 at once, as this one DATA frame (empty
    /// when there was none): the same bytes, kept to send again.
    Whole(Bytes),
    /// The rest is sent by a task of its own, cancelled when this guard
    /// drops (dropping the call resets the stream).
    Rest(CancelPipe),
    /// Sent at once, but not as one DATA frame (or the stream was gone).
    Sent,
}

/// Sends `body` on `stream`: at once as far as its frames are ready, the rest
/// from a task of its own.
pub(crate) fn pipe(body: RequestBody, stream: h2::SendStream<Bytes>) -> Piped {
    let mut pipe = Pipe {
        body,
        stream,
        held: None,
        sent: false,
        copy: Copied::Empty,
        cancel: None,
    };
    let waker = futures::task::noop_waker();
    if pipe.step(&mut Context::from_waker(&waker)).is_ready() {
        return match pipe.copy {
            Copied::Empty => Piped::Whole(Bytes::new()),
            Copied::One(data) => Piped::Whole(data),
            Copied::Lost => Piped::Sent,
        };
    }
    pipe.copy = Copied::Lost;
    let (guard, cancel) = oneshot::channel();
    pipe.cancel = Some(cancel);
    tokio::spawn(pipe);
    Piped::Rest(CancelPipe(guard))
}

/// What the first step of a pipe handed to h2, kept to send it again.
enum Copied {
    /// Nothing yet.
    Empty,
    /// One DATA frame, and the end of the stream with it.
    One(Bytes),
    /// More, or something that cannot be sent again.
    Lost,
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
    /// What went to h2 in the first step, while it is one frame.
    copy: Copied,
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
                    self.send_last(last);
                    return Poll::Ready(());
                }
                Some(Err(status)) => {
                    tracing::debug!(%status, "request body failed; resetting the stream");
                    self.copy = Copied::Lost;
                    self.stream.send_reset(h2::Reason::CANCEL);
                    return Poll::Ready(());
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if !self.send_held() {
                            return Poll::Ready(());
                        }
                        if http_body::Body::is_end_stream(&self.body) {
                            self.send_last(data);
                            return Poll::Ready(());
                        }
                        self.held = Some(data);
                    }
                    Err(frame) => {
                        self.copy = Copied::Lost;
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
                self.keep(&data);
                let sent = self.stream.send_data(data, false).is_ok();
                if !sent {
                    self.copy = Copied::Lost;
                }
                sent
            }
        }
    }

    /// Hands the last frame to h2, with the end of the stream.
    fn send_last(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.keep(&data);
        }
        if self.stream.send_data(data, true).is_err() {
            self.copy = Copied::Lost;
        }
    }

    /// Keeps a second handle on `data` while the body is one frame.
    fn keep(&mut self, data: &Bytes) {
        self.copy = match self.copy {
            Copied::Empty => Copied::One(data.clone()),
            Copied::One(_) | Copied::Lost => Copied::Lost,
        };
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

    /// An HTTP/2 server for one connection that answers like [`server`]
    /// until told to die, then drops the connection as a killed process
    /// would (no GOAWAY), and says so.
    async fn mortal_server() -> (SocketAddr, mpsc::Sender<tokio::sync::oneshot::Sender<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (die, mut told) = mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut conn = h2::server::handshake(socket).await.expect("handshake");
            loop {
                tokio::select! {
                    dead = told.recv() => {
                        drop(conn);
                        if let Some(dead) = dead {
                            let _ = dead.send(());
                        }
                        return;
                    }
                    accepted = conn.accept() => {
                        let Some(Ok((request, mut respond))) = accepted else { return };
                        let mut body = request.into_body();
                        let mut len = 0;
                        while let Some(Ok(chunk)) = body.data().await {
                            len += chunk.len();
                        }
                        let mut send = respond
                            .send_response(http::Response::new(()), false)
                            .expect("response");
                        send.send_data(Bytes::from(len.to_string()), true).expect("data");
                    }
                }
            }
        });
        (addr, die)
    }

    /// An HTTP/2 server that refuses every stream (REFUSED_STREAM).
    async fn refusing_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut conn = h2::server::handshake(socket).await.expect("handshake");
            while let Some(Ok((_, mut respond))) = conn.accept().await {
                respond.send_reset(h2::Reason::REFUSED_STREAM);
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

    fn unary(addr: SocketAddr, text: &'static str) -> http::Request<RequestBody> {
        request(
            addr,
            RequestBody::new(Full::new(Bytes::from_static(text.as_bytes()))),
        )
    }

    /// The request handed back unsent, its body read.
    async fn handed_back(result: Result<http::Response<RecvBody>, conn::SendError>) -> Bytes {
        match result {
            Err(conn::SendError::Unsent { request, .. }) => request
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes(),
            other => panic!("expected the request back, got {:?}", other.map(|_| ())),
        }
    }

    #[tokio::test]
    async fn a_call_to_a_server_that_died_unnoticed_comes_back_unsent() {
        let (addr, die) = mortal_server().await;
        let (conn, _driver) = connect(addr).await;
        let (text, _) = answer(conn.send(unary(addr, "hello")).await.expect("sent")).await;
        assert_eq!(text, "5");

        let (dead, is_dead) = tokio::sync::oneshot::channel();
        die.send(dead).await.expect("the server listens");
        is_dead.await.expect("the server dropped the connection");
        // The server is gone, and the connection's task has not run since:
        // the call opens its stream on a connection that looks usable.
        assert!(conn.usable(), "the client has not noticed yet");
        let body = handed_back(conn.send(unary(addr, "again")).await).await;
        assert_eq!(body, "again");
        assert!(!conn.usable(), "now it has");
    }

    #[tokio::test]
    async fn a_refused_stream_comes_back_unsent() {
        let addr = refusing_server().await;
        let (conn, _driver) = connect(addr).await;
        let body = handed_back(conn.send(unary(addr, "refused")).await).await;
        assert_eq!(body, "refused");
    }

    #[tokio::test]
    async fn a_call_the_server_took_before_dying_fails_and_is_not_handed_back() {
        // A server that read the call, then died: the call may have run.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut conn = h2::server::handshake(socket).await.expect("handshake");
            if let Some(Ok((request, _respond))) = conn.accept().await {
                let mut body = request.into_body();
                while let Some(Ok(_)) = body.data().await {}
            }
            drop(conn);
        });
        let (conn, _driver) = connect(addr).await;
        match conn.send(unary(addr, "taken")).await {
            Err(conn::SendError::Failed(error)) => assert!(error.is_io(), "{error}"),
            other => panic!("expected a failed call, got {:?}", other.map(|_| ())),
        }
    }
}
