//! Trust roots: the system's, found where OpenSSL (and so Python's `ssl`)
//! finds them, plus a `ca_file`.
//!
//! rustls-native-certs honours `SSL_CERT_FILE` and `SSL_CERT_DIR`, but when
//! either is set it drops *both* system locations. OpenSSL replaces each
//! half on its own: `SSL_CERT_FILE` replaces the bundle file and leaves the
//! certificate directory in use, and `SSL_CERT_DIR` (a `:`-separated list)
//! replaces the directory and leaves the bundle. So the paths are chosen
//! here, the OpenSSL way, and rustls-native-certs only reads them.
//!
//! One difference stays: OpenSSL looks only at `HASH.N` names in a
//! directory, rustls-native-certs reads every file there. A certificate
//! directory made by `openssl rehash`/`update-ca-certificates` holds the
//! same certificates either way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

use crate::error::Result;

use super::pemfile::load_certs;

const ENV_FILE: &str = "SSL_CERT_FILE";
const ENV_DIR: &str = "SSL_CERT_DIR";

/// Where the system roots are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPaths {
    pub file: Option<PathBuf>,
    pub dirs: Vec<PathBuf>,
}

impl RootPaths {
    /// The locations OpenSSL uses now, environment overrides applied.
    pub fn from_env() -> RootPaths {
        let file = match std::env::var_os(ENV_FILE) {
            Some(f) => Some(PathBuf::from(f)),
            None => default_file(),
        };
        let dirs = match std::env::var_os(ENV_DIR) {
            Some(d) => std::env::split_paths(&d)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            None => openssl_probe::candidate_cert_dirs()
                .map(Path::to_path_buf)
                .collect(),
        };
        RootPaths { file, dirs }
    }

    /// Every certificate found there; unreadable or broken entries are
    /// skipped, as OpenSSL skips them.
    pub fn load(&self) -> Vec<CertificateDer<'static>> {
        let mut certs = Vec::new();
        if let Some(f) = &self.file {
            certs.extend(rustls_native_certs::load_certs_from_paths(Some(f), None).certs);
        }
        for d in &self.dirs {
            certs.extend(rustls_native_certs::load_certs_from_paths(None, Some(d)).certs);
        }
        certs.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        certs.dedup();
        certs
    }
}

/// The bundle file OpenSSL would use without `SSL_CERT_FILE`: the probe's
/// answer when the variable is unset (it consults the variable first).
fn default_file() -> Option<PathBuf> {
    if std::env::var_os(ENV_FILE).is_some() {
        return None;
    }
    openssl_probe::probe().cert_file
}

/// The system roots, parsed once per set of paths: loading them reads and
/// parses a few hundred certificates, too slow to repeat per connection.
pub fn system_roots() -> Arc<RootCertStore> {
    static CACHE: Mutex<Option<(RootPaths, Arc<RootCertStore>)>> = Mutex::new(None);
    let paths = RootPaths::from_env();
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((p, store)) = cache.as_ref() {
        if *p == paths {
            return store.clone();
        }
    }
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(paths.load());
    let store = Arc::new(store);
    *cache = Some((paths, store.clone()));
    store
}

/// The roots a config trusts: the system's (unless `system` is false) and
/// every certificate of `ca_file`, also returned on their own.
pub fn trust_roots(
    system: bool,
    ca_file: Option<&Path>,
    field: &'static str,
) -> Result<(RootCertStore, Vec<CertificateDer<'static>>)> {
    let mut store = if system {
        (*system_roots()).clone()
    } else {
        RootCertStore::empty()
    };
    let mut extra = Vec::new();
    if let Some(path) = ca_file {
        extra = load_certs(field, path)?;
        for cert in &extra {
            store.add(cert.clone()).map_err(|e| {
                crate::error::Error::invalid(
                    field,
                    format!("unusable CA certificate in {}: {e}", path.display()),
                )
            })?;
        }
    }
    Ok((store, extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testpki::{openssl_hash, pki};
    use std::process::Command;

    /// Set in the child processes `env_overrides_*` start: the environment
    /// is set before the child starts, never changed in a running test
    /// process (setenv races getenv in other threads).
    const CHILD: &str = "SOCKETKIT_ROOTS_CHILD";

    fn run_child(test: &str, env: &[(&str, &Path)], unset: &[&str]) {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new(exe);
        cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env(CHILD_CA, pki().unwrap().path("ca.pem"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        for k in unset {
            cmd.env_remove(k);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "child ran no test: {text}");
    }

    const CHILD_CA: &str = "SOCKETKIT_ROOTS_CHILD_CA";

    /// The test CA, made by the parent (the child makes no certificates).
    fn expected_ca() -> Vec<u8> {
        let path = PathBuf::from(std::env::var_os(CHILD_CA).unwrap());
        load_certs("ca_file", &path).unwrap()[0].to_vec()
    }

    #[test]
    fn child_only_the_test_ca() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let roots = RootPaths::from_env().load();
        assert_eq!(roots.len(), 1, "{:?}", RootPaths::from_env());
        assert_eq!(roots[0].as_ref(), expected_ca().as_slice());
        assert_eq!(system_roots().len(), 1);
    }

    /// One variable alone replaces its own half; the other stays the default.
    #[test]
    fn child_one_variable_replaces_one_half() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let paths = RootPaths::from_env();
        let default_dirs: Vec<PathBuf> = openssl_probe::candidate_cert_dirs()
            .map(Path::to_path_buf)
            .collect();
        match (std::env::var_os(ENV_FILE), std::env::var_os(ENV_DIR)) {
            (Some(f), None) => {
                assert_eq!(paths.file.as_deref(), Some(Path::new(&f)));
                assert_eq!(paths.dirs, default_dirs);
            }
            (None, Some(d)) => {
                assert_eq!(paths.dirs, vec![PathBuf::from(d)]);
                assert_eq!(paths.file, openssl_probe::probe().cert_file);
            }
            other => panic!("set exactly one variable, got {other:?}"),
        }
        let roots = paths.load();
        assert!(roots.iter().any(|c| c.as_ref() == expected_ca().as_slice()));
    }

    #[test]
    fn env_overrides_like_openssl() {
        let Some(p) = pki() else {
            eprintln!("SKIPPED: the openssl command is not installed");
            return;
        };
        let empty = p.path("empty-dir");
        std::fs::create_dir_all(&empty).unwrap();
        let dir = p.path("hashed-dir");
        std::fs::create_dir_all(&dir).unwrap();
        let hash = openssl_hash(&p.path("ca.pem"));
        std::fs::copy(p.path("ca.pem"), dir.join(format!("{hash}.0"))).unwrap();
        // Both set: exactly what they name, nothing of the system's.
        run_child(
            "tls::roots::tests::child_only_the_test_ca",
            &[(ENV_FILE, &p.path("ca.pem")), (ENV_DIR, &empty)],
            &[],
        );
        // SSL_CERT_FILE alone replaces the bundle, keeps the directory.
        run_child(
            "tls::roots::tests::child_one_variable_replaces_one_half",
            &[(ENV_FILE, &p.path("ca.pem"))],
            &[ENV_DIR],
        );
        // SSL_CERT_DIR alone (a hashed directory) replaces the directory.
        run_child(
            "tls::roots::tests::child_one_variable_replaces_one_half",
            &[(ENV_DIR, &dir)],
            &[ENV_FILE],
        );
    }
}
