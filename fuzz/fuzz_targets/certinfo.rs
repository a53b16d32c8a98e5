//! Certificate facts from DER a server sent (subject and issuer as RFC 4514
//! text, SANs, serial, key type and size): any bytes parse or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketkit::tls::{fingerprint, CertInfo};

fuzz_target!(|data: &[u8]| {
    let fp = fingerprint(data);
    assert_eq!(fp.len(), 32 * 3 - 1);
    if let Ok(info) = CertInfo::from_der(data) {
        assert_eq!(info.sha256, fp);
        let _ = info.days_left(0.0);
        let _ = info.days_left(f64::MAX);
    }
});
