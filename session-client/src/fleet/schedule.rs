//! When each target starts: in order of name, so many at once (`--max-concurrency`), none new
//! once too many did not succeed (`--max-errors`), Ctrl-C or the relay lost; and each status
//! reported as its target ends, so the first result never waits for the others.

use std::future::Future;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;

use super::output::Sink;
use super::status::{Status, Tally};

/// Targets at once, at most: the channels of one fleet connection.
pub(crate) const MAX_CONCURRENCY: usize = 256;

/// Targets at once unless `--max-concurrency` says.
pub(crate) const DEFAULT_CONCURRENCY: usize = 32;

/// `N`, or `P%` of the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Count(usize),
    Percent(usize),
}

impl core::str::FromStr for Limit {
    type Err = String;

    fn from_str(text: &str) -> Result<Limit, String> {
        let bad = || format!("{text:?}: expected a number N, or a percentage P% of the targets (0 to 100)");
        match text.strip_suffix('%') {
            Some(percent) => match percent.parse() {
                Ok(percent @ 0..=100) => Ok(Limit::Percent(percent)),
                _ => Err(bad()),
            },
            None => text.parse().map(Limit::Count).map_err(|_| bad()),
        }
    }
}

/// A `--max-concurrency`: as [`Limit`], and not 0.
pub(crate) fn concurrency(text: &str) -> Result<Limit, String> {
    match text.parse()? {
        Limit::Count(0) => Err("0 targets at once would run none: at least 1".to_owned()),
        limit => Ok(limit),
    }
}

impl Limit {
    /// Targets at once, of `targets`: a percentage rounded up, at least 1, at most
    /// [`MAX_CONCURRENCY`].
    pub(crate) fn at_once(self, targets: usize) -> usize {
        let n = match self {
            Limit::Count(n) => n,
            Limit::Percent(percent) => (targets * percent).div_ceil(100),
        };
        n.clamp(1, MAX_CONCURRENCY)
    }

    /// Targets that may not succeed before no new one starts: a percentage rounded down.
    pub(crate) fn errors(self, targets: usize) -> usize {
        match self {
            Limit::Count(n) => n,
            Limit::Percent(percent) => targets * percent / 100,
        }
    }
}

/// How a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Targets at once.
    pub(crate) at_once: usize,
    /// Once more targets than this did not succeed, no new one starts.
    pub(crate) max_errors: Option<usize>,
}

/// Runs `start(target, cancelled)` for each target, `plan.at_once` at a time in order, and
/// reports each status on `sink` as its target ends, with the relay's session id if it had
/// one. `cancelled` turns true on `interrupted` (Ctrl-C): each target running then closes its
/// channel and ends `Cancelled`, and those not started are cancelled too. Past `max_errors`,
/// or once `lost` (the connection to the relay is gone for good), no new target starts: those
/// left are `NotStarted`.
pub(crate) async fn schedule<'t, S, F>(
    targets: &'t [String],
    plan: Plan,
    mut start: S,
    interrupted: impl Future<Output = ()>,
    lost: impl Future<Output = ()>,
    sink: &Sink,
) -> Tally
where
    S: FnMut(&'t str, watch::Receiver<bool>) -> F,
    F: Future<Output = (Status, Option<String>)>,
{
    let (cancel, cancelled) = watch::channel(false);
    let mut running = FuturesUnordered::new();
    let mut started = 0;
    let mut unsuccessful = 0;
    // What targets not started become, once none may start.
    let mut stopped: Option<Status> = None;
    let mut tally = Tally::default();
    let (mut interrupted, mut lost) = (core::pin::pin!(interrupted), core::pin::pin!(lost));
    loop {
        while stopped.is_none() && running.len() < plan.at_once {
            let Some(target) = targets.get(started) else { break };
            let run = start(target, cancelled.clone());
            running.push(async move { (target, run.await) });
            started += 1;
        }
        tokio::select! {
            // Ctrl-C first: a person waits for it.
            biased;
            () = &mut interrupted, if !tally.interrupted => {
                tally.interrupted = true;
                stopped = Some(Status::Cancelled);
                let _ = cancel.send(true);
            }
            () = &mut lost, if !tally.lost => {
                tally.lost = true;
                stopped.get_or_insert(Status::NotStarted);
            }
            ended = running.next() => {
                let Some((target, (status, session))) = ended else { break };
                sink.status(target, &status, session.as_deref()).await;
                if status != Status::Succeeded {
                    unsuccessful += 1;
                    if plan.max_errors.is_some_and(|max| unsuccessful > max) {
                        stopped.get_or_insert(Status::NotStarted);
                    }
                }
                tally.add(&status);
            }
        }
    }
    let left = stopped.unwrap_or(Status::NotStarted);
    for target in targets.get(started..).unwrap_or_default() {
        sink.status(target, &left, None).await;
        tally.add(&left);
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::output::tests::captured;
    use crate::fleet::status::Failure;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn limits_are_counts_or_percentages_of_the_targets() {
        assert_eq!("32".parse(), Ok(Limit::Count(32)));
        assert_eq!("10%".parse(), Ok(Limit::Percent(10)));
        for bad in ["", "-1", "x", "101%", "5.5", "%"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad}");
        }
        assert!(concurrency("0").is_err());
        assert_eq!(concurrency("0%"), Ok(Limit::Percent(0)));

        // Concurrency: rounded up, at least 1, at most one connection's channels.
        assert_eq!(Limit::Percent(10).at_once(25), 3);
        assert_eq!(Limit::Percent(0).at_once(25), 1);
        assert_eq!(Limit::Percent(100).at_once(1000), MAX_CONCURRENCY);
        assert_eq!(Limit::Count(1000).at_once(5), MAX_CONCURRENCY);
        assert_eq!(Limit::Count(4).at_once(100), 4);
        // Errors: rounded down.
        assert_eq!(Limit::Percent(10).errors(25), 2);
        assert_eq!(Limit::Percent(10).errors(9), 0);
        assert_eq!(Limit::Count(3).errors(1), 3);
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("t{i:02}")).collect()
    }

    /// What each fake target does: end so, once its gate opens (none: at once).
    struct Fake {
        ends: HashMap<String, Status>,
        gates: HashMap<String, Arc<tokio::sync::Notify>>,
        started: Arc<Mutex<Vec<String>>>,
        running: Arc<Mutex<(usize, usize)>>,
    }

    impl Fake {
        fn new(ends: &[(&str, Status)]) -> Fake {
            Fake {
                ends: ends.iter().map(|(t, s)| ((*t).to_owned(), s.clone())).collect(),
                gates: HashMap::new(),
                started: Arc::default(),
                running: Arc::default(),
            }
        }

        fn start(
            &self,
            target: &str,
            mut cancelled: watch::Receiver<bool>,
        ) -> impl Future<Output = (Status, Option<String>)> + use<> {
            self.started.lock().unwrap().push(target.to_owned());
            let status = self.ends.get(target).cloned().unwrap_or(Status::Succeeded);
            let gate = self.gates.get(target).cloned();
            let running = Arc::clone(&self.running);
            {
                let mut running = running.lock().unwrap();
                running.0 += 1;
                running.1 = running.1.max(running.0);
            }
            async move {
                let status = match gate {
                    Some(gate) => tokio::select! {
                        () = gate.notified() => status,
                        _ = cancelled.wait_for(|&c| c) => Status::Cancelled,
                    },
                    None => {
                        tokio::task::yield_now().await;
                        status
                    }
                };
                running.lock().unwrap().0 -= 1;
                (status, None)
            }
        }
    }

    async fn run(targets: &[String], plan: Plan, fake: &Fake) -> (Tally, String) {
        let (sink, _, err) = captured(false);
        let never = core::future::pending::<()>;
        let tally = schedule(targets, plan, |t, c| fake.start(t, c), never(), never(), &sink).await;
        (tally, err.text())
    }

    #[tokio::test]
    async fn every_target_runs_in_order_never_more_than_allowed_at_once() {
        let targets = names(10);
        let fake = Fake::new(&[("t03", Status::Failed(Failure::Code(2)))]);
        let (tally, lines) = run(&targets, Plan { at_once: 3, max_errors: None }, &fake).await;
        assert_eq!(*fake.started.lock().unwrap(), targets);
        assert_eq!(fake.running.lock().unwrap().1, 3);
        assert_eq!(tally.exit_code(), 1);
        assert_eq!(lines.lines().count(), 10);
        assert!(lines.contains("[t03] failed (exit code 2)\n"), "{lines}");
    }

    #[tokio::test]
    async fn past_max_errors_no_new_target_starts() {
        let targets = names(10);
        let refused = Status::Refused("no".into());
        let fake = Fake::new(&[("t00", refused.clone()), ("t01", Status::TimedOut), ("t02", refused)]);
        // One at a time: the third not to succeed is one more than 2.
        let (tally, lines) = run(&targets, Plan { at_once: 1, max_errors: Some(2) }, &fake).await;
        assert_eq!(*fake.started.lock().unwrap(), ["t00", "t01", "t02"]);
        assert_eq!(tally.exit_code(), 3);
        for target in &targets[3..] {
            assert!(lines.contains(&format!("[{target}] not started\n")), "{lines}");
        }
        // Zero errors allowed: the first failure stops new starts.
        let fake = Fake::new(&[("t01", Status::Failed(Failure::Code(1)))]);
        let (_, lines) = run(&targets, Plan { at_once: 1, max_errors: Some(0) }, &fake).await;
        assert_eq!(*fake.started.lock().unwrap(), ["t00", "t01"]);
        assert_eq!(lines.matches("not started").count(), 8);
    }

    #[tokio::test]
    async fn a_result_is_reported_while_others_still_run() {
        let targets = names(3);
        let mut fake = Fake::new(&[]);
        let slow = Arc::new(tokio::sync::Notify::new());
        fake.gates.insert("t00".into(), Arc::clone(&slow));
        let (sink, _, err) = captured(false);
        let never = core::future::pending::<()>;
        let run = schedule(
            &targets,
            Plan { at_once: 3, max_errors: None },
            |t, c| fake.start(t, c),
            never(),
            never(),
            &sink,
        );
        let watch = async {
            // t01 and t02 are reported before t00 ends; only then is t00 let go.
            while !err.text().contains("[t02] succeeded") {
                tokio::task::yield_now().await;
            }
            assert!(!err.text().contains("[t00]"));
            slow.notify_one();
        };
        let (tally, ()) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(run, watch) })
            .await
            .expect("a hang guard");
        assert_eq!(tally.exit_code(), 0);
        assert!(err.text().ends_with("[t00] succeeded\n"), "{}", err.text());
    }

    #[tokio::test]
    async fn ctrl_c_cancels_what_runs_and_what_waits() {
        let targets = names(5);
        let mut fake = Fake::new(&[]);
        for target in &targets[1..] {
            fake.gates.insert(target.clone(), Arc::new(tokio::sync::Notify::new()));
        }
        let (sink, _, err) = captured(false);
        let (interrupt, interrupted) = tokio::sync::oneshot::channel::<()>();
        let interrupted = async {
            let _ = interrupted.await;
        };
        let run = schedule(
            &targets,
            Plan { at_once: 2, max_errors: None },
            |t, c| fake.start(t, c),
            interrupted,
            core::future::pending(),
            &sink,
        );
        let press = async {
            while !err.text().contains("[t00] succeeded") || fake.running.lock().unwrap().0 < 2 {
                tokio::task::yield_now().await;
            }
            let _ = interrupt.send(());
        };
        let (tally, ()) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(run, press) })
            .await
            .expect("a hang guard");
        assert_eq!(tally.exit_code(), 130);
        let lines = err.text();
        assert_eq!(*fake.started.lock().unwrap(), ["t00", "t01", "t02"]);
        for target in &targets[1..] {
            assert!(lines.contains(&format!("[{target}] cancelled\n")), "{lines}");
        }
    }

    #[tokio::test]
    async fn a_lost_relay_stops_new_starts_and_exits_255() {
        let targets = names(4);
        let mut fake = Fake::new(&[]);
        let gate = Arc::new(tokio::sync::Notify::new());
        fake.gates.insert("t00".into(), Arc::clone(&gate));
        let (sink, _, err) = captured(false);
        let (lose, lost) = tokio::sync::oneshot::channel::<()>();
        let lost = async {
            let _ = lost.await;
            // The running target ends as its channel does when the connection goes.
            gate.notify_one();
        };
        let _ = lose.send(());
        let run = schedule(
            &targets,
            Plan { at_once: 1, max_errors: None },
            |t, c| fake.start(t, c),
            core::future::pending(),
            lost,
            &sink,
        );
        let tally = tokio::time::timeout(Duration::from_secs(10), run).await.expect("a hang guard");
        assert_eq!(tally.exit_code(), 255);
        assert_eq!(*fake.started.lock().unwrap(), ["t00"]);
        assert_eq!(err.text().matches("not started").count(), 3);
    }
}
