//! `on_message` line framing (and raw): whatever the chunk boundaries, the
//! decoder yields exactly the `\n`-separated lines of the stream, fails
//! exactly when a line (or an unfinished one) exceeds `max_message`, holds
//! only the unfinished line, and its messages re-encode to the same stream.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use socketkit::server::codec::{encode, Decoder, Framing};

/// Feed `stream` in the given chunks; the messages, and whether it failed.
fn decode(framing: Framing, max: usize, stream: &[u8], sizes: &[usize]) -> (Vec<Vec<u8>>, bool) {
    let mut d = Decoder::new(framing, max);
    let mut out = Vec::new();
    let mut at = 0;
    for &n in sizes {
        d.push(&stream[at..at + n]);
        at += n;
        loop {
            match d.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(t) => {
                    assert_eq!(t.limit, max);
                    return (out, true);
                }
            }
        }
    }
    if framing == Framing::Line {
        let tail = stream.len()
            - stream
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
        assert_eq!(d.buffered(), tail, "holds more than the unfinished line");
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let [a, b, c, stream @ ..] = data else {
        return;
    };
    let max = if a & 0x80 != 0 {
        usize::MAX / 2
    } else {
        usize::from(a & 0x7f)
    };
    let sizes = common::chunks(stream.len(), *b, usize::from(*c) + 1);
    if c & 0x80 != 0 {
        // raw: every message at most max (at least 1) bytes, nothing lost.
        let (msgs, failed) = decode(Framing::Raw, max, stream, &sizes);
        assert!(!failed);
        assert!(msgs.iter().all(|m| !m.is_empty() && m.len() <= max.max(1)));
        assert_eq!(msgs.concat(), stream);
        return;
    }
    // The model: lines up to the first one that is too long.
    let mut want = Vec::new();
    let mut want_fail = false;
    let mut parts: Vec<&[u8]> = stream.split(|&x| x == b'\n').collect();
    let unfinished = parts.pop().unwrap_or_default();
    for p in parts {
        if p.len() > max {
            want_fail = true;
            break;
        }
        want.push(p.to_vec());
    }
    if !want_fail && unfinished.len() > max {
        want_fail = true;
    }
    let (got, failed) = decode(Framing::Line, max, stream, &sizes);
    assert_eq!(failed, want_fail);
    assert_eq!(got, want);
    let one_shot = decode(Framing::Line, max, stream, &[stream.len()]);
    assert_eq!(one_shot, (got.clone(), failed));
    // Replies: encode appends the '\n' a message lacks.
    let mut wire = Vec::new();
    for m in &got {
        encode(Framing::Line, m, &mut wire).unwrap();
    }
    let back_sizes = common::chunks(wire.len(), b.wrapping_add(1), 7);
    assert_eq!(decode(Framing::Line, max, &wire, &back_sizes), (got, false));
});
