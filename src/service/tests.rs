//! The step engine and the STARTTLS presets against in-process peers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::*;
use crate::tcp::TcpConnection;
use crate::tls::testpki::pki;
use crate::tls::{ClientTls, ServerTls, TlsConfig, TlsSession};
use crate::wait::{Deadline, NoInterrupt};

fn soon() -> Deadline {
    Deadline::after(Some(Duration::from_secs(10)))
}

/// A peer thread running `body` on the one connection it accepts, and the
/// client's connection to it.
fn peer<T: Send + 'static>(
    body: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (TcpConnection, JoinHandle<T>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || body(l.accept().unwrap().0));
    let s = TcpStream::connect(addr).unwrap();
    let conn = TcpConnection::new(Socket::from(s), Some(Duration::from_secs(10))).unwrap();
    (conn, h)
}

fn run(conn: &TcpConnection, steps: &[Step]) -> std::result::Result<Finished, StepFailure> {
    run_steps(conn, steps, None, soon(), &NoInterrupt).unwrap()
}

fn read_line(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap() == 1 {
        out.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    out
}

#[test]
fn redis_style_ping_pong() {
    let (conn, h) = peer(|mut s| {
        let l = read_line(&mut s);
        s.write_all(b"+PONG\r\n").unwrap();
        l
    });
    let steps = service_steps("redis", "127.0.0.1").unwrap();
    assert!(run(&conn, &steps).is_ok());
    assert_eq!(h.join().unwrap(), b"PING\r\n");
}

#[test]
fn binary_send_has_nothing_appended() {
    let (conn, h) = peer(|mut s| {
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all
    });
    let data = vec![0u8, 1, 0xff, b'\r'];
    assert!(run(&conn, &[Step::Send(data.clone())]).is_ok());
    conn.close();
    assert_eq!(h.join().unwrap(), data);
}

#[test]
fn a_failing_expect_reports_the_step_and_the_bytes() {
    let (conn, h) = peer(|mut s| {
        s.write_all(b"hello\r\n").unwrap();
        let mut b = [0u8; 1];
        let _ = s.read(&mut b); // stay open until the client closes
    });
    let steps = [
        Step::expect(b"hel"),
        Step::Expect {
            pattern: Pattern::Exact(b"bye".to_vec()),
            timeout: Some(Duration::from_millis(150)),
        },
    ];
    let t = Instant::now();
    let f = run(&conn, &steps).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(f.step, 1);
    assert_eq!(f.received, b"lo\r\n");
    assert!(f.reason.contains("timed out"), "{}", f.reason);
    conn.close();
    h.join().unwrap();
}

#[test]
fn a_close_fails_the_expect_at_once() {
    let (conn, h) = peer(|mut s| s.write_all(b"abc").unwrap());
    let steps = [Step::Expect {
        pattern: Pattern::Exact(b"xyz".to_vec()),
        timeout: Some(Duration::from_secs(5)),
    }];
    let t = Instant::now();
    let f = run(&conn, &steps).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!((f.step, f.received.as_slice()), (0, &b"abc"[..]));
    assert!(f.reason.contains("closed"), "{}", f.reason);
    h.join().unwrap();
}

#[test]
fn regex_captures_of_the_last_match_come_back() {
    let (conn, h) = peer(|mut s| {
        s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n").unwrap();
    });
    let done = run(&conn, &service_steps("ssh", "x").unwrap()).unwrap();
    let caps = done.captures.unwrap();
    assert_eq!(caps[0].as_deref(), Some(&b"2.0"[..]));
    assert_eq!(caps[1].as_deref(), Some(&b"OpenSSH_9.2p1"[..]));
    h.join().unwrap();
}

#[test]
fn the_expect_window_is_bounded() {
    let (conn, h) = peer(|mut s| {
        let _ = s.write_all(&vec![b'x'; steps::MAX_EXPECT + 10]);
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
    });
    let f = run(&conn, &[Step::expect(b"y")]).unwrap_err();
    assert_eq!(f.received.len(), steps::MAX_EXPECT);
    assert!(f.reason.contains("65536"), "{}", f.reason);
    conn.close();
    h.join().unwrap();
}

#[test]
fn bad_regexes_and_names_are_argument_errors() {
    assert!(Pattern::regex("pattern", b"(?<=a)b").is_err());
    assert!(Pattern::regex("pattern", b"(").is_err());
    assert!(service_steps("gopher", "x").is_err());
    for name in SERVICE_NAMES {
        assert!(service_steps(name, "::1").is_ok(), "{name}");
    }
    assert_eq!(
        StartTlsProto::parse("starttls", "SMTP").unwrap(),
        StartTlsProto::Smtp
    );
    assert!(StartTlsProto::parse("starttls", "xmpp").is_err());
}

/// A STARTTLS server: `script` speaks the plaintext part, then (when it
/// returns true) the TLS handshake runs and the server says "hi" over TLS.
fn starttls_peer(
    script: impl FnOnce(&mut TcpStream) -> bool + Send + 'static,
) -> Option<(TcpConnection, JoinHandle<()>)> {
    let p = pki()?;
    let cfg = TlsConfig {
        cert_file: Some(p.path("rsa.pem")),
        key_file: Some(p.path("rsa.key")),
        ..TlsConfig::default()
    };
    let tls = Arc::new(ServerTls::new(&cfg).unwrap());
    Some(peer(move |mut s| {
        if !script(&mut s) {
            return;
        }
        let sock = Socket::from(s);
        sock.set_nonblocking(true).unwrap();
        let sess = TlsSession::server(&tls, None, Vec::new()).unwrap();
        sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
        sess.write_all(&sock, b"hi", soon(), &NoInterrupt).unwrap();
        let mut b = [0u8; 8];
        let _ = sess.read(&sock, &mut b, soon(), &NoInterrupt);
    }))
}

fn client_tls() -> ClientTls {
    ClientTls::new(&TlsConfig {
        ca_file: Some(pki().unwrap().path("ca.pem")),
        ..TlsConfig::default()
    })
    .unwrap()
}

fn upgrade(
    conn: &TcpConnection,
    proto: StartTlsProto,
) -> std::result::Result<Finished, StepFailure> {
    let tls = client_tls();
    let setup = TlsSetup {
        tls: &tls,
        host: "localhost",
    };
    let steps = [
        Step::StartTls {
            starttls: Some(proto),
        },
        Step::expect(b"hi"),
    ];
    run_steps(conn, &steps, Some(&setup), soon(), &NoInterrupt).unwrap()
}

#[test]
fn starttls_presets_upgrade() {
    type Script = fn(&mut TcpStream) -> bool;
    let scripts: [(StartTlsProto, Script); 5] = [
        (StartTlsProto::Smtp, |s| {
            s.write_all(b"220-first\r\n220 mx ESMTP\r\n").unwrap();
            assert!(read_line(s).starts_with(b"EHLO "));
            s.write_all(b"250-mx\r\n250 STARTTLS\r\n").unwrap();
            assert_eq!(read_line(s), b"STARTTLS\r\n");
            s.write_all(b"220 go ahead\r\n").unwrap();
            true
        }),
        (StartTlsProto::Imap, |s| {
            s.write_all(b"* OK ready\r\n").unwrap();
            assert_eq!(read_line(s), b"a1 STARTTLS\r\n");
            s.write_all(b"a1 OK Begin TLS\r\n").unwrap();
            true
        }),
        (StartTlsProto::Pop3, |s| {
            s.write_all(b"+OK ready\r\n").unwrap();
            assert_eq!(read_line(s), b"STLS\r\n");
            s.write_all(b"+OK Begin TLS\r\n").unwrap();
            true
        }),
        (StartTlsProto::Ftp, |s| {
            s.write_all(b"220 ftp\r\n").unwrap();
            assert_eq!(read_line(s), b"AUTH TLS\r\n");
            s.write_all(b"234 go\r\n").unwrap();
            true
        }),
        (StartTlsProto::Postgres, |s| {
            let mut req = [0u8; 8];
            s.read_exact(&mut req).unwrap();
            assert_eq!(req, starttls::PG_SSL_REQUEST);
            s.write_all(b"S").unwrap();
            true
        }),
    ];
    for (proto, script) in scripts {
        let Some((conn, h)) = starttls_peer(script) else {
            return; // no openssl for the test PKI
        };
        let done = upgrade(&conn, proto).unwrap_or_else(|f| panic!("{proto:?}: {f:?}"));
        let info = done.tls.unwrap();
        assert!(info.verified, "{proto:?}");
        assert!(done.tls_time.is_some());
        conn.close();
        h.join().unwrap();
    }
}

#[test]
fn starttls_refusals_say_what_the_server_answered() {
    let Some((conn, h)) = starttls_peer(|s| {
        s.write_all(b"220 mx\r\n").unwrap();
        read_line(s);
        s.write_all(b"250 mx\r\n").unwrap();
        read_line(s);
        s.write_all(b"454 TLS not available\r\n").unwrap();
        false
    }) else {
        return;
    };
    let f = upgrade(&conn, StartTlsProto::Smtp).unwrap_err();
    assert_eq!(f.step, 0);
    assert!(f.reason.contains("454 TLS not available"), "{}", f.reason);
    h.join().unwrap();
    let Some((conn, h)) = starttls_peer(|s| {
        let mut req = [0u8; 8];
        s.read_exact(&mut req).unwrap();
        s.write_all(b"N").unwrap();
        false
    }) else {
        return;
    };
    let f = upgrade(&conn, StartTlsProto::Postgres).unwrap_err();
    assert!(f.reason.contains("does not offer SSL"), "{}", f.reason);
    h.join().unwrap();
}

#[test]
fn plaintext_left_before_starttls_is_refused() {
    let Some((conn, h)) = starttls_peer(|s| {
        s.write_all(b"ready\r\nextra").unwrap();
        false
    }) else {
        return;
    };
    let tls = client_tls();
    let setup = TlsSetup {
        tls: &tls,
        host: "localhost",
    };
    let steps = [
        Step::expect(b"ready\r\n"),
        Step::StartTls { starttls: None },
    ];
    // One write of both: on loopback they arrive together.
    let f = run_steps(&conn, &steps, Some(&setup), soon(), &NoInterrupt)
        .unwrap()
        .unwrap_err();
    assert_eq!(f.step, 1);
    assert!(f.reason.contains("plaintext"), "{}", f.reason);
    h.join().unwrap();
}

mod runner_tests {
    use super::*;
    use crate::addr::HostPort;
    use crate::probe::{plan_targets, AddrControl, Cancel, State};
    use crate::service::{ServiceRun, ServiceSpec, Steps};

    fn spec(steps: Vec<Step>, timeout: Duration) -> ServiceSpec {
        ServiceSpec {
            steps: Steps::Given(steps),
            tls: None,
            tls_first: false,
            starttls: None,
            source: None,
            timeout: Some(timeout),
            banner: None,
        }
    }

    fn greeter() -> (u16, JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = thread::spawn(move || {
            for _ in 0..3 {
                let (mut s, _) = l.accept().unwrap();
                s.write_all(b"+OK hello\r\n").unwrap();
            }
        });
        (port, h)
    }

    #[test]
    fn the_pool_checks_every_target_in_order() {
        let (port, h) = greeter();
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let targets: Vec<HostPort> = [port, closed, port, port]
            .iter()
            .map(|&p| HostPort::new("127.0.0.1", p))
            .collect();
        let t = Some(Duration::from_secs(5));
        let plan = plan_targets(&targets, t, &AddrControl::default(), &NoInterrupt).unwrap();
        let steps = vec![Step::expect(b"+OK")];
        let mut run = ServiceRun::start(plan, spec(steps, Duration::from_secs(5)), 2).unwrap();
        let r = run.collect(&NoInterrupt, &mut |_, _| Ok(())).unwrap();
        let states: Vec<State> = r.iter().map(|x| x.outcome.state).collect();
        assert_eq!(
            states,
            [State::Open, State::Closed, State::Open, State::Open]
        );
        let tm = r[0].timings;
        assert!(tm.total.unwrap() >= tm.connect.unwrap());
        assert!(tm.dialogue.is_some() && tm.tls.is_none());
        h.join().unwrap();
    }

    #[test]
    fn a_cancelled_run_stops_within_a_slice() {
        // A peer that accepts and says nothing: the Expect waits.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let targets = vec![HostPort::new("127.0.0.1", port); 3];
        let plan = plan_targets(&targets, None, &AddrControl::default(), &NoInterrupt).unwrap();
        let mut run = ServiceRun::start(
            plan,
            spec(vec![Step::expect(b"x")], Duration::from_secs(60)),
            3,
        )
        .unwrap();
        let stop = Arc::new(Cancel::new());
        let s2 = stop.clone();
        let t = Instant::now();
        let trip = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            s2.set();
        });
        let r = run.collect(&*stop, &mut |_, _| Ok(()));
        assert!(matches!(r, Err(crate::error::Error::Interrupted)));
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        trip.join().unwrap();
        drop(l);
    }

    #[test]
    fn each_address_splits_a_name() {
        use crate::probe::{HostEntry, Plan};
        let plan = Plan {
            hosts: vec![HostEntry {
                label: "both".into(),
                addrs: Ok(vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()]),
            }],
            targets: vec![(0, 80), (0, 443)],
            resolve_times: vec![Some(Duration::from_millis(3))],
        };
        let p = plan.each_address();
        assert_eq!(p.targets, vec![(0, 80), (1, 80), (0, 443), (1, 443)]);
        assert_eq!(p.hosts[1].label, "both");
        assert_eq!(p.resolve_time(3), Some(Duration::from_millis(3)));
    }

    #[test]
    fn family_filters_addresses() {
        let t = Some(Duration::from_secs(1));
        let ctl = AddrControl {
            family: crate::addr::Family::V6,
            ..AddrControl::default()
        };
        let plan = plan_targets(&[HostPort::new("127.0.0.1", 1)], t, &ctl, &NoInterrupt).unwrap();
        assert!(plan.hosts[0].addrs.as_ref().unwrap_err().contains("IPv6"));
        let src = AddrControl {
            family: crate::addr::Family::V6,
            source: Some("127.0.0.1:0".parse().unwrap()),
            each_address: false,
        };
        assert!(plan_targets(&[HostPort::new("::1", 1)], t, &src, &NoInterrupt).is_err());
    }
}
