//! Name resolution that a deadline and Ctrl-C can cut short.
//!
//! glibc's getaddrinfo cannot be cancelled and waits 5 s x 2 attempts on a
//! silent resolver (DESIGN.md section 8). It therefore runs on a detached
//! thread; the caller waits on a channel in slices and walks away at its
//! deadline. The thread finishes on its own when glibc gives up.

use std::ffi::{CStr, CString};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::thread;

use crate::error::{Error, Phase, Result};
use crate::wait::{Deadline, Interrupt};

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
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    thread::Builder::new()
        .name("socketkit-resolve".into())
        .spawn(move || {
            // The receiver may be gone (deadline passed): nothing to do then.
            let _ = tx.send(getaddrinfo(&name, port));
        })
        .map_err(|e| Error::io(Phase::Resolve, None, e))?;
    loop {
        match rx.recv_timeout(deadline.slice()) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                intr.check()?;
                if deadline.expired() {
                    return Err(Error::timeout(Phase::Resolve, Some(host.to_string())));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Resolve {
                    host: host.to_string(),
                    code: libc::EAI_SYSTEM,
                    message: "resolver thread failed".into(),
                })
            }
        }
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
