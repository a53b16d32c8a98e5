//! Ops probes: is it up (`check`), what is open (`scan`), how fast
//! (`tcping`), wait until it is up (`wait_for`), what does it say
//! (`banner`), and UDP (`udp_probe`). Plain Rust, no pyo3: `py/probe.rs`
//! converts arguments and results.
//!
//! - `types`: the probes' words (state, outcome, plan, config, result);
//! - `classify`: errno to state and the self-connection check, once for
//!   every probe;
//! - `plan`: targets and scans to plans, names resolved once each;
//! - the connect-scan engine: `run` (a run's shared state and handle),
//!   `worker` (the connect state machine), `limits` (rate, descriptors),
//!   `combiner` (per-address outcomes to per-target results) and `stream`
//!   (the one result stream the blocking calls and iterators drive);
//! - one file per single-target probe: `ping`, `waitfor`, `banner`, `udp`;
//!   `drain` reads the kernel's TCP tables for `wait_for(state="drained")`.

pub mod banner;
pub mod classify;
pub mod combiner;
pub mod drain;
pub mod limits;
pub mod ping;
pub mod plan;
pub mod run;
pub mod stream;
pub mod target;
pub mod types;
pub mod udp;
pub mod waitfor;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::wait::Interrupt;

pub use plan::{plan_scan, plan_targets, resolve_deadline, MAX_SCAN_TARGETS, MIN_RESOLVE_TIME};
pub use stream::{run_all, ResultStream};
pub use target::HostSpec;
pub use types::{AddrControl, Config, HostEntry, Outcome, Plan, State, TargetResult, Timings};

/// An [`Interrupt`] that another thread trips: how the thread that talks
/// to Python (and sees Ctrl-C) stops helper threads.
#[derive(Debug, Default)]
pub struct Cancel(AtomicBool);

impl Cancel {
    pub fn new() -> Self {
        Cancel(AtomicBool::new(false))
    }
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Interrupt for Cancel {
    fn check(&self) -> Result<()> {
        if self.is_set() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// Asks an [`Interrupt`] now and then from a loop over every target or
/// job of a plan (up to 16 million): a million-target `check_many` spent
/// seconds in such loops deaf to Ctrl-C (issue 15 item 9). Looking at the
/// clock only every 1,024 items keeps the cost per item to a counter.
pub struct Pacer<'a> {
    intr: &'a dyn Interrupt,
    n: u32,
    last: Instant,
}

/// How often a [`Pacer`] asks: well inside the 200 ms Ctrl-C contract.
const PACE: Duration = Duration::from_millis(20);

impl<'a> Pacer<'a> {
    pub fn new(intr: &'a dyn Interrupt) -> Self {
        Pacer {
            intr,
            n: 0,
            last: Instant::now(),
        }
    }

    /// Count one item; every so often, ask the interrupt.
    pub fn tick(&mut self) -> Result<()> {
        self.n = self.n.wrapping_add(1);
        if self.n % 1024 != 0 {
            return Ok(());
        }
        let now = Instant::now();
        if now.duration_since(self.last) < PACE {
            return Ok(());
        }
        self.last = now;
        self.intr.check()
    }
}

/// An OS error as people read it: "Connection refused", without Rust's
/// " (os error 111)" suffix.
pub fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
