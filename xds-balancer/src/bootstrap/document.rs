//! The bootstrap document as gRPC writes it (JSON), read with serde: only
//! the fields this client uses, and a `file_watcher` certificate provider's
//! config checked into a [`CertificateProvider`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::CertificateProvider;

#[derive(Debug, Deserialize)]
pub(super) struct Document {
    #[serde(default)]
    pub(super) xds_servers: Vec<Server>,
    #[serde(default)]
    pub(super) node: Option<Node>,
    #[serde(default)]
    pub(super) certificate_providers: BTreeMap<String, ProviderDoc>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ProviderDoc {
    plugin_name: String,
    #[serde(default)]
    config: FileWatcherDoc,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FileWatcherDoc {
    certificate_file: Option<PathBuf>,
    private_key_file: Option<PathBuf>,
    ca_certificate_file: Option<PathBuf>,
    /// A protobuf JSON duration: `"600s"`, `"1.5s"`.
    refresh_interval: Option<String>,
}

impl ProviderDoc {
    pub(super) fn into_provider(self) -> Result<CertificateProvider, String> {
        if self.plugin_name != "file_watcher" {
            return Err(format!(
                "plugin {:?} is not supported (only \"file_watcher\")",
                self.plugin_name
            ));
        }
        let config = self.config;
        if config.certificate_file.is_some() != config.private_key_file.is_some() {
            return Err(
                "certificate_file and private_key_file must be given together, or neither".into(),
            );
        }
        if config.certificate_file.is_none() && config.ca_certificate_file.is_none() {
            return Err("it names no certificate_file and no ca_certificate_file".into());
        }
        let refresh_interval = config
            .refresh_interval
            .map(|text| {
                text.strip_suffix('s')
                    .and_then(|secs| secs.parse::<f64>().ok())
                    .filter(|secs| secs.is_finite() && *secs > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        format!("refresh_interval {text:?} is not a duration like \"10s\"")
                    })
            })
            .transpose()?;
        Ok(CertificateProvider {
            certificate_file: config.certificate_file,
            private_key_file: config.private_key_file,
            ca_certificate_file: config.ca_certificate_file,
            refresh_interval,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Server {
    pub(super) server_uri: String,
    #[serde(default)]
    pub(super) channel_creds: Vec<Creds>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Creds {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) config: Option<TlsCredsDoc>,
}

/// `channel_creds` `tls` config (gRPC A65).
#[derive(Debug, Default, Deserialize)]
pub(super) struct TlsCredsDoc {
    pub(super) ca_certificate_file: Option<PathBuf>,
    pub(super) certificate_file: Option<PathBuf>,
    pub(super) private_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Node {
    pub(super) id: Option<String>,
    pub(super) cluster: Option<String>,
    pub(super) locality: Option<Locality>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Locality {
    pub(super) zone: Option<String>,
}
