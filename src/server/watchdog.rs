//! Keeps an on_message server's I/O going while a handler blocks.
//!
//! tokio polls for I/O only from an idle worker. When one worker takes a
//! message whose handler then blocks (a sleep, a database call), the other
//! may be parked on a condition variable instead of on the I/O driver, and
//! nobody sees the other connections' data until the handler returns
//! (seen: 8 of 30 trials stalled every other client). The watchdog notices
//! a handler call that has run for a tick with no other call started, and
//! wakes an idle worker, which then takes over polling. The fast path pays
//! two atomic increments and one decrement per batch of messages.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a handler call may block the other connections at most (about
/// one to two ticks) while the server is busy.
const TICK: Duration = Duration::from_millis(10);
/// The tick once no call has started for `IDLE_AFTER`: an idle server
/// wakes this thread 10 times a second, not 100 (a call that blocks right
/// after a quiet second may hold up the others for up to ~110 ms).
const IDLE_TICK: Duration = Duration::from_millis(100);
const IDLE_AFTER: u32 = 100; // ticks

/// Handler calls running now, and started ever.
#[derive(Default)]
pub struct Busy {
    running: AtomicUsize,
    started: AtomicU64,
}

impl Busy {
    /// Count a handler call until the guard drops.
    pub fn call(&self) -> CallGuard<'_> {
        self.running.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        CallGuard(self)
    }
}

pub struct CallGuard<'a>(&'a Busy);

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct Watchdog {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(busy: Arc<Busy>, rt: tokio::runtime::Handle) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("socketkit-watchdog".into())
            .spawn(move || watch(&busy, &rt, &s))?;
        Ok(Watchdog {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.end();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn end(&self) {
        let (flag, cv) = &*self.stop;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }
}

impl Drop for Watchdog {
    /// Never blocks: the thread ends at its next wakeup.
    fn drop(&mut self) {
        self.end();
    }
}

fn watch(busy: &Busy, rt: &tokio::runtime::Handle, stop: &(Mutex<bool>, Condvar)) {
    let (flag, cv) = stop;
    let mut last = busy.started.load(Ordering::Relaxed);
    let mut quiet = 0u32; // ticks without a call started
    let mut stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
    while !*stopped {
        let tick = if quiet >= IDLE_AFTER { IDLE_TICK } else { TICK };
        stopped = cv
            .wait_timeout(stopped, tick)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        let started = busy.started.load(Ordering::Relaxed);
        if started == last {
            quiet = quiet.saturating_add(1);
            if busy.running.load(Ordering::Relaxed) > 0 {
                // A task from outside the runtime wakes a parked worker;
                // once it has run it, it parks on the I/O driver, which is
                // free.
                rt.spawn(async {});
            }
        } else {
            quiet = 0;
        }
        last = started;
    }
}
