//! `ClientTls` and `ServerTls`: the rustls configurations a `TlsConfig`
//! describes, built once (files read, roots parsed) and shared by every
//! connection made with them, like an `ssl.SSLContext`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{Error, Result};

use super::config::{server_name, TlsConfig};
use super::pemfile::{load_certs, load_key};
use super::roots::trust_roots;
use super::verify::{issued_itself, RecordingVerifier, VerifyRecord};

/// The one crypto provider: ring (see the module docs for why).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn versions_error(e: rustls::Error) -> Error {
    Error::invalid("min_version", format!("no usable TLS version: {e}"))
}

/// The certificate chain and key of `cert_file` / `key_file`.
fn identity(
    cfg: &TlsConfig,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
    let Some(cert_file) = &cfg.cert_file else {
        return Ok(None);
    };
    let chain = load_certs("cert_file", cert_file)?;
    let key = match &cfg.key_file {
        Some(k) => load_key("key_file", k)?,
        None => load_key("cert_file", cert_file)?,
    };
    Ok(Some((chain, key)))
}

fn identity_error(cfg: &TlsConfig, e: rustls::Error) -> Error {
    let field = if cfg.key_file.is_some() {
        "key_file"
    } else {
        "cert_file"
    };
    match e {
        rustls::Error::InconsistentKeys(_) => Error::invalid(
            field,
            "the private key does not match the certificate in cert_file",
        ),
        other => Error::invalid(field, format!("unusable certificate or key: {other}")),
    }
}

/// A client's TLS settings, ready to start sessions.
#[derive(Debug)]
pub struct ClientTls {
    /// Everything but the verifier, which records per connection.
    template: ClientConfig,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pinned: Arc<Vec<CertificateDer<'static>>>,
    verify: bool,
    server_hostname: Option<ServerName<'static>>,
}

impl ClientTls {
    pub fn new(cfg: &TlsConfig) -> Result<ClientTls> {
        cfg.validate()?;
        let provider = provider();
        let (roots, extra) = trust_roots(true, cfg.ca_file.as_deref(), "ca_file")?;
        let pinned: Arc<Vec<CertificateDer<'static>>> = Arc::new(
            extra
                .into_iter()
                .filter(|c| issued_itself(c.as_ref()))
                .collect(),
        );
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::invalid("ca_file", format!("unusable roots: {e}")))?,
            )
        };
        let placeholder = Arc::new(RecordingVerifier {
            webpki: webpki.clone(),
            enforce: true,
            record: Arc::default(),
            provider: provider.clone(),
            pinned: pinned.clone(),
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&cfg.versions())
            .map_err(versions_error)?
            .dangerous()
            .with_custom_certificate_verifier(placeholder);
        let mut template = match identity(cfg)? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| identity_error(cfg, e))?,
            None => builder.with_no_client_auth(),
        };
        template.alpn_protocols = cfg.alpn_wire();
        // Every handshake verifies and reports the server's certificate
        // afresh: a resumed session would skip the verifier and report
        // nothing (and a probe wants the certificate served now).
        template.resumption = Resumption::disabled();
        let server_hostname = match &cfg.server_hostname {
            Some(h) => Some(server_name(h)?),
            None => None,
        };
        Ok(ClientTls {
            template,
            webpki,
            pinned,
            verify: cfg.verify,
            server_hostname,
        })
    }

    /// Whether a failed verification fails the handshake.
    pub fn verify(&self) -> bool {
        self.verify
    }

    /// A rustls client connection to `host` (SNI and the name checked:
    /// `server_hostname` when set) and the record its verifier fills.
    pub(crate) fn connection(
        &self,
        host: &str,
    ) -> Result<(rustls::ClientConnection, Arc<VerifyRecord>)> {
        let name = match &self.server_hostname {
            Some(n) => n.clone(),
            None => server_name(host).map_err(|_| {
                Error::invalid(
                    "server_hostname",
                    format!("{host:?} is not a valid TLS server name; pass server_hostname"),
                )
            })?,
        };
        let record = Arc::new(VerifyRecord::default());
        // A clone is a handful of Arc and Vec copies: cheap next to a handshake.
        let mut config = self.template.clone();
        let provider = config.crypto_provider().clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(RecordingVerifier {
                webpki: self.webpki.clone(),
                enforce: self.verify,
                record: record.clone(),
                provider,
                pinned: self.pinned.clone(),
            }));
        let conn = rustls::ClientConnection::new(Arc::new(config), name)
            .map_err(|e| Error::invalid("tls", format!("cannot start TLS: {e}")))?;
        Ok((conn, record))
    }
}

/// A server's TLS settings, ready to accept sessions.
#[derive(Debug)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    client_auth: bool,
}

impl ServerTls {
    pub fn new(cfg: &TlsConfig) -> Result<ServerTls> {
        cfg.validate()?;
        let Some((chain, key)) = identity(cfg)? else {
            return Err(Error::invalid(
                "cert_file",
                "a TLS server needs cert_file (and key_file unless the key is in it)",
            ));
        };
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&cfg.versions())
            .map_err(versions_error)?;
        let builder = match &cfg.client_ca_file {
            Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| identity_error(cfg, e))?;
        config.alpn_protocols = cfg.alpn_wire();
        Ok(ServerTls {
            config: Arc::new(config),
            client_auth: cfg.client_ca_file.is_some(),
        })
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.client_auth
    }

    pub(crate) fn connection(&self) -> Result<rustls::ServerConnection> {
        rustls::ServerConnection::new(self.config.clone())
            .map_err(|e| Error::invalid("tls", format!("cannot start TLS: {e}")))
    }
}

fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let (roots, _) = trust_roots(false, Some(path), "client_ca_file")?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| Error::invalid("client_ca_file", format!("unusable CA file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testpki::pki;

    #[test]
    fn server_needs_a_certificate() {
        let e = ServerTls::new(&TlsConfig::default()).unwrap_err();
        assert!(e.to_string().starts_with("cert_file: "), "{e}");
    }

    #[test]
    fn key_formats_and_mismatch() {
        let Some(p) = pki() else {
            eprintln!("SKIPPED: the openssl command is not installed");
            return;
        };
        for (cert, key) in [
            ("rsa.pem", "rsa.key"),        // PKCS#8
            ("rsa.pem", "leaf-pkcs1.key"), // PKCS#1 "RSA PRIVATE KEY"
            ("ec.pem", "ec-sec1.key"),     // SEC1 "EC PRIVATE KEY"
            ("ed25519.pem", "ed25519.key"),
        ] {
            let cfg = TlsConfig {
                cert_file: Some(p.path(cert)),
                key_file: Some(p.path(key)),
                ..TlsConfig::default()
            };
            ServerTls::new(&cfg).unwrap_or_else(|e| panic!("{cert} {key}: {e}"));
            ClientTls::new(&cfg).unwrap_or_else(|e| panic!("{cert} {key}: {e}"));
        }
        let cfg = TlsConfig {
            cert_file: Some(p.path("rsa.pem")),
            key_file: Some(p.path("ec.key")),
            ..TlsConfig::default()
        };
        let s = ServerTls::new(&cfg).unwrap_err().to_string();
        assert!(s.starts_with("key_file: "), "{s}");
    }

    #[test]
    fn key_inside_cert_file() {
        let Some(p) = pki() else {
            eprintln!("SKIPPED: the openssl command is not installed");
            return;
        };
        let both = p.path("rsa-with-key.pem");
        let text = std::fs::read_to_string(p.path("rsa.pem")).unwrap()
            + &std::fs::read_to_string(p.path("rsa.key")).unwrap();
        std::fs::write(&both, text).unwrap();
        ServerTls::new(&TlsConfig {
            cert_file: Some(both),
            ..TlsConfig::default()
        })
        .unwrap();
    }

    #[test]
    fn missing_ca_file_names_the_field() {
        let e = ClientTls::new(&TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("ca_file: cannot read"), "{e}");
    }
}
