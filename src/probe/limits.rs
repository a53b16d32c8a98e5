//! The two limits of a run: new connects per second (`rate`) and the file
//! descriptors it may hold (concurrency is capped below RLIMIT_NOFILE, or
//! high concurrency hits EMFILE: DESIGN.md section 8).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// File descriptors left for the rest of the process when capping concurrency.
const FD_RESERVE: u64 = 64;

/// nmap's --max-rate: connects are spaced at least 1/rate apart, shared
/// by every worker through one atomic "next free slot" time.
pub struct RateLimit {
    start: Instant,
    interval_ns: u64,
    next_ns: AtomicU64,
}

impl RateLimit {
    pub fn new(rate: f64) -> Self {
        RateLimit {
            start: Instant::now(),
            interval_ns: (1e9 / rate).max(1.0) as u64,
            next_ns: AtomicU64::new(0),
        }
    }

    /// Take a slot now, or say how long until the next one frees.
    pub fn acquire(&self) -> std::result::Result<(), Duration> {
        let now = self.start.elapsed().as_nanos() as u64;
        let mut cur = self.next_ns.load(Ordering::Relaxed);
        loop {
            if cur > now {
                return Err(Duration::from_nanos(cur - now));
            }
            let next = now.max(cur) + self.interval_ns;
            match self
                .next_ns
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(c) => cur = c,
            }
        }
    }
}

/// Raise the soft RLIMIT_NOFILE to the hard limit once, and return the
/// number of descriptors a run may use.
pub fn fd_budget() -> usize {
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(|| {
        // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
        unsafe {
            let mut rl: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: rl.rlim_max,
                    rlim_max: rl.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &want);
            }
        }
    });
    // SAFETY: as above.
    let soft = unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            1024
        } else {
            rl.rlim_cur as u64
        }
    };
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(64);
    let reserve = FD_RESERVE.min(soft / 4);
    soft.saturating_sub(open + reserve).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_acquire() {
        let rl = RateLimit::new(1000.0);
        assert!(rl.acquire().is_ok());
        assert!(rl.acquire().is_err());
    }

    #[test]
    fn fd_budget_leaves_room() {
        let b = fd_budget();
        assert!(b >= 1);
        // SAFETY: getrlimit with a valid rlimit struct.
        let soft = unsafe {
            let mut rl: libc::rlimit = std::mem::zeroed();
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
            rl.rlim_cur as u64
        };
        assert!((b as u64) < soft);
    }
}
