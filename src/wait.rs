//! Deadlines and interruptible waits.
//!
//! Every blocking call of the core waits in slices of at most [`SLICE`] and
//! asks its [`Interrupt`] between slices, so a Ctrl-C that lands on any thread
//! is seen within one slice (the binding layer's interrupt runs Python's
//! signal handlers). EINTR is treated as an expired slice, never retried
//! blindly: see DESIGN.md section 8.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The longest a blocking call waits before it checks for a pending signal.
pub const SLICE: Duration = Duration::from_millis(100);

/// Asked between wait slices; returns `Err(Error::Interrupted)` to abort.
pub trait Interrupt: Sync {
    fn check(&self) -> Result<()>;
}

/// For callers that cannot be interrupted (Rust tests, background threads).
pub struct NoInterrupt;

impl Interrupt for NoInterrupt {
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// An absolute point in time a call must finish by; `None` waits forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    pub const NEVER: Deadline = Deadline(None);

    pub fn after(timeout: Option<Duration>) -> Self {
        Deadline(timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future)))
    }

    pub fn at(instant: Instant) -> Self {
        Deadline(Some(instant))
    }

    pub fn instant(self) -> Option<Instant> {
        self.0
    }

    /// Time left, `None` for no deadline, zero once passed.
    pub fn remaining(self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub fn expired(self) -> bool {
        matches!(self.remaining(), Some(d) if d.is_zero())
    }

    /// The next wait: the time left, capped at one slice.
    pub fn slice(self) -> Duration {
        match self.remaining() {
            Some(d) => d.min(SLICE),
            None => SLICE,
        }
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        match (self.0, other.0) {
            (Some(a), Some(b)) => Deadline(Some(a.min(b))),
            (Some(a), None) | (None, Some(a)) => Deadline(Some(a)),
            (None, None) => Deadline(None),
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// Milliseconds for poll(2), rounded up so a short wait never becomes a busy loop.
pub fn poll_millis(d: Duration) -> libc::c_int {
    let ms = d.as_micros().div_ceil(1000);
    ms.min(libc::c_int::MAX as u128) as libc::c_int
}

/// Wait until `fd` is ready for `events` (POLLIN / POLLOUT).
/// Returns `Ok(true)` when ready (or in error/hang-up state, which the next
/// read or write reports), `Ok(false)` once the deadline has passed.
pub fn wait_fd(
    fd: RawFd,
    events: libc::c_short,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<bool> {
    loop {
        let slice = deadline.slice();
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, poll_millis(slice)) };
        if n > 0 {
            return Ok(true);
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io(crate::error::Phase::Recv, None, err));
            }
        }
        intr.check()?;
        if deadline.expired() {
            return Ok(false);
        }
    }
}

/// poll(2) over several sockets waiting for `events`, for at most `wait`.
/// Returns poll's count (negative on error, with errno set) and the
/// `pollfd`s with their `revents`, in the order of `fds`.
pub fn poll_many(
    fds: impl Iterator<Item = RawFd>,
    events: libc::c_short,
    wait: Duration,
) -> (libc::c_int, Vec<libc::pollfd>) {
    let mut pfds: Vec<libc::pollfd> = fds
        .map(|fd| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    // SAFETY: pfds is a valid array of pollfd of the given length.
    let n = unsafe {
        libc::poll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            poll_millis(wait),
        )
    };
    (n, pfds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_never_has_no_remaining() {
        assert_eq!(Deadline::NEVER.remaining(), None);
        assert!(!Deadline::NEVER.expired());
        assert_eq!(Deadline::NEVER.slice(), SLICE);
    }

    #[test]
    fn zero_timeout_is_expired() {
        let d = Deadline::after(Some(Duration::ZERO));
        assert!(d.expired());
        assert_eq!(d.slice(), Duration::ZERO);
    }

    #[test]
    fn poll_millis_rounds_up() {
        assert_eq!(poll_millis(Duration::from_micros(1)), 1);
        assert_eq!(poll_millis(Duration::ZERO), 0);
        assert_eq!(poll_millis(Duration::from_millis(100)), 100);
    }

    #[test]
    fn min_picks_earlier() {
        let a = Deadline::after(Some(Duration::from_secs(1)));
        let b = Deadline::after(Some(Duration::from_secs(5)));
        assert_eq!(a.min(b), a);
        assert_eq!(Deadline::NEVER.min(b), b);
    }

    #[test]
    fn wait_fd_times_out_on_silent_pipe() {
        let mut fds = [0; 2];
        // SAFETY: valid array of two fds.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let start = Instant::now();
        let ready = wait_fd(
            fds[0],
            libc::POLLIN,
            Deadline::after(Some(Duration::from_millis(150))),
            &NoInterrupt,
        )
        .unwrap();
        assert!(!ready);
        assert!(start.elapsed() >= Duration::from_millis(150));
        // SAFETY: closing the fds we opened.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
