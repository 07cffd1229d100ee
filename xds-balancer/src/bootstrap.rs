//! gRPC's xDS bootstrap (`GRPC_XDS_BOOTSTRAP`, `GRPC_XDS_BOOTSTRAP_CONFIG`),
//! so one configuration serves this client and gRPC's own xDS clients.
//!
//! Only what this client uses is read: the first `xds_servers` entry with
//! the first of its `channel_creds` this client speaks (`insecure`, or
//! `tls` with the files gRPC A65 defines), the node's `id`, `cluster` and
//! `locality.zone`, and the `certificate_providers` (plugin `file_watcher`)
//! that TLS Clusters name.
//!
//! # Layout
//!
//! This file reads a bootstrap into [`Bootstrap`]; `document` is the JSON
//! as written, and `tls` the public TLS settings ([`CertificateProvider`],
//! [`ControlPlaneTls`]).

mod document;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use self::document::Document;
pub use self::tls::{CertificateProvider, ControlPlaneTls};

/// Environment variable naming a bootstrap file.
pub const BOOTSTRAP_FILE_ENV: &str = "GRPC_XDS_BOOTSTRAP";
/// Environment variable holding a bootstrap document.
pub const BOOTSTRAP_CONFIG_ENV: &str = "GRPC_XDS_BOOTSTRAP_CONFIG";

/// Why a bootstrap could not be used.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The file could not be read.
    #[error("failed to read the xDS bootstrap file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The document is not valid bootstrap JSON.
    #[error("the xDS bootstrap from {origin} is not valid: {source}")]
    Parse {
        /// Where it came from.
        origin: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// `xds_servers` is empty.
    #[error("the xDS bootstrap from {origin} lists no xds_servers")]
    NoServer {
        /// Where it came from.
        origin: String,
    },
    /// The server needs credentials this client does not speak.
    #[error(
        "the xDS bootstrap from {origin} asks for channel_creds {creds:?}; this client supports \
         \"insecure\" (plaintext) and \"tls\""
    )]
    UnsupportedCreds {
        /// Where it came from.
        origin: String,
        /// The credential types listed.
        creds: Vec<String>,
    },
    /// `channel_creds` `tls` without what it needs.
    #[error("the xDS bootstrap from {origin}: channel_creds tls: {reason}")]
    TlsCreds {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A certificate provider this client cannot use.
    #[error("the xDS bootstrap from {origin}: certificate provider {name:?}: {reason}")]
    CertificateProvider {
        /// Where it came from.
        origin: String,
        /// The instance name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What this client takes from a bootstrap.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The control plane, as `http://host:port`.
    pub control_plane: String,
    /// `node.id`.
    pub node_id: Option<String>,
    /// `node.cluster`.
    pub node_cluster: Option<String>,
    /// `node.locality.zone`.
    pub zone: Option<String>,
    /// `certificate_providers`, by instance name.
    pub certificate_providers: BTreeMap<String, CertificateProvider>,
    /// TLS to the control plane, when its `channel_creds` chose `tls`.
    pub control_plane_tls: Option<ControlPlaneTls>,
}

impl Bootstrap {
    /// Reads a bootstrap file.
    pub fn from_file(path: &Path) -> Result<Self, BootstrapError> {
        let text = std::fs::read_to_string(path).map_err(|source| BootstrapError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses a bootstrap document; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, BootstrapError> {
        let document: Document =
            serde_json::from_str(text).map_err(|source| BootstrapError::Parse {
                origin: origin.to_owned(),
                source,
            })?;
        let server =
            document
                .xds_servers
                .into_iter()
                .next()
                .ok_or_else(|| BootstrapError::NoServer {
                    origin: origin.to_owned(),
                })?;
        let kinds: Vec<String> = server
            .channel_creds
            .iter()
            .map(|c| c.kind.clone())
            .collect();
        // The first kind this client speaks, as gRPC picks; none listed
        // means insecure.
        let chosen = server
            .channel_creds
            .into_iter()
            .find(|c| c.kind == "insecure" || c.kind == "tls");
        let control_plane_tls = match chosen {
            None if kinds.is_empty() => None,
            None => {
                return Err(BootstrapError::UnsupportedCreds {
                    origin: origin.to_owned(),
                    creds: kinds,
                });
            }
            Some(creds) if creds.kind == "insecure" => None,
            Some(creds) => {
                let config = creds.config.unwrap_or_default();
                let invalid = |reason: &str| BootstrapError::TlsCreds {
                    origin: origin.to_owned(),
                    reason: reason.to_owned(),
                };
                let ca = config.ca_certificate_file.ok_or_else(|| {
                    invalid("no ca_certificate_file (the system's roots are not used)")
                })?;
                if config.certificate_file.is_some() != config.private_key_file.is_some() {
                    return Err(invalid(
                        "certificate_file and private_key_file must be given together",
                    ));
                }
                Some(ControlPlaneTls {
                    ca_certificate_file: ca,
                    certificate_file: config.certificate_file,
                    private_key_file: config.private_key_file,
                })
            }
        };
        let uri = server.server_uri;
        let host_port = uri
            .strip_prefix("dns:///")
            .or_else(|| uri.strip_prefix("passthrough:///"))
            .unwrap_or(&uri);
        let scheme = if control_plane_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let control_plane = if host_port.contains("://") {
            host_port.to_owned()
        } else {
            format!("{scheme}://{host_port}")
        };
        let mut certificate_providers = BTreeMap::new();
        for (name, doc) in document.certificate_providers {
            let provider =
                doc.into_provider()
                    .map_err(|reason| BootstrapError::CertificateProvider {
                        origin: origin.to_owned(),
                        name: name.clone(),
                        reason,
                    })?;
            certificate_providers.insert(name, provider);
        }
        let node = document.node;
        Ok(Self {
            control_plane,
            node_id: node.as_ref().and_then(|n| n.id.clone()),
            node_cluster: node.as_ref().and_then(|n| n.cluster.clone()),
            zone: node.and_then(|n| n.locality).and_then(|l| l.zone),
            certificate_providers,
            control_plane_tls,
        })
    }

    /// The bootstrap named by the environment, if any: the file in
    /// `GRPC_XDS_BOOTSTRAP`, else the document in `GRPC_XDS_BOOTSTRAP_CONFIG`.
    pub fn from_env() -> Result<Option<Self>, BootstrapError> {
        if let Some(path) = std::env::var_os(BOOTSTRAP_FILE_ENV) {
            return Self::from_file(Path::new(&path)).map(Some);
        }
        match std::env::var(BOOTSTRAP_CONFIG_ENV) {
            Ok(text) => Self::from_json(&text, BOOTSTRAP_CONFIG_ENV).map(Some),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reads_grpc_bootstrap() {
        let text = r#"{"xds_servers":[{"server_uri":"127.0.0.1:18000","channel_creds":[{"type":"insecure"}],"server_features":["xds_v3"]}],
                      "node":{"id":"client-1","cluster":"demo","locality":{"zone":"z1"}}}"#;
        let bootstrap = Bootstrap::from_json(text, "test").expect("valid");
        assert_eq!(
            bootstrap,
            Bootstrap {
                control_plane: "http://127.0.0.1:18000".into(),
                node_id: Some("client-1".into()),
                node_cluster: Some("demo".into()),
                zone: Some("z1".into()),
                certificate_providers: BTreeMap::new(),
                control_plane_tls: None,
            }
        );
    }

    #[test]
    fn reads_tls_channel_creds_as_grpc_a65_defines_them() {
        let text = r#"{"xds_servers":[{"server_uri":"cp:18000","channel_creds":[
            {"type":"google_default"},
            {"type":"tls","config":{"ca_certificate_file":"/ca.crt",
              "certificate_file":"/c.crt","private_key_file":"/c.key"}}]}]}"#;
        let bootstrap = Bootstrap::from_json(text, "test").expect("valid");
        assert_eq!(bootstrap.control_plane, "https://cp:18000");
        assert_eq!(
            bootstrap.control_plane_tls,
            Some(ControlPlaneTls::new("/ca.crt").with_identity("/c.crt", "/c.key"))
        );
        let no_ca = r#"{"xds_servers":[{"server_uri":"cp:1","channel_creds":[{"type":"tls"}]}]}"#;
        let error = Bootstrap::from_json(no_ca, "test").unwrap_err().to_string();
        assert!(error.contains("no ca_certificate_file"), "{error}");
    }

    #[test]
    fn reads_file_watcher_certificate_providers() {
        let text = r#"{"xds_servers":[{"server_uri":"cp:18000"}],
            "certificate_providers":{
              "default":{"plugin_name":"file_watcher","config":{
                "certificate_file":"/certs/tls.crt","private_key_file":"/certs/tls.key",
                "ca_certificate_file":"/certs/ca.crt","refresh_interval":"1.5s"}},
              "roots":{"plugin_name":"file_watcher","config":{"ca_certificate_file":"/ca.crt"}}}}"#;
        let bootstrap = Bootstrap::from_json(text, "test").expect("valid");
        assert_eq!(
            bootstrap.certificate_providers["default"],
            CertificateProvider::roots("/certs/ca.crt")
                .with_identity("/certs/tls.crt", "/certs/tls.key")
                .refreshed_every(Duration::from_millis(1500))
        );
        assert_eq!(
            bootstrap.certificate_providers["roots"],
            CertificateProvider::roots("/ca.crt")
        );
        for (config, expected) in [
            (r#"{"plugin_name":"pem_watcher"}"#, "only \"file_watcher\""),
            (
                r#"{"plugin_name":"file_watcher","config":{"certificate_file":"/c"}}"#,
                "together",
            ),
            (r#"{"plugin_name":"file_watcher","config":{}}"#, "names no"),
            (
                r#"{"plugin_name":"file_watcher","config":{"ca_certificate_file":"/c","refresh_interval":"soon"}}"#,
                "not a duration",
            ),
        ] {
            let text = format!(
                r#"{{"xds_servers":[{{"server_uri":"cp:1"}}],"certificate_providers":{{"p":{config}}}}}"#
            );
            let error = Bootstrap::from_json(&text, "test").unwrap_err().to_string();
            assert!(error.contains(expected), "{config}: {error}");
            assert!(error.contains("certificate provider \"p\""), "{error}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let google = r#"{"xds_servers":[{"server_uri":"cp:443","channel_creds":[{"type":"google_default"}]}]}"#;
        let error = Bootstrap::from_json(google, "test").unwrap_err();
        assert!(error.to_string().contains("\"google_default\""), "{error}");
        let empty = r#"{"xds_servers":[]}"#;
        assert!(matches!(
            Bootstrap::from_json(empty, "test"),
            Err(BootstrapError::NoServer { .. })
        ));
        assert!(matches!(
            Bootstrap::from_json("{", "test"),
            Err(BootstrapError::Parse { .. })
        ));
    }
}
