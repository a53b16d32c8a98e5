//! Certificate facts (`CertInfo`) read from DER with x509-parser (no C
//! dependency), each printed the way `openssl x509` prints it, so users can
//! check them against the tool they know. They are read whether or not the
//! certificate verified: DESIGN.md section 9 ("facts side by side with the
//! verification outcome, never instead of it").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::error::{Error, Result};

use super::dn::rfc4514;

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// RFC 4514, as `openssl x509 -subject -nameopt RFC2253`.
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses of the subjectAltName extension, in
    /// order; IPv6 in its RFC 5952 form ("::1", where OpenSSL 3.0 prints
    /// "0:0:0:0:0:0:0:1"), as Python's `ipaddress` writes it.
    pub sans: Vec<String>,
    /// Upper-case hex, as `openssl x509 -serial` (without `serial=`).
    pub serial: String,
    /// SHA-256 of the DER, upper-case hex with colons, as
    /// `openssl x509 -fingerprint -sha256`.
    pub sha256: String,
    /// Unix seconds (UTC).
    pub not_before: i64,
    pub not_after: i64,
    /// "RSA", "EC", "Ed25519", "Ed448", "DSA", or the key algorithm's OID.
    pub key_type: String,
    /// RSA modulus bits, the EC curve's bits, 256 for Ed25519, 456 for Ed448.
    pub key_bits: u32,
    /// OpenSSL's name: "sha256WithRSAEncryption", "ecdsa-with-SHA256", "ED25519".
    pub signature_algorithm: String,
}

impl CertInfo {
    /// Read the facts of one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| {
            Error::invalid("certificate", format!("not a DER X.509 certificate: {e}"))
        })?;
        let (key_type, key_bits) = key_facts(&cert);
        Ok(CertInfo {
            subject: rfc4514(cert.subject()),
            issuer: rfc4514(cert.issuer()),
            sans: sans(&cert),
            serial: serial_hex(cert.raw_serial()),
            sha256: fingerprint(der),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            key_type,
            key_bits,
            signature_algorithm: signature_name(&cert.signature_algorithm.algorithm.to_id_string()),
        })
    }

    /// Days until `not_after` from `now` (Unix seconds); negative once expired.
    pub fn days_left(&self, now: f64) -> f64 {
        (self.not_after as f64 - now) / 86_400.0
    }
}

/// The serial as OpenSSL's i2a_ASN1_INTEGER prints it: the magnitude's
/// bytes in upper-case hex, without DER's sign padding; "-" when negative.
fn serial_hex(raw: &[u8]) -> String {
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude: Vec<u8> = if negative {
        // Two's complement: invert and add one.
        let mut m: Vec<u8> = raw.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        raw.to_vec()
    };
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len().saturating_sub(1));
    let digits: String = magnitude[start.min(magnitude.len())..]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let digits = if digits.is_empty() {
        "00".into()
    } else {
        digits
    };
    if negative {
        format!("-{digits}")
    } else {
        digits
    }
}

/// SHA-256 of `der` as `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let parts: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    parts.join(":")
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(d) => Some((*d).to_string()),
            GeneralName::IPAddress(ip) => ip_text(ip),
            _ => None,
        })
        .collect()
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(ip.to_string())
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";
const OID_DSA: &str = "1.2.840.10040.4.1";

/// Named curves by OID, with the bits OpenSSL reports for them.
const CURVES: &[(&str, u32)] = &[
    ("1.2.840.10045.3.1.7", 256), // prime256v1 (P-256)
    ("1.3.132.0.34", 384),        // secp384r1 (P-384)
    ("1.3.132.0.35", 521),        // secp521r1 (P-521)
    ("1.3.132.0.10", 256),        // secp256k1
    ("1.2.840.10045.3.1.1", 192), // prime192v1
    ("1.3.132.0.33", 224),        // secp224r1
];

fn key_facts(cert: &X509Certificate<'_>) -> (String, u32) {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        OID_RSA => {
            let bits = match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => bit_length(rsa.modulus),
                _ => 0,
            };
            ("RSA".into(), bits)
        }
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let bits = curve
                .and_then(|c| CURVES.iter().find(|(oid, _)| *oid == c).map(|(_, b)| *b))
                .unwrap_or_else(|| match spki.parsed() {
                    Ok(k) => k.key_size() as u32,
                    Err(_) => 0,
                });
            ("EC".into(), bits)
        }
        OID_ED25519 => ("Ed25519".into(), 256),
        OID_ED448 => ("Ed448".into(), 456),
        OID_DSA => {
            // OpenSSL reports the bits of p, the first of the parameters.
            let bits = spki
                .algorithm
                .parameters
                .as_ref()
                .filter(|p| p.tag().0 == 16)
                .and_then(|p| first_integer_bits(p.data))
                .unwrap_or(0);
            ("DSA".into(), bits)
        }
        other => (other.to_string(), 0),
    }
}

/// The bit length of the first DER INTEGER in `seq_content`.
fn first_integer_bits(seq_content: &[u8]) -> Option<u32> {
    let (_, int) = x509_parser::der_parser::der::parse_der_integer(seq_content).ok()?;
    Some(bit_length(int.as_slice().ok()?))
}

/// Bits of a big-endian unsigned magnitude, leading zeros ignored.
fn bit_length(bytes: &[u8]) -> u32 {
    let Some(start) = bytes.iter().position(|&b| b != 0) else {
        return 0;
    };
    let rest = (bytes.len() - start - 1) as u32;
    rest * 8 + (8 - bytes[start].leading_zeros())
}

/// Signature algorithms by OID, named as `openssl x509 -text` names them.
const SIGNATURES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.14", "sha224WithRSAEncryption"),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.113549.1.1.10", "rsassaPss"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.3.101.112", "ED25519"),
    ("1.3.101.113", "ED448"),
    ("1.2.840.10040.4.3", "dsaWithSHA1"),
    ("2.16.840.1.101.3.4.3.2", "dsa_with_SHA256"),
];

fn signature_name(oid: &str) -> String {
    SIGNATURES
        .iter()
        .find(|(o, _)| *o == oid)
        .map_or_else(|| oid.to_string(), |(_, name)| (*name).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_like_openssl() {
        assert_eq!(serial_hex(&[0x00, 0x9f, 0x01]), "9F01");
        assert_eq!(serial_hex(&[0x0a]), "0A");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0xff]), "-01");
        assert_eq!(serial_hex(&[0x01, 0x00]), "0100");
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x7f]), 7);
        assert_eq!(bit_length(&[]), 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let e = CertInfo::from_der(b"not a certificate").unwrap_err();
        assert!(e.to_string().starts_with("certificate: "), "{e}");
    }
}
