//! Every `CertInfo` field against what `openssl x509 -nameopt RFC2253`
//! prints for the same file (issue 11: "every CertInfo field equals what
//! openssl x509 prints").

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use super::certinfo::CertInfo;
use super::pemfile::load_certs;
use super::testpki::pki;

/// The fields as openssl prints them, parsed out of its text.
#[derive(Debug, Default)]
struct OpensslView {
    subject: String,
    issuer: String,
    serial: String,
    sha256: String,
    not_before: i64,
    not_after: i64,
    key_type: String,
    key_bits: Option<u32>,
    signature_algorithm: String,
    sans: Vec<String>,
}

fn openssl_view(path: &Path) -> OpensslView {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-issuer", "-serial"])
        .args([
            "-fingerprint",
            "-sha256",
            "-dates",
            "-text",
            "-nameopt",
            "RFC2253",
            "-in",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut v = OpensslView::default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if let Some(s) = line.strip_prefix("subject=") {
            v.subject = s.to_string();
        } else if let Some(s) = line.strip_prefix("issuer=") {
            v.issuer = s.to_string();
        } else if let Some(s) = line.strip_prefix("serial=") {
            v.serial = s.to_string();
        } else if let Some((_, s)) = line.split_once("Fingerprint=") {
            v.sha256 = s.to_string();
        } else if let Some(s) = line.strip_prefix("notBefore=") {
            v.not_before = openssl_date(s);
        } else if let Some(s) = line.strip_prefix("notAfter=") {
            v.not_after = openssl_date(s);
        } else if let Some(s) = t.strip_prefix("Public Key Algorithm: ") {
            v.key_type = match s {
                "rsaEncryption" => "RSA",
                "id-ecPublicKey" => "EC",
                "ED25519" => "Ed25519",
                other => other,
            }
            .to_string();
        } else if let Some(s) = t.strip_prefix("Public-Key: (") {
            v.key_bits = s.split(' ').next().and_then(|b| b.parse().ok());
        } else if t == "ED25519 Public-Key:" {
            // openssl prints no size for Ed25519; 256 is its key size.
            v.key_bits = Some(256);
        } else if let Some(s) = t.strip_prefix("Signature Algorithm: ") {
            if v.signature_algorithm.is_empty() {
                v.signature_algorithm = s.to_string();
            }
        } else if t.starts_with("X509v3 Subject Alternative Name:") {
            let names = lines.next().unwrap().trim();
            v.sans = names
                .split(", ")
                .filter_map(|n| {
                    if let Some(d) = n.strip_prefix("DNS:") {
                        Some(d.to_string())
                    } else {
                        n.strip_prefix("IP Address:")
                            .map(|ip| ip.parse::<IpAddr>().unwrap().to_string())
                    }
                })
                .collect();
        }
    }
    v
}

/// "Jan  1 00:00:00 2020 GMT" as Unix seconds.
fn openssl_date(s: &str) -> i64 {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = s.split_whitespace().collect();
    assert_eq!(parts.len(), 5, "{s}");
    let month = MONTHS.iter().position(|m| *m == parts[0]).unwrap() as i64 + 1;
    let day: i64 = parts[1].parse().unwrap();
    let hms: Vec<i64> = parts[2].split(':').map(|x| x.parse().unwrap()).collect();
    let year: i64 = parts[3].parse().unwrap();
    days_from_civil(year, month, day) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
}

/// Howard Hinnant's days_from_civil: days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn compare(name: &str) -> CertInfo {
    let p = pki().unwrap();
    let path = p.path(name);
    let der = load_certs("cert_file", &path).unwrap().remove(0);
    let ours = CertInfo::from_der(&der).unwrap();
    let theirs = openssl_view(&path);
    assert_eq!(ours.subject, theirs.subject, "{name}: subject");
    assert_eq!(ours.issuer, theirs.issuer, "{name}: issuer");
    assert_eq!(ours.serial, theirs.serial, "{name}: serial");
    assert_eq!(ours.sha256, theirs.sha256, "{name}: sha256");
    assert_eq!(ours.not_before, theirs.not_before, "{name}: not_before");
    assert_eq!(ours.not_after, theirs.not_after, "{name}: not_after");
    assert_eq!(ours.key_type, theirs.key_type, "{name}: key_type");
    assert_eq!(Some(ours.key_bits), theirs.key_bits, "{name}: key_bits");
    assert_eq!(
        ours.signature_algorithm, theirs.signature_algorithm,
        "{name}: signature_algorithm"
    );
    assert_eq!(ours.sans, theirs.sans, "{name}: sans");
    ours
}

#[test]
fn every_field_matches_openssl() {
    let Some(_) = pki() else {
        eprintln!("SKIPPED: the openssl command is not installed");
        return;
    };
    for name in [
        "ca.pem",
        "other-ca.pem",
        "rsa.pem",
        "ec.pem",
        "wrongname.pem",
        "unknown.pem",
        "client.pem",
        "expired.pem",
        "notyet.pem",
        "selfsigned.pem",
        "ed25519.pem",
        "ec384.pem",
        "unicode.pem",
    ] {
        compare(name);
    }
}

#[test]
fn the_facts_users_look_at() {
    let Some(_) = pki() else {
        eprintln!("SKIPPED: the openssl command is not installed");
        return;
    };
    let rsa = compare("rsa.pem");
    assert_eq!(rsa.subject, "CN=localhost,O=socketkit test,C=DE");
    assert_eq!(rsa.issuer, "CN=socketkit test CA,O=socketkit");
    assert_eq!(rsa.serial, "F00DBEEF0123456789");
    assert_eq!(rsa.sans, ["localhost", "127.0.0.1", "::1"]);
    assert_eq!((rsa.key_type.as_str(), rsa.key_bits), ("RSA", 2048));
    assert_eq!(rsa.signature_algorithm, "sha256WithRSAEncryption");
    assert_eq!(rsa.sha256.len(), 32 * 3 - 1);

    let ec = compare("ec.pem");
    assert_eq!((ec.key_type.as_str(), ec.key_bits), ("EC", 256));
    let ec384 = compare("ec384.pem");
    assert_eq!((ec384.key_type.as_str(), ec384.key_bits), ("EC", 384));
    assert_eq!(ec384.signature_algorithm, "ecdsa-with-SHA384");
    let ed = compare("ed25519.pem");
    assert_eq!((ed.key_type.as_str(), ed.key_bits), ("Ed25519", 256));
    assert_eq!(ed.signature_algorithm, "ED25519");

    let expired = compare("expired.pem");
    assert_eq!(expired.not_before, 1_577_836_800); // 2020-01-01
    assert_eq!(expired.not_after, 1_580_515_200); // 2020-02-01
    assert!(expired.days_left(1_580_515_200.0 + 86_400.0) < -0.99);

    // Multi-valued RDN, escapes, UTF-8 as \XX bytes (openssl's ESC_MSB).
    let u = compare("unicode.pem");
    assert!(u.subject.contains("UID=42+OU=R&D"), "{}", u.subject);
    assert!(
        u.subject.contains("O=\\C3\\9Cn\\C3\\AFcode\\, Inc."),
        "{}",
        u.subject
    );
    assert!(u.subject.ends_with(",DC=example,DC=org"), "{}", u.subject);
}
