//! TLS in the core (issue 11, DESIGN.md section 9), plain Rust: settings
//! (`TlsConfig`), the rustls configurations built from them (`ClientTls`,
//! `ServerTls`), a blocking session over socketkit's nonblocking sockets
//! (`TlsSession`), and what a handshake reports (`TlsInfo`, `CertInfo`).
//!
//! **Crypto provider: ring.** rustls needs one. ring builds with nothing but
//! a C compiler on every platform it supports, so `pip install .` from
//! source keeps working on a fresh Debian machine (`build-essential`
//! only). aws-lc-rs, rustls's default, needs only a C compiler on x86_64
//! and aarch64 Linux, but CMake and libclang (bindgen) on other targets
//! and for FIPS, and compiles a C library several times ring's size, which
//! is felt on a 2-core build. What ring lacks here (the post-quantum
//! X25519MLKEM768 key exchange) nothing in socketkit's probes needs: the
//! classic X25519/P-256 exchanges interoperate with every server.
//!
//! **Verification is data** (`verify.rs`): every client handshake runs
//! webpki's real check and records the outcome; `verify=False` completes
//! the handshake anyway, so certificate facts are reported for expired,
//! self-signed or misnamed servers too.
//!
//! **Waiting** (`session.rs`): rustls never touches the socket by itself;
//! the session reads and writes nonblocking and waits with `wait_fd` in
//! slices, so deadlines, Ctrl-C and close-from-another-thread behave as for
//! plain TCP (DESIGN.md section 5).
//!
//! Layout: `config` (TlsConfig, TlsVersion), `pemfile` (certificates and
//! keys from PEM), `roots` (system trust roots the OpenSSL way), `context`
//! (ClientTls, ServerTls), `verify` (the recording verifier), `certinfo` and
//! `dn` (certificate facts, names as openssl prints them), `info`
//! (TlsInfo, failure words), `session` (TlsSession).

mod certinfo;
mod config;
mod context;
mod dn;
mod info;
mod pemfile;
mod roots;
mod session;
mod spin;
mod verify;

#[cfg(test)]
mod certinfo_tests;
#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
pub(crate) mod testpki;
#[cfg(test)]
mod verify_tests;

pub use certinfo::{fingerprint, CertInfo};
pub use config::{server_name, TlsConfig, TlsVersion};
pub use context::{provider, ClientTls, ServerTls};
pub use info::TlsInfo;
pub use roots::{system_roots, RootPaths};
pub use session::TlsSession;
