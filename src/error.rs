//! The one error type of the core. `py/errors.rs` is the only place that turns
//! it into Python exceptions.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// What a blocking call was doing when it failed; becomes the `phase`
/// attribute of the Python exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Resolve,
    Connect,
    Bind,
    Send,
    Recv,
    Accept,
    Option,
    /// The TLS handshake (or a TLS record after it).
    Tls,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Bind => "bind",
            Phase::Send => "send",
            Phase::Recv => "recv",
            Phase::Accept => "accept",
            Phase::Option => "option",
            Phase::Tls => "tls",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a peer's certificate failed verification: data, so probes can
/// report it next to the certificate facts (DESIGN.md section 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyFailure {
    Expired,
    NotYetValid,
    UnknownIssuer,
    HostnameMismatch,
    SelfSigned,
    Revoked,
    BadSignature,
    /// Anything else webpki refuses, in a few words.
    Other(String),
}

impl VerifyFailure {
    /// The short reason users see as `verify_error`.
    pub fn reason(&self) -> &str {
        match self {
            VerifyFailure::Expired => "certificate expired",
            VerifyFailure::NotYetValid => "certificate not yet valid",
            VerifyFailure::UnknownIssuer => "unknown issuer",
            VerifyFailure::HostnameMismatch => "hostname mismatch",
            VerifyFailure::SelfSigned => "self-signed",
            VerifyFailure::Revoked => "revoked",
            VerifyFailure::BadSignature => "bad signature",
            VerifyFailure::Other(s) => s,
        }
    }
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// How a TLS handshake or record layer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The peer's certificate did not verify and `verify=True`.
    Verify(VerifyFailure),
    /// The peer sent a fatal alert (its description, e.g. "handshake failure").
    Alert(String),
    /// The peer closed the connection before the handshake finished.
    Closed,
    /// Any other protocol error, as rustls words it.
    Protocol(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Verify(v) => write!(f, "certificate verify failed: {v}"),
            TlsFailure::Alert(a) => write!(f, "peer sent TLS alert: {a}"),
            TlsFailure::Closed => f.write_str("connection closed during the TLS handshake"),
            TlsFailure::Protocol(m) => write!(f, "TLS error: {m}"),
        }
    }
}

/// One failed connect attempt of a connect that may try several addresses.
#[derive(Debug)]
pub struct Attempt {
    pub address: SocketAddr,
    pub error: io::Error,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument: becomes ValueError naming `arg`.
    #[error("{arg}: {message}")]
    InvalidArgument { arg: &'static str, message: String },

    /// An OS error during `phase`, optionally against `address`.
    #[error("{} ({phase}{})", strerror(.source), fmt_addr(.address))]
    Io {
        phase: Phase,
        address: Option<String>,
        #[source]
        source: io::Error,
    },

    /// The caller's deadline passed.
    #[error("timed out ({phase}{})", fmt_addr(.address))]
    Timeout {
        phase: Phase,
        address: Option<String>,
    },

    /// getaddrinfo failed; `code` is the EAI_* value (socket.gaierror's errno).
    #[error("{message} (resolve {host})")]
    Resolve {
        host: String,
        code: i32,
        message: String,
    },

    /// Every address of a connect failed; the kind of the first failure picks
    /// the Python class, the attempts are all listed.
    #[error("{} ({})", summary(.attempts), list_attempts(.attempts))]
    Connect {
        target: String,
        attempts: Vec<Attempt>,
    },

    /// The peer closed before a `recv_exact`/`recv_until` finished.
    #[error("connection closed by peer after {} of {expected} bytes", .partial.len())]
    Closed { partial: Vec<u8>, expected: String },

    /// A line or frame grew past its bound.
    #[error("{what} exceeds {limit} bytes")]
    LimitExceeded { what: &'static str, limit: usize },

    /// `sendall` failed after `bytes_sent` bytes went out.
    #[error("sendall failed after {bytes_sent} bytes: {source}")]
    SendAll {
        bytes_sent: usize,
        #[source]
        source: Box<Error>,
    },

    /// The socket option does not exist on this platform or socket.
    #[error("option {option} is not supported: {reason}")]
    Unsupported {
        option: &'static str,
        reason: String,
    },

    /// The object was closed (by this or another thread).
    #[error("socket is closed")]
    ClosedSocket,

    /// A server was used after `stop()`.
    #[error("the server is stopped; make a new one")]
    Stopped,
    /// `wait_for` ran out of time; `down` lists (target, last failure) of
    /// every target that never came up.
    #[error("timed out after {waited:.1} s waiting for {}", list_down(.down))]
    NotReady {
        waited: f64,
        down: Vec<(String, String)>,
    },

    /// TLS failed: the handshake (a certificate that did not verify, an
    /// alert, a protocol error) or a record after it.
    #[error("{failure} (tls{})", fmt_addr(.address))]
    Tls {
        address: Option<String>,
        failure: TlsFailure,
    },

    /// A dialogue step (`run_steps`) did not pass: which step (0-based),
    /// why, and what arrived during it.
    #[error("step {step} failed: {reason}")]
    Dialogue {
        step: usize,
        received: Vec<u8>,
        reason: String,
    },

    /// The allocator refused `bytes` bytes (a huge size from the caller met
    /// a peer that kept sending): MemoryError, as the stdlib raises.
    #[error("cannot allocate {bytes} bytes")]
    NoMemory { bytes: usize },

    /// A signal is pending: the binding layer raises what the signal handler raised.
    #[error("interrupted by a signal")]
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Room for `additional` more items, or `Error::NoMemory`: `Vec`'s own
/// growth aborts the process when the allocator refuses.
pub fn try_reserve<T>(v: &mut Vec<T>, additional: usize) -> Result<()> {
    v.try_reserve(additional).map_err(|_| Error::NoMemory {
        bytes: additional.saturating_mul(std::mem::size_of::<T>()),
    })
}

fn fmt_addr(address: &Option<String>) -> String {
    match address {
        Some(a) => format!(" {a}"),
        None => String::new(),
    }
}

fn list_down(down: &[(String, String)]) -> String {
    let parts: Vec<String> = down.iter().map(|(t, why)| format!("{t} ({why})")).collect();
    parts.join(", ")
}

fn summary(attempts: &[Attempt]) -> String {
    match attempts.first() {
        Some(a) => strerror(&a.error),
        None => "no address to connect to".to_string(),
    }
}

fn list_attempts(attempts: &[Attempt]) -> String {
    // One address: the summary already says what went wrong.
    if let [only] = attempts {
        return format!("connect {}", fmt_sockaddr(&only.address));
    }
    let parts: Vec<String> = attempts
        .iter()
        .map(|a| {
            format!(
                "connect {}: {}",
                fmt_sockaddr(&a.address),
                strerror(&a.error)
            )
        })
        .collect();
    parts.join("; ")
}

/// The OS message without Rust's " (os error N)" suffix: Python shows the
/// errno itself, as `[Errno N] message`.
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    }
}

/// `127.0.0.1:80` / `[::1]:80`, the form users type.
pub fn fmt_sockaddr(addr: &SocketAddr) -> String {
    addr.to_string()
}

impl Error {
    pub fn io(phase: Phase, address: Option<&SocketAddr>, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::TimedOut || source.kind() == io::ErrorKind::WouldBlock {
            return Error::Timeout {
                phase,
                address: address.map(fmt_sockaddr),
            };
        }
        Error::Io {
            phase,
            address: address.map(fmt_sockaddr),
            source,
        }
    }

    pub fn invalid(arg: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            arg,
            message: message.into(),
        }
    }

    pub fn tls(address: Option<&SocketAddr>, failure: TlsFailure) -> Self {
        Error::Tls {
            address: address.map(fmt_sockaddr),
            failure,
        }
    }

    /// The verification failure a handshake stopped on, if that is why it failed.
    pub fn verify_failure(&self) -> Option<&VerifyFailure> {
        match self {
            Error::Tls {
                failure: TlsFailure::Verify(v),
                ..
            } => Some(v),
            _ => None,
        }
    }

    pub fn timeout(phase: Phase, address: Option<String>) -> Self {
        Error::Timeout { phase, address }
    }

    /// The errno of the underlying OS error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Connect { attempts, .. } => {
                attempts.first().and_then(|a| a.error.raw_os_error())
            }
            Error::SendAll { source, .. } => source.raw_os_error(),
            Error::Timeout { .. } | Error::NotReady { .. } => Some(libc::ETIMEDOUT),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_timeout_becomes_timeout() {
        let e = Error::io(
            Phase::Recv,
            None,
            io::Error::from(io::ErrorKind::WouldBlock),
        );
        assert!(matches!(
            e,
            Error::Timeout {
                phase: Phase::Recv,
                ..
            }
        ));
        assert_eq!(e.to_string(), "timed out (recv)");
    }

    #[test]
    fn a_refused_allocation_is_an_error() {
        let mut v: Vec<u64> = Vec::new();
        match try_reserve(&mut v, usize::MAX / 4) {
            Err(Error::NoMemory { bytes }) => assert_eq!(bytes, usize::MAX),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connect_lists_every_attempt() {
        let e = Error::Connect {
            target: "localhost:1".into(),
            attempts: vec![
                Attempt {
                    address: "[::1]:1".parse().unwrap(),
                    error: io::Error::from_raw_os_error(libc::ECONNREFUSED),
                },
                Attempt {
                    address: "127.0.0.1:1".parse().unwrap(),
                    error: io::Error::from_raw_os_error(libc::ECONNREFUSED),
                },
            ],
        };
        let s = e.to_string();
        assert!(s.contains("connect [::1]:1"), "{s}");
        assert!(s.contains("connect 127.0.0.1:1"), "{s}");
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
    }

    #[test]
    fn tls_failures_read_as_reasons() {
        let addr: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let e = Error::tls(Some(&addr), TlsFailure::Verify(VerifyFailure::Expired));
        assert_eq!(
            e.to_string(),
            "certificate verify failed: certificate expired (tls 127.0.0.1:443)"
        );
        assert_eq!(e.verify_failure(), Some(&VerifyFailure::Expired));
        let e = Error::tls(None, TlsFailure::Alert("handshake failure".into()));
        assert_eq!(
            e.to_string(),
            "peer sent TLS alert: handshake failure (tls)"
        );
        assert_eq!(e.verify_failure(), None);
        assert_eq!(
            Error::timeout(Phase::Tls, None).to_string(),
            "timed out (tls)"
        );
    }
}
