//! TLS to endpoints: the certificate provider instances of the bootstrap
//! (plugin `file_watcher`), loaded when a Cluster first names them and kept
//! current with their files, so certificates rotate without a restart:
//! connections opened after a swap present the new certificate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use tls_reload::client::{ClientTls, ClientTlsFiles, ServerVerification};
use tls_reload::reload::DEFAULT_INTERVAL;

use crate::bootstrap::CertificateProvider;
use crate::model::UpstreamTls;

/// What an endpoint's TLS handshake needs: the material and the check.
pub(crate) type EndpointTls = (ClientTls, ServerVerification);

/// The certificate provider instances a channel may use.
#[derive(Debug, Default)]
pub(crate) struct Providers {
    defined: BTreeMap<String, CertificateProvider>,
    /// Loaded material by (identity instance, roots instance).
    loaded: Mutex<HashMap<(Option<String>, String), ClientTls>>,
}

impl Providers {
    pub(crate) fn new(defined: BTreeMap<String, CertificateProvider>) -> Self {
        Self {
            defined,
            loaded: Mutex::default(),
        }
    }

    /// The instance names defined.
    pub(crate) fn names(&self) -> BTreeSet<String> {
        self.defined.keys().cloned().collect()
    }

    /// The TLS client for a Cluster's settings (loading the files on first
    /// use); an error says which instance lacks which file, or which file
    /// does not load.
    pub(crate) fn client(&self, upstream: &UpstreamTls) -> Result<EndpointTls, String> {
        let key = (upstream.identity.clone(), upstream.roots.clone());
        let verify = ServerVerification::SanMatchers(upstream.san_matchers.clone());
        let mut loaded = self.loaded.lock().expect("providers lock");
        if let Some(tls) = loaded.get(&key) {
            return Ok((tls.clone(), verify));
        }
        let instance = |name: &str| {
            self.defined
                .get(name)
                .ok_or_else(|| format!("certificate provider instance {name:?} is not defined"))
        };
        let roots = instance(&upstream.roots)?;
        let ca = roots.ca_certificate_file.clone().ok_or_else(|| {
            format!(
                "certificate provider instance {:?} has no ca_certificate_file, and the Cluster \
                 takes its root CAs from it",
                upstream.roots
            )
        })?;
        let (cert, key_file, interval) = match &upstream.identity {
            Some(name) => {
                let identity = instance(name)?;
                match (&identity.certificate_file, &identity.private_key_file) {
                    (Some(cert), Some(key)) => (
                        Some(cert.clone()),
                        Some(key.clone()),
                        identity.refresh_interval,
                    ),
                    _ => {
                        return Err(format!(
                            "certificate provider instance {name:?} has no certificate_file and \
                             private_key_file, and the Cluster takes the client's identity from \
                             it"
                        ));
                    }
                }
            }
            None => (None, None, None),
        };
        let files = ClientTlsFiles {
            ca,
            cert,
            key: key_file,
        };
        let interval = interval
            .or(roots.refresh_interval)
            .map_or(DEFAULT_INTERVAL, |every| every.min(DEFAULT_INTERVAL));
        let tls = ClientTls::load_every(&files, interval)
            .map_err(|error| crate::error::error_chain(&error))?;
        loaded.insert(key, tls.clone());
        Ok((tls, verify))
    }
}
