//! Certificates, keys and CA bundles from PEM bytes, with errors that name
//! the file.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Error, Result};

/// Every certificate in `pem` (a chain: leaf first), read from `path`.
pub fn certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::Pem {
            what,
            path: path.to_owned(),
            message: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Empty {
            what,
            path: path.to_owned(),
            expected: "CERTIFICATE block",
        });
    }
    Ok(certs)
}

/// The private key in `pem` (PKCS#8, PKCS#1 or SEC1), read from `path`.
pub fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => Error::Empty {
            what: "private key",
            path: path.to_owned(),
            expected: "PRIVATE KEY block",
        },
        other => Error::Pem {
            what: "private key",
            path: path.to_owned(),
            message: other.to_string(),
        },
    })
}

/// A trust store of every certificate in `pem`, read from `path`.
pub fn roots(path: &Path, pem: &[u8]) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in certificates("CA", path, pem)? {
        store.add(cert).map_err(|error| Error::Roots {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
    }
    Ok(store)
}
