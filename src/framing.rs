//! The one read buffer behind every recv method, and the framing searches
//! (`recv_exact`, `recv_until`, `recv_line`) that work on it. Pure data
//! structure: the socket reads live in `tcp/`.

use crate::error::{try_reserve, Result};

/// Bytes read from the socket but not yet handed to the caller.
///
/// `data[start..end]` is the unread part; `data` is fully initialised so a
/// read can go straight into `spare()` without zeroing on every call.
#[derive(Debug, Default)]
pub struct ReadBuffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

/// Grow in steps of at least this much, so one-byte peers do not cause one
/// allocation per byte.
const MIN_READ: usize = 64 * 1024;

/// The most one read asks for: a caller's size (`recv(2**40)`) bounds what
/// is returned, never what is allocated up front; more arrives on the
/// next read.
const MAX_READ: usize = 1 << 20;

impl ReadBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn buffered(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Free space of `want` bytes, clamped to MIN_READ..=MAX_READ, after
    /// the unread part, moving or growing the storage when needed.
    pub fn spare(&mut self, want: usize) -> Result<&mut [u8]> {
        self.spare_from(want, MIN_READ)
    }

    /// `spare` with a smaller floor than MIN_READ: for one buffer among
    /// thousands of small-message connections (`aio`), which would
    /// otherwise each zero and fault in 64 KiB on its first read; the
    /// storage still doubles as bigger reads fill it.
    pub fn spare_from(&mut self, want: usize, floor: usize) -> Result<&mut [u8]> {
        let want = want.clamp(floor.clamp(1, MIN_READ), MAX_READ);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.data.len() - self.end < want {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.data.len() - self.end < want {
                let new_len = (self.end + want).max(self.data.len() * 2);
                let more = new_len - self.data.len();
                try_reserve(&mut self.data, more)?;
                self.data.resize(new_len, 0);
            }
        }
        Ok(&mut self.data[self.end..])
    }

    /// Mark `n` bytes of `spare()` as filled by a read.
    pub fn commit(&mut self, n: usize) {
        assert!(
            self.end + n <= self.data.len(),
            "commit past the spare space"
        );
        self.end += n;
    }

    /// Append `bytes` after the unread part (bytes handed over from
    /// another connection object: `aio`'s lent socket).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<()> {
        for chunk in bytes.chunks(MIN_READ) {
            let spare = self.spare(chunk.len())?;
            spare[..chunk.len()].copy_from_slice(chunk);
            self.commit(chunk.len());
        }
        Ok(())
    }

    /// Put `bytes` back in front of the unread part (a dialogue read past
    /// its last match: those bytes belong to the next recv).
    pub fn unread(&mut self, bytes: &[u8]) -> Result<()> {
        if self.start >= bytes.len() {
            self.start -= bytes.len();
            self.data[self.start..self.start + bytes.len()].copy_from_slice(bytes);
            return Ok(());
        }
        let rest = self.take_all();
        self.extend_from_slice(bytes)?;
        self.extend_from_slice(&rest)
    }

    /// Remove and return the first `n` unread bytes (all if fewer).
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.len());
        let out = self.data[self.start..self.start + n].to_vec();
        self.consume(n);
        out
    }

    /// Copy up to `dst.len()` unread bytes into `dst`; returns how many.
    pub fn take_into(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len());
        dst[..n].copy_from_slice(&self.data[self.start..self.start + n]);
        self.consume(n);
        n
    }

    pub fn take_all(&mut self) -> Vec<u8> {
        self.take(self.len())
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Give back memory a one-off huge message left behind.
            if self.data.len() > 4 * MIN_READ * 16 {
                self.data = Vec::new();
            }
        }
    }

    /// Position just past the first `delim` in the unread bytes, searching
    /// from `from` (an offset already known not to contain the end of a match).
    pub fn find(&self, delim: &[u8], from: usize) -> Option<usize> {
        find_delimiter(self.buffered(), delim, from)
    }
}

/// Index just past the first occurrence of `delim` in `hay`, starting the
/// search at `from`. An empty delimiter never matches.
pub fn find_delimiter(hay: &[u8], delim: &[u8], from: usize) -> Option<usize> {
    if delim.is_empty() || hay.len() < delim.len() {
        return None;
    }
    let from = from.min(hay.len());
    if delim.len() == 1 {
        return hay[from..]
            .iter()
            .position(|&b| b == delim[0])
            .map(|i| from + i + 1);
    }
    hay[from..]
        .windows(delim.len())
        .position(|w| w == delim)
        .map(|i| from + i + delim.len())
}

/// Where the next search may start after `len` bytes were searched without a
/// match: a match may straddle the old end by up to `delim_len - 1` bytes.
pub fn resume_from(len: usize, delim_len: usize) -> usize {
    len.saturating_sub(delim_len.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(buf: &mut ReadBuffer, bytes: &[u8]) {
        let spare = buf.spare(bytes.len()).unwrap();
        spare[..bytes.len()].copy_from_slice(bytes);
        buf.commit(bytes.len());
    }

    #[test]
    fn take_in_pieces_loses_nothing() {
        let mut b = ReadBuffer::new();
        fill(&mut b, b"hello\nworld");
        let end = b.find(b"\n", 0).unwrap();
        assert_eq!(b.take(end), b"hello\n");
        assert_eq!(b.take(100), b"world");
        assert!(b.is_empty());
    }

    #[test]
    fn unread_goes_in_front_whether_or_not_it_fits_before_start() {
        let mut b = ReadBuffer::new();
        fill(&mut b, b"abcdef");
        assert_eq!(b.take(3), b"abc");
        b.unread(b"XY").unwrap();
        assert_eq!(b.buffered(), b"XYdef");
        b.unread(b"0123456789").unwrap();
        assert_eq!(b.take_all(), b"0123456789XYdef");
        b.unread(b"z").unwrap();
        assert_eq!(b.take_all(), b"z");
    }

    #[test]
    fn spare_compacts_and_grows() {
        let mut b = ReadBuffer::new();
        fill(&mut b, &vec![7u8; MIN_READ]);
        assert_eq!(b.take(MIN_READ - 3).len(), MIN_READ - 3);
        fill(&mut b, &vec![8u8; 2 * MIN_READ]);
        assert_eq!(b.len(), 2 * MIN_READ + 3);
        let all = b.take_all();
        assert_eq!(&all[..3], &[7, 7, 7]);
        assert!(all[3..].iter().all(|&x| x == 8));
    }

    #[test]
    fn a_huge_want_allocates_at_most_one_read() {
        let mut b = ReadBuffer::new();
        assert_eq!(b.spare(usize::MAX).unwrap().len(), MAX_READ);
        assert_eq!(b.spare(1).unwrap().len(), MAX_READ);
    }

    #[test]
    fn a_small_floor_starts_small_and_doubles() {
        let mut b = ReadBuffer::new();
        assert_eq!(b.spare_from(0, 4096).unwrap().len(), 4096);
        b.commit(4096);
        assert_eq!(b.spare_from(0, 4096).unwrap().len(), 4096);
        b.commit(4096);
        assert_eq!(b.spare_from(0, 4096).unwrap().len(), 8192);
        assert_eq!(b.len(), 8192);
        assert_eq!(b.spare_from(0, 0).unwrap().len(), 8192);
    }

    #[test]
    fn one_byte_at_a_time_frames() {
        let mut b = ReadBuffer::new();
        let msg = b"abc\r\ndef";
        let mut from = 0;
        let mut found = None;
        for &byte in msg {
            fill(&mut b, &[byte]);
            if let Some(end) = b.find(b"\r\n", from) {
                found = Some(end);
                break;
            }
            from = resume_from(b.len(), 2);
        }
        assert_eq!(found, Some(5));
        assert_eq!(b.take(5), b"abc\r\n");
    }

    #[test]
    fn find_multi_byte_straddling() {
        assert_eq!(find_delimiter(b"xx\r\nyy", b"\r\n", 0), Some(4));
        assert_eq!(
            find_delimiter(b"xx\r\nyy", b"\r\n", resume_from(3, 2)),
            Some(4)
        );
        assert_eq!(find_delimiter(b"xx", b"", 0), None);
        assert_eq!(find_delimiter(b"x", b"xx", 0), None);
    }

    #[test]
    fn take_into_partial() {
        let mut b = ReadBuffer::new();
        fill(&mut b, b"12345");
        let mut dst = [0u8; 3];
        assert_eq!(b.take_into(&mut dst), 3);
        assert_eq!(&dst, b"123");
        assert_eq!(b.buffered(), b"45");
    }
}
