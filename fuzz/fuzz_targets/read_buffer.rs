//! The client-side read buffer behind `recv_until`/`recv_line`/`lines()`:
//! a delimiter search resumed after each read (from `resume_from`) finds
//! the same split points as one search over everything, whatever the read
//! sizes and however the delimiter straddles them.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use socketkit::framing::{find_delimiter, resume_from, ReadBuffer};

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let dlen = usize::from(a % 4) + 1;
    if rest.len() < dlen {
        return;
    }
    let (delim, stream) = rest.split_at(dlen);
    let sizes = common::chunks(stream.len(), *b, usize::from(a >> 2) + 1);
    // The model: split after every non-overlapping delimiter.
    let mut want = Vec::new();
    let mut at = 0;
    while let Some(end) = find_delimiter(&stream[at..], delim, 0) {
        want.push(stream[at..at + end].to_vec());
        at += end;
    }
    let mut rb = ReadBuffer::new();
    let mut got = Vec::new();
    let mut from = 0;
    let mut fed = 0;
    for n in sizes {
        let spare = rb.spare(n).expect("small reads never fail to reserve");
        assert!(spare.len() >= n);
        spare[..n].copy_from_slice(&stream[fed..fed + n]);
        rb.commit(n);
        fed += n;
        while let Some(end) = rb.find(delim, from) {
            assert!(end <= rb.len());
            got.push(rb.take(end));
            from = 0;
        }
        from = resume_from(rb.len(), delim.len());
    }
    assert_eq!(got, want);
    assert_eq!(rb.take_all(), &stream[at..]);
    assert!(rb.is_empty());
});
