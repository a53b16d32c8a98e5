//! Folds the per-address outcomes of a target into one result per target:
//! open as soon as any address accepts, otherwise the outcome of the first
//! address (a name's addresses are in Happy Eyeballs order).

use crate::probe::run::Jobs;
use crate::probe::types::{Outcome, Plan, State, TargetResult};

/// Marks a target whose result has been handed out.
const EMITTED: u32 = u32::MAX;

pub struct Combiner {
    /// Per target: addresses not yet answered, or `EMITTED`.
    pending: Vec<u32>,
    /// Per target: (address position, address, outcome) of the best so far.
    best: Vec<Option<(u32, std::net::SocketAddr, Outcome)>>,
    /// Per job: its position among its target's addresses.
    position: Vec<u32>,
    jobs: Jobs,
    pub done: usize,
    pub total: usize,
}

impl Combiner {
    /// A combiner for `plan` probed as `jobs` (`plan.jobs()`). Also returns
    /// the targets that are finished before any probe (their host did not
    /// resolve).
    pub fn new(plan: &Plan, jobs: Jobs) -> (Combiner, Vec<TargetResult>) {
        let n = plan.targets.len();
        let mut pending = vec![0u32; n];
        let mut position = Vec::with_capacity(jobs.len());
        for &(t, _) in jobs.iter() {
            position.push(pending[t as usize]);
            pending[t as usize] += 1;
        }
        let mut early = Vec::new();
        for (i, &(h, _)) in plan.targets.iter().enumerate() {
            if pending[i] == 0 {
                let why = match &plan.hosts[h as usize].addrs {
                    Err(e) => e.clone(),
                    Ok(_) => "no address".into(),
                };
                pending[i] = EMITTED;
                early.push(TargetResult {
                    target: i,
                    address: None,
                    outcome: Outcome::new(State::Error, None, Some(why)),
                });
            }
        }
        let c = Combiner {
            pending,
            best: vec![None; n],
            position,
            jobs,
            done: early.len(),
            total: n,
        };
        (c, early)
    }

    /// Take one job's outcome; returns the target's result once final.
    pub fn add(&mut self, job: u32, o: Outcome) -> Option<TargetResult> {
        let (t, addr) = self.jobs[job as usize];
        let ti = t as usize;
        if self.pending[ti] == EMITTED {
            return None;
        }
        self.pending[ti] -= 1;
        let pos = self.position[job as usize];
        if o.state == State::Open {
            self.pending[ti] = EMITTED;
            self.best[ti] = None;
            self.done += 1;
            return Some(TargetResult {
                target: ti,
                address: Some(addr),
                outcome: o,
            });
        }
        let better = match &self.best[ti] {
            None => true,
            Some((p, _, _)) => pos < *p,
        };
        if better {
            self.best[ti] = Some((pos, addr, o));
        }
        if self.pending[ti] == 0 {
            self.pending[ti] = EMITTED;
            self.done += 1;
            let (_, addr, o) = self.best[ti].take()?;
            return Some(TargetResult {
                target: ti,
                address: Some(addr),
                outcome: o,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::classify::{refused, silent};
    use crate::probe::types::HostEntry;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn open_on_any_address_else_the_first_addresses_outcome() {
        let plan = Plan {
            hosts: vec![
                HostEntry {
                    label: "two".into(),
                    addrs: Ok(vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()]),
                },
                HostEntry {
                    label: "bad".into(),
                    addrs: Err("no such name".into()),
                },
            ],
            targets: vec![(0, 1), (0, 2), (1, 3)],
            ..Plan::default()
        };
        let jobs = Arc::new(plan.jobs());
        assert_eq!(jobs.len(), 4);
        let (mut c, early) = Combiner::new(&plan, jobs);
        assert_eq!(early.len(), 1);
        assert_eq!(early[0].target, 2);
        assert_eq!(early[0].outcome.error.as_deref(), Some("no such name"));
        let rtt = Duration::from_micros(9);
        // Target 0: the second address answers first, then the first.
        assert_eq!(c.add(1, refused(rtt)), None);
        let r = c.add(0, silent()).unwrap();
        assert_eq!((r.target, r.outcome.state), (0, State::Filtered));
        assert!(r.address.unwrap().is_ipv6());
        // Target 1: open as soon as one address accepts.
        let open = Outcome::new(State::Open, Some(rtt), None);
        let r = c.add(3, open).unwrap();
        assert_eq!((r.target, r.outcome.state), (1, State::Open));
        assert_eq!(c.add(2, refused(rtt)), None);
        assert_eq!((c.done, c.total), (3, 3));
    }
}
