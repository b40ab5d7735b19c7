//! TLS for every HTTP connection gauntlet makes or accepts: rustls with the ring provider (no
//! OpenSSL to install), the system's roots plus any private CA for clients, certificate files or
//! a generated private CA for servers, and certificate failures worded so a user can act on them.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN names, in the order a client prefers them.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a PEM file ({reason})", path.display())]
    NotPem { path: PathBuf, reason: String },
    #[error(
        "{}: holds no certificate (expected a PEM block `-----BEGIN CERTIFICATE-----`)",
        path.display()
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "{}: holds no private key (expected a PEM block `-----BEGIN PRIVATE KEY-----`, \
         `RSA PRIVATE KEY` or `EC PRIVATE KEY`)",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("{}: the certificate cannot be used as a trust anchor: {reason}", path.display())]
    BadAnchor { path: PathBuf, reason: String },
    #[error("a client certificate needs its key: give both --client-cert and --client-key")]
    HalfIdentity,
    #[error("the certificate {} and key {} do not make a usable identity: {reason}",
        cert.display(), key.display())]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("the TLS library refused its settings: {0}")]
    Config(String),
    #[error("generating a certificate: {0}")]
    Generate(String),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file; at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::NotPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        other => TlsError::NotPem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

fn roots_from(files: &[PathBuf], system: bool) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    if system {
        // Unreadable system certificates are skipped: a private CA may be all a run needs.
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
    }
    for path in files {
        for cert in load_certs(path)? {
            roots.add(cert).map_err(|e| TlsError::BadAnchor {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    // No roots at all is allowed: every handshake then fails as "unknown issuer", which
    // says what to do, while plain-HTTP runs on a machine without a CA bundle still work.
    Ok(roots)
}

/// A client certificate and its key (mTLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Identity {
    /// Both or neither: one without the other is a mistake worth saying.
    pub fn pair(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<Self>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self { cert, key })),
            (None, None) => Ok(None),
            _ => Err(TlsError::HalfIdentity),
        }
    }
}

/// What a client trusts and how it identifies itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSettings {
    /// Private CAs trusted on top of the system's roots.
    pub ca_certs: Vec<PathBuf>,
    pub identity: Option<Identity>,
}

impl ClientSettings {
    /// These settings with `other`'s CAs added and its identity, when it has one, instead.
    pub fn merged(mut self, other: &ClientSettings) -> Self {
        for ca in &other.ca_certs {
            if !self.ca_certs.contains(ca) {
                self.ca_certs.push(ca.clone());
            }
        }
        if other.identity.is_some() {
            self.identity = other.identity.clone();
        }
        self
    }
}

/// A client's TLS configuration, built once and shared by every connection, so TLS sessions
/// are resumed across connections (rustls keeps the session cache in the config).
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// No ALPN: hyper-rustls sets its own.
    base: ClientConfig,
    /// ALPN h2 then http/1.1, for connections the engine opens itself.
    negotiating: Arc<ClientConfig>,
}

impl ClientTls {
    pub fn new(settings: &ClientSettings) -> Result<Self, TlsError> {
        let roots = roots_from(&settings.ca_certs, true)?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let base = match &settings.identity {
            None => builder.with_no_client_auth(),
            Some(id) => {
                let certs = load_certs(&id.cert)?;
                let key = load_key(&id.key)?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| TlsError::Identity {
                        cert: id.cert.clone(),
                        key: id.key.clone(),
                        reason: e.to_string(),
                    })?
            }
        };
        let mut negotiating = base.clone();
        negotiating.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
        Ok(Self {
            base,
            negotiating: Arc::new(negotiating),
        })
    }

    /// The system's roots only: what a client uses when nothing was configured.
    pub fn system() -> Result<Self, TlsError> {
        Self::new(&ClientSettings::default())
    }

    /// For connections opened by hand: ALPN offers HTTP/2 first, then HTTP/1.1.
    pub fn negotiating(&self) -> Arc<ClientConfig> {
        self.negotiating.clone()
    }

    /// A connector for hyper-util's pooled client: `http://` stays plain, `https://` gets TLS,
    /// and ALPN picks HTTP/2 when the server offers it.
    pub fn connector(&self, http: HttpConnector) -> HttpsConnector<HttpConnector> {
        HttpsConnectorBuilder::new()
            .with_tls_config(self.base.clone())
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http)
    }
}

/// A server's certificate files, and (for mTLS) the CA its clients' certificates must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// A server configuration offering `alpn` (most preferred first).
pub fn server_config(files: &ServerFiles, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(roots_from(std::slice::from_ref(ca), false)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError::BadAnchor {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Identity {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A private CA and a server certificate it signed, written as PEM files.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// What clients trust (`--ca-cert`).
    pub ca: PathBuf,
    pub server: ServerFiles,
}

/// Names the generated server certificate is valid for: every loopback spelling.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

impl SelfSigned {
    /// Generates a CA and a loopback server certificate into `dir` (`ca.pem`, `cert.pem`,
    /// `key.pem`); a CA rather than one self-signed leaf, because rustls (rightly) refuses a
    /// CA certificate presented as a server's own.
    pub fn generate(dir: &Path) -> Result<Self, TlsError> {
        let (ca_pem, cert_pem, key_pem) = generate_pems("gauntlet private CA", &LOOPBACK_NAMES)?;
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        // Printed for people to pass on: absolute, so it works from any folder.
        let dir = &std::fs::canonicalize(dir).map_err(|source| TlsError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| TlsError::Write {
                path: path.clone(),
                source,
            })?;
            Ok::<_, TlsError>(path)
        };
        Ok(Self {
            ca: write("ca.pem", &ca_pem)?,
            server: ServerFiles {
                cert: write("cert.pem", &cert_pem)?,
                key: write("key.pem", &key_pem)?,
                client_ca: None,
            },
        })
    }
}

/// A CA named `ca_name` and a leaf for `names` it signed: (CA cert, leaf cert, leaf key), PEM.
pub fn generate_pems(ca_name: &str, names: &[&str]) -> Result<(String, String, String), TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let failed = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let ca_key = KeyPair::generate().map_err(failed)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(failed)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().map_err(failed)?;
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf_params = CertificateParams::new(names.clone()).map_err(failed)?;
    if let Some(first) = names.first() {
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(failed)?;
    Ok((ca_cert.pem(), leaf.pem(), leaf_key.serialize_pem()))
}

/// Why a TLS handshake failed, in words a user can act on, when `err` (or what caused it) is a
/// TLS failure; `None` for anything else.
pub fn failure(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        // io::Error's `source` skips the error it wraps (connectors nest them two deep):
        // step into the wrapped one instead.
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner),
                None => None,
            },
            None => e.source(),
        };
    }
    None
}

fn describe(e: &rustls::Error) -> String {
    use rustls::AlertDescription as Alert;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clocks)".into()
            }
            CertificateError::UnknownIssuer => {
                "the server's certificate has an unknown issuer: trust its CA with --ca-cert \
                 (or `[tls] ca_cert` in the scenario)"
                    .into()
            }
            CertificateError::NotValidForName => {
                "the server's certificate is for another name (wrong name)".into()
            }
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "the server's certificate is for another name (wrong name; it names {})",
                presented.join(", ")
            ),
            other => format!("the server's certificate was refused: {other}"),
        },
        rustls::Error::AlertReceived(
            Alert::CertificateRequired | Alert::BadCertificate | Alert::UnknownCA,
        ) => "the server refused the client certificate (or wants one: --client-cert and \
              --client-key)"
            .into(),
        other => format!("TLS failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_certificates_are_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = load_certs(&missing).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "just some words\n").unwrap();
        let err = load_certs(&text).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");

        let (_, _, key) = generate_pems("t", &["localhost"]).unwrap();
        let only_key = dir.path().join("key.pem");
        std::fs::write(&only_key, key).unwrap();
        let err = load_certs(&only_key).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        let err = load_key(&text).unwrap_err();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");

        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n@@@@\n").unwrap();
        let err = load_certs(&broken).unwrap_err();
        assert!(matches!(err, TlsError::NotPem { .. }), "{err}");
    }

    #[test]
    fn a_generated_ca_signs_a_usable_server_identity() {
        let dir = tempfile::tempdir().unwrap();
        let generated = SelfSigned::generate(dir.path()).unwrap();
        assert_eq!(load_certs(&generated.ca).unwrap().len(), 1);
        server_config(&generated.server, &[ALPN_HTTP1]).unwrap();
        let tls = ClientTls::new(&ClientSettings {
            ca_certs: vec![generated.ca.clone()],
            identity: None,
        })
        .unwrap();
        assert_eq!(
            tls.negotiating().alpn_protocols,
            vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()]
        );
    }

    #[test]
    fn a_client_identity_needs_both_halves() {
        let err = Identity::pair(Some("c.pem".into()), None).unwrap_err();
        assert!(matches!(err, TlsError::HalfIdentity));
        assert_eq!(Identity::pair(None, None).unwrap(), None);
    }

    #[test]
    fn certificate_failures_are_worded_for_the_user() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        // As a connector reports it: an io::Error inside an io::Error.
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown);
        let wrapped = std::io::Error::other(inner);
        let said = failure(&wrapped).unwrap();
        assert!(said.contains("unknown issuer"), "{said}");
        assert!(said.contains("--ca-cert"), "{said}");
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert!(failure(&expired).unwrap().contains("expired"));
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(failure(&name).unwrap().contains("wrong name"));
        let plain = std::io::Error::other("connection refused");
        assert_eq!(failure(&plain), None);
    }
}
