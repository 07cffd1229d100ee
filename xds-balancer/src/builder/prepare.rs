//! Checking a [`Builder`]'s settings before anything connects: which of
//! the builder, the bootstrap and the environment gives the control plane,
//! its TLS and the node; the control plane's address as a URI whose scheme
//! matches the credentials; and the settings of the xDS task.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use tls_reload::client::{ClientTls, ClientTlsFiles, ServerVerification};

use super::{BootstrapSource, Builder, CONTROL_PLANE_ENV};
use crate::bootstrap::{Bootstrap, ControlPlaneTls};
use crate::error::{Error, Result};
use crate::options::Config;
use crate::pool::tls::Providers;
use crate::target::Target;
use crate::xds::task::TaskSettings;

impl Builder {
    /// Checks the settings and resolves them into what starts a channel.
    pub(super) fn prepare(self) -> Result<Prepared> {
        let target = Target::parse(&self.target)?;
        let bootstrap = match (&self.control_plane, self.bootstrap) {
            (_, Some(BootstrapSource::File(path))) => Some(Bootstrap::from_file(&path)?),
            (_, Some(BootstrapSource::Parsed(bootstrap))) => Some(bootstrap),
            (Some(_), None) => None,
            (None, None) => Bootstrap::from_env()?,
        };
        let mut providers = bootstrap
            .as_ref()
            .map(|b| b.certificate_providers.clone())
            .unwrap_or_default();
        providers.extend(self.certificate_providers);
        let control_plane_tls = match (&self.control_plane, self.control_plane_tls) {
            (_, Some(tls)) => Some(tls),
            // The bootstrap's credentials go with the bootstrap's address.
            (Some(_), None) => None,
            (None, None) => bootstrap.as_ref().and_then(|b| b.control_plane_tls.clone()),
        };
        let control_plane = match (self.control_plane, &bootstrap) {
            (Some(uri), _) => uri,
            (None, Some(bootstrap)) => bootstrap.control_plane.clone(),
            (None, None) => std::env::var(CONTROL_PLANE_ENV)
                .ok()
                .filter(|uri| !uri.is_empty())
                .ok_or(Error::NoControlPlane)?,
        };
        let control_plane = control_plane_uri(&control_plane, control_plane_tls.is_some())?;
        let node_id = self
            .node_id
            .or_else(|| bootstrap.as_ref().and_then(|b| b.node_id.clone()))
            .or_else(|| std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(hostname);
        let node = Node {
            id: node_id,
            cluster: bootstrap
                .as_ref()
                .and_then(|b| b.node_cluster.clone())
                .unwrap_or_default(),
            locality: self
                .zone
                .or_else(|| bootstrap.as_ref().and_then(|b| b.zone.clone()))
                .filter(|zone| !zone.is_empty())
                .map(|zone| Locality {
                    zone,
                    ..Default::default()
                }),
            user_agent_name: crate::USER_AGENT_NAME.into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion(
                crate::VERSION.into(),
            )),
            ..Default::default()
        };
        Ok(Prepared {
            target,
            control_plane,
            node,
            providers: Arc::new(Providers::new(providers)),
            control_plane_tls,
            config: self.config,
        })
    }
}

/// The machine's host name (in a pod: the pod name), or `"unknown"`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Checks a control plane address and returns it as a URI: `host:port`
/// means `http://host:port`. The scheme must match the credentials: never
/// plaintext where TLS was asked for, nor the reverse.
fn control_plane_uri(address: &str, tls: bool) -> Result<String> {
    let invalid = |reason: &str| Error::ControlPlaneUri {
        uri: address.to_owned(),
        reason: reason.to_owned(),
    };
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match (parsed.scheme_str(), tls) {
        (Some("http"), false) | (Some("https"), true) => {}
        (Some("http"), true) => {
            return Err(invalid(
                "TLS settings for the control plane are given, but the address is http://; \
                 use https://",
            ));
        }
        (Some("https"), false) => {
            return Err(invalid(
                "https:// needs TLS settings: Builder::control_plane_tls, or the bootstrap's \
                 channel_creds tls",
            ));
        }
        _ => return Err(invalid("the scheme must be http:// or https://")),
    }
    match parsed.authority() {
        Some(authority) if !authority.host().is_empty() => match authority.port_u16() {
            Some(_) => Ok(uri),
            None => Err(invalid(
                "no port (or not a number): the control plane listens on 18000 unless told otherwise",
            )),
        },
        _ => Err(invalid("no host")),
    }
}

/// Checked settings, ready to start a channel.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) target: Target,
    pub(crate) control_plane: String,
    pub(crate) node: Node,
    pub(crate) providers: Arc<Providers>,
    pub(crate) control_plane_tls: Option<ControlPlaneTls>,
    pub(crate) config: Config,
}

impl Prepared {
    /// How to reach the control plane; loads its TLS files (so a missing
    /// or broken one fails here), within a Tokio runtime.
    pub(crate) fn xds_settings(&self) -> Result<TaskSettings> {
        let tls = match &self.control_plane_tls {
            None => None,
            Some(tls) => {
                let files = ClientTlsFiles {
                    ca: tls.ca_certificate_file.clone(),
                    cert: tls.certificate_file.clone(),
                    key: tls.private_key_file.clone(),
                };
                let client = ClientTls::load(&files).map_err(|error| Error::ControlPlaneUri {
                    uri: self.control_plane.clone(),
                    reason: format!("its TLS files: {}", crate::error::error_chain(&error)),
                })?;
                let host = self
                    .control_plane
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
                    .unwrap_or_default();
                Some((client, ServerVerification::Hostname(host)))
            }
        };
        Ok(TaskSettings {
            uri: self.control_plane.clone(),
            tls,
            tls_files: self.control_plane_tls.clone(),
            connect_timeout: self.config.connect_timeout,
            keepalive_interval: self.config.keepalive_interval,
            keepalive_timeout: self.config.keepalive_timeout,
            backoff: self.config.control_plane_backoff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_settings_before_connecting() {
        let error = Builder::new("http://greeter")
            .control_plane("http://127.0.0.1:1")
            .prepare()
            .unwrap_err();
        assert!(matches!(error, Error::Target(_)), "{error}");
        for bad in [
            "https://cp:443",
            "http://",
            "ftp://cp:21",
            "cp:x",
            "http://cp",
        ] {
            let error = Builder::new("greeter")
                .control_plane(bad)
                .prepare()
                .unwrap_err();
            assert!(
                matches!(error, Error::ControlPlaneUri { .. }),
                "{bad}: {error}"
            );
        }
        let prepared = Builder::new("xds:///greeter:80")
            .control_plane("http://127.0.0.1:18000")
            .node_id("me")
            .prepare()
            .expect("valid");
        assert_eq!(prepared.target.name(), "greeter:80");
        assert_eq!(prepared.node.id, "me");
        // The address syntax of `control-plane status --control-plane`.
        let bare = Builder::new("greeter")
            .control_plane("127.0.0.1:18000")
            .prepare()
            .expect("host:port");
        assert_eq!(bare.control_plane, "http://127.0.0.1:18000");
    }

    #[test]
    fn takes_a_parsed_bootstrap() {
        let bootstrap = Bootstrap::from_json(
            r#"{"xds_servers":[{"server_uri":"cp.team-a:18000"}],"node":{"id":"n1","locality":{"zone":"z"}}}"#,
            "test",
        )
        .expect("bootstrap");
        let prepared = Builder::new("greeter")
            .bootstrap(bootstrap)
            .prepare()
            .expect("valid");
        assert_eq!(prepared.control_plane, "http://cp.team-a:18000");
        assert_eq!(prepared.node.id, "n1");
        assert_eq!(prepared.node.locality.map(|l| l.zone).as_deref(), Some("z"));
        let bootstrap = Bootstrap::from_json(
            r#"{"xds_servers":[{"server_uri":"cp.team-a:18000"}],"node":{"id":"n1","locality":{"zone":"z"}}}"#,
            "test",
        )
        .expect("bootstrap");
        let prepared = Builder::new("greeter")
            .bootstrap(bootstrap)
            .zone("zone-a")
            .prepare()
            .expect("prepared");
        assert_eq!(
            prepared.node.locality.map(|l| l.zone).as_deref(),
            Some("zone-a"),
            "the builder's zone wins"
        );
    }
}
