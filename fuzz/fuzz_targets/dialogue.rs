//! Service dialogues: an `expect` pattern (exact bytes or a user regex)
//! run against whatever a peer sends. A bad regex is a ValueError naming
//! `expect`; a peer that closes fails the step at once (no wait for the
//! timeout); a match consumes only up to its end.
#![no_main]

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use socketkit::service::steps::{run_steps, Pattern, Step};
use socketkit::wait::{Deadline, NoInterrupt};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (pat, reply) = common::split0(rest);
    let pattern = if sel & 1 == 1 {
        match Pattern::regex("expect", pat) {
            Ok(p) => p,
            Err(e) => return common::names_arg(&e, "expect"),
        }
    } else {
        Pattern::Exact(pat.to_vec())
    };
    let _ = pattern.describe();
    let exact = matches!(pattern, Pattern::Exact(_));
    let twice = sel & 2 == 2;
    let mut steps = vec![
        Step::Send(b"hello\r\n".to_vec()),
        Step::Expect {
            pattern: pattern.clone(),
            timeout: Some(Duration::from_secs(5)),
        },
    ];
    if twice {
        steps.push(Step::Expect {
            pattern,
            timeout: None,
        });
    }
    let (conn, _peer) = common::replied(reply);
    let started = Instant::now();
    let r = run_steps(
        &conn,
        &steps,
        None,
        Deadline::after(Some(Duration::from_secs(10))),
        &NoInterrupt,
    )
    .expect("only an interrupt fails the call");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited on a closed peer"
    );
    match r {
        Ok(done) => {
            assert!(done.rest.len() <= reply.len());
            assert!(reply.ends_with(&done.rest));
            if exact && !twice && !pat.is_empty() {
                let consumed = &reply[..reply.len() - done.rest.len()];
                assert!(consumed.ends_with(pat));
                assert_eq!(
                    consumed.windows(pat.len()).position(|w| w == pat),
                    Some(consumed.len() - pat.len()),
                    "not the first match"
                );
            }
        }
        Err(fail) => {
            assert!(fail.step >= 1 && fail.step < steps.len());
            assert!(!fail.reason.is_empty());
            if exact && !twice && !pat.is_empty() && reply.len() <= 60_000 {
                assert!(!reply.windows(pat.len()).any(|w| w == pat));
            }
        }
    }
});
