//! Compiling `[tls]`: the private CA and client certificate every client of the run uses
//! (load, control API), each file read and checked where it is named, so a missing or wrong
//! file is a located error before anything starts.

use std::path::PathBuf;

use toml::Spanned;

use super::raw::RawTls;
use crate::config::Check;
use crate::tls::{ClientSettings, Identity, load_certs, load_key};

pub fn compile(c: &mut Check<'_>, raw: Option<&RawTls>) -> ClientSettings {
    let Some(raw) = raw else {
        return ClientSettings::default();
    };
    let dir = c.src.dir();
    let path = |v: &Spanned<String>| -> PathBuf { dir.join(v.get_ref().trim()) };
    let mut settings = ClientSettings::default();
    if let Some(ca) = &raw.ca_cert {
        let p = path(ca);
        match load_certs(&p) {
            Ok(_) => settings.ca_certs.push(p),
            Err(e) => c.error(ca.span(), "tls.ca_cert", e.to_string()),
        }
    }
    match (&raw.client_cert, &raw.client_key) {
        (Some(cert), Some(key)) => {
            let (cp, kp) = (path(cert), path(key));
            let cert_ok = load_certs(&cp)
                .map_err(|e| c.error(cert.span(), "tls.client_cert", e.to_string()))
                .is_ok();
            let key_ok = load_key(&kp)
                .map_err(|e| c.error(key.span(), "tls.client_key", e.to_string()))
                .is_ok();
            if cert_ok && key_ok {
                settings.identity = Some(Identity { cert: cp, key: kp });
            }
        }
        (Some(one), None) => c.error(
            one.span(),
            "tls.client_cert",
            "a client certificate needs its key: add `client_key`",
        ),
        (None, Some(one)) => c.error(
            one.span(),
            "tls.client_key",
            "a client key needs its certificate: add `client_cert`",
        ),
        (None, None) => {}
    }
    settings
}
