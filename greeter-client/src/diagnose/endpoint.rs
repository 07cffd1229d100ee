//! The per-endpoint step: does it take TCP connections, speak cleartext
//! HTTP/2 (not HTTP/1.1 only, not Kestrel's HTTP_1_1_REQUIRED, not TLS
//! only), and what does its grpc.health.v1 say, for `""` and a named
//! service?
//!
//! Ready endpoints are judged: each problem fails the diagnosis. Draining
//! and not-ready endpoints take no calls anyway; what they answer is shown
//! to explain why they are not ready (a readiness probe that fails against
//! a server that answers SERVING points at the probe).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use tonic::Code;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use xds_balancer::{ConnectionState, EndpointHealth, PrefaceAnswer};

use super::cause::Cause;
use super::service::{Resolved, Subject, state_word};
use super::verdict::{Check, Diagnosis, Outcome};

/// What a grpc.health.v1 `Check` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Health {
    Serving,
    NotServing,
    /// NOT_FOUND, or SERVICE_UNKNOWN: the name is not registered.
    UnknownName,
    /// No grpc.health.v1 on the server.
    Unimplemented,
    /// Anything else (the status or the odd value).
    Failed(String),
}

impl Health {
    fn word(&self) -> String {
        match self {
            Health::Serving => "SERVING".to_owned(),
            Health::NotServing => "NOT_SERVING".to_owned(),
            Health::UnknownName => "unknown name (NOT_FOUND)".to_owned(),
            Health::Unimplemented => "no grpc.health.v1 (UNIMPLEMENTED)".to_owned(),
            Health::Failed(why) => format!("failed: {why}"),
        }
    }
}

/// What one endpoint answered.
#[derive(Debug, Clone)]
struct Found {
    answer: PrefaceAnswer,
    /// Per health service name asked (`""` first).
    health: Vec<(String, Health)>,
}

/// Looks at up to `max` endpoints at once and adds a row for each.
pub(crate) async fn check_all(
    resolved: &Resolved,
    health_service: Option<&str>,
    timeout: Duration,
    max: usize,
    diagnosis: &mut Diagnosis,
) {
    let mut names = vec![String::new()];
    if let Some(name) = health_service.filter(|n| !n.is_empty()) {
        names.push(name.to_owned());
    }
    let chosen: Vec<&Subject> = resolved.endpoints.iter().take(max).collect();
    let mut looks = JoinSet::new();
    for (index, subject) in chosen.iter().enumerate() {
        let (addr, names, tls) = (subject.addr, names.clone(), resolved.tls);
        looks.spawn(async move { (index, look(addr, tls, &names, timeout).await) });
    }
    let mut found: Vec<Option<Found>> = vec![None; chosen.len()];
    while let Some(done) = looks.join_next().await {
        if let Ok((index, answer)) = done {
            found[index] = Some(answer);
        }
    }
    for (subject, found) in chosen.iter().zip(found) {
        let Some(found) = found else { continue };
        let check = judge(subject, &found, resolved.tls);
        diagnosis
            .endpoints
            .push(endpoint_json(subject, &found, &check));
        diagnosis.push(check);
    }
    let rest = resolved.endpoints.len().saturating_sub(max);
    if rest > 0 {
        diagnosis.push(Check::new(
            "endpoint",
            format!("{rest} more"),
            Outcome::Skip,
            "not checked one by one (--max-endpoints)",
        ));
    }
}

/// Sniffs the endpoint, then asks its health service (cleartext only: a
/// TLS endpoint's handshake is the channel's, and its result is shown).
async fn look(addr: std::net::SocketAddr, tls: bool, names: &[String], timeout: Duration) -> Found {
    let answer = xds_balancer::sniff(&addr.to_string(), timeout).await;
    let mut health = Vec::new();
    if answer == PrefaceAnswer::Http2 && !tls {
        for name in names {
            health.push((name.clone(), check_health(addr, name, timeout).await));
        }
    }
    Found { answer, health }
}

async fn check_health(addr: std::net::SocketAddr, name: &str, timeout: Duration) -> Health {
    let connected = Endpoint::from_shared(format!("http://{addr}"))
        .map(|e| e.connect_timeout(timeout).timeout(timeout))
        .map_err(|e| e.to_string());
    let channel = match connected {
        Ok(endpoint) => match endpoint.connect().await {
            Ok(channel) => channel,
            Err(error) => return Health::Failed(common::error::chain(&error)),
        },
        Err(error) => return Health::Failed(error),
    };
    let request = HealthCheckRequest {
        service: name.to_owned(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(response) => match ServingStatus::try_from(response.into_inner().status) {
            Ok(ServingStatus::Serving) => Health::Serving,
            Ok(ServingStatus::NotServing) => Health::NotServing,
            Ok(ServingStatus::ServiceUnknown) => Health::UnknownName,
            Ok(ServingStatus::Unknown) => Health::Failed("UNKNOWN".to_owned()),
            Err(_) => Health::Failed("an unknown status value".to_owned()),
        },
        Err(status) if status.code() == Code::NotFound => Health::UnknownName,
        Err(status) if status.code() == Code::Unimplemented => Health::Unimplemented,
        Err(status) => Health::Failed(format!(
            "{}: {}",
            common::error::code_name(status.code()),
            status.message()
        )),
    }
}

/// The endpoint's row. Only ready endpoints can fail the diagnosis.
fn judge(subject: &Subject, found: &Found, tls: bool) -> Check {
    let judged = subject.health == EndpointHealth::Healthy;
    let mut parts = vec![match subject.detail.as_str() {
        "" => state_word(subject.health).to_owned(),
        why => format!("{} ({why})", state_word(subject.health)),
    }];
    let mut outcome = Outcome::Ok;
    let mut cause = None;
    let mut fail = |why: Cause, outcome: &mut Outcome| {
        if cause.is_none() {
            cause = Some(why);
        }
        *outcome = Outcome::Fail;
    };
    match (&found.answer, tls) {
        (PrefaceAnswer::Http2, false) => parts.push("h2c".to_owned()),
        (PrefaceAnswer::Tls, true) => {
            parts.push("TLS, as the service asks".to_owned());
            match (subject.connection, &subject.last_error) {
                (ConnectionState::Ready | ConnectionState::NotServing, _) => {
                    parts.push("the channel's TLS connection is up".to_owned());
                }
                (_, Some(error)) => {
                    parts.push(format!("the channel's TLS connection fails: {error}"));
                    fail(Cause::EndpointTlsFailed, &mut outcome);
                }
                (state, None) => parts.push(format!("the channel's connection: {state:?}")),
            }
        }
        (PrefaceAnswer::Http2, true) => {
            parts.push(
                "the service is TLS, but the endpoint speaks cleartext HTTP/2 (h2c)".to_owned(),
            );
            fail(Cause::EndpointTlsFailed, &mut outcome);
        }
        (answer, _) => {
            parts.push(match answer {
                PrefaceAnswer::Tls => "the port speaks TLS only: it answered the cleartext \
                                       HTTP/2 preface with a TLS record"
                    .to_owned(),
                other => other.problem().unwrap_or_default(),
            });
            let why = match answer {
                PrefaceAnswer::Unreachable(_) => Cause::EndpointUnreachable,
                PrefaceAnswer::Http1 => Cause::EndpointHttp1Only,
                PrefaceAnswer::Http11Required => Cause::EndpointHttp11Required,
                PrefaceAnswer::Tls => Cause::EndpointTlsOnly,
                _ => Cause::EndpointNotHttp2,
            };
            fail(why, &mut outcome);
        }
    }
    for (name, health) in &found.health {
        parts.push(format!("health {name:?}: {}", health.word()));
        match (health, name.is_empty()) {
            (Health::Serving, _) => {}
            (Health::NotServing, _) => fail(Cause::EndpointNotServing, &mut outcome),
            (Health::UnknownName, false) => fail(Cause::HealthServiceUnknown, &mut outcome),
            _ => {
                if outcome == Outcome::Ok {
                    outcome = Outcome::Warn;
                }
            }
        }
    }
    let detail = parts.join("; ");
    if !judged {
        return Check::new("endpoint", subject.label.clone(), Outcome::Info, detail);
    }
    match cause {
        Some(cause) => Check::fail("endpoint", subject.label.clone(), cause, detail),
        None => Check::new("endpoint", subject.label.clone(), outcome, detail),
    }
}

/// The endpoint in `--json`'s `endpoints`.
fn endpoint_json(subject: &Subject, found: &Found, check: &Check) -> Value {
    let protocol = match &found.answer {
        PrefaceAnswer::Http2 => "h2c",
        PrefaceAnswer::Http11Required => "http_1_1_required",
        PrefaceAnswer::Http1 => "http1",
        PrefaceAnswer::Tls => "tls",
        PrefaceAnswer::Closed => "closed",
        PrefaceAnswer::Silent => "silent",
        PrefaceAnswer::Unreachable(_) => "unreachable",
        _ => "other",
    };
    let health: serde_json::Map<String, Value> = found
        .health
        .iter()
        .map(|(name, health)| {
            let word = match health {
                Health::Serving => "SERVING".to_owned(),
                Health::NotServing => "NOT_SERVING".to_owned(),
                Health::UnknownName => "NOT_FOUND".to_owned(),
                Health::Unimplemented => "UNIMPLEMENTED".to_owned(),
                Health::Failed(why) => why.clone(),
            };
            (name.clone(), Value::String(word))
        })
        .collect();
    json!({
        "address": subject.addr.to_string(),
        "endpoint": subject.label,
        "zone": subject.zone,
        "state": state_word(subject.health).replace(' ', "_"),
        "state_detail": subject.detail,
        "protocol": protocol,
        "health": health,
        "result": format!("{:?}", check.outcome).to_ascii_lowercase(),
        "cause": check.cause.map(Cause::code),
    })
}
