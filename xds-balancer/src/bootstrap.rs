//! gRPC's xDS bootstrap (`GRPC_XDS_BOOTSTRAP`, `GRPC_XDS_BOOTSTRAP_CONFIG`),
//! so one configuration serves this client and gRPC's own xDS clients.
//!
//! Only what this client uses is read: the first `xds_servers` entry (which
//! must allow `insecure` credentials: plaintext is all this client speaks)
//! and the node's `id`, `cluster` and `locality.zone`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

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
         only \"insecure\" (plaintext)"
    )]
    UnsupportedCreds {
        /// Where it came from.
        origin: String,
        /// The credential types listed.
        creds: Vec<String>,
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
}

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(default)]
    xds_servers: Vec<Server>,
    #[serde(default)]
    node: Option<Node>,
}

#[derive(Debug, Deserialize)]
struct Server {
    server_uri: String,
    #[serde(default)]
    channel_creds: Vec<Creds>,
}

#[derive(Debug, Deserialize)]
struct Creds {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: Option<String>,
    cluster: Option<String>,
    locality: Option<Locality>,
}

#[derive(Debug, Deserialize)]
struct Locality {
    zone: Option<String>,
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
        let creds: Vec<String> = server.channel_creds.into_iter().map(|c| c.kind).collect();
        if !creds.is_empty() && !creds.iter().any(|c| c == "insecure") {
            return Err(BootstrapError::UnsupportedCreds {
                origin: origin.to_owned(),
                creds,
            });
        }
        let uri = server.server_uri;
        let host_port = uri
            .strip_prefix("dns:///")
            .or_else(|| uri.strip_prefix("passthrough:///"))
            .unwrap_or(&uri);
        let control_plane = if host_port.contains("://") {
            host_port.to_owned()
        } else {
            format!("http://{host_port}")
        };
        let node = document.node;
        Ok(Self {
            control_plane,
            node_id: node.as_ref().and_then(|n| n.id.clone()),
            node_cluster: node.as_ref().and_then(|n| n.cluster.clone()),
            zone: node.and_then(|n| n.locality).and_then(|l| l.zone),
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
            }
        );
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let tls = r#"{"xds_servers":[{"server_uri":"cp:443","channel_creds":[{"type":"tls"}]}]}"#;
        let error = Bootstrap::from_json(tls, "test").unwrap_err();
        assert!(error.to_string().contains("\"tls\""), "{error}");
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
