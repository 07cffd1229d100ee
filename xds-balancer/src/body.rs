//! Bodies: responses that count as in flight on their connection until
//! they end, and request bodies kept so a call can be sent again.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tonic::Status;

use crate::pool::conn::{InFlight, RequestBody, transport_status};
use crate::pool::stream::RecvBody;

/// The body of a response from a [`Channel`](crate::Channel).
///
/// While it lives, its call counts as in flight on its connection, so a
/// connection that is being retired stays open until it ends.
pub struct ResponseBody {
    inner: RecvBody,
    in_flight: Option<InFlight>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field(
                "endpoint",
                &self.in_flight.as_ref().map(|i| i.conn().label()),
            )
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    pub(crate) fn new(inner: RecvBody, in_flight: InFlight) -> Self {
        Self {
            inner,
            in_flight: Some(in_flight),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.in_flight = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                let endpoint = this
                    .in_flight
                    .take()
                    .map(|i| i.conn().label())
                    .unwrap_or_default();
                Poll::Ready(Some(Err(transport_status(&error, &endpoint))))
            }
            other => other.map_err(|error| transport_status(&error, "")),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body read ahead for retries.
pub(crate) enum Buffered {
    /// All of it.
    Whole(Bytes),
    /// Too large to keep: what was read, then the rest, to send once.
    Partial(RequestBody),
}

/// Reads up to `limit` bytes of `body`.
pub(crate) async fn buffer(mut body: RequestBody, limit: usize) -> Result<Buffered, Status> {
    let mut frames = VecDeque::new();
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            total += data.len();
            frames.push_back(data);
            if total > limit {
                return Ok(Buffered::Partial(RequestBody::new(Prefixed {
                    frames,
                    rest: body,
                })));
            }
        }
    }
    let whole = if frames.len() == 1 {
        frames.pop_front().unwrap_or_default()
    } else {
        let mut joined = BytesMut::with_capacity(total);
        for frame in frames {
            joined.extend_from_slice(&frame);
        }
        joined.freeze()
    };
    Ok(Buffered::Whole(whole))
}

pub(crate) use crate::pool::conn::replay;

/// Frames already read, then the rest of the body.
struct Prefixed {
    frames: VecDeque<Bytes>,
    rest: RequestBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(data) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.is_end_stream()
    }
}
