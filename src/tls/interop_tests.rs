//! Interop with OpenSSL itself: our client against `openssl s_server`,
//! our server against `openssl s_client`. The tools are started on port 0,
//! ready once they print their address, and killed by PID when done.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::Duration;

use socket2::Socket;

use crate::wait::NoInterrupt;

use super::config::TlsVersion;
use super::context::{ClientTls, ServerTls};
use super::session::TlsSession;
use super::session_tests::{client_cfg, need_openssl, server_cfg, soon};
use super::testpki::pki;

/// A child process killed (by its PID) and reaped when dropped, with its
/// stdout lines arriving on a channel.
struct Tool {
    child: Child,
    lines: Receiver<String>,
}

impl Tool {
    fn spawn(args: &[&str], stdin: bool) -> Tool {
        let mut child = Command::new("openssl")
            .args(args)
            .current_dir(pki().unwrap().path(""))
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in out.lines().map_while(std::result::Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Tool { child, lines }
    }

    /// The next line that starts with `prefix` (within 20 s).
    fn line_starting(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("openssl printed no line starting {prefix:?}"));
            if line.starts_with(prefix) {
                return line;
            }
        }
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nonblocking(s: TcpStream) -> Socket {
    let s = Socket::from(s);
    s.set_nonblocking(true).unwrap();
    s
}

/// `openssl s_server -rev` (answers each line reversed) on a free port.
fn s_server(extra: &[&str]) -> (Tool, SocketAddr) {
    let mut args = vec![
        "s_server",
        "-accept",
        "127.0.0.1:0",
        "-cert",
        "rsa.pem",
        "-key",
        "rsa.key",
        "-rev",
    ];
    args.extend_from_slice(extra);
    let tool = Tool::spawn(&args, false);
    let line = tool.line_starting("ACCEPT");
    let addr = line
        .trim_start_matches("ACCEPT")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no address in {line:?}"));
    (tool, addr)
}

fn talk_to_s_server(cfg: &super::config::TlsConfig, addr: SocketAddr) -> super::info::TlsInfo {
    let tls = ClientTls::new(cfg).unwrap();
    let sock = nonblocking(TcpStream::connect(addr).unwrap());
    let sess = TlsSession::client(&tls, "localhost", Some(addr), Vec::new()).unwrap();
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    sess.write_all(&sock, b"hello openssl\n", soon(), &NoInterrupt)
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\n") {
        let n = sess.read(&sock, &mut buf, soon(), &NoInterrupt).unwrap();
        assert!(n > 0, "s_server closed after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"lssnepo olleh\n");
    let info = sess.info().unwrap();
    sess.send_close_notify(&sock, soon(), &NoInterrupt).unwrap();
    info
}

#[test]
fn client_against_openssl_s_server() {
    need_openssl!();
    let (_server, addr) = s_server(&[]);
    let info = talk_to_s_server(&client_cfg(), addr);
    assert_eq!(info.version, "TLSv1.3");
    assert!(info.verified, "{:?}", info.verify_error);
    assert_eq!(
        info.certificates[0].sha256,
        super::certinfo::fingerprint(
            &super::pemfile::load_certs("cert_file", &pki().unwrap().path("rsa.pem")).unwrap()[0]
        )
    );
}

#[test]
fn client_with_certificate_against_s_server_tls12() {
    need_openssl!();
    // -Verify 1: a client certificate is required; TLS 1.2 only.
    let (_server, addr) = s_server(&["-Verify", "1", "-CAfile", "ca.pem", "-tls1_2"]);
    let p = pki().unwrap();
    let mut cfg = client_cfg();
    cfg.cert_file = Some(p.path("client.pem"));
    cfg.key_file = Some(p.path("client.key"));
    cfg.min_version = Some(TlsVersion::Tls12);
    let info = talk_to_s_server(&cfg, addr);
    assert_eq!(info.version, "TLSv1.2");
    assert!(info.verified);
}

#[test]
fn server_against_openssl_s_client() {
    need_openssl!();
    let tls = ServerTls::new(&server_cfg("rsa")).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let server = thread::spawn(move || {
        let (s, peer) = l.accept().unwrap();
        let sock = nonblocking(s);
        let sess = TlsSession::server(&tls, Some(peer), Vec::new()).unwrap();
        sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
        // Echo one line, then close the TLS session: s_client exits on it.
        let mut line = Vec::new();
        let mut buf = [0u8; 256];
        while !line.ends_with(b"\n") {
            let n = sess.read(&sock, &mut buf, soon(), &NoInterrupt).unwrap();
            assert!(n > 0);
            line.extend_from_slice(&buf[..n]);
        }
        sess.write_all(&sock, &line, soon(), &NoInterrupt).unwrap();
        sess.send_close_notify(&sock, soon(), &NoInterrupt).unwrap();
        sess.info().unwrap()
    });
    let connect = format!("127.0.0.1:{port}");
    let mut client = Tool::spawn(
        &[
            "s_client",
            "-connect",
            &connect,
            "-CAfile",
            "ca.pem",
            "-servername",
            "localhost",
            "-verify_return_error",
            "-quiet",
        ],
        true,
    );
    let mut stdin = client.child.stdin.take().unwrap();
    stdin.write_all(b"from s_client\n").unwrap();
    assert_eq!(client.line_starting("from"), "from s_client");
    let info = server.join().unwrap();
    assert_eq!(info.version, "TLSv1.3");
    let status = client.child.wait().unwrap();
    assert!(status.success(), "s_client: {status}");
}
