//! The relay's one-message answers, as JSON: the instances a user may see, their sessions, and
//! the outcome of a terminate or a switch.

use serde::Serialize;

/// `/v1/instances`.
#[derive(Debug, Serialize)]
pub(crate) struct Instances {
    pub(crate) instances: Vec<InstanceStatus>,
}

/// One instance as a user may see it.
#[derive(Debug, Serialize)]
pub(crate) struct InstanceStatus {
    pub(crate) name: String,
    /// `online`, `reconnecting`, `elsewhere` or `offline`.
    pub(crate) status: &'static str,
    /// For `elsewhere`: the address of the relay that holds the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) relay: Option<String>,
    pub(crate) agent_version: Option<String>,
    /// Unix seconds.
    pub(crate) last_seen: Option<i64>,
    pub(crate) labels: Labels,
}

/// The relay's three labels, then those the instance's agent gave, in order of key: an agent
/// cannot give one of the relay's keys (spec 11.1), so none hides another.
#[derive(Debug, Serialize)]
pub(crate) struct Labels {
    pub(crate) region: String,
    pub(crate) account: String,
    pub(crate) name: String,
    #[serde(flatten)]
    pub(crate) agent: crate::labels::Labels,
}

/// `/v1/sessions`.
#[derive(Debug, Serialize)]
pub(crate) struct Sessions {
    pub(crate) sessions: Vec<SessionStatus>,
}

/// One session in progress.
#[derive(Debug, Serialize)]
pub(crate) struct SessionStatus {
    pub(crate) id: String,
    pub(crate) instance: String,
    pub(crate) kind: String,
    /// Unix seconds.
    pub(crate) started: i64,
}

/// `/v1/sessions/<id>/terminate`.
#[derive(Debug, Serialize)]
pub(crate) struct Terminated {
    pub(crate) terminated: String,
}

/// `/v1/settings/<account>?sessions=on|off`.
#[derive(Debug, Serialize)]
pub(crate) struct Switched {
    pub(crate) account: String,
    pub(crate) sessions_enabled: bool,
}

/// `/v1/settings/<account>?recording=off|metadata|full`.
#[derive(Debug, Serialize)]
pub(crate) struct RecordingSet {
    pub(crate) account: String,
    pub(crate) recording: &'static str,
    pub(crate) input: bool,
}

/// An answer, serialized once.
#[derive(Debug)]
pub(crate) struct Answer(pub(crate) String);

impl Answer {
    pub(crate) fn of(value: &impl Serialize) -> Answer {
        // These types always serialize.
        Answer(serde_json::to_string(value).unwrap_or_default())
    }
}
