//! `TlsInfo`: what a finished handshake agreed on, and the words for TLS
//! failures (rustls errors become `TlsFailure` data here).

use rustls::{AlertDescription, CipherSuite, ProtocolVersion};

use crate::error::{TlsFailure, VerifyFailure};

use super::certinfo::CertInfo;

/// The outcome of a handshake, as `tls_info()` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// "TLSv1.3" or "TLSv1.2", as Python's `SSLSocket.version()`.
    pub version: String,
    /// The IANA name, e.g. "TLS_AES_256_GCM_SHA384".
    pub cipher: String,
    /// The protocol ALPN settled on, if any.
    pub alpn: Option<String>,
    /// The peer's certificate verified (client side: against the roots and
    /// the host name; server side: a client certificate was required and
    /// presented).
    pub verified: bool,
    /// Why verification failed, when it did.
    pub verify_error: Option<VerifyFailure>,
    /// The peer's certificates as it sent them, leaf first.
    pub certificates: Vec<CertInfo>,
}

/// "TLSv1.3" as Python and OpenSSL name it.
pub fn version_name(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

/// The IANA name of a suite. rustls spells the TLS 1.2 ones the IANA way
/// already and prefixes the TLS 1.3 ones with "TLS13_".
pub fn cipher_name(suite: CipherSuite) -> String {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256".into(),
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384".into(),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256".into(),
        other => format!("{other:?}"),
    }
}

/// A Rust variant name in words: "HandshakeFailure" -> "handshake failure",
/// "UnknownCA" -> "unknown ca".
pub fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// How a rustls error is reported. `recorded` is the verifier's own
/// outcome, which names a verification failure better than the alert.
pub fn failure_of(e: &rustls::Error, recorded: Option<VerifyFailure>) -> TlsFailure {
    match e {
        rustls::Error::InvalidCertificate(_) => {
            TlsFailure::Verify(recorded.unwrap_or_else(|| super::verify::failure_of(e, &[])))
        }
        rustls::Error::AlertReceived(a) => TlsFailure::Alert(alert_words(*a)),
        rustls::Error::NoCertificatesPresented => {
            TlsFailure::Protocol("the peer sent no certificate".into())
        }
        rustls::Error::NoApplicationProtocol => {
            TlsFailure::Protocol("no ALPN protocol in common".into())
        }
        rustls::Error::PeerIncompatible(p) => {
            TlsFailure::Protocol(format!("peer incompatible: {}", words(&format!("{p:?}"))))
        }
        other => TlsFailure::Protocol(other.to_string()),
    }
}

fn alert_words(a: AlertDescription) -> String {
    match a {
        AlertDescription::UnknownCA => "unknown ca".into(),
        other => words(&format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            cipher_name(CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            cipher_name(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(version_name(ProtocolVersion::TLSv1_3), "TLSv1.3");
    }

    #[test]
    fn words_split_camel_case() {
        assert_eq!(words("HandshakeFailure"), "handshake failure");
        assert_eq!(words("CaUsedAsEndEntity"), "ca used as end entity");
        assert_eq!(
            alert_words(AlertDescription::CertificateRequired),
            "certificate required"
        );
        assert_eq!(alert_words(AlertDescription::UnknownCA), "unknown ca");
    }

    #[test]
    fn alerts_and_verification_become_data() {
        let f = failure_of(
            &rustls::Error::AlertReceived(AlertDescription::HandshakeFailure),
            None,
        );
        assert_eq!(f, TlsFailure::Alert("handshake failure".into()));
        let f = failure_of(
            &rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
            None,
        );
        assert_eq!(f, TlsFailure::Verify(VerifyFailure::Expired));
    }
}
