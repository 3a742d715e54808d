//! How each target ended, how the run's lines say it, and the exit code of the whole run.

use serde_json::{Value, json};
use session_client::{Error, Outcome};
use session_proto::{ExitStatus, RefuseReason};

/// Exit code: every target succeeded.
pub(crate) const EXIT_OK: i32 = 0;
/// Exit code: every target was reached, and some failed or timed out.
pub(crate) const EXIT_FAILED: i32 = 1;
/// Exit code: the command line is wrong, or it selects no target (as clap's usage errors).
pub(crate) const EXIT_USAGE: i32 = 2;
/// Exit code: some target was unreachable, refused, or not started (`--max-errors`).
pub(crate) const EXIT_UNREACHED: i32 = 3;
/// Exit code: Ctrl-C (128 + SIGINT).
pub(crate) const EXIT_CANCELLED: i32 = 130;
/// Exit code: the relay was not reached, or the connection to it was lost for good.
pub(crate) const EXIT_NO_RELAY: i32 = 255;

/// How one target ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// The command exited 0.
    Succeeded,
    /// The command ran, and ended otherwise.
    Failed(Failure),
    /// `--timeout` passed first: the channel was closed, and the agent ended the process.
    TimedOut,
    /// The relay could not reach the instance (not registered, not connected), or the
    /// connection to the relay was lost: the relay's or the client's words.
    Unreachable(String),
    /// The relay refused it (a policy), in its words.
    Refused(String),
    /// Ctrl-C came before it ended (or started).
    Cancelled,
    /// `--max-errors` was passed, or the connection lost, before its turn came.
    NotStarted,
}

/// How a command that ran did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// It exited with this code.
    Code(u32),
    /// A signal killed it: its name.
    Signal(String),
    /// It ended with no exit status, or never started: why.
    Ended(String),
}

impl Status {
    /// How a channel's `open_on` ended, as a target's status.
    pub(crate) fn of(result: Result<Outcome, Error>) -> Status {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(Error::OpenRefused { reason, message }) => {
                return match reason {
                    RefuseReason::UNAVAILABLE => Status::Unreachable(message),
                    RefuseReason::PROHIBITED => Status::Refused(message),
                    RefuseReason::SPAWN_FAILED => {
                        Status::Failed(Failure::Ended(format!("the command could not start: {message}")))
                    }
                    other if message.is_empty() => Status::Refused(other.to_string()),
                    other => Status::Refused(format!("{other}: {message}")),
                };
            }
            Err(other) => return Status::Unreachable(other.to_string()),
        };
        match (outcome.exit, outcome.reason) {
            (Some(ExitStatus::Code(0)), _) => Status::Succeeded,
            (Some(ExitStatus::Code(code)), _) => Status::Failed(Failure::Code(code)),
            (Some(ExitStatus::Signal { signal, .. }), _) => {
                let name = signal.name().map_or_else(|| signal.0.to_string(), str::to_owned);
                Status::Failed(Failure::Signal(name))
            }
            (None, reason) => Status::Failed(Failure::Ended(Error::Ended { reason }.to_string())),
        }
    }

    /// Its name in a JSON record.
    fn key(&self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed(_) => "failed",
            Status::TimedOut => "timed_out",
            Status::Unreachable(_) => "unreachable",
            Status::Refused(_) => "refused",
            Status::Cancelled => "cancelled",
            Status::NotStarted => "not_started",
        }
    }

    /// Its place in [`Tally`]'s counts and [`WORDS`].
    fn index(&self) -> usize {
        match self {
            Status::Succeeded => 0,
            Status::Failed(_) => 1,
            Status::TimedOut => 2,
            Status::Unreachable(_) => 3,
            Status::Refused(_) => 4,
            Status::Cancelled => 5,
            Status::NotStarted => 6,
        }
    }

    /// Its line on stderr: `[web-1] failed (exit code 2)`. The brackets tell it apart from the
    /// target's own stderr lines, which are `web-1: ...`.
    pub(crate) fn line(&self, target: &str) -> String {
        let words = match self {
            Status::Failed(Failure::Code(code)) => format!("failed (exit code {code})"),
            Status::Failed(Failure::Signal(name)) => format!("failed (signal {name})"),
            Status::Failed(Failure::Ended(why)) => format!("failed ({why})"),
            Status::Unreachable(why) | Status::Refused(why) if !why.is_empty() => {
                format!("{} ({why})", WORDS[self.index()])
            }
            other => WORDS[other.index()].to_owned(),
        };
        format!("[{target}] {words}\n")
    }

    /// Its JSON record: `{"target", "status"}`, with `exit_code`, `signal` or `message` when
    /// there is one, and the relay's `session` id when the channel was accepted.
    pub(crate) fn record(&self, target: &str, session: Option<&str>) -> Value {
        let mut record = json!({"target": target, "status": self.key()});
        match self {
            Status::Failed(Failure::Code(code)) => record["exit_code"] = json!(code),
            Status::Failed(Failure::Signal(name)) => record["signal"] = json!(name),
            Status::Failed(Failure::Ended(why)) | Status::Unreachable(why) | Status::Refused(why) => {
                record["message"] = json!(why);
            }
            _ => {}
        }
        if let Some(session) = session {
            record["session"] = json!(session);
        }
        record
    }
}

/// Each status as the summary names it, in the order of [`Status::index`].
const WORDS: [&str; 7] =
    ["succeeded", "failed", "timed out", "unreachable", "refused", "cancelled", "not started"];

/// What the run came to: how many targets ended each way, and whether it was cut short.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    counts: [usize; 7],
    /// Ctrl-C came.
    pub(crate) interrupted: bool,
    /// The connection to the relay was lost for good.
    pub(crate) lost: bool,
}

impl Tally {
    pub(crate) fn add(&mut self, status: &Status) {
        if let Some(count) = self.counts.get_mut(status.index()) {
            *count += 1;
        }
    }

    fn targets(&self) -> usize {
        self.counts.iter().sum()
    }

    /// The run's exit code, the gravest first: Ctrl-C, then the relay lost, then a target not
    /// reached, then one that failed.
    pub(crate) fn exit_code(&self) -> i32 {
        let [_, failed, timed_out, unreachable, refused, cancelled, not_started] = self.counts;
        if self.interrupted || cancelled > 0 {
            EXIT_CANCELLED
        } else if self.lost {
            EXIT_NO_RELAY
        } else if unreachable + refused + not_started > 0 {
            EXIT_UNREACHED
        } else if failed + timed_out > 0 {
            EXIT_FAILED
        } else {
            EXIT_OK
        }
    }

    /// The last line on stderr: `20 targets: 17 succeeded, 2 failed, 1 unreachable`.
    pub(crate) fn line(&self) -> String {
        let counts = self.counts.iter().zip(WORDS).filter(|&(&count, _)| count > 0);
        let parts: Vec<String> = counts.map(|(count, words)| format!("{count} {words}")).collect();
        let targets = self.targets();
        let noun = if targets == 1 { "target" } else { "targets" };
        let lost = if self.lost { "; the connection to the relay was lost" } else { "" };
        format!("{targets} {noun}: {}{lost}\n", parts.join(", "))
    }

    /// The last JSON record: `{"summary": {"targets": 20, "succeeded": 17, ...}, "fleet": id,
    /// "exit_code": 1}`.
    pub(crate) fn record(&self, fleet: &str) -> Value {
        let mut summary = json!({"targets": self.targets()});
        let keys = ["succeeded", "failed", "timed_out", "unreachable", "refused", "cancelled", "not_started"];
        for (key, count) in keys.into_iter().zip(self.counts) {
            summary[key] = json!(count);
        }
        json!({"summary": summary, "fleet": fleet, "exit_code": self.exit_code()})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_proto::{EndReason, Signal};

    fn ended(exit: Option<ExitStatus>) -> Result<Outcome, Error> {
        Ok(Outcome { exit, output_closed: false, reason: None })
    }

    fn refused(reason: RefuseReason, message: &str) -> Result<Outcome, Error> {
        Err(Error::OpenRefused { reason, message: message.to_owned() })
    }

    #[test]
    fn a_channels_end_is_a_targets_status() {
        let signal = Some(ExitStatus::Signal { signal: Signal::KILL, core_dumped: false });
        let lost = Outcome {
            exit: None,
            output_closed: false,
            reason: Some((EndReason::INSTANCE_LOST, "instance lost".to_owned())),
        };
        let cases = [
            (ended(Some(ExitStatus::Code(0))), "[w] succeeded\n"),
            (ended(Some(ExitStatus::Code(3))), "[w] failed (exit code 3)\n"),
            (ended(signal), "[w] failed (signal KILL)\n"),
            (Ok(lost), "[w] failed (the session ended: instance lost)\n"),
            (
                refused(RefuseReason::UNAVAILABLE, "unknown instance w"),
                "[w] unreachable (unknown instance w)\n",
            ),
            (refused(RefuseReason::PROHIBITED, "no policy allows it"), "[w] refused (no policy allows it)\n"),
            (refused(RefuseReason::RESOURCE_SHORTAGE, ""), "[w] refused (RESOURCE_SHORTAGE)\n"),
            (
                refused(RefuseReason::SPAWN_FAILED, "no shell"),
                "[w] failed (the command could not start: no shell)\n",
            ),
            (Err(Error::Closed), "[w] unreachable (the session is over)\n"),
        ];
        for (result, line) in cases {
            assert_eq!(Status::of(result).line("w"), line);
        }
        assert_eq!(Status::TimedOut.line("w"), "[w] timed out\n");
        assert_eq!(Status::NotStarted.line("w"), "[w] not started\n");
        assert_eq!(Status::Unreachable(String::new()).line("w"), "[w] unreachable\n");
    }

    #[test]
    fn json_records_name_the_status_and_what_it_carries() {
        let record = Status::Failed(Failure::Code(2)).record("w", Some("tester-0123456789abcdef"));
        assert_eq!(
            record,
            json!({"target": "w", "status": "failed", "exit_code": 2, "session": "tester-0123456789abcdef"})
        );
        let record = Status::Failed(Failure::Signal("TERM".into())).record("w", None);
        assert_eq!(record, json!({"target": "w", "status": "failed", "signal": "TERM"}));
        let record = Status::Refused("denied".into()).record("w", None);
        assert_eq!(record, json!({"target": "w", "status": "refused", "message": "denied"}));
        assert_eq!(Status::TimedOut.record("w", None), json!({"target": "w", "status": "timed_out"}));
    }

    fn tally(statuses: &[Status]) -> Tally {
        let mut tally = Tally::default();
        for status in statuses {
            tally.add(status);
        }
        tally
    }

    #[test]
    fn the_exit_code_is_the_gravest_outcome() {
        let failed = Status::Failed(Failure::Code(1));
        let unreachable = Status::Unreachable("x".into());
        assert_eq!(tally(&[Status::Succeeded, Status::Succeeded]).exit_code(), 0);
        assert_eq!(tally(&[Status::Succeeded, failed.clone()]).exit_code(), 1);
        assert_eq!(tally(&[Status::Succeeded, Status::TimedOut]).exit_code(), 1);
        assert_eq!(tally(&[failed.clone(), unreachable.clone()]).exit_code(), 3);
        assert_eq!(tally(&[failed.clone(), Status::Refused("x".into())]).exit_code(), 3);
        assert_eq!(tally(&[Status::Succeeded, Status::NotStarted]).exit_code(), 3);
        let mut lost = tally(&[unreachable.clone(), Status::NotStarted]);
        lost.lost = true;
        assert_eq!(lost.exit_code(), 255);
        lost.interrupted = true;
        assert_eq!(lost.exit_code(), 130);
        assert_eq!(tally(&[failed, unreachable, Status::Cancelled]).exit_code(), 130);
        // No target at all is a usage error before any tally; an empty one would be a success.
        assert_eq!(Tally::default().exit_code(), 0);
    }

    #[test]
    fn the_summary_counts_what_happened_and_only_that() {
        let statuses = [
            Status::Succeeded,
            Status::Succeeded,
            Status::Failed(Failure::Code(1)),
            Status::Unreachable("x".into()),
            Status::NotStarted,
        ];
        let tally = tally(&statuses);
        assert_eq!(tally.line(), "5 targets: 2 succeeded, 1 failed, 1 unreachable, 1 not started\n");
        assert_eq!(
            tally.record("tester-0123456789abcdef"),
            json!({
                "summary": {"targets": 5, "succeeded": 2, "failed": 1, "timed_out": 0, "unreachable": 1,
                            "refused": 0, "cancelled": 0, "not_started": 1},
                "fleet": "tester-0123456789abcdef",
                "exit_code": 3,
            })
        );
        let mut one = self::tally(&[Status::Succeeded]);
        assert_eq!(one.line(), "1 target: 1 succeeded\n");
        one.lost = true;
        assert_eq!(one.line(), "1 target: 1 succeeded; the connection to the relay was lost\n");
    }
}
