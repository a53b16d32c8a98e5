//! Distinguished names as RFC 4514 strings, printed exactly as
//! `openssl x509 -nameopt RFC2253` prints them, so a `CertInfo` can be
//! compared with the tool ops people already use.
//!
//! OpenSSL's `XN_FLAG_RFC2253` is: last RDN first, `,` between RDNs and `+`
//! inside one, short names (`CN`, `emailAddress`), values converted to
//! UTF-8 and then escaped byte by byte: `,+"\<>;` with a backslash, `#` at
//! the start and a space at either end with a backslash, control bytes and
//! every byte above 0x7f as `\XX`; attributes without a short name and
//! values that are not strings as `OID=#` + the hex of their DER
//! (crypto/x509/v3_utl.c, crypto/asn1/a_strex.c).

use x509_parser::der_parser::asn1_rs::{Any, Class};
use x509_parser::x509::X509Name;

/// OpenSSL's short names for the attribute types it knows (obj_dat.h).
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.13", "description"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.16", "postalAddress"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.18", "postOfficeBox"),
    ("2.5.4.41", "name"),
    ("2.5.4.42", "GN"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.45", "x500UniqueIdentifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.65", "pseudonym"),
    ("2.5.4.72", "role"),
    ("2.5.4.97", "organizationIdentifier"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("1.2.840.113549.1.9.2", "unstructuredName"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
];

fn short_name(oid: &str) -> Option<&'static str> {
    SHORT_NAMES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, name)| *name)
}

/// `name` as `openssl x509 -nameopt RFC2253` prints it.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    let mut first = true;
    for rdn in rdns.iter().rev() {
        let attrs: Vec<_> = rdn.iter().collect();
        for (i, attr) in attrs.iter().rev().enumerate() {
            if !first {
                out.push(if i == 0 { ',' } else { '+' });
            }
            first = false;
            let oid = attr.attr_type().to_id_string();
            match short_name(&oid) {
                Some(sn) => {
                    out.push_str(sn);
                    out.push('=');
                    value(&mut out, attr.attr_value());
                }
                None => {
                    out.push_str(&oid);
                    out.push('=');
                    dump_der(&mut out, attr.attr_value());
                }
            }
        }
    }
    out
}

/// A string value converted to UTF-8 and escaped; anything else dumped.
fn value(out: &mut String, v: &Any<'_>) {
    if v.class() != Class::Universal {
        return dump_der(out, v);
    }
    let utf8: Vec<u8> = match v.tag().0 {
        // UTF8String: already UTF-8, escaped byte by byte.
        12 => v.data.to_vec(),
        // Numeric, Printable, T61, IA5, Visible: one byte per character,
        // read as Latin-1 (as OpenSSL does).
        18 | 19 | 20 | 22 | 26 => v.data.iter().map(|&b| b as char).collect::<String>().into(),
        // BMPString: UTF-16BE.
        30 if v.data.len() % 2 == 0 => v
            .data
            .chunks(2)
            .map(|c| char_or_replacement(u32::from(u16::from_be_bytes([c[0], c[1]]))))
            .collect::<String>()
            .into(),
        // UniversalString: UTF-32BE.
        28 if v.data.len() % 4 == 0 => v
            .data
            .chunks(4)
            .map(|c| char_or_replacement(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect::<String>()
            .into(),
        _ => return dump_der(out, v),
    };
    escape(out, &utf8);
}

fn char_or_replacement(c: u32) -> char {
    char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// RFC 2253 escaping of a UTF-8 value, byte by byte as OpenSSL's do_buf().
fn escape(out: &mut String, bytes: &[u8]) {
    let last = bytes.len().saturating_sub(1);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(b as char);
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0..=0x1f | 0x7f..=0xff => out.push_str(&format!("\\{b:02X}")),
            _ => out.push(b as char),
        }
    }
}

/// `#` and the upper-case hex of the value's whole DER encoding.
fn dump_der(out: &mut String, v: &Any<'_>) {
    out.push('#');
    for b in der_encoding(v) {
        out.push_str(&format!("{b:02X}"));
    }
}

/// Re-encode the identifier and length octets in front of the content.
fn der_encoding(v: &Any<'_>) -> Vec<u8> {
    let mut der = Vec::with_capacity(v.data.len() + 6);
    let class_bits = (v.class() as u8) << 6;
    let constructed = if v.header.is_constructed() { 0x20 } else { 0 };
    let tag = v.tag().0;
    if tag < 31 {
        der.push(class_bits | constructed | tag as u8);
    } else {
        der.push(class_bits | constructed | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().enumerate().rev() {
            der.push(if i == 0 { *g } else { g | 0x80 });
        }
    }
    let len = v.data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        der.push(0x80 | (bytes.len() - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(v.data);
    der
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8]) -> String {
        let mut out = String::new();
        escape(&mut out, s);
        out
    }

    #[test]
    fn escapes_like_openssl() {
        assert_eq!(esc(b"Acme, Inc."), "Acme\\, Inc.");
        assert_eq!(esc(b"a+b;c<d>e\"f\\g"), "a\\+b\\;c\\<d\\>e\\\"f\\\\g");
        assert_eq!(esc(b"#x#"), "\\#x#");
        assert_eq!(esc(b" x y "), "\\ x y\\ ");
        assert_eq!(esc("é".as_bytes()), "\\C3\\A9");
        assert_eq!(esc(b"a\x01b"), "a\\01b");
        assert_eq!(esc(b"a=b"), "a=b");
    }

    #[test]
    fn der_reencodes_long_lengths() {
        let data = vec![b'x'; 200];
        let any = Any::from_tag_and_data(x509_parser::der_parser::asn1_rs::Tag(16), &data);
        let der = der_encoding(&any);
        assert_eq!(&der[..3], &[0x30, 0x81, 200]);
        assert_eq!(der.len(), 203);
    }
}
