//! The lifecycle both servers share: bound, running (with what the mode
//! started), stopping, stopped. One condition variable lets a second
//! `stop()` and `wait_stopped()` wait for the stop in progress, so "stop()
//! returned" always means "the port is closed".

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::wait::{Deadline, Interrupt, SLICE};

enum State<R> {
    Bound,
    Running(R),
    Stopping,
    Stopped,
}

pub struct Lifecycle<R> {
    state: Mutex<State<R>>,
    done: Condvar,
}

impl<R> Default for Lifecycle<R> {
    fn default() -> Self {
        Lifecycle {
            state: Mutex::new(State::Bound),
            done: Condvar::new(),
        }
    }
}

impl<R> Lifecycle<R> {
    fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// "bound", "running", "stopping" or "stopped".
    pub fn name(&self) -> &'static str {
        match &*self.lock() {
            State::Bound => "bound",
            State::Running(_) => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }

    /// Run `start` once, when bound (concurrent callers wait for it); a
    /// running server is left as it is; a stopped one cannot start again.
    pub fn start(&self, start: impl FnOnce() -> Result<R>) -> Result<()> {
        let mut st = self.lock();
        match &*st {
            State::Bound => {}
            State::Running(_) => return Ok(()),
            State::Stopping | State::Stopped => return Err(Error::Stopped),
        }
        *st = State::Running(start()?);
        Ok(())
    }

    /// Block until stopped, in slices that ask `intr`.
    pub fn wait_stopped(&self, intr: &dyn Interrupt) -> Result<()> {
        loop {
            let st = self.lock();
            if matches!(*st, State::Stopped) {
                return Ok(());
            }
            let _ = self
                .done
                .wait_timeout(st, SLICE)
                .unwrap_or_else(|p| p.into_inner());
            intr.check()?;
        }
    }

    /// Begin a stop. `Some(running)` (`None` inside when the server was only
    /// bound): the caller tears it down, then calls [`Lifecycle::finish`].
    /// `None`: nothing left to do, because the server had stopped, or
    /// another caller was stopping it and has finished (or `timeout` passed).
    pub fn begin_stop(&self, timeout: Duration) -> Option<Option<R>> {
        let mut st = self.lock();
        match std::mem::replace(&mut *st, State::Stopping) {
            State::Running(r) => Some(Some(r)),
            State::Bound => Some(None),
            State::Stopped => {
                *st = State::Stopped;
                None
            }
            State::Stopping => {
                *st = State::Stopping;
                let deadline = Deadline::after(Some(timeout));
                while matches!(*st, State::Stopping) && !deadline.expired() {
                    st = self
                        .done
                        .wait_timeout(st, deadline.slice())
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                None
            }
        }
    }

    /// The stop begun by [`Lifecycle::begin_stop`] is complete.
    pub fn finish(&self) {
        *self.lock() = State::Stopped;
        self.done.notify_all();
    }

    /// Mark stopped at once and hand back what was running (for `Drop`).
    pub fn abandon(&self) -> Option<R> {
        let st = std::mem::replace(&mut *self.lock(), State::Stopped);
        self.done.notify_all();
        match st {
            State::Running(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use std::sync::Arc;

    #[test]
    fn start_stop_once() {
        let l: Lifecycle<u8> = Lifecycle::default();
        assert_eq!(l.name(), "bound");
        l.start(|| Ok(7)).unwrap();
        l.start(|| panic!("started twice")).unwrap();
        assert_eq!(l.name(), "running");
        assert_eq!(l.begin_stop(Duration::from_secs(1)), Some(Some(7)));
        assert_eq!(l.name(), "stopping");
        l.finish();
        assert_eq!(l.begin_stop(Duration::from_secs(1)), None);
        assert!(matches!(l.start(|| Ok(1)), Err(Error::Stopped)));
        l.wait_stopped(&NoInterrupt).unwrap();
    }

    #[test]
    fn second_stopper_waits_for_the_first() {
        let l: Arc<Lifecycle<u8>> = Arc::new(Lifecycle::default());
        l.start(|| Ok(1)).unwrap();
        assert_eq!(l.begin_stop(Duration::from_secs(1)), Some(Some(1)));
        let l2 = l.clone();
        let t = std::thread::spawn(move || {
            let r = l2.begin_stop(Duration::from_secs(5));
            (r, l2.name())
        });
        std::thread::sleep(Duration::from_millis(50));
        l.finish();
        assert_eq!(t.join().unwrap(), (None, "stopped"));
    }
}
