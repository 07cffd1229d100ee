//! `control-plane serve`: the store, the listeners, the source, the server
//! and the exit code.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use common::signal::StopSignals;
use common::tls::{SanMatcher, ServerTls, ServerTlsFiles};
use tokio::net::TcpListener;

use super::Error;
use super::args::ServeArgs;
use super::sources::{self, Prepared};
use crate::metrics::Metrics;
use crate::names::Naming;
use crate::server::{self, Outcome};
use crate::source::SourceStatus;
use crate::store::Store;
use crate::xds::admission::AdmissionConfig;

/// Serves until a stop signal; the exit code says how the shutdown went.
pub(super) async fn serve(args: ServeArgs, in_pod: bool) -> Result<ExitCode, Error> {
    // Handlers first: until they exist these signals would kill the process.
    let signals = StopSignals::install().map_err(Error::Signals)?;
    let Prepared {
        plan,
        kind,
        namespace,
        detail,
    } = sources::prepare(&args, in_pod).await?;
    let naming = Naming {
        namespace: namespace.clone(),
        cluster_domain: args.cluster_domain.clone(),
        tls_provider_instance: args.tls_provider_instance.clone(),
    };
    let replica = args
        .name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(common::hostname);
    let store = Store::with_replica(naming, SourceStatus::starting(kind, detail), replica);
    let metrics = Arc::new(Metrics::new());
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            ServerTls::load(&ServerTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            })
            .map_err(Error::Tls)?,
        ),
        _ => None,
    };
    let transport = match &tls {
        None => "plaintext",
        Some(tls) if tls.is_mutual() => "mTLS",
        Some(_) => "TLS",
    };

    let metrics_listener = match args.metrics_listen {
        Some(addr) => {
            let (listener, addr) = bind(addr, "--metrics-listen").await?;
            tracing::info!(%addr, "metrics listening");
            Some(listener)
        }
        None => None,
    };
    let health_listener = match args.health_listen {
        Some(addr) => {
            let (listener, addr) = bind(addr, "--health-listen").await?;
            tracing::info!(%addr, "health listening (plaintext, grpc.health.v1 only)");
            Some(listener)
        }
        None => None,
    };
    let (listener, addr) = bind(args.listen, "--listen").await?;

    // Start the source before announcing the port, so a bad configuration
    // fails the start instead of a running server.
    let source_task = sources::start(plan, store.source_handle()).await?;
    tracing::info!(
        %addr,
        namespace,
        source = %kind,
        instance = store.instance_id(),
        transport,
        "listening"
    );

    let config = server::Config {
        grace: args.grace,
        metrics_listener,
        health_listener,
        tls,
        admission: AdmissionConfig {
            allowed_sans: args
                .allow_client_san
                .iter()
                .map(|pattern| SanMatcher::from_pattern(pattern))
                .collect(),
            max_streams: (args.max_streams > 0).then_some(args.max_streams),
            max_streams_per_peer: (args.max_streams_per_peer > 0)
                .then_some(args.max_streams_per_peer),
        },
        max_connection_age: (!args.max_connection_age.is_zero()).then_some(args.max_connection_age),
        max_connection_age_grace: args.max_connection_age_grace,
        ..Default::default()
    };
    let stop = Box::pin(futures::stream::unfold(signals, |mut signals| async move {
        let cause = signals.next().await;
        Some((cause, signals))
    }));
    tokio::select! {
        outcome = server::run(listener, store, metrics, config, stop) => {
            let outcome = outcome?;
            tracing::info!(?outcome, "stopped");
            Ok(match outcome {
                Outcome::Clean => ExitCode::SUCCESS,
                Outcome::GraceExpired => ExitCode::from(3),
                Outcome::Forced => ExitCode::from(130),
            })
        }
        error = sources::failure(source_task, kind) => Err(error),
    }
}

async fn bind(addr: SocketAddr, flag: &'static str) -> Result<(TcpListener, SocketAddr), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, flag, source })?;
    let addr = listener.local_addr().map_err(Error::LocalAddr)?;
    Ok((listener, addr))
}
