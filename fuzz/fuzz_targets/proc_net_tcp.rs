//! `/proc/net/tcp{,6}` as `wait_for(state="drained")` reads it: lines that
//! do not parse are skipped, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketkit::probe::drain::{busy, describe, holding, parse_table, state_named};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let entries = parse_table(&text);
    assert!(entries.len() <= text.lines().count().saturating_sub(1));
    let port = entries.first().map_or(u16::from(sel), |e| e.port);
    let ip = entries.get(1).map(|e| e.local);
    let held = holding(&entries, ip, port, &["TIME_WAIT"]);
    assert_eq!(held.len(), busy(&entries, ip, port, &["TIME_WAIT"]));
    assert!(held.iter().all(|s| *s != "LISTEN" && *s != "TIME_WAIT"));
    let _ = describe(&held);
    if let Some(line) = text.lines().next() {
        let _ = state_named(line);
    }
});
