//! Port lists (`"22,80,8000-8100"`, `"-"`, service names): a list is its
//! ports in first-seen order without duplicates, and a list of two lists is
//! their union; bad input is a ValueError naming `ports`.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use socketkit::probe::target::parse_ports;

fn check(text: &str) -> Option<Vec<u16>> {
    match parse_ports("ports", text) {
        Ok(ports) => {
            assert!(!ports.is_empty());
            let mut seen = vec![false; 65536];
            for &p in &ports {
                assert!(p >= 1);
                assert!(!seen[p as usize], "{p} twice from {text:?}");
                seen[p as usize] = true;
            }
            Some(ports)
        }
        Err(e) => {
            common::names_arg(&e, "ports");
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (a, b) = common::split0(data);
    let (Ok(a), Ok(b)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else {
        return;
    };
    let pa = check(a);
    let pb = check(b);
    let both = check(&format!("{a},{b}"));
    if let (Some(pa), Some(pb)) = (pa, pb) {
        let mut seen = vec![false; 65536];
        let mut want = Vec::new();
        for p in pa.into_iter().chain(pb) {
            if !std::mem::replace(&mut seen[p as usize], true) {
                want.push(p);
            }
        }
        assert_eq!(both, Some(want));
    }
});
