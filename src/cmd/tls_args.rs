//! The TLS knobs of the commands: what `https://` servers are trusted by and the client
//! certificate (`run`, `capacity`, `gateway` towards its upstreams), and how a server of
//! gauntlet's serves HTTPS (`mock`, `gateway`); every file checked before anything starts.

use std::path::PathBuf;
use std::sync::Arc;

use gauntlet::tls::{
    ClientSettings, Identity, SelfSigned, ServerFiles, load_certs, load_key, server_config,
};

use super::InvalidInput;

/// A server's TLS configuration, and the CA file clients should trust when gauntlet made it.
pub type ServeTls = (Arc<rustls::ServerConfig>, Option<PathBuf>);

#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    /// Trust this CA (PEM) for https:// targets and upstreams, on top of the system's roots
    /// and the scenario's `[tls] ca_cert` (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Present this client certificate (PEM) to servers that ask for one (mTLS).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The settings, every file read and checked: a wrong file is an input error (exit 2).
    pub fn settings(&self) -> Result<ClientSettings, InvalidInput> {
        let bad = |flag: &str, e: gauntlet::tls::TlsError| InvalidInput(format!("{flag} {e}"));
        for ca in &self.ca_cert {
            load_certs(ca).map_err(|e| bad("--ca-cert", e))?;
        }
        let identity = Identity::pair(self.client_cert.clone(), self.client_key.clone())
            .map_err(|e| InvalidInput(e.to_string()))?;
        if let Some(id) = &identity {
            load_certs(&id.cert).map_err(|e| bad("--client-cert", e))?;
            load_key(&id.key).map_err(|e| bad("--client-key", e))?;
        }
        Ok(ClientSettings {
            ca_certs: self.ca_cert.clone(),
            identity,
        })
    }
}

/// How a server of gauntlet's (mock, gateway) serves HTTPS.
#[derive(clap::Args, Debug)]
pub struct ServeTlsArgs {
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Ask every client for a certificate signed by this CA (mTLS).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve HTTPS with a certificate for localhost, 127.0.0.1 and ::1 signed by a private CA
    /// generated into DIR; clients trust DIR/ca.pem (`--ca-cert`).
    #[arg(long, value_name = "DIR")]
    pub tls_self_signed: Option<PathBuf>,
}

impl ServeTlsArgs {
    /// The server's certificate files and the CA clients should trust (generated, or none
    /// known), or `None` for plain HTTP.
    pub fn files(&self) -> Result<Option<(ServerFiles, Option<PathBuf>)>, InvalidInput> {
        let client_ca = self.tls_client_ca.clone();
        if let Some(dir) = &self.tls_self_signed {
            let generated = SelfSigned::generate(dir).map_err(|e| InvalidInput(e.to_string()))?;
            let files = ServerFiles {
                client_ca,
                ..generated.server
            };
            return Ok(Some((files, Some(generated.ca))));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some((
                ServerFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca,
                },
                None,
            ))),
            _ if client_ca.is_some() => Err(InvalidInput(
                "--tls-client-ca needs a server certificate: --tls-cert and --tls-key, or \
                 --tls-self-signed"
                    .into(),
            )),
            _ => Ok(None),
        }
    }

    /// The rustls configuration, every file read and checked (a bad one is exit 2).
    pub fn config(&self, alpn: &[&[u8]]) -> Result<Option<ServeTls>, InvalidInput> {
        let Some((files, ca)) = self.files()? else {
            return Ok(None);
        };
        let config = server_config(&files, alpn).map_err(|e| InvalidInput(e.to_string()))?;
        Ok(Some((config, ca)))
    }
}
