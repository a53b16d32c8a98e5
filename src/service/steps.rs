//! Send/expect dialogues over a connected [`TcpConnection`], all steps
//! under the caller's deadline, each `Expect` also under its own timeout.
//!
//! - `Send` writes its bytes as given: nothing is appended (binary
//!   protocols break on an implicit newline).
//! - `Expect` reads until its pattern shows up in what arrived since the
//!   last match: exact bytes (`pattern in received`) or a regular
//!   expression of the `regex` crate's `regex::bytes` flavour, searched in
//!   at most [`MAX_EXPECT`] bytes. That flavour is Python's `re` without
//!   look-around and backreferences (it guarantees linear time); classes
//!   such as `\d`/`\w` are Unicode-aware unless `(?-u)` turns that off, and
//!   `.` does not match `\n` unless `(?s)`, as in `re`.
//! - `StartTls` upgrades the connection (after the plaintext exchange of a
//!   preset, when one is named).
//!
//! A step that fails reports its index and the bytes that arrived during
//! it; a peer that closes fails the `Expect` at once.

use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::error::{Error, Result};
use crate::service::starttls::{negotiate, StartTlsProto};
use crate::tcp::TcpConnection;
use crate::tls::{ClientTls, TlsInfo};
use crate::wait::{Deadline, Interrupt};

/// How much an `Expect` searches before it gives up.
pub const MAX_EXPECT: usize = 64 * 1024;
/// The most one read asks for.
const CHUNK: usize = 16 * 1024;

/// What an `Expect` looks for.
#[derive(Debug, Clone)]
pub enum Pattern {
    Exact(Vec<u8>),
    Regex(Regex),
}

impl Pattern {
    /// A regex pattern, or an error naming `arg` and the parser's reason.
    pub fn regex(arg: &'static str, pattern: &[u8]) -> Result<Pattern> {
        let text = std::str::from_utf8(pattern)
            .map_err(|_| Error::invalid(arg, "a regex pattern must be valid UTF-8"))?;
        regex::bytes::RegexBuilder::new(text)
            .size_limit(1 << 20)
            .build()
            .map(Pattern::Regex)
            .map_err(|e| Error::invalid(arg, format!("bad regex {text:?}: {e}")))
    }

    /// Where the first match ends, and the groups when a regex matched.
    fn find(&self, hay: &[u8]) -> Option<(usize, Option<Captures>)> {
        match self {
            Pattern::Exact(p) if p.is_empty() => Some((0, None)),
            Pattern::Exact(p) => hay
                .windows(p.len())
                .position(|w| w == p.as_slice())
                .map(|i| (i + p.len(), None)),
            Pattern::Regex(r) => r.captures(hay).map(|c| {
                let groups = c
                    .iter()
                    .skip(1)
                    .map(|g| g.map(|m| m.as_bytes().to_vec()))
                    .collect();
                (c.get(0).map_or(0, |m| m.end()), Some(groups))
            }),
        }
    }

    /// The pattern as people read it in an error.
    pub fn describe(&self) -> String {
        match self {
            Pattern::Exact(p) => format!("{:?}", String::from_utf8_lossy(p)),
            Pattern::Regex(r) => format!("regex /{}/", r.as_str()),
        }
    }
}

/// The groups of a regex match; `None` for a group that did not take part.
pub type Captures = Vec<Option<Vec<u8>>>;

/// One step of a dialogue.
#[derive(Debug, Clone)]
pub enum Step {
    Send(Vec<u8>),
    Expect {
        pattern: Pattern,
        /// This step's own bound, inside the dialogue's deadline.
        timeout: Option<Duration>,
    },
    StartTls {
        starttls: Option<StartTlsProto>,
    },
}

impl Step {
    pub fn expect(pattern: &[u8]) -> Step {
        Step::Expect {
            pattern: Pattern::Exact(pattern.to_vec()),
            timeout: None,
        }
    }
}

/// Why a dialogue stopped: which step, what arrived during it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub step: usize,
    pub received: Vec<u8>,
    pub reason: String,
}

/// What a dialogue that ran to its end leaves.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// The groups of the last regex match.
    pub captures: Option<Captures>,
    /// The handshake of a `StartTls` step: how long it took and its outcome.
    pub tls_time: Option<Duration>,
    pub tls: Option<TlsInfo>,
    /// Bytes that arrived after the last match (the start of whatever the
    /// peer says next).
    pub rest: Vec<u8>,
}

/// How to start TLS for a `StartTls` step.
pub struct TlsSetup<'a> {
    pub tls: &'a ClientTls,
    /// The name for SNI and verification.
    pub host: &'a str,
}

/// Run `steps` on `conn` within `deadline`. `Ok(Err(..))` is a failed step
/// (the service answered wrong, or late, or closed); `Err` only for an
/// interrupt (Ctrl-C, a cancelled run), which must stop the caller too.
pub fn run_steps(
    conn: &TcpConnection,
    steps: &[Step],
    tls: Option<&TlsSetup<'_>>,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<std::result::Result<Finished, StepFailure>> {
    let saved = conn.timeout();
    let r = Dialogue {
        conn,
        tls,
        deadline,
        intr,
        buf: Vec::new(),
        done: Finished::default(),
    }
    .run(steps);
    conn.set_timeout(saved);
    r
}

struct Dialogue<'a> {
    conn: &'a TcpConnection,
    tls: Option<&'a TlsSetup<'a>>,
    deadline: Deadline,
    intr: &'a dyn Interrupt,
    /// Bytes that arrived after the last match (and before it, for the step
    /// in progress).
    buf: Vec<u8>,
    done: Finished,
}

/// A step's outcome before it is numbered: a failure reason, or an error
/// that ends everything.
enum Stop {
    Failed(String),
    Fatal(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        match e {
            Error::Interrupted => Stop::Fatal(e),
            e => Stop::Failed(e.to_string()),
        }
    }
}

impl Dialogue<'_> {
    fn run(mut self, steps: &[Step]) -> Result<std::result::Result<Finished, StepFailure>> {
        for (i, step) in steps.iter().enumerate() {
            let seen = self.buf.len();
            let r = match step {
                Step::Send(data) => self.send(data),
                Step::Expect { pattern, timeout } => self.expect(pattern, *timeout),
                Step::StartTls { starttls } => self.start_tls(*starttls),
            };
            match r {
                Ok(()) => {}
                Err(Stop::Fatal(e)) => return Err(e),
                Err(Stop::Failed(reason)) => {
                    // An Expect reports everything it looked at; other steps
                    // only what arrived while they ran.
                    let from = if matches!(step, Step::Expect { .. }) {
                        0
                    } else {
                        seen.min(self.buf.len())
                    };
                    return Ok(Err(StepFailure {
                        step: i,
                        received: self.buf[from..].to_vec(),
                        reason,
                    }));
                }
            }
        }
        self.done.rest = std::mem::take(&mut self.buf);
        Ok(Ok(self.done))
    }

    fn send(&mut self, data: &[u8]) -> std::result::Result<(), Stop> {
        self.conn.set_timeout(self.deadline.remaining());
        self.conn.send_all(data, self.intr)?;
        Ok(())
    }

    fn expect(
        &mut self,
        pattern: &Pattern,
        timeout: Option<Duration>,
    ) -> std::result::Result<(), Stop> {
        let deadline = self.deadline.min(Deadline::after(timeout));
        let started = Instant::now();
        loop {
            let window = &self.buf[..self.buf.len().min(MAX_EXPECT)];
            if let Some((end, groups)) = pattern.find(window) {
                if groups.is_some() {
                    self.done.captures = groups;
                }
                self.buf.drain(..end);
                return Ok(());
            }
            if self.buf.len() >= MAX_EXPECT {
                return Err(Stop::Failed(format!(
                    "{} not found in the first {MAX_EXPECT} bytes",
                    pattern.describe()
                )));
            }
            self.conn.set_timeout(deadline.remaining());
            let room = (MAX_EXPECT - self.buf.len()).min(CHUNK);
            match self.conn.recv(room, self.intr) {
                Ok(got) if got.is_empty() => {
                    return Err(Stop::Failed(format!(
                        "the peer closed the connection before {} arrived",
                        pattern.describe()
                    )))
                }
                Ok(got) => self.buf.extend_from_slice(&got),
                Err(Error::Timeout { .. }) => {
                    return Err(Stop::Failed(format!(
                        "timed out after {:.3} s waiting for {}",
                        started.elapsed().as_secs_f64(),
                        pattern.describe()
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn start_tls(&mut self, proto: Option<StartTlsProto>) -> std::result::Result<(), Stop> {
        let Some(setup) = self.tls else {
            return Err(Stop::Failed(
                "no TLS configuration for the StartTls step".into(),
            ));
        };
        if !self.buf.is_empty() {
            // Plaintext the server sent before the handshake would be
            // trusted as if it came over TLS (the STARTTLS injection flaw).
            return Err(Stop::Failed(format!(
                "{} unread plaintext bytes before the TLS handshake",
                self.buf.len()
            )));
        }
        if let Some(p) = proto {
            negotiate(self.conn, p, self.deadline, self.intr)?;
        }
        let t0 = Instant::now();
        self.conn
            .start_tls_client(setup.tls, setup.host, self.deadline, self.intr)?;
        self.done.tls_time = Some(t0.elapsed());
        self.done.tls = self.conn.tls_info();
        Ok(())
    }
}
