//! Ready dialogues for common services (`service="redis"`, ...): each one
//! the smallest exchange that proves the service speaks its protocol, and
//! captures the facts worth keeping (a version, a status code).

use crate::error::{Error, Result};
use crate::service::starttls::PG_SSL_REQUEST;
use crate::service::steps::{Pattern, Step};

/// The services with ready steps, in the order the docs list them.
pub const SERVICE_NAMES: [&str; 8] = [
    "redis",
    "memcached",
    "smtp",
    "imap",
    "pop3",
    "ssh",
    "http",
    "postgres",
];

fn send(data: &[u8]) -> Step {
    Step::Send(data.to_vec())
}

fn exact(data: &[u8]) -> Step {
    Step::expect(data)
}

fn regex(re: &str) -> Step {
    match Pattern::regex("service", re.as_bytes()) {
        Ok(pattern) => Step::Expect {
            pattern,
            timeout: None,
        },
        // The table's patterns are tested; an exact pattern that can only
        // fail is the safe fallback all the same (no panic in the core).
        Err(_) => Step::expect(re.as_bytes()),
    }
}

/// The steps of `name` for a target named `host` (HTTP sends it as `Host`).
pub fn service_steps(name: &str, host: &str) -> Result<Vec<Step>> {
    let steps = match name.to_ascii_lowercase().as_str() {
        // RESP: an inline PING is answered by a simple string.
        "redis" => vec![send(b"PING\r\n"), exact(b"+PONG\r\n")],
        "memcached" => vec![send(b"version\r\n"), regex(r"^VERSION ([^\r\n]+)\r\n")],
        // The last line of a multi-line reply is "code SP text".
        "smtp" => vec![
            regex(r"(?m)^220 [^\n]*\n"),
            send(b"EHLO socketkit.invalid\r\n"),
            regex(r"(?m)^250 [^\n]*\n"),
            send(b"QUIT\r\n"),
            regex(r"(?m)^221"),
        ],
        "imap" => vec![
            regex(r"^\* (?:OK|PREAUTH)[^\n]*\n"),
            send(b"a1 LOGOUT\r\n"),
            regex(r"(?m)^a1 OK"),
        ],
        "pop3" => vec![
            regex(r"^\+OK[^\n]*\n"),
            send(b"QUIT\r\n"),
            exact(b"+OK"),
        ],
        // RFC 4253 section 4.2: the server's identification string.
        "ssh" => vec![regex(r"^SSH-([0-9.]+)-([^\r\n ]+)[^\r\n]*\r?\n")],
        "http" => vec![
            send(
                format!(
                    "HEAD / HTTP/1.1\r\nHost: {}\r\nUser-Agent: socketkit\r\nConnection: close\r\n\r\n",
                    http_host(host)
                )
                .as_bytes(),
            ),
            regex(r"^HTTP/1\.[01] ([0-9]{3})"),
        ],
        // The SSLRequest is answered by one byte in every configuration:
        // 'S' (TLS offered) or 'N'. Nothing else speaks so.
        "postgres" | "postgresql" => vec![send(&PG_SSL_REQUEST), regex(r"^([SN])")],
        _ => {
            return Err(Error::invalid(
                "service",
                format!(
                    "unknown service {name:?}; one of {}",
                    SERVICE_NAMES.join(", ")
                ),
            ))
        }
    };
    Ok(steps)
}

/// An IPv6 literal goes in brackets in a Host header.
fn http_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
