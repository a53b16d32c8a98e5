//! Folds the per-address outcomes of a target into one result per target:
//! open as soon as any address accepts, otherwise the outcome of the first
//! address (a name's addresses are in Happy Eyeballs order).
//!
//! Only targets with several addresses, partly answered, take memory here:
//! a target's jobs are next to each other in the job list, which gives its
//! address count and each job's position without per-target tables. Dense
//! tables cost ~100 bytes per target up front (1.6 GB for the largest
//! scan) and seconds before the first probe (issue 15 item 9).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::error::Result;
use crate::probe::run::Jobs;
use crate::probe::types::{Outcome, Plan, State, TargetResult};
use crate::probe::Pacer;

/// A target with several addresses, some answered.
struct Partial {
    /// Addresses not yet answered.
    left: u32,
    /// (address position, address, outcome) of the best so far.
    best: Option<(u32, SocketAddr, Outcome)>,
    /// Handed out already (an address accepted).
    emitted: bool,
}

pub struct Combiner {
    partial: HashMap<u32, Partial>,
    jobs: Jobs,
    pub done: usize,
    pub total: usize,
}

impl Combiner {
    /// A combiner for `plan` probed as `jobs` (`plan.jobs()`). Also returns
    /// the targets that are finished before any probe (their host did not
    /// resolve); `pace` is asked while looking for them.
    pub fn new(
        plan: &Plan,
        jobs: Jobs,
        pace: &mut Pacer<'_>,
    ) -> Result<(Combiner, Vec<TargetResult>)> {
        let mut early = Vec::new();
        let no_address = |h: u32| !matches!(&plan.hosts[h as usize].addrs, Ok(a) if !a.is_empty());
        if (0..plan.hosts.len() as u32).any(no_address) {
            for (i, &(h, _)) in plan.targets.iter().enumerate() {
                pace.tick()?;
                if no_address(h) {
                    let why = match &plan.hosts[h as usize].addrs {
                        Err(e) => e.clone(),
                        Ok(_) => "no address".into(),
                    };
                    early.push(TargetResult {
                        target: i,
                        address: None,
                        outcome: Outcome::new(State::Error, None, Some(why)),
                    });
                }
            }
        }
        let c = Combiner {
            partial: HashMap::new(),
            jobs,
            done: early.len(),
            total: plan.targets.len(),
        };
        Ok((c, early))
    }

    /// The jobs of job `job`'s target: (first job, how many).
    fn span(&self, job: usize) -> (usize, usize) {
        let t = self.jobs[job].0;
        let mut first = job;
        while first > 0 && self.jobs[first - 1].0 == t {
            first -= 1;
        }
        let mut end = job + 1;
        while end < self.jobs.len() && self.jobs[end].0 == t {
            end += 1;
        }
        (first, end - first)
    }

    /// Take one job's outcome; returns the target's result once final.
    pub fn add(&mut self, job: u32, o: Outcome) -> Option<TargetResult> {
        let job = job as usize;
        let (t, addr) = self.jobs[job];
        let result = |address, outcome| TargetResult {
            target: t as usize,
            address: Some(address),
            outcome,
        };
        let (first, n) = self.span(job);
        if n == 1 {
            self.done += 1;
            return Some(result(addr, o));
        }
        let pos = (job - first) as u32;
        let p = self.partial.entry(t).or_insert(Partial {
            left: n as u32,
            best: None,
            emitted: false,
        });
        p.left -= 1;
        let last = p.left == 0;
        let out = if p.emitted {
            None
        } else if o.state == State::Open {
            p.emitted = true;
            p.best = None;
            Some(result(addr, o))
        } else {
            if p.best.as_ref().is_none_or(|(b, _, _)| pos < *b) {
                p.best = Some((pos, addr, o));
            }
            if last {
                p.best.take().map(|(_, a, o)| result(a, o))
            } else {
                None
            }
        };
        if last {
            self.partial.remove(&t);
        }
        if out.is_some() {
            self.done += 1;
        }
        out
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
        let mut pace = Pacer::new(&crate::wait::NoInterrupt);
        let jobs = Arc::new(plan.jobs(&mut pace).unwrap());
        assert_eq!(jobs.len(), 4);
        let (mut c, early) = Combiner::new(&plan, jobs, &mut pace).unwrap();
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
