//! `"host:port"` / `"[v6]:port"` addresses, host strings, family names:
//! anything accepted formats back to itself; anything refused is a
//! ValueError naming the argument.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use socketkit::addr::{check_host, parse_host_port_as, Family, PortUse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for usage in [PortUse::Bind, PortUse::Remote] {
        match parse_host_port_as("address", text, usage) {
            Ok(hp) => {
                assert!(usage == PortUse::Bind || hp.port >= 1);
                assert!(!hp.host.is_empty());
                assert!(!hp
                    .host
                    .chars()
                    .any(|c| c.is_whitespace() || c == '/' || c == '\0'));
                let again = if hp.host.contains(':') {
                    format!("[{}]:{}", hp.host, hp.port)
                } else {
                    format!("{}:{}", hp.host, hp.port)
                };
                let back = parse_host_port_as("address", &again, usage)
                    .unwrap_or_else(|e| panic!("{again:?} from {text:?} refused: {e}"));
                assert_eq!(back, hp);
            }
            Err(e) => common::names_arg(&e, "address"),
        }
        match usage.parse("port", text) {
            Ok(p) => assert!(usage == PortUse::Bind || p >= 1),
            Err(e) => common::names_arg(&e, "port"),
        }
    }
    match check_host("host", text) {
        Ok(h) => {
            assert!(!h.is_empty());
            assert_eq!(check_host("host", &h).ok().as_deref(), Some(h.as_str()));
        }
        Err(e) => common::names_arg(&e, "host"),
    }
    if let Err(e) = Family::parse("family", text) {
        common::names_arg(&e, "family");
    }
});
