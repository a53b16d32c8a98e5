//! STARTTLS presets: the plaintext exchange each protocol needs before its
//! TLS handshake (SMTP, IMAP, POP3, FTP, and PostgreSQL's SSLRequest). Every
//! read is bounded (a reply line at most [`MAX_LINE`] bytes, a reply at most
//! [`MAX_REPLY_LINES`] lines) and a refusal says what the server answered.

use crate::error::{Error, Result, TlsFailure};
use crate::tcp::TcpConnection;
use crate::wait::{Deadline, Interrupt};

/// The longest reply line a preset reads (SMTP's limit is 512 octets; some
/// servers send long capability lines).
pub const MAX_LINE: usize = 8192;
/// The most lines one reply (an SMTP multi-line EHLO answer, IMAP's
/// untagged lines before the tagged one) may take.
pub const MAX_REPLY_LINES: usize = 100;
/// How much of a refusal the error quotes.
const QUOTE: usize = 200;

/// PostgreSQL's SSLRequest: length 8, then the code 1234 5679.
pub const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The name SMTP's EHLO announces: a probe has no name of its own to give.
const EHLO: &[u8] = b"EHLO socketkit.invalid\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTlsProto {
    Smtp,
    Imap,
    Pop3,
    Ftp,
    Postgres,
}

impl StartTlsProto {
    pub const ALL: [StartTlsProto; 5] = [
        StartTlsProto::Smtp,
        StartTlsProto::Imap,
        StartTlsProto::Pop3,
        StartTlsProto::Ftp,
        StartTlsProto::Postgres,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StartTlsProto::Smtp => "smtp",
            StartTlsProto::Imap => "imap",
            StartTlsProto::Pop3 => "pop3",
            StartTlsProto::Ftp => "ftp",
            StartTlsProto::Postgres => "postgres",
        }
    }

    /// `"smtp"`, ... (case-insensitive; `"postgresql"` too); the error
    /// names the argument and lists the presets.
    pub fn parse(arg: &'static str, name: &str) -> Result<StartTlsProto> {
        let n = name.to_ascii_lowercase();
        let n = if n == "postgresql" { "postgres" } else { &n };
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == n)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                Error::invalid(
                    arg,
                    format!(
                        "unknown STARTTLS protocol {name:?}; one of {}",
                        names.join(", ")
                    ),
                )
            })
    }
}

/// A refusal, in the words the server used.
fn refused(proto: StartTlsProto, what: &str, answer: &[u8]) -> Error {
    let mut text = String::from_utf8_lossy(&answer[..answer.len().min(QUOTE)])
        .trim_end()
        .to_string();
    if answer.len() > QUOTE {
        text.push_str("...");
    }
    Error::tls(
        None,
        TlsFailure::Protocol(format!(
            "{} STARTTLS: {what}; the server answered {text:?}",
            proto.as_str()
        )),
    )
}

/// One reply line within the deadline; a close is a refusal quoting what
/// came so far.
fn line(
    conn: &TcpConnection,
    proto: StartTlsProto,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<Vec<u8>> {
    conn.set_timeout(deadline.remaining());
    let l = conn.recv_line(MAX_LINE, intr)?;
    if l.last() != Some(&b'\n') {
        return Err(refused(proto, "the server closed the connection", &l));
    }
    Ok(l)
}

/// A numeric reply (SMTP, FTP): lines until one whose fourth byte is not
/// `-`; the whole reply and its code.
fn numeric_reply(
    conn: &TcpConnection,
    proto: StartTlsProto,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut all = Vec::new();
    for _ in 0..MAX_REPLY_LINES {
        let l = line(conn, proto, deadline, intr)?;
        all.extend_from_slice(&l);
        if l.len() < 4 || !l[..3].iter().all(u8::is_ascii_digit) {
            return Err(refused(proto, "not a numeric reply", &all));
        }
        if l[3] != b'-' {
            return Ok((l[..3].to_vec(), all));
        }
    }
    Err(refused(proto, "a reply of too many lines", &all))
}

fn expect_code(
    conn: &TcpConnection,
    proto: StartTlsProto,
    want: &[u8],
    what: &str,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<()> {
    let (code, all) = numeric_reply(conn, proto, deadline, intr)?;
    if code != want {
        return Err(refused(proto, what, &all));
    }
    Ok(())
}

fn send(conn: &TcpConnection, data: &[u8], deadline: Deadline, intr: &dyn Interrupt) -> Result<()> {
    conn.set_timeout(deadline.remaining());
    conn.send_all(data, intr)
}

/// IMAP: the untagged greeting, then `a1 STARTTLS` answered by `a1 OK`.
fn imap(conn: &TcpConnection, deadline: Deadline, intr: &dyn Interrupt) -> Result<()> {
    let p = StartTlsProto::Imap;
    let greeting = line(conn, p, deadline, intr)?;
    if !greeting.starts_with(b"* OK") && !greeting.starts_with(b"* PREAUTH") {
        return Err(refused(p, "no greeting", &greeting));
    }
    send(conn, b"a1 STARTTLS\r\n", deadline, intr)?;
    for _ in 0..MAX_REPLY_LINES {
        let l = line(conn, p, deadline, intr)?;
        if l.starts_with(b"a1 ") {
            if l[3..].to_ascii_uppercase().starts_with(b"OK") {
                return Ok(());
            }
            return Err(refused(p, "STARTTLS refused", &l));
        }
    }
    Err(refused(p, "no tagged answer", b""))
}

/// POP3: `+OK` greeting, then `STLS` answered by `+OK`.
fn pop3(conn: &TcpConnection, deadline: Deadline, intr: &dyn Interrupt) -> Result<()> {
    let p = StartTlsProto::Pop3;
    let greeting = line(conn, p, deadline, intr)?;
    if !greeting.starts_with(b"+OK") {
        return Err(refused(p, "no greeting", &greeting));
    }
    send(conn, b"STLS\r\n", deadline, intr)?;
    let l = line(conn, p, deadline, intr)?;
    if !l.starts_with(b"+OK") {
        return Err(refused(p, "STLS refused", &l));
    }
    Ok(())
}

/// PostgreSQL: the SSLRequest, answered by one byte, `S` (go ahead) or `N`.
fn postgres(conn: &TcpConnection, deadline: Deadline, intr: &dyn Interrupt) -> Result<()> {
    let p = StartTlsProto::Postgres;
    send(conn, &PG_SSL_REQUEST, deadline, intr)?;
    conn.set_timeout(deadline.remaining());
    let b = conn.recv(1, intr)?;
    match b.first() {
        Some(b'S') => Ok(()),
        Some(b'N') => Err(refused(p, "the server does not offer SSL", b"N")),
        Some(_) => Err(refused(p, "not an SSLRequest answer", &b)),
        None => Err(refused(p, "the server closed the connection", b"")),
    }
}

/// Run `proto`'s plaintext exchange on `conn` so that the TLS handshake can
/// start next. Bytes the server sends after its go-ahead stay buffered in
/// the connection, which hands them to the TLS session.
pub fn negotiate(
    conn: &TcpConnection,
    proto: StartTlsProto,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<()> {
    let saved = conn.timeout();
    let r = match proto {
        StartTlsProto::Smtp => (|| {
            expect_code(conn, proto, b"220", "no greeting", deadline, intr)?;
            send(conn, EHLO, deadline, intr)?;
            expect_code(conn, proto, b"250", "EHLO refused", deadline, intr)?;
            send(conn, b"STARTTLS\r\n", deadline, intr)?;
            expect_code(conn, proto, b"220", "STARTTLS refused", deadline, intr)
        })(),
        StartTlsProto::Ftp => (|| {
            expect_code(conn, proto, b"220", "no greeting", deadline, intr)?;
            send(conn, b"AUTH TLS\r\n", deadline, intr)?;
            expect_code(conn, proto, b"234", "AUTH TLS refused", deadline, intr)
        })(),
        StartTlsProto::Imap => imap(conn, deadline, intr),
        StartTlsProto::Pop3 => pop3(conn, deadline, intr),
        StartTlsProto::Postgres => postgres(conn, deadline, intr),
    };
    conn.set_timeout(saved);
    r
}
