//! `greeter-client diagnose <TARGET>`: why calls to a service fail.
//!
//! # Design notes
//!
//! UNAVAILABLE has many causes, and they stack: nothing about endpoints
//! can be learnt from a control plane that is not one, and a wrong port
//! hides every pod. So the walk goes in the order a call meets them and the
//! verdict is the first failure: the control plane (reachable, speaking
//! ADS), the service (in this namespace), the port (a Service port), the
//! endpoints (how many ready, and why not), each endpoint (TCP, HTTP/2
//! without TLS, grpc.health.v1), and optionally one call. Later steps still
//! run where they can, so the table shows everything at once.
//!
//! What the client sees comes from the client: the channel is opened with
//! the library, exactly as an application opens it, and its endpoint view
//! gives the endpoints and their connections. What xDS cannot say (why a
//! name is absent, why an endpoint is not ready) comes from the control
//! plane's status API when it has one; without it the walk still works,
//! with less to say.
//!
//! # Layout
//!
//! - `verdict`: the rows, the table and JSON; `cause`: the causes it can
//!   name, with their codes and fixes.
//! - `control_plane`: the address, the first step, the status API.
//! - `service`: the service, port and endpoint-count steps.
//! - `endpoint`: the per-endpoint step.
//! - `call`: `--call`.

mod call;
mod cause;
mod control_plane;
mod endpoint;
mod service;
mod verdict;

use std::process::ExitCode;

use common::logging;
use xds_balancer::{EndpointHealth, Target};

use self::verdict::{Check, Diagnosis, Outcome};
use crate::args::DiagnoseArgs;

/// The first step's name in the table.
const STEP_CONTROL_PLANE: &str = "control plane";

/// Exit code when the diagnosis could not start.
const EXIT_SETUP: u8 = 3;

/// Why the diagnosis could not start at all (exit code 3); everything else
/// is a finding.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    /// Neither --control-plane nor a bootstrap.
    #[error(
        "no control plane: pass --control-plane (or set CONTROL_PLANE), e.g. \
         http://control-plane:18000, or set GRPC_XDS_BOOTSTRAP"
    )]
    NoControlPlane,
    /// The bootstrap could not be read.
    #[error("cannot use the xDS bootstrap")]
    Bootstrap(#[source] xds_balancer::BootstrapError),
    /// The target is malformed.
    #[error(transparent)]
    Target(#[from] xds_balancer::TargetError),
    /// `--call` is not a method path.
    #[error("--call {0:?} is not a method: write /package.Service/Method")]
    Method(String),
    /// The channel could not be built for a reason of the settings (not of
    /// the control plane).
    #[error(transparent)]
    Channel(xds_balancer::Error),
}

/// Runs `diagnose` and returns the exit code.
pub(crate) async fn run(args: DiagnoseArgs) -> ExitCode {
    logging::init_with_default(args.log_format, "error");
    match diagnose(&args).await {
        Ok(diagnosis) => {
            if args.json {
                println!("{}", diagnosis.json());
            } else {
                print!("{}", diagnosis.text());
            }
            if diagnosis.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            logging::fatal(args.log_format, "diagnose cannot start", &error);
            ExitCode::from(EXIT_SETUP)
        }
    }
}

/// The walk.
async fn diagnose(args: &DiagnoseArgs) -> Result<Diagnosis, SetupError> {
    let target = Target::parse(&args.target)?;
    let method = match &args.call {
        Some(method) => {
            Some(call::method_path(method).ok_or_else(|| SetupError::Method(method.clone()))?)
        }
        None => None,
    };
    let address = control_plane::address(args)?;
    let mut diagnosis = Diagnosis::new(target.name(), &address.uri);
    let timeout = args.timeout;
    let Some(channel) =
        control_plane::connect(&address, target.name(), timeout, &mut diagnosis).await?
    else {
        return Ok(diagnosis);
    };
    let api = control_plane::describe(&address, timeout, &mut diagnosis).await;
    let Some(resolved) =
        service::resolve(&channel, api.as_ref(), &target, timeout, &mut diagnosis).await
    else {
        return Ok(diagnosis);
    };
    endpoint::check_all(
        &resolved,
        args.health_service.as_deref(),
        timeout,
        args.max_endpoints,
        &mut diagnosis,
    )
    .await;
    if let Some(path) = method {
        let any_ready = resolved
            .endpoints
            .iter()
            .any(|e| e.health == EndpointHealth::Healthy);
        diagnosis.push(if any_ready {
            call::call(channel, &path, timeout).await
        } else {
            Check::new("call", path, Outcome::Skip, "not made: no ready endpoint")
        });
    }
    Ok(diagnosis)
}
