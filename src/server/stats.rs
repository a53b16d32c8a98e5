//! Counters a server keeps with relaxed atomics: read at any time from any
//! thread without a lock; each value is exact, a snapshot of several is not
//! one instant.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub rejected: AtomicU64,
    pub handler_errors: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// TLS servers: connections closed because their handshake failed or
    /// timed out (a plaintext client, a missing or unknown client
    /// certificate, a client silent until the handshake timeout). A client
    /// that leaves without sending a byte (a port check) is not counted.
    pub tls_failures: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub accepted: u64,
    pub active: u64,
    pub rejected: u64,
    pub handler_errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub tls_failures: u64,
}

impl StatsSnapshot {
    pub fn items(&self) -> [(&'static str, u64); 6] {
        [
            ("accepted", self.accepted),
            ("active", self.active),
            ("rejected", self.rejected),
            ("handler_errors", self.handler_errors),
            ("bytes_in", self.bytes_in),
            ("bytes_out", self.bytes_out),
        ]
    }
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            accepted: self.accepted.load(Relaxed),
            active: self.active.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            handler_errors: self.handler_errors.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            tls_failures: self.tls_failures.load(Relaxed),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Take a connection slot if fewer than `max` are active; counts the
    /// connection as accepted or rejected. The slot is given back by
    /// dropping the returned guard.
    pub fn admit(self: &std::sync::Arc<Self>, max: usize) -> Option<ActiveGuard> {
        self.accepted.fetch_add(1, Relaxed);
        let prev = self.active.fetch_add(1, Relaxed);
        if prev >= max as u64 {
            self.active.fetch_sub(1, Relaxed);
            self.rejected.fetch_add(1, Relaxed);
            return None;
        }
        Some(ActiveGuard(self.clone()))
    }
}

/// One active connection; dropping it frees the slot.
#[derive(Debug)]
pub struct ActiveGuard(std::sync::Arc<Stats>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// A UDP server's counters.
#[derive(Debug, Default)]
pub struct UdpStats {
    pub datagrams_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    pub handler_errors: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStatsSnapshot {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub handler_errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl UdpStatsSnapshot {
    pub fn items(&self) -> [(&'static str, u64); 5] {
        [
            ("datagrams_in", self.datagrams_in),
            ("datagrams_out", self.datagrams_out),
            ("handler_errors", self.handler_errors),
            ("bytes_in", self.bytes_in),
            ("bytes_out", self.bytes_out),
        ]
    }
}

impl UdpStats {
    pub fn snapshot(&self) -> UdpStatsSnapshot {
        UdpStatsSnapshot {
            datagrams_in: self.datagrams_in.load(Relaxed),
            datagrams_out: self.datagrams_out.load(Relaxed),
            handler_errors: self.handler_errors.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn admit_counts_and_rejects_past_the_limit() {
        let s = Arc::new(Stats::default());
        let guards: Vec<_> = (0..5).map(|_| s.admit(5).expect("room")).collect();
        assert!(s.admit(5).is_none());
        let snap = s.snapshot();
        assert_eq!((snap.accepted, snap.active, snap.rejected), (6, 5, 1));
        drop(guards);
        assert_eq!(s.snapshot().active, 0);
        assert!(s.admit(5).is_some());
    }
}
