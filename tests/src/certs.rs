//! Certificates for TLS tests, generated with rcgen (ring), and a folder
//! of PEM files that can be swapped the way Kubernetes swaps a Secret.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

/// A certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca")
    }
}

impl Ca {
    /// A new self-signed CA called `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        Self { issuer }
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issues a leaf certificate as `leaf` describes.
    pub fn issue(&self, leaf: &Leaf) -> Issued {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(
            DnType::CommonName,
            leaf.sans.first().map_or("leaf", |s| s.as_str()),
        );
        params.subject_alt_names = leaf
            .sans
            .iter()
            .map(|san| {
                if let Ok(ip) = san.parse::<IpAddr>() {
                    SanType::IpAddress(ip)
                } else if san.contains("://") {
                    SanType::URI(san.clone().try_into().expect("URI SAN"))
                } else {
                    SanType::DnsName(san.clone().try_into().expect("DNS SAN"))
                }
            })
            .collect();
        let serial = [0x11, 0x00, 0x00, 0x00]
            .into_iter()
            .chain(leaf.serial.to_be_bytes())
            .collect::<Vec<u8>>();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let now = rcgen::date_time_ymd(2025, 1, 1);
        let (not_before, not_after) = match leaf.validity {
            Validity::Valid => (now, rcgen::date_time_ymd(2099, 1, 1)),
            Validity::Expired => (
                rcgen::date_time_ymd(2001, 1, 1),
                rcgen::date_time_ymd(2002, 1, 1),
            ),
            Validity::NotYetValid => (
                rcgen::date_time_ymd(2098, 1, 1),
                rcgen::date_time_ymd(2099, 1, 1),
            ),
        };
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial_hex: serial.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// Whether a leaf is in its validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Valid now.
    Valid,
    /// Expired long ago.
    Expired,
    /// Valid only in the future.
    NotYetValid,
}

/// What a leaf certificate says.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// SANs: an IP address, a URI (with `://`) or a DNS name each.
    pub sans: Vec<String>,
    /// Serial number (becomes `11000000` followed by its 8 bytes).
    pub serial: u64,
    /// Validity.
    pub validity: Validity,
}

impl Leaf {
    /// A valid leaf with these SANs.
    pub fn new(sans: &[&str], serial: u64) -> Self {
        Self {
            sans: sans.iter().map(|s| (*s).to_owned()).collect(),
            serial,
            validity: Validity::Valid,
        }
    }

    /// The same, with another validity.
    #[must_use]
    pub fn validity(mut self, validity: Validity) -> Self {
        self.validity = validity;
        self
    }
}

/// An issued leaf.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PEM).
    pub key_pem: String,
    /// Serial number as lowercase hex, as `PeerIdentity::serial` shows it.
    pub serial_hex: String,
}

/// A temporary folder for PEM files, removed when dropped.
#[derive(Debug)]
pub struct TlsDir {
    path: PathBuf,
}

impl TlsDir {
    /// A new empty folder.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "grpc-lb-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create TLS folder");
        Self { path }
    }

    /// The path of `name` in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The path of `name` as a string, for command lines.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Writes `contents` to `name` atomically (a temporary file renamed
    /// over it), as a Secret update is seen by a reader.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let target = self.path(name);
        let temporary = self.path(&format!(".{name}.tmp"));
        std::fs::write(&temporary, contents).expect("write TLS file");
        std::fs::rename(&temporary, &target).expect("rename TLS file");
        target
    }

    /// Writes `issued` as `<stem>.crt` and `<stem>.key`, both at once, the
    /// way the kubelet updates a mounted Secret: the files are symlinks
    /// into `..<stem>-data`, itself a symlink to a fresh folder, swapped by
    /// an atomic rename.
    pub fn write_identity(&self, stem: &str, issued: &Issued) {
        static VERSION: AtomicU64 = AtomicU64::new(0);
        let version = format!("..{stem}-v{}", VERSION.fetch_add(1, Ordering::Relaxed));
        let data = format!("..{stem}-data");
        std::fs::create_dir_all(self.path(&version)).expect("create version folder");
        let crt = format!("{stem}.crt");
        let key = format!("{stem}.key");
        std::fs::write(self.path(&version).join(&crt), &issued.cert_pem).expect("write cert");
        std::fs::write(self.path(&version).join(&key), &issued.key_pem).expect("write key");
        let temporary = self.path(&format!("{data}.tmp"));
        let _ = std::fs::remove_file(&temporary);
        std::os::unix::fs::symlink(&version, &temporary).expect("symlink");
        std::fs::rename(&temporary, self.path(&data)).expect("swap the data symlink");
        for name in [&crt, &key] {
            let link = self.path(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("{data}/{name}"), &link).expect("symlink");
            }
        }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.path
    }
}

impl Default for TlsDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TlsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
