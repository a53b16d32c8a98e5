//! Connecting by name under one deadline, in async form: the same rules as
//! `tcp/connect.rs` (RFC 8305 order from `addr::happy_eyeballs_order`, the
//! next address 250 ms later or as soon as one fails, options applied
//! before connect, the second `connect()` that answers at once on
//! loopback), with the waits as tokio futures. Dropping the future (a
//! cancelled awaitable) drops every socket in flight.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use socket2::{SockAddr, Socket, Type};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant, Sleep};

use crate::addr::{happy_eyeballs_order, Family, HostPort};
use crate::error::{Attempt, Error, Phase, Result};
use crate::options::SocketOptions;
use crate::resolve::resolve;
use crate::tcp::connect::{new_socket, ATTEMPT_DELAY};
use crate::wait::{Deadline, Interrupt};

/// Set when the awaiting future is dropped, so a lookup on the blocking
/// pool stops waiting within one slice.
struct Flag(Arc<AtomicBool>);

impl Interrupt for Flag {
    fn check(&self) -> Result<()> {
        if self.0.load(Ordering::Relaxed) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The addresses of `target`: an IP literal at once, a name on the
/// blocking pool (glibc's lookup cannot be awaited) under `deadline`.
pub async fn resolve_async(target: &HostPort, deadline: Deadline) -> Result<Vec<SocketAddr>> {
    if let Some(ip) = target.ip() {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    let flag = Arc::new(AtomicBool::new(false));
    let _guard = SetOnDrop(flag.clone());
    let (host, port) = (target.host.clone(), target.port);
    let intr = Flag(flag);
    tokio::task::spawn_blocking(move || resolve(&host, port, deadline, &intr))
        .await
        .unwrap_or_else(|_| {
            Err(Error::Resolve {
                host: target.host.clone(),
                code: libc::EAI_SYSTEM,
                message: "resolver thread failed".into(),
            })
        })
}

/// Connect to `target` within `timeout` (resolution included); the
/// connected tokio stream and the address that answered.
pub async fn connect(
    target: &HostPort,
    opts: &SocketOptions,
    source: Option<SocketAddr>,
    timeout: Option<Duration>,
) -> Result<(TcpStream, SocketAddr)> {
    connect_family(target, opts, source, Family::Any, Deadline::after(timeout)).await
}

/// [`connect`] keeping only `family`'s addresses (as `tcp::connect_until`:
/// a name without one fails as a lookup does), under `deadline`.
pub async fn connect_family(
    target: &HostPort,
    opts: &SocketOptions,
    source: Option<SocketAddr>,
    family: Family,
    deadline: Deadline,
) -> Result<(TcpStream, SocketAddr)> {
    family.with_source(source.as_ref())?;
    let addrs = resolve_async(target, deadline).await?;
    let mut addrs = family
        .filter(&target.host, &addrs, |a| a.ip())
        .map_err(|message| Error::Resolve {
            host: target.host.clone(),
            code: libc::EAI_NONAME,
            message,
        })?;
    if let Some(src) = source {
        addrs.retain(|a| a.is_ipv4() == src.is_ipv4());
        if addrs.is_empty() {
            return Err(Error::invalid(
                "source_address",
                format!("{src} is of another address family than every address of {target}"),
            ));
        }
    }
    race(
        target,
        &happy_eyeballs_order(&addrs),
        opts,
        source,
        deadline,
    )
    .await
}

type Waiting = Pin<Box<dyn std::future::Future<Output = io::Result<TcpStream>> + Send>>;

/// The first `connect()`s, done at once: `Ok(Some)` connected already,
/// `Ok(None)` in flight (returned as a future), `Err` this address failed.
enum Started {
    Done(TcpStream),
    InFlight(Waiting),
    Failed(io::Error),
}

fn start(addr: SocketAddr, opts: &SocketOptions, source: Option<&SocketAddr>) -> Result<Started> {
    let sock = match new_socket(&addr, Type::STREAM, opts, source) {
        Ok(s) => s,
        Err(
            e @ (Error::Unsupported { .. }
            | Error::InvalidArgument { .. }
            | Error::Io {
                phase: Phase::Option,
                ..
            }),
        ) => return Err(e),
        Err(Error::Io { source, .. }) => return Ok(Started::Failed(source)),
        Err(e) => return Err(e),
    };
    let sa = SockAddr::from(addr);
    let outcome = match sock.connect(&sa) {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => sock.connect(&sa),
        other => other,
    };
    match outcome {
        Ok(()) => Ok(Started::Done(into_tokio(sock).map_err(connect_err(addr))?)),
        Err(e) if e.raw_os_error() == Some(libc::EISCONN) => {
            Ok(Started::Done(into_tokio(sock).map_err(connect_err(addr))?))
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EALREADY)) => {
            Ok(Started::InFlight(Box::pin(finish(sock))))
        }
        Err(e) => Ok(Started::Failed(e)),
    }
}

fn connect_err(addr: SocketAddr) -> impl Fn(io::Error) -> Error {
    move |e| Error::io(Phase::Connect, Some(&addr), e)
}

fn into_tokio(sock: Socket) -> io::Result<TcpStream> {
    TcpStream::from_std(std::net::TcpStream::from(sock))
}

/// Wait for an in-flight handshake: writable means done or failed (as
/// in `tcp/connect.rs`, no peer address after that means refused).
async fn finish(sock: Socket) -> io::Result<TcpStream> {
    let ts = into_tokio(sock)?;
    ts.writable().await?;
    if let Some(e) = ts.take_error()? {
        return Err(e);
    }
    match ts.peer_addr() {
        Ok(_) => Ok(ts),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            Err(io::Error::from_raw_os_error(libc::ECONNREFUSED))
        }
        Err(e) => Err(e),
    }
}

enum Event {
    Finished(usize, io::Result<TcpStream>),
    NextTurn,
    Expired,
}

async fn race(
    target: &HostPort,
    addrs: &[SocketAddr],
    opts: &SocketOptions,
    source: Option<SocketAddr>,
    deadline: Deadline,
) -> Result<(TcpStream, SocketAddr)> {
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut inflight: Vec<(SocketAddr, Waiting)> = Vec::new();
    let mut next = 0;
    let mut next_start = Instant::now();
    let far = Instant::now() + Duration::from_secs(86400 * 365);
    let mut expiry: Pin<Box<Sleep>> = Box::pin(sleep_until(
        deadline.instant().map_or(far, Instant::from_std),
    ));
    loop {
        while next < addrs.len() && (inflight.is_empty() || Instant::now() >= next_start) {
            let addr = addrs[next];
            next += 1;
            match start(addr, opts, source.as_ref())? {
                Started::Done(ts) => return Ok((ts, addr)),
                Started::InFlight(w) => {
                    inflight.push((addr, w));
                    next_start = Instant::now() + ATTEMPT_DELAY;
                }
                Started::Failed(error) => attempts.push(Attempt {
                    address: addr,
                    error,
                }),
            }
        }
        if inflight.is_empty() {
            return Err(Error::Connect {
                target: target.to_string(),
                attempts,
            });
        }
        let mut turn = (next < addrs.len()).then(|| Box::pin(sleep_until(next_start)));
        let ev = poll_fn(|cx| {
            for (i, (_, w)) in inflight.iter_mut().enumerate() {
                if let Poll::Ready(r) = w.as_mut().poll(cx) {
                    return Poll::Ready(Event::Finished(i, r));
                }
            }
            if expiry.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Expired);
            }
            if let Some(t) = turn.as_mut() {
                if t.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::NextTurn);
                }
            }
            Poll::Pending
        })
        .await;
        match ev {
            Event::Finished(i, r) => {
                let (addr, _) = inflight.remove(i);
                match r {
                    Ok(ts) => return Ok((ts, addr)),
                    Err(error) => attempts.push(Attempt {
                        address: addr,
                        error,
                    }),
                }
                // RFC 8305: a failure starts the next attempt at once.
                next_start = Instant::now();
            }
            Event::NextTurn => {}
            Event::Expired => {
                for (addr, _) in inflight.drain(..) {
                    attempts.push(Attempt {
                        address: addr,
                        error: io::Error::from(io::ErrorKind::TimedOut),
                    });
                }
                return Err(Error::Connect {
                    target: target.to_string(),
                    attempts,
                });
            }
        }
    }
}
