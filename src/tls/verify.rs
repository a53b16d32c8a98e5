//! Verification as data. A `ServerCertVerifier` that runs webpki's real
//! check (trust roots + host name) on every handshake, records the outcome
//! for `TlsInfo`, and with `verify=False` lets the handshake go on anyway,
//! so the certificate facts of an expired or self-signed server are still
//! reported (the gap of CPython #122962 and blackbox_exporter #1119).
//!
//! The handshake signatures are always checked: `verify=False` skips trust
//! in the certificate, not the proof that the peer holds its key.
//!
//! A self-signed certificate listed in `ca_file` is trusted as itself, as
//! OpenSSL trusts it (webpki alone refuses a CA certificate, which is what
//! `openssl req -x509` makes, as an end entity): its dates and the host
//! name are still checked.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::error::VerifyFailure;

/// One connection's verification outcome (`None` until the verifier ran)
/// and, when it failed, the chain the server presented: rustls keeps no
/// certificates of a handshake it aborted, and the facts are wanted most
/// exactly then.
#[derive(Debug, Default)]
pub struct VerifyRecord(Mutex<Recorded>);

#[derive(Debug, Default)]
struct Recorded {
    outcome: Option<std::result::Result<(), VerifyFailure>>,
    failed_chain: Vec<CertificateDer<'static>>,
}

impl VerifyRecord {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, outcome: std::result::Result<(), VerifyFailure>) {
        self.lock().outcome = Some(outcome);
    }

    fn set_failed_chain(&self, ee: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) {
        self.lock().failed_chain = std::iter::once(ee)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
    }

    /// `(verified, verify_error)` as `TlsInfo` reports them.
    pub fn outcome(&self) -> (bool, Option<VerifyFailure>) {
        match &self.lock().outcome {
            Some(Ok(())) => (true, None),
            Some(Err(f)) => (false, Some(f.clone())),
            None => (false, None),
        }
    }

    /// The chain of a server whose certificate did not verify, leaf first.
    pub fn failed_chain(&self) -> Vec<CertificateDer<'static>> {
        self.lock().failed_chain.clone()
    }
}

/// The verifier of one client connection.
#[derive(Debug)]
pub struct RecordingVerifier {
    /// webpki over the configured roots; `None` when there are no roots at
    /// all (then every chain has an unknown issuer).
    pub webpki: Option<Arc<WebPkiServerVerifier>>,
    /// `verify=True`: a failed verification fails the handshake.
    pub enforce: bool,
    pub record: Arc<VerifyRecord>,
    pub provider: Arc<CryptoProvider>,
    /// Self-signed certificates of `ca_file`, trusted as leaves too.
    pub pinned: Arc<Vec<CertificateDer<'static>>>,
}

impl RecordingVerifier {
    /// The outcome for a leaf the user trusts as itself: only its dates
    /// and the name are left to check. `None` when it is not such a leaf.
    fn pinned_outcome(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Option<Result<(), rustls::Error>> {
        if !self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return None;
        }
        let invalid = |e| Some(Err(rustls::Error::InvalidCertificate(e)));
        let (_, cert) = X509Certificate::from_der(end_entity).ok()?;
        let now = now.as_secs() as i64;
        if now < cert.validity().not_before.timestamp() {
            return invalid(CertificateError::NotValidYet);
        }
        if now > cert.validity().not_after.timestamp() {
            return invalid(CertificateError::Expired);
        }
        let ee = webpki::EndEntityCert::try_from(end_entity).ok()?;
        if ee.verify_is_valid_for_subject_name(server_name).is_err() {
            return invalid(CertificateError::NotValidForName);
        }
        Some(Ok(()))
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut result = match &self.webpki {
            Some(v) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        if result.is_err() {
            if let Some(pinned) = self.pinned_outcome(end_entity, server_name, now) {
                result = pinned;
            }
        }
        match result {
            Ok(()) => {
                self.record.set(Ok(()));
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => {
                self.record
                    .set(Err(failure_for(&e, end_entity, &self.pinned)));
                self.record.set_failed_chain(end_entity, intermediates);
                if self.enforce {
                    Err(e)
                } else {
                    Ok(ServerCertVerified::assertion())
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The short reason a verification failed. A certificate that issued
/// itself and is not trusted as itself is "self-signed" whatever webpki
/// stumbled on first (an unknown issuer, a CA used as a leaf, its dates),
/// as OpenSSL reports it (X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT).
fn failure_for(
    e: &rustls::Error,
    end_entity: &[u8],
    pinned: &[CertificateDer<'_>],
) -> VerifyFailure {
    let is_pinned = pinned.iter().any(|p| p.as_ref() == end_entity);
    if !is_pinned && issued_itself(end_entity) {
        return VerifyFailure::SelfSigned;
    }
    failure_of(e, end_entity)
}

/// The short reason for a rustls verification error.
pub fn failure_of(e: &rustls::Error, end_entity: &[u8]) -> VerifyFailure {
    let rustls::Error::InvalidCertificate(ce) = e else {
        return VerifyFailure::Other(e.to_string());
    };
    match ce {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            VerifyFailure::Expired
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            VerifyFailure::NotYetValid
        }
        CertificateError::UnknownIssuer if issued_itself(end_entity) => VerifyFailure::SelfSigned,
        CertificateError::UnknownIssuer => VerifyFailure::UnknownIssuer,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            VerifyFailure::HostnameMismatch
        }
        CertificateError::Revoked => VerifyFailure::Revoked,
        CertificateError::BadSignature => VerifyFailure::BadSignature,
        CertificateError::BadEncoding => VerifyFailure::Other("bad certificate encoding".into()),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            VerifyFailure::Other("certificate not valid for this purpose".into())
        }
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            VerifyFailure::Other("unsupported signature algorithm".into())
        }
        CertificateError::Other(o) => VerifyFailure::Other(short_webpki(&o.to_string())),
        other => VerifyFailure::Other(short_webpki(&format!("{other:?}"))),
    }
}

/// webpki's error names in words: "CaUsedAsEndEntity" -> "ca used as end entity".
fn short_webpki(s: &str) -> String {
    super::info::words(s)
}

/// Issuer == subject: the certificate names itself as its issuer.
pub fn issued_itself(der: &[u8]) -> bool {
    match X509Certificate::from_der(der) {
        Ok((_, c)) => c.issuer().as_raw() == c.subject().as_raw(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short() {
        let e = |ce| rustls::Error::InvalidCertificate(ce);
        assert_eq!(
            failure_of(&e(CertificateError::Expired), b"").reason(),
            "certificate expired"
        );
        assert_eq!(
            failure_of(&e(CertificateError::NotValidForName), b"").reason(),
            "hostname mismatch"
        );
        assert_eq!(
            failure_of(&e(CertificateError::UnknownIssuer), b"junk").reason(),
            "unknown issuer"
        );
        assert_eq!(
            failure_of(&e(CertificateError::Revoked), b"").reason(),
            "revoked"
        );
    }

    #[test]
    fn record_starts_empty() {
        let r = VerifyRecord::default();
        assert_eq!(r.outcome(), (false, None));
        r.set(Err(VerifyFailure::SelfSigned));
        assert_eq!(r.outcome(), (false, Some(VerifyFailure::SelfSigned)));
    }
}
