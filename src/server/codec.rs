//! Message framing for `on_message` servers.
//!
//! Wire formats:
//! - `line`: a message is the bytes before a `\n`; the `\n` is not part of
//!   it (a `\r` before it is kept). At EOF, bytes after the last `\n` are a
//!   last message, as asyncio's `readline()` returns them. A reply gets a
//!   `\n` appended unless it already ends with one. `max_message` bounds a
//!   line without its `\n`.
//! - `length`: a 4-byte big-endian unsigned length, then that many bytes
//!   (the framing of most binary protocols and of Netty's
//!   `LengthFieldBasedFrameDecoder` with default settings). A reply is
//!   framed the same way. A declared length over `max_message` closes the
//!   connection before its body is read.
//! - `raw`: whatever one read returned (at most `max_message` bytes, at most
//!   64 KiB) is a message; a reply is sent as is. TCP keeps no message
//!   boundaries, so a peer's one write may arrive as several messages.

use crate::error::{Error, Result};

/// How a byte stream is cut into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Line,
    Length,
    Raw,
}

impl Framing {
    pub fn parse(text: &str) -> Result<Framing> {
        match text {
            "line" => Ok(Framing::Line),
            "length" => Ok(Framing::Length),
            "raw" => Ok(Framing::Raw),
            other => Err(Error::invalid(
                "framing",
                format!("must be 'line', 'length' or 'raw', got {other:?}"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Line => "line",
            Framing::Length => "length",
            Framing::Raw => "raw",
        }
    }
}

/// Length of the `length` framing's header.
pub const HEADER: usize = 4;
/// How much one read asks for.
const READ_CHUNK: usize = 16 * 1024;
/// The most one `raw` read takes.
const RAW_CHUNK: usize = 64 * 1024;

/// A frame over `max_message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub limit: usize,
}

impl From<TooLarge> for Error {
    fn from(t: TooLarge) -> Error {
        Error::LimitExceeded {
            what: "message",
            limit: t.limit,
        }
    }
}

/// Cuts one connection's bytes into messages. Holds only the bytes of an
/// unfinished message (nothing for an idle connection), and gives back
/// storage a large message left behind once it is consumed.
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    max: usize,
    buf: Vec<u8>,
    start: usize,
    /// Offset (from `start`) up to which a line search found no `\n`.
    scanned: usize,
}

impl Decoder {
    pub fn new(framing: Framing, max: usize) -> Self {
        Decoder {
            framing,
            max,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
        }
    }

    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// How much one read should ask for: `raw` messages are single reads
    /// bounded by `max_message`.
    pub fn read_size(&self) -> usize {
        match self.framing {
            Framing::Raw => self.max.clamp(1, RAW_CHUNK),
            _ => READ_CHUNK,
        }
    }

    /// Append bytes just read.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.buf.capacity() - self.buf.len() < data.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The peer has closed its side: `line` framing's unterminated last
    /// line becomes a message (what asyncio's `readline()` and handler
    /// mode's `lines()` return at EOF); an unfinished `length` frame stays
    /// unfinished.
    pub fn finish(&mut self) {
        if self.framing == Framing::Line && self.buffered() > 0 {
            self.buf.push(b'\n');
        }
    }

    /// The next whole message, `None` until more bytes arrive.
    pub fn next_message(&mut self) -> std::result::Result<Option<Vec<u8>>, TooLarge> {
        let data = &self.buf[self.start..];
        let limit = TooLarge { limit: self.max };
        let (msg_start, msg_end, consumed) = match self.framing {
            Framing::Raw => {
                if data.is_empty() {
                    return Ok(None);
                }
                let n = data.len().min(self.max.max(1));
                (0, n, n)
            }
            Framing::Line => {
                let from = self.scanned.min(data.len());
                match data[from..].iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        let nl = from + i;
                        if nl > self.max {
                            return Err(limit);
                        }
                        (0, nl, nl + 1)
                    }
                    None => {
                        if data.len() > self.max {
                            return Err(limit);
                        }
                        self.scanned = data.len();
                        return Ok(None);
                    }
                }
            }
            Framing::Length => {
                if data.len() < HEADER {
                    return Ok(None);
                }
                let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
                if n > self.max {
                    return Err(limit);
                }
                if data.len() < HEADER + n {
                    return Ok(None);
                }
                (HEADER, HEADER + n, HEADER + n)
            }
        };
        let msg = data[msg_start..msg_end].to_vec();
        self.start += consumed;
        self.scanned = 0;
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
            // Give back what a one-off large message left behind.
            if self.buf.capacity() > RAW_CHUNK {
                self.buf = Vec::new();
            }
        }
        Ok(Some(msg))
    }
}

/// Frame `reply` for the wire, appending to `out`.
pub fn encode(framing: Framing, reply: &[u8], out: &mut Vec<u8>) -> Result<()> {
    match framing {
        Framing::Raw => out.extend_from_slice(reply),
        Framing::Line => {
            out.extend_from_slice(reply);
            if reply.last() != Some(&b'\n') {
                out.push(b'\n');
            }
        }
        Framing::Length => {
            let n = u32::try_from(reply.len()).map_err(|_| Error::LimitExceeded {
                what: "reply",
                limit: u32::MAX as usize,
            })?;
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(reply);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &mut Decoder) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            v.push(m);
        }
        v
    }

    #[test]
    fn lines_split_and_strip_newline() {
        let mut d = Decoder::new(Framing::Line, 100);
        d.push(b"one\ntwo\r\nthr");
        assert_eq!(all(&mut d), vec![b"one".to_vec(), b"two\r".to_vec()]);
        d.push(b"ee\n\n");
        assert_eq!(all(&mut d), vec![b"three".to_vec(), b"".to_vec()]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn line_byte_by_byte() {
        let mut d = Decoder::new(Framing::Line, 100);
        for &b in b"hello world\n" {
            assert!(d.next_message().unwrap().is_none());
            d.push(&[b]);
        }
        assert_eq!(d.next_message().unwrap().unwrap(), b"hello world");
    }

    #[test]
    fn line_over_limit_with_and_without_newline() {
        let mut d = Decoder::new(Framing::Line, 4);
        d.push(b"abcd\n");
        assert_eq!(d.next_message().unwrap().unwrap(), b"abcd");
        d.push(b"abcde\n");
        assert_eq!(d.next_message(), Err(TooLarge { limit: 4 }));
        let mut d = Decoder::new(Framing::Line, 4);
        d.push(b"abcde");
        assert_eq!(d.next_message(), Err(TooLarge { limit: 4 }));
    }

    #[test]
    fn finish_makes_the_unterminated_last_line_a_message() {
        let mut d = Decoder::new(Framing::Line, 100);
        d.push(b"one\ntw");
        assert_eq!(all(&mut d), vec![b"one".to_vec()]);
        d.finish();
        assert_eq!(all(&mut d), vec![b"tw".to_vec()]);
        d.finish();
        assert_eq!(all(&mut d), Vec::<Vec<u8>>::new());
        let mut d = Decoder::new(Framing::Length, 100);
        d.push(&[0, 0, 0, 5, b'a']);
        d.finish();
        assert_eq!(all(&mut d), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn length_round_trip() {
        let mut wire = Vec::new();
        for m in [&b"a"[..], b"", &[7u8; 300][..]] {
            encode(Framing::Length, m, &mut wire).unwrap();
        }
        let mut d = Decoder::new(Framing::Length, 1000);
        // Feed in awkward pieces: split inside headers and bodies.
        for chunk in wire.chunks(3) {
            d.push(chunk);
        }
        assert_eq!(all(&mut d), vec![b"a".to_vec(), Vec::new(), vec![7u8; 300]]);
    }

    #[test]
    fn length_over_limit_fails_on_the_header() {
        let mut d = Decoder::new(Framing::Length, 10);
        d.push(&11u32.to_be_bytes());
        assert_eq!(d.next_message(), Err(TooLarge { limit: 10 }));
    }

    #[test]
    fn raw_reads_are_bounded_by_max() {
        let mut d = Decoder::new(Framing::Raw, 5);
        assert_eq!(d.read_size(), 5);
        d.push(b"abcdefg");
        assert_eq!(all(&mut d), vec![b"abcde".to_vec(), b"fg".to_vec()]);
    }

    #[test]
    fn encode_line_adds_newline_once() {
        let mut out = Vec::new();
        encode(Framing::Line, b"x", &mut out).unwrap();
        encode(Framing::Line, b"y\n", &mut out).unwrap();
        assert_eq!(out, b"x\ny\n");
    }

    #[test]
    fn parse_names() {
        assert_eq!(Framing::parse("length").unwrap(), Framing::Length);
        let e = Framing::parse("json").unwrap_err().to_string();
        assert!(e.starts_with("framing: must be"), "{e}");
    }
}
