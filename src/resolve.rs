//! Name resolution that a deadline and Ctrl-C can cut short.
//!
//! glibc's getaddrinfo cannot be cancelled and waits 5 s x 2 attempts on a
//! silent resolver (DESIGN.md section 8). Lookups therefore run on detached
//! helper threads; the caller waits on a channel in slices and walks away at
//! its deadline. A helper stuck in getaddrinfo finishes on its own when
//! glibc gives up, and takes no further name once the caller has left.
//! [`resolve`] is [`resolve_all`] of one name: one code path, one helper
//! thread per lookup in flight, never a second thread per name.

use std::ffi::{CStr, CString};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use crate::error::{Error, Phase, Result};
use crate::wait::{Deadline, Interrupt, SLICE};

/// Most lookups in flight at once during one [`resolve_all`] call.
pub const MAX_RESOLVERS: usize = 32;

/// Addresses of `host` (a name or IP literal) with `port`, in resolver order,
/// duplicates removed.
pub fn resolve(
    host: &str,
    port: u16,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match resolve_all(&[host.to_string()], port, deadline, intr)?.pop() {
        Some(r) => r,
        None => Err(thread_failed(host)),
    }
}

/// [`resolve`] for several names at once, one answer per name in input
/// order: at most [`MAX_RESOLVERS`] lookups in flight, all under one
/// `deadline` (a name still unanswered then is a timeout). Only `intr`
/// (Ctrl-C) or a failure to start any helper thread fails the call.
pub fn resolve_all(
    names: &[String],
    port: u16,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<Vec<Result<Vec<SocketAddr>>>> {
    Ok(resolve_all_timed(names, port, deadline, intr)?
        .into_iter()
        .map(|(r, _)| r)
        .collect())
}

/// [`resolve_all`], each answer with the time it took to arrive (zero for
/// an IP literal): a probe's `resolve_ms`.
pub fn resolve_all_timed(
    names: &[String],
    port: u16,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<Vec<(Result<Vec<SocketAddr>>, std::time::Duration)>> {
    let started = std::time::Instant::now();
    let mut took = vec![std::time::Duration::ZERO; names.len()];
    let mut out: Vec<Option<Result<Vec<SocketAddr>>>> = names
        .iter()
        .map(|n| {
            n.parse::<IpAddr>()
                .ok()
                .map(|ip| Ok(vec![SocketAddr::new(ip, port)]))
        })
        .collect();
    let todo: Vec<(usize, String)> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| out[*i].is_none())
        .map(|(i, n)| (i, n.clone()))
        .collect();
    let mut expired = false;
    if !todo.is_empty() {
        let mut left = todo.len();
        let helpers = Helpers::start(todo, port)?;
        while left > 0 {
            match helpers
                .answers
                .recv_timeout(deadline.slice().min(SLICE / 2))
            {
                Ok((i, r)) => {
                    out[i] = Some(r);
                    took[i] = started.elapsed();
                    left -= 1;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    intr.check()?;
                    if deadline.expired() {
                        expired = true;
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }
    Ok(out
        .into_iter()
        .zip(names)
        .zip(took)
        .map(|((r, name), t)| {
            let r = r.unwrap_or_else(|| {
                Err(if expired {
                    Error::timeout(Phase::Resolve, Some(name.clone()))
                } else {
                    thread_failed(name)
                })
            });
            (r, t)
        })
        .collect())
}

fn thread_failed(host: &str) -> Error {
    Error::Resolve {
        host: host.to_string(),
        code: libc::EAI_SYSTEM,
        message: "resolver thread failed".into(),
    }
}

/// Detached helper threads working through a list of lookups. Dropping
/// this (the caller is done or walked away) tells them to take no more.
struct Helpers {
    answers: mpsc::Receiver<(usize, Result<Vec<SocketAddr>>)>,
    stop: Arc<AtomicBool>,
}

impl Helpers {
    fn start(todo: Vec<(usize, String)>, port: u16) -> Result<Helpers> {
        let threads = todo.len().min(MAX_RESOLVERS);
        let todo = Arc::new(todo);
        let next = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, answers) = mpsc::channel();
        let mut started = 0;
        for _ in 0..threads {
            let (todo, next, stop, tx) = (todo.clone(), next.clone(), stop.clone(), tx.clone());
            let spawned = thread::Builder::new()
                .name("socketkit-resolve".into())
                .spawn(move || loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= todo.len() || stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let (i, name) = &todo[k];
                    // The receiver may be gone (deadline passed): stop then.
                    if tx.send((*i, getaddrinfo(name, port))).is_err() {
                        return;
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                // Fewer helpers than planned still answer every name.
                Err(_) if started > 0 => break,
                Err(e) => return Err(Error::io(Phase::Resolve, None, e)),
            }
        }
        Ok(Helpers { answers, stop })
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Blocking getaddrinfo, with the EAI_* code kept for socket.gaierror.
fn getaddrinfo(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let c_host = CString::new(host)
        .map_err(|_| Error::invalid("host", format!("host contains NUL: {host:?}")))?;
    // SAFETY: zeroed addrinfo is a valid "no hints" value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C strings and out-pointer; res is freed below.
    let rc = unsafe { libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 {
        let message = if rc == libc::EAI_SYSTEM {
            std::io::Error::last_os_error().to_string()
        } else {
            // SAFETY: gai_strerror returns a static C string.
            unsafe { CStr::from_ptr(libc::gai_strerror(rc)) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(Error::Resolve {
            host: host.to_string(),
            code: rc,
            message,
        });
    }
    let mut out: Vec<SocketAddr> = Vec::new();
    let mut cur = res;
    while !cur.is_null() {
        // SAFETY: cur walks the list getaddrinfo returned.
        let ai = unsafe { &*cur };
        if let Some(addr) = sockaddr_to_std(ai.ai_addr, ai.ai_addrlen, port) {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
        cur = ai.ai_next;
    }
    // SAFETY: res came from a successful getaddrinfo.
    unsafe { libc::freeaddrinfo(res) };
    if out.is_empty() {
        return Err(Error::Resolve {
            host: host.to_string(),
            code: libc::EAI_NONAME,
            message: "no IPv4 or IPv6 address".into(),
        });
    }
    Ok(out)
}

fn sockaddr_to_std(
    sa: *const libc::sockaddr,
    len: libc::socklen_t,
    port: u16,
) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: family read from a valid sockaddr; the casts match the family
    // and the length getaddrinfo reported.
    unsafe {
        match (*sa).sa_family as i32 {
            libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                let sin = &*(sa as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::new(ip.into(), port))
            }
            libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    port,
                    0,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use std::time::Duration;

    #[test]
    fn literal_needs_no_lookup() {
        let a = resolve("::1", 5, Deadline::NEVER, &NoInterrupt).unwrap();
        assert_eq!(a, vec!["[::1]:5".parse().unwrap()]);
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let a = resolve(
            "localhost",
            7,
            Deadline::after(Some(Duration::from_secs(5))),
            &NoInterrupt,
        )
        .unwrap();
        assert!(!a.is_empty());
        assert!(
            a.iter().all(|x| x.ip().is_loopback() && x.port() == 7),
            "{a:?}"
        );
    }

    #[test]
    fn resolve_all_answers_every_name_in_order() {
        let names: Vec<String> = ["localhost", "::1", "no-such-host.invalid", "127.0.0.2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = resolve_all(
            &names,
            9,
            Deadline::after(Some(Duration::from_secs(10))),
            &NoInterrupt,
        )
        .unwrap();
        assert_eq!(r.len(), 4);
        assert!(r[0].as_ref().unwrap().iter().all(|a| a.ip().is_loopback()));
        assert_eq!(r[1].as_ref().unwrap(), &vec!["[::1]:9".parse().unwrap()]);
        assert!(r[2].is_err());
        assert_eq!(
            r[3].as_ref().unwrap(),
            &vec!["127.0.0.2:9".parse().unwrap()]
        );
        assert!(resolve_all(&[], 1, Deadline::NEVER, &NoInterrupt)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn resolve_all_walks_away_at_the_deadline() {
        let names = vec!["localhost".to_string(); 3];
        let r = resolve_all(
            &names,
            1,
            Deadline::after(Some(Duration::ZERO)),
            &NoInterrupt,
        )
        .unwrap();
        // Nothing may have answered within a deadline already passed; what
        // did not answer is a timeout, never a hang.
        for x in r {
            if let Err(e) = x {
                assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
            }
        }
    }

    #[test]
    fn unknown_name_is_a_resolve_error() {
        let e = resolve(
            "no-such-host.invalid",
            1,
            Deadline::after(Some(Duration::from_secs(10))),
            &NoInterrupt,
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::Resolve { .. } | Error::Timeout { .. }),
            "{e:?}"
        );
    }
}
