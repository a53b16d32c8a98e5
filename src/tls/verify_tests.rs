//! Verification outcomes against real handshakes: with `verify=True` a bad
//! certificate fails the handshake with its reason; with `verify=False`
//! the handshake completes and reports the reason and the certificates.

use crate::error::{Error, TlsFailure, VerifyFailure};
use crate::wait::NoInterrupt;

use super::certinfo::fingerprint;
use super::pemfile::load_certs;
use super::session_tests::{client, client_cfg, echo, need_openssl, serve, server_cfg, soon};
use super::testpki::pki;

/// (server certificate, host the client asks for, the expected failure).
fn cases() -> Vec<(&'static str, &'static str, Option<VerifyFailure>)> {
    vec![
        ("rsa", "localhost", None),
        ("rsa", "127.0.0.1", None),
        ("expired", "localhost", Some(VerifyFailure::Expired)),
        ("notyet", "localhost", Some(VerifyFailure::NotYetValid)),
        (
            "wrongname",
            "localhost",
            Some(VerifyFailure::HostnameMismatch),
        ),
        (
            "rsa",
            "other.example",
            Some(VerifyFailure::HostnameMismatch),
        ),
        ("selfsigned", "localhost", Some(VerifyFailure::SelfSigned)),
        ("unknown", "localhost", Some(VerifyFailure::UnknownIssuer)),
    ]
}

#[test]
fn verify_on_fails_with_the_reason() {
    need_openssl!();
    for (cert, host, expected) in cases() {
        let (addr, server) = serve(server_cfg(cert), echo);
        let (sess, sock) = client(&client_cfg(), addr, host);
        let got = sess.handshake(&sock, soon(), &NoInterrupt);
        match &expected {
            None => {
                got.unwrap_or_else(|e| panic!("{cert} as {host}: {e}"));
                assert!(sess.info().unwrap().verified);
            }
            Some(reason) => {
                let e = got.expect_err(cert);
                assert_eq!(e.verify_failure(), Some(reason), "{cert} as {host}: {e}");
                assert!(
                    e.to_string()
                        .starts_with(&format!("certificate verify failed: {reason}")),
                    "{e}"
                );
                // What the server sent is still there to report.
                let der = load_certs("cert_file", &pki().unwrap().path(&format!("{cert}.pem")))
                    .unwrap()
                    .remove(0);
                let certs = sess.peer_certificates();
                assert_eq!(certs.len(), 1, "{cert}");
                assert_eq!(certs[0].sha256, fingerprint(&der));
                assert!(sess.info().is_none());
                // A later call reports the failure at once, without waiting.
                let mut buf = [0u8; 4];
                let again = sess
                    .read(&sock, &mut buf, soon(), &NoInterrupt)
                    .unwrap_err();
                assert_eq!(again.verify_failure(), Some(reason), "{again}");
                // The server hears why: the client's alert.
                let se = server.join().unwrap().unwrap_err();
                assert!(
                    matches!(
                        se,
                        Error::Tls {
                            failure: TlsFailure::Alert(_),
                            ..
                        }
                    ),
                    "{se}"
                );
                continue;
            }
        }
        drop(sock);
        let _ = server.join();
    }
}

#[test]
fn verify_off_completes_and_reports() {
    need_openssl!();
    let p = pki().unwrap();
    for (cert, host, expected) in cases() {
        let (addr, server) = serve(server_cfg(cert), echo);
        let mut cfg = client_cfg();
        cfg.verify = false;
        let (sess, sock) = client(&cfg, addr, host);
        sess.handshake(&sock, soon(), &NoInterrupt)
            .unwrap_or_else(|e| panic!("{cert} as {host}: {e}"));
        sess.write_all(&sock, b"still works", soon(), &NoInterrupt)
            .unwrap();
        let mut buf = [0u8; 11];
        let mut got = 0;
        while got < buf.len() {
            got += sess
                .read(&sock, &mut buf[got..], soon(), &NoInterrupt)
                .unwrap();
        }
        assert_eq!(&buf, b"still works");
        let info = sess.info().unwrap();
        assert_eq!(info.verified, expected.is_none(), "{cert} as {host}");
        assert_eq!(info.verify_error, expected, "{cert} as {host}");
        // The facts are there whatever the outcome.
        let der = load_certs("cert_file", &p.path(&format!("{cert}.pem")))
            .unwrap()
            .remove(0);
        assert_eq!(info.certificates.len(), 1);
        assert_eq!(info.certificates[0].sha256, fingerprint(&der));
        sess.send_close_notify(&sock, soon(), &NoInterrupt).unwrap();
        server.join().unwrap().unwrap();
    }
}

#[test]
fn server_hostname_overrides_the_host() {
    need_openssl!();
    let (addr, server) = serve(server_cfg("wrongname"), echo);
    let mut cfg = client_cfg();
    cfg.server_hostname = Some("wrong.example".into());
    let (sess, sock) = client(&cfg, addr, "127.0.0.1");
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    assert!(sess.info().unwrap().verified);
    drop(sock);
    let _ = server.join();
}

#[test]
fn without_ca_file_the_test_ca_is_unknown() {
    need_openssl!();
    let (addr, server) = serve(server_cfg("rsa"), echo);
    let cfg = super::config::TlsConfig {
        verify: false,
        ..Default::default()
    };
    let (sess, sock) = client(&cfg, addr, "localhost");
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    let info = sess.info().unwrap();
    assert_eq!(info.verify_error, Some(VerifyFailure::UnknownIssuer));
    drop(sock);
    let _ = server.join();
}

#[test]
fn self_signed_in_ca_file_is_trusted_as_itself() {
    need_openssl!();
    let p = pki().unwrap();
    let cfg = super::config::TlsConfig {
        ca_file: Some(p.path("selfsigned.pem")),
        ..Default::default()
    };
    let (addr, server) = serve(server_cfg("selfsigned"), echo);
    let (sess, sock) = client(&cfg, addr, "localhost");
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    assert!(sess.info().unwrap().verified);
    drop(sock);
    let _ = server.join();

    // Trusted, but not for this name: the name is still checked.
    let (addr, server) = serve(server_cfg("selfsigned"), echo);
    let (sess, sock) = client(&cfg, addr, "other.example");
    let e = sess.handshake(&sock, soon(), &NoInterrupt).unwrap_err();
    assert_eq!(e.verify_failure(), Some(&VerifyFailure::HostnameMismatch));
    drop(sock);
    let _ = server.join();
}
