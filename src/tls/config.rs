//! `TlsConfig`: what a user asks of TLS (DESIGN.md section 9), checked
//! before anything is built so a mistake is a ValueError naming the field
//! and the value, not a handshake failure later.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// A TLS protocol version users can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// "1.2" / "1.3" (also "TLSv1.2" / "TLSv1.3", the names `TlsInfo` reports).
    pub fn parse(field: &'static str, s: &str) -> Result<TlsVersion> {
        match s {
            "1.2" | "TLSv1.2" => Ok(TlsVersion::Tls12),
            "1.3" | "TLSv1.3" => Ok(TlsVersion::Tls13),
            other => Err(Error::invalid(
                field,
                format!("must be '1.2' or '1.3', got {other:?}"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TLS settings of a client or a server. `Default` is `tls=True`: system
/// roots, verification on, SNI = the host name, TLS 1.2 and 1.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Client: fail the handshake when the server's certificate does not
    /// verify. Off, the handshake completes and the outcome is reported.
    pub verify: bool,
    /// Client: PEM CA certificates trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (client) or certificate chain (server), PEM,
    /// leaf first.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM: PKCS#8, RSA or SEC1); read from
    /// `cert_file` when not given, as Python's `load_cert_chain` does.
    pub key_file: Option<PathBuf>,
    /// Client: the name sent as SNI and checked against the certificate,
    /// instead of the host connected to.
    pub server_hostname: Option<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// ALPN protocols offered (client) or accepted (server), in preference order.
    pub alpn: Vec<String>,
    /// Server: require client certificates signed by a CA in this PEM file.
    pub client_ca_file: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            verify: true,
            ca_file: None,
            cert_file: None,
            key_file: None,
            server_hostname: None,
            min_version: None,
            max_version: None,
            alpn: Vec::new(),
            client_ca_file: None,
        }
    }
}

impl TlsConfig {
    /// Checks that need no file: every error names the field and the value.
    pub fn validate(&self) -> Result<()> {
        if let (Some(min), Some(max)) = (self.min_version, self.max_version) {
            if min > max {
                return Err(Error::invalid(
                    "min_version",
                    format!("{min} is above max_version {max}"),
                ));
            }
        }
        for p in &self.alpn {
            if p.is_empty() || p.len() > 255 {
                return Err(Error::invalid(
                    "alpn",
                    format!("each protocol must be 1-255 bytes, got {p:?}"),
                ));
            }
        }
        if self.key_file.is_some() && self.cert_file.is_none() {
            return Err(Error::invalid(
                "key_file",
                "given without cert_file (the certificate it belongs to)",
            ));
        }
        if let Some(name) = &self.server_hostname {
            server_name(name).map_err(|_| {
                Error::invalid(
                    "server_hostname",
                    format!("not a valid host name or IP address: {name:?}"),
                )
            })?;
        }
        for (field, path) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
            ("client_ca_file", &self.client_ca_file),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(Error::invalid(field, "must not be an empty path"));
            }
        }
        Ok(())
    }

    /// The protocol versions allowed, oldest first.
    pub fn versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let min = self.min_version.unwrap_or(TlsVersion::Tls12);
        let max = self.max_version.unwrap_or(TlsVersion::Tls13);
        let mut v = Vec::new();
        if min <= TlsVersion::Tls12 && TlsVersion::Tls12 <= max {
            v.push(&rustls::version::TLS12);
        }
        if min <= TlsVersion::Tls13 && TlsVersion::Tls13 <= max {
            v.push(&rustls::version::TLS13);
        }
        v
    }

    pub fn alpn_wire(&self) -> Vec<Vec<u8>> {
        self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect()
    }
}

/// The name to verify and send as SNI: an IP literal (with or without
/// brackets) or a DNS name; rustls sends no SNI for an IP.
pub fn server_name(host: &str) -> Result<rustls_pki_types::ServerName<'static>> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    rustls_pki_types::ServerName::try_from(bare.to_string()).map_err(|_| {
        Error::invalid(
            "server_hostname",
            format!("not a valid host name or IP address: {host:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_name_the_field() {
        assert_eq!(
            TlsVersion::parse("min_version", "1.3").unwrap(),
            TlsVersion::Tls13
        );
        let e = TlsVersion::parse("max_version", "1.1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "max_version: must be '1.2' or '1.3', got \"1.1\""
        );
    }

    #[test]
    fn default_is_verify_on_both_versions() {
        let c = TlsConfig::default();
        assert!(c.verify);
        assert_eq!(c.versions().len(), 2);
        c.validate().unwrap();
    }

    #[test]
    fn min_above_max_is_refused() {
        let c = TlsConfig {
            min_version: Some(TlsVersion::Tls13),
            max_version: Some(TlsVersion::Tls12),
            ..TlsConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "min_version: 1.3 is above max_version 1.2"
        );
    }

    #[test]
    fn only_one_version() {
        let c = TlsConfig {
            max_version: Some(TlsVersion::Tls12),
            ..TlsConfig::default()
        };
        assert_eq!(c.versions(), vec![&rustls::version::TLS12]);
        let c = TlsConfig {
            min_version: Some(TlsVersion::Tls13),
            ..TlsConfig::default()
        };
        assert_eq!(c.versions(), vec![&rustls::version::TLS13]);
    }

    #[test]
    fn bad_values_name_field_and_value() {
        let c = TlsConfig {
            alpn: vec!["h2".into(), String::new()],
            ..TlsConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().starts_with("alpn: "));
        let c = TlsConfig {
            key_file: Some("k.pem".into()),
            ..TlsConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("key_file: "));
        let c = TlsConfig {
            server_hostname: Some("bad name!".into()),
            ..TlsConfig::default()
        };
        let s = c.validate().unwrap_err().to_string();
        assert!(
            s.starts_with("server_hostname: ") && s.contains("bad name!"),
            "{s}"
        );
    }

    #[test]
    fn ip_names_with_brackets() {
        assert!(matches!(
            server_name("[::1]").unwrap(),
            rustls_pki_types::ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("localhost").unwrap(),
            rustls_pki_types::ServerName::DnsName(_)
        ));
    }
}
