//! `greet.Greeter`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::incoming::ConnInfo;
use proto::greet::greeter_server::Greeter;
use proto::greet::{HelloReply, HelloRequest};
use proto::{MAX_DELAY_MS, MAX_NAME_BYTES};
use tonic::{Request, Response, Status};

/// Answers `SayHello` as one named instance.
#[derive(Debug, Clone)]
pub struct GreeterService {
    instance: Arc<str>,
    in_flight: Arc<AtomicUsize>,
}

impl GreeterService {
    /// A service that signs its replies with `instance`.
    pub fn new(instance: &str) -> Self {
        Self {
            instance: instance.into(),
            in_flight: Arc::default(),
        }
    }

    /// Calls being answered right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Counts a call as in flight for as long as it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[tonic::async_trait]
impl Greeter for GreeterService {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let _in_flight = InFlight::enter(&self.in_flight);
        let connection_id = request
            .extensions()
            .get::<ConnInfo>()
            .map_or(0, |conn| conn.id);
        let HelloRequest { name, delay_ms } = request.into_inner();
        if name.len() > MAX_NAME_BYTES {
            return Err(Status::invalid_argument(format!(
                "name is {} bytes long; at most {MAX_NAME_BYTES} bytes are accepted",
                name.len()
            )));
        }
        if delay_ms > MAX_DELAY_MS {
            return Err(Status::invalid_argument(format!(
                "delay_ms is {delay_ms}; at most {MAX_DELAY_MS} is accepted"
            )));
        }
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms.into())).await;
        }
        tracing::debug!(name, delay_ms, conn = connection_id, "SayHello");
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}"),
            served_by: self.instance.to_string(),
            connection_id,
        }))
    }
}
