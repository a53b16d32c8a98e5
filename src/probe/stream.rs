//! The one result stream of `check`, `check_many`, `scan` and their
//! iterators: a plan goes in, finished targets come out in completion
//! order, in batches. The blocking calls ([`run_all`],
//! [`ResultStream::collect`]) and the Python iterators drive the same
//! stream, so they see the same results and stop the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::probe::combiner::Combiner;
use crate::probe::run::{Canceller, Run};
use crate::probe::types::{Config, Outcome, Plan, State, TargetResult};
use crate::probe::Pacer;
use crate::wait::{Interrupt, SLICE};

pub struct ResultStream {
    plan: Plan,
    run: Option<Run>,
    canceller: Canceller,
    comb: Combiner,
    /// Results known before any probe (names that did not resolve),
    /// handed out first.
    early: Vec<TargetResult>,
}

impl ResultStream {
    /// Start probing every address of every target of `plan`; `intr` is
    /// asked while the jobs are laid out (millions take a while).
    pub fn start(plan: Plan, cfg: &Config, intr: &dyn Interrupt) -> Result<Self> {
        let mut pace = Pacer::new(intr);
        let jobs = Arc::new(plan.jobs(&mut pace)?);
        let (comb, early) = Combiner::new(&plan, jobs.clone(), &mut pace)?;
        let run = Run::start(jobs, cfg)?;
        Ok(ResultStream {
            plan,
            canceller: run.canceller(),
            run: Some(run),
            comb,
            early,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn into_plan(self) -> Plan {
        self.plan
    }

    /// Targets finished so far (handed out or about to be).
    pub fn done(&self) -> usize {
        self.comb.done
    }

    /// Targets in all.
    pub fn total(&self) -> usize {
        self.comb.total
    }

    /// Has every result been handed out?
    pub fn finished(&self) -> bool {
        self.run.is_none() && self.early.is_empty()
    }

    /// A handle that stops the probes from another thread without the
    /// stream (a consumer may be blocked in it).
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// Append the targets that finished within `wait` to `out`. `false`
    /// once the stream has ended (then nothing was appended).
    pub fn next_batch(&mut self, wait: Duration, out: &mut Vec<TargetResult>) -> bool {
        if !self.early.is_empty() {
            out.append(&mut self.early);
            return true;
        }
        let Some(run) = &self.run else {
            return false;
        };
        match run.next_batch(wait) {
            None => {
                self.run = None;
                false
            }
            Some(batch) => {
                let comb = &mut self.comb;
                out.extend(batch.into_iter().filter_map(|(j, o)| comb.add(j, o)));
                true
            }
        }
    }

    /// Wait until at least one more target finished; an empty vector once
    /// the stream has ended. `intr` is asked every half slice; when it
    /// fails, the probes stop and their threads are joined.
    pub fn wait(&mut self, intr: &dyn Interrupt) -> Result<Vec<TargetResult>> {
        let mut out = Vec::new();
        while self.next_batch(SLICE / 2, &mut out) {
            if !out.is_empty() {
                break;
            }
            if let Err(e) = intr.check() {
                self.stop();
                return Err(e);
            }
        }
        Ok(out)
    }

    /// Cancel the probes still running and wait for their threads (bounded
    /// by a worker slice); the stream then ends.
    pub fn stop(&mut self) {
        self.early.clear();
        if let Some(run) = self.run.take() {
            run.stop();
        }
    }

    /// Cancel the probes still running without waiting; the stream ends.
    pub fn close(&mut self) {
        self.canceller.cancel();
        self.early.clear();
        self.run = None;
    }

    /// Every result, in target order. `progress(done, total)` is called at
    /// most every 100 ms and once at the end; `intr` between waits (Ctrl-C
    /// cancels every worker). An error from either stops the run.
    pub fn collect(
        &mut self,
        intr: &dyn Interrupt,
        progress: &mut dyn FnMut(usize, usize) -> Result<()>,
    ) -> Result<Vec<TargetResult>> {
        // In completion order first, put in target order at the end: a
        // table of `total` empty slots up front cost a pass over ~100 bytes
        // per target before the first probe and another to drop it on
        // Ctrl-C (issue 15 item 9); reserved capacity is not touched.
        let mut results: Vec<TargetResult> = Vec::with_capacity(self.total());
        if let Err(e) = progress(self.done(), self.total()) {
            self.close();
            return Err(e);
        }
        let mut last_check = Instant::now();
        let mut last_progress = Instant::now();
        while self.next_batch(SLICE / 2, &mut results) {
            let now = Instant::now();
            if now.duration_since(last_check) >= SLICE / 2 {
                last_check = now;
                if let Err(e) = intr.check() {
                    self.stop();
                    return Err(e);
                }
            }
            if now.duration_since(last_progress) >= SLICE && self.done() < self.total() {
                last_progress = now;
                if let Err(e) = progress(self.done(), self.total()) {
                    self.stop();
                    return Err(e);
                }
            }
        }
        progress(self.done(), self.total())?;
        in_target_order(&mut results, self.total());
        Ok(results)
    }
}

/// Sort results that hold each target at most once into target order, in
/// place and in linear time; a target without a result (its worker could
/// not start) gets an error result saying so.
fn in_target_order(results: &mut Vec<TargetResult>, total: usize) {
    if results.len() < total {
        let mut seen = vec![false; total];
        for r in results.iter() {
            seen[r.target] = true;
        }
        for (i, _) in seen.iter().enumerate().filter(|(_, s)| !**s) {
            results.push(TargetResult {
                target: i,
                address: None,
                outcome: Outcome::new(State::Error, None, Some("not probed".into())),
            });
        }
    }
    // Each swap puts one result in its final place: at most `total` swaps.
    for i in 0..results.len() {
        while results[i].target != i {
            let t = results[i].target;
            if results[t].target == t {
                break; // a second result for `t`: the combiner never makes one
            }
            results.swap(i, t);
        }
    }
}

/// Run `plan` to the end: the plan back, and its results in target order
/// (see [`ResultStream::collect`]).
pub fn run_all(
    plan: Plan,
    cfg: &Config,
    intr: &dyn Interrupt,
    progress: &mut dyn FnMut(usize, usize) -> Result<()>,
) -> Result<(Plan, Vec<TargetResult>)> {
    let mut stream = ResultStream::start(plan, cfg, intr)?;
    let results = stream.collect(intr, progress)?;
    Ok((stream.into_plan(), results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::probe::types::HostEntry;
    use crate::wait::NoInterrupt;
    use socket2::{Domain, SockAddr, Socket, Type};
    use std::net::{SocketAddr, TcpListener};

    fn plan_for(ip: &str, ports: &[u16]) -> Plan {
        Plan {
            hosts: vec![HostEntry {
                label: ip.into(),
                addrs: Ok(vec![ip.parse().unwrap()]),
            }],
            targets: ports.iter().map(|&p| (0, p)).collect(),
            ..Plan::default()
        }
    }

    fn closed_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    fn run(plan: Plan, cfg: &Config) -> Vec<TargetResult> {
        run_all(plan, cfg, &NoInterrupt, &mut |_, _| Ok(()))
            .unwrap()
            .1
    }

    #[test]
    fn open_and_closed_on_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap().port();
        let closed = closed_port();
        let r = run(
            plan_for("127.0.0.1", &[closed, open, closed]),
            &Config::default(),
        );
        let states: Vec<State> = r.iter().map(|x| x.outcome.state).collect();
        assert_eq!(states, [State::Closed, State::Open, State::Closed]);
        assert!(r[1].outcome.rtt.unwrap() > Duration::ZERO);
        assert_eq!(
            r[1].address,
            Some(SocketAddr::new("127.0.0.1".parse().unwrap(), open))
        );
    }

    #[test]
    fn many_ports_with_socket_reuse_and_small_concurrency() {
        let listeners: Vec<TcpListener> = (0..5)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let open: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let lo = *open.iter().min().unwrap();
        let ports: Vec<u16> = (lo.saturating_sub(300).max(1)..=lo.saturating_add(300)).collect();
        // Other tests run in parallel and listen on ports near ours: hold
        // every other port of the range we can bind (bound, not listening:
        // it refuses, and nobody else can listen there meanwhile) and
        // judge only the ports this test controls.
        let held: Vec<socket2::Socket> = ports
            .iter()
            .filter(|p| !open.contains(p))
            .filter_map(|&p| {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .ok()?;
                let a: SocketAddr = ([127, 0, 0, 1], p).into();
                s.bind(&a.into()).ok()?;
                Some(s)
            })
            .collect();
        let closed: Vec<u16> = held
            .iter()
            .filter_map(|s| s.local_addr().ok()?.as_socket().map(|a| a.port()))
            .collect();
        assert!(
            closed.len() > 100,
            "only {} ports could be held",
            closed.len()
        );
        for conc in [1, 3, 1024] {
            let cfg = Config {
                concurrency: conc,
                ..Config::default()
            };
            let mut calls = 0;
            let (_, r) = run_all(
                plan_for("127.0.0.1", &ports),
                &cfg,
                &NoInterrupt,
                &mut |d, t| {
                    calls += 1;
                    assert!(d <= t);
                    Ok(())
                },
            )
            .unwrap();
            assert!(calls >= 2);
            for (i, x) in r.iter().enumerate() {
                if open.contains(&ports[i]) {
                    assert_eq!(x.outcome.state, State::Open, "port {}", ports[i]);
                } else if closed.contains(&ports[i]) {
                    assert_eq!(x.outcome.state, State::Closed, "port {}", ports[i]);
                }
            }
        }
    }

    #[test]
    fn v6_loopback_and_multi_address_targets() {
        let Ok(l6) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 on this host
        };
        let port = l6.local_addr().unwrap().port();
        let plan = Plan {
            hosts: vec![HostEntry {
                label: "both".into(),
                addrs: Ok(vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]),
            }],
            targets: vec![(0, port)],
            ..Plan::default()
        };
        let r = run(plan, &Config::default());
        assert_eq!(r[0].outcome.state, State::Open);
        assert!(r[0].address.unwrap().is_ipv6());
    }

    #[test]
    fn unresolved_hosts_are_errors_in_place() {
        let plan = Plan {
            hosts: vec![
                HostEntry {
                    label: "bad".into(),
                    addrs: Err("Name or service not known".into()),
                },
                HostEntry {
                    label: "127.0.0.1".into(),
                    addrs: Ok(vec!["127.0.0.1".parse().unwrap()]),
                },
            ],
            targets: vec![(0, 80), (1, closed_port())],
            ..Plan::default()
        };
        let r = run(plan, &Config::default());
        assert_eq!(r[0].outcome.state, State::Error);
        assert_eq!(r[1].outcome.state, State::Closed);
    }

    #[test]
    fn the_stream_hands_out_every_target_once_in_completion_order() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap().port();
        let closed = closed_port();
        let mut plan = plan_for("127.0.0.1", &[open, closed, open, closed]);
        plan.hosts.push(HostEntry {
            label: "bad".into(),
            addrs: Err("no such name".into()),
        });
        plan.targets.push((1, 1));
        let mut s = ResultStream::start(plan, &Config::default(), &NoInterrupt).unwrap();
        assert_eq!(s.total(), 5);
        let mut seen = Vec::new();
        loop {
            let batch = s.wait(&NoInterrupt).unwrap();
            if batch.is_empty() {
                break;
            }
            seen.extend(batch);
        }
        assert!(s.finished());
        // The target whose name did not resolve comes first: it needs no probe.
        assert_eq!(seen[0].target, 4);
        let mut targets: Vec<usize> = seen.iter().map(|r| r.target).collect();
        targets.sort();
        assert_eq!(targets, [0, 1, 2, 3, 4]);
        assert_eq!(s.done(), 5);
    }

    #[test]
    fn rate_limit_spaces_connects() {
        let ports: Vec<u16> = (0..6).map(|_| closed_port()).collect();
        let cfg = Config {
            rate: Some(20.0),
            ..Config::default()
        };
        let t = Instant::now();
        run(plan_for("127.0.0.1", &[closed_port(); 1]), &cfg);
        run(plan_for("127.0.0.1", &ports), &cfg);
        // 6 connects at 20/s need at least 5 gaps of 50 ms.
        assert!(
            t.elapsed() >= Duration::from_millis(240),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn results_go_in_target_order_and_missing_ones_are_named() {
        let r = |target| TargetResult {
            target,
            address: None,
            outcome: Outcome::new(State::Closed, None, None),
        };
        let mut v: Vec<TargetResult> = [4, 0, 3, 1].into_iter().map(r).collect();
        in_target_order(&mut v, 5);
        let order: Vec<usize> = v.iter().map(|x| x.target).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
        assert_eq!(v[2].outcome.error.as_deref(), Some("not probed"));
        assert_eq!(v[4].outcome.state, State::Closed);
    }

    #[test]
    fn cancel_stops_a_run_of_refused_ports_where_it_is() {
        // Refused loopback connects finish without entering the poll set;
        // the workers used to notice a cancel only there, so the run went
        // on to its end (issue 15 item 9). Count, not time: after the
        // first batch, a cancelled run hands out far from every result.
        let total = 200_000;
        let closed = closed_port();
        let plan = Plan {
            hosts: vec![HostEntry {
                label: "127.0.0.1".into(),
                addrs: Ok(vec!["127.0.0.1".parse().unwrap()]),
            }],
            targets: vec![(0, closed); total],
            ..Plan::default()
        };
        let mut s = ResultStream::start(plan, &Config::default(), &NoInterrupt).unwrap();
        let mut seen = s.wait(&NoInterrupt).unwrap().len();
        assert!(seen > 0);
        s.canceller().cancel();
        let mut batch = Vec::new();
        while s.next_batch(Duration::from_millis(50), &mut batch) {}
        seen += batch.len();
        assert!(seen < total / 2, "{seen} of {total} after the cancel");
    }

    struct After(Instant);
    impl Interrupt for After {
        fn check(&self) -> Result<()> {
            if Instant::now() >= self.0 {
                Err(Error::Interrupted)
            } else {
                Ok(())
            }
        }
    }

    /// A loopback port whose accept queue is full: the kernel drops new
    /// SYNs, so connects hang until their timeout (looks filtered).
    fn full_listener() -> (Socket, Vec<std::net::TcpStream>, u16) {
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        l.bind(&SockAddr::from(
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        ))
        .unwrap();
        l.listen(0).unwrap();
        let port = l.local_addr().unwrap().as_socket().unwrap().port();
        let mut fillers = Vec::new();
        for _ in 0..2 {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            let _ = s.connect(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], port))));
            fillers.push(std::net::TcpStream::from(s));
        }
        std::thread::sleep(Duration::from_millis(50));
        (l, fillers, port)
    }

    #[test]
    fn full_backlog_is_filtered() {
        let (_l, _f, port) = full_listener();
        let cfg = Config {
            timeout: Some(Duration::from_millis(300)),
            ..Config::default()
        };
        let r = run(plan_for("127.0.0.1", &[port]), &cfg);
        assert_eq!(r[0].outcome.state, State::Filtered);
    }

    #[test]
    fn interrupt_stops_a_slow_run() {
        let (_l, _f, port) = full_listener();
        let cfg = Config {
            timeout: Some(Duration::from_secs(30)),
            concurrency: 2,
            ..Config::default()
        };
        let t = Instant::now();
        let r = run_all(
            plan_for("127.0.0.1", &[port; 200]),
            &cfg,
            &After(Instant::now() + Duration::from_millis(150)),
            &mut |_, _| Ok(()),
        );
        assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // The iterator's way: the same stream, waited on batch by batch.
        let mut s =
            ResultStream::start(plan_for("127.0.0.1", &[port; 200]), &cfg, &NoInterrupt).unwrap();
        let r = s.wait(&After(Instant::now() + Duration::from_millis(150)));
        assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
        assert!(s.finished());
    }

    /// `cargo test --release -- --ignored --nocapture full_scan`: the time of a
    /// full loopback scan (a measurement, not an assertion).
    #[test]
    #[ignore]
    fn full_scan() {
        for workers in [1usize, 2, 3, 4] {
            let cfg = Config {
                timeout: Some(Duration::from_millis(500)),
                concurrency: 1024,
                workers: Some(workers),
                ..Config::default()
            };
            let ports: Vec<u16> = (1..=65535u16).collect();
            let t = Instant::now();
            let r = run(plan_for("127.0.0.1", &ports), &cfg);
            let open = r.iter().filter(|x| x.outcome.state == State::Open).count();
            println!("workers={workers}: {:?}, open={open}", t.elapsed());
        }
    }
}
