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

/// An OS error as people read it: "Connection refused", without Rust's
/// " (os error 111)" suffix.
pub fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
