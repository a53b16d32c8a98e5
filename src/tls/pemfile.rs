//! Certificates and private keys read from PEM files, with errors that name
//! the `TlsConfig` field and the file (DESIGN.md section 4: ValueError
//! naming the argument and the value).

use std::fs;
use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| {
        Error::invalid(
            field,
            format!(
                "cannot read {}: {}",
                path.display(),
                crate::error::strerror(&e)
            ),
        )
    })
}

/// Every certificate in a PEM file, in file order; at least one.
pub fn load_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(field, path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad_pem(field, path, e))?;
    if certs.is_empty() {
        return Err(Error::invalid(
            field,
            format!("no PEM certificate in {}", path.display()),
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM file: PKCS#8 ("PRIVATE KEY"), PKCS#1
/// ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY").
pub fn load_key(field: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read(field, path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(k) => Ok(k),
        Err(pem::Error::NoItemsFound) => {
            let why = if contains(&bytes, b"ENCRYPTED PRIVATE KEY")
                || contains(&bytes, b"Proc-Type: 4,ENCRYPTED")
            {
                "the private key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)"
            } else {
                "no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
            };
            Err(Error::invalid(
                field,
                format!("{why} in {}", path.display()),
            ))
        }
        Err(e) => Err(bad_pem(field, path, e)),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn bad_pem(field: &'static str, path: &Path, e: pem::Error) -> Error {
    Error::invalid(field, format!("bad PEM in {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file removed when the guard drops.
    struct TempFile(std::path::PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    fn temp_file(name: &str, contents: &[u8]) -> TempFile {
        let p = std::env::temp_dir().join(format!("socketkit-pem-{}-{name}", std::process::id()));
        fs::write(&p, contents).unwrap();
        TempFile(p)
    }

    #[test]
    fn missing_file_names_field_and_path() {
        let e = load_certs("ca_file", Path::new("/nonexistent/ca.pem")).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with("ca_file: cannot read /nonexistent/ca.pem"),
            "{s}"
        );
    }

    #[test]
    fn file_without_certificates() {
        let p = temp_file("empty.pem", b"hello\n");
        let s = load_certs("cert_file", &p.0).unwrap_err().to_string();
        assert!(s.contains("no PEM certificate"), "{s}");
        let s = load_key("key_file", &p.0).unwrap_err().to_string();
        assert!(s.starts_with("key_file: no PEM private key"), "{s}");
    }

    #[test]
    fn encrypted_key_is_named() {
        let p = temp_file(
            "enc.pem",
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let s = load_key("key_file", &p.0).unwrap_err().to_string();
        assert!(s.contains("encrypted"), "{s}");
    }
}
