//! `on_message` length framing: messages encoded and cut at arbitrary
//! boundaries come back whole and in order; for any byte stream the decoder
//! agrees with a plain reading of "4-byte big-endian length, body", fails
//! exactly on a declared length over `max_message` (before its body
//! arrives), and never depends on how the stream was chunked.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use socketkit::server::codec::{encode, Decoder, Framing};

fn decode(max: usize, stream: &[u8], sizes: &[usize]) -> (Vec<Vec<u8>>, bool, usize) {
    let mut d = Decoder::new(Framing::Length, max);
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
                    return (out, true, d.buffered());
                }
            }
        }
    }
    (out, false, d.buffered())
}

/// The reference reading of a stream.
fn model(max: usize, mut s: &[u8]) -> (Vec<Vec<u8>>, bool, usize) {
    let mut out = Vec::new();
    while s.len() >= 4 {
        let n = u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
        if n > max {
            return (out, true, s.len());
        }
        if s.len() < 4 + n {
            break;
        }
        out.push(s[4..4 + n].to_vec());
        s = &s[4 + n..];
    }
    (out, false, s.len())
}

fuzz_target!(|data: &[u8]| {
    let [a, b, c, rest @ ..] = data else {
        return;
    };
    let max = if a & 0x80 != 0 {
        u32::MAX as usize
    } else {
        usize::from(a & 0x7f) * 4
    };
    let chunk_max = usize::from(*c) + 1;
    // Arbitrary bytes as a stream.
    let sizes = common::chunks(rest.len(), *b, chunk_max);
    let want = model(max, rest);
    let (got, failed, held) = decode(max, rest, &sizes);
    assert_eq!(got, want.0);
    assert_eq!(failed, want.1);
    if failed {
        // Refused at the header: what stays is at most what had arrived.
        assert!(held <= want.2);
    } else {
        assert_eq!(held, want.2);
    }
    // Well-formed messages (each byte of `rest` up to a 0 ends one) survive
    // encoding and any chunking.
    let msgs: Vec<&[u8]> = rest.split(|&x| x == 0).collect();
    let mut wire = Vec::new();
    for m in &msgs {
        encode(Framing::Length, m, &mut wire).unwrap();
    }
    let sizes = common::chunks(wire.len(), b.wrapping_add(1), chunk_max);
    let (got, failed, held) = decode(u32::MAX as usize, &wire, &sizes);
    assert!(!failed);
    assert_eq!(held, 0);
    assert_eq!(got, msgs.iter().map(|m| m.to_vec()).collect::<Vec<_>>());
});
