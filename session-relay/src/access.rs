//! The gate: whether a user may do an action on a resource, asked at every entry point, and
//! the names of the resources. A refusal says who was refused what and why, and is audited.
//!
//! Resources are named `srn:session:<region>:<account>:<type>/<id>`:
//! - `instance/<id>` for starting sessions and port forwards, and for status;
//! - `session/<id>` for ending a session;
//! - `settings` (no id) for the account's switch.

use session_proto::owned::OwnedOpenKind;
use session_proto::{OpenKind, RefuseReason};

use crate::audit::{Audit, Record, SessionRecord, describe};
use crate::policy::{Context, Decision, Request, decide};
use crate::registry::{Entry, Registry};
use crate::secret::{self, constant_time_eq};
use crate::store::{Principal, Store};

pub use crate::policy::{
    DESCRIBE_INSTANCE_STATUS, MODIFY_SETTINGS, START_PORT_FORWARD, START_SESSION, TERMINATE_SESSION,
};

/// Asks the store's policies; shared by every task.
#[derive(Debug, Clone)]
pub struct Access {
    /// Where the policies, tokens and instances are.
    pub store: Store,
    /// The relay's region, the third part of its resource names.
    pub region: String,
    pub(crate) audit: Audit,
}

/// An Open the gate let through.
#[derive(Debug)]
pub(crate) struct OpenAdmitted {
    /// The task of the agent connection that serves the instance.
    pub(crate) agent: Entry,
    /// What to open there.
    pub(crate) kind: OwnedOpenKind,
    /// The instance's account.
    pub(crate) account: String,
    /// The session it starts, with its new id.
    pub(crate) record: SessionRecord,
}

/// An Open the gate refused: the reason the Refuse carries, and the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenRefused {
    pub(crate) reason: RefuseReason,
    pub(crate) message: String,
}

impl OpenRefused {
    fn new(reason: RefuseReason, message: impl Into<String>) -> OpenRefused {
        OpenRefused { reason, message: message.into() }
    }
}

impl Access {
    /// The gate over `store` for a relay in `region`, auditing refusals to `audit`.
    pub fn new(store: Store, region: &str, audit: Audit) -> Access {
        Access { store, region: region.to_owned(), audit }
    }

    /// The resource name of instance `id` of `account`.
    pub fn instance(&self, account: &str, id: &str) -> String {
        format!("srn:session:{}:{account}:instance/{id}", self.region)
    }

    /// The resource name of session `id` on an instance of `account`.
    pub fn session(&self, account: &str, id: &str) -> String {
        format!("srn:session:{}:{account}:session/{id}", self.region)
    }

    /// The resource name of `account`'s settings.
    pub fn settings(&self, account: &str) -> String {
        format!("srn:session:{}:{account}:settings", self.region)
    }

    /// Whether `who` may do `action` on `resource`, by their token's standing now and the
    /// policies attached to them now. A refusal is audited.
    pub fn check(&self, who: &Principal, action: &str, resource: &str) -> Result<(), String> {
        let request = Request { action, resource, context: Context::Empty };
        self.decide(who, &request).inspect_err(|refused| {
            self.audit.write(&Record {
                actor: Some(who.user.clone()),
                action: Some(action.to_owned()),
                resource: Some(resource.to_owned()),
                ..Record::refused(refused.as_str())
            });
        })
    }

    /// Whether `who` may do `action` in `context`, as a test of resources, without auditing a
    /// refusal: for filtering a list, and for admitting a client's connection before its Opens
    /// name their targets ([`Context::AnyForward`]). The token and policies are read once, for
    /// every resource tested; a token that no longer stands, or a store that fails, allows
    /// nothing.
    pub fn allowed<'a>(
        &self,
        who: &Principal,
        action: &'a str,
        context: Context<'a>,
    ) -> impl Fn(&str) -> bool + 'a {
        let policies = self.policies(who).ok();
        move |resource| {
            let request = Request { action, resource, context };
            policies.as_deref().is_some_and(|p| decide(p, &request).decision.is_allowed())
        }
    }

    /// The policies of `who`, if their token still stands.
    fn policies(&self, who: &Principal) -> Result<Vec<crate::policy::Policy>, String> {
        self.store.token_valid(&who.token).map_err(|e| e.to_string())?;
        self.store.policies_of(&who.user).map_err(|e| e.to_string())
    }

    /// As [`Access::check`] for any request, leaving the audit to the caller. A refusal names
    /// the forward's target, if any, and the condition that decided it, if one did.
    fn decide(&self, who: &Principal, request: &Request<'_>) -> Result<(), String> {
        let policies = self.policies(who)?;
        let verdict = decide(&policies, request);
        let Request { action, resource, context } = request;
        let target = match context {
            // An IPv6 address in brackets, so that its port stands apart.
            Context::Forward { host, port } if host.contains(':') => format!(" for [{host}]:{port}"),
            Context::Forward { host, port } => format!(" for {host}:{port}"),
            Context::Empty | Context::AnyForward => String::new(),
        };
        let conditions = verdict.conditions.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ");
        let why = match verdict.decision {
            Decision::Allow => return Ok(()),
            Decision::ExplicitDeny if conditions.is_empty() => "a policy denies it".to_owned(),
            Decision::ExplicitDeny => format!("a policy denies it (condition {conditions})"),
            Decision::ImplicitDeny if conditions.is_empty() => "no policy allows it".to_owned(),
            Decision::ImplicitDeny => format!("no policy allows it (condition {conditions} does not hold)"),
        };
        Err(format!("{} may not {action} on {resource}{target}: {why}", who.user))
    }

    /// Every check an Open from `who` on their connection to `instance` gets, in order, and the
    /// audit of a refusal: the kind's action; the instance as the store has it now (it may have
    /// been removed, or registered anew with another key and account, since the connection
    /// began); its account's switch; the user's token and policies as they stand now; and an
    /// agent connection, among `registry`'s, that proved the key the store holds now.
    pub(crate) fn admit_open(
        &self,
        who: &Principal,
        instance: &str,
        kind: &OpenKind<'_>,
        registry: &Registry,
    ) -> Result<OpenAdmitted, OpenRefused> {
        let mut record = Record {
            actor: Some(who.user.clone()),
            instance: Some(instance.to_owned()),
            ..Record::refused("")
        };
        let admitted = self.open_checks(who, instance, kind, registry, &mut record);
        if let Err(refused) = &admitted {
            tracing::info!(user = %who.user, %instance, reason = %refused.reason, message = %refused.message, "open refused");
            record.reason = Some(refused.message.clone());
            self.audit.write(&record);
        }
        admitted
    }

    fn open_checks(
        &self,
        who: &Principal,
        instance: &str,
        kind: &OpenKind<'_>,
        registry: &Registry,
        record: &mut Record,
    ) -> Result<OpenAdmitted, OpenRefused> {
        use RefuseReason as Why;
        // A forward's target is what its conditions (`session:ForwardHost`, `...Port`) see.
        let (action, context) = match kind {
            OpenKind::Shell { .. } | OpenKind::Exec { .. } => (START_SESSION, Context::Empty),
            OpenKind::Forward { host, port } => (START_PORT_FORWARD, Context::Forward { host, port: *port }),
            _ => return Err(OpenRefused::new(Why::UNKNOWN_KIND, "")),
        };
        record.action = Some(action.to_owned());
        // A refusal's record says what was asked for: for a forward, where to.
        record.kind = Some(describe(kind));
        let registered = match self.store.instance(instance) {
            Ok(Some(registered)) => registered,
            Ok(None) => {
                return Err(OpenRefused::new(
                    Why::UNAVAILABLE,
                    format!("instance {instance} is no longer registered"),
                ));
            }
            Err(e) => return Err(OpenRefused::new(Why::UNAVAILABLE, e.to_string())),
        };
        let account = registered.account;
        let resource = self.instance(&account, instance);
        record.resource = Some(resource.clone());
        match self.store.sessions_enabled(&account) {
            Ok(true) => {}
            Ok(false) => {
                let message = format!("session management is turned off for account {account}");
                return Err(OpenRefused::new(Why::PROHIBITED, message));
            }
            Err(e) => return Err(OpenRefused::new(Why::UNAVAILABLE, e.to_string())),
        }
        let request = Request { action, resource: &resource, context };
        self.decide(who, &request).map_err(|message| OpenRefused::new(Why::PROHIBITED, message))?;
        let serving = |e: &Entry| e.online && constant_time_eq(&e.key, &registered.public_key);
        let Some(agent) = registry.get(instance).filter(serving) else {
            let message = format!("instance {instance} is not connected to the relay");
            return Err(OpenRefused::new(Why::UNAVAILABLE, message));
        };
        let owned = OwnedOpenKind::new(kind).map_err(|_| OpenRefused::new(Why::UNKNOWN_KIND, ""))?;
        let suffix = secret::random::<8>()
            .map_err(|_| OpenRefused::new(Why::RESOURCE_SHORTAGE, "no randomness for a session id"))?;
        let id = format!("{}-{}", who.user, hex::encode(suffix));
        let record = SessionRecord::start(id, &who.user, instance, (action, resource), kind);
        Ok(OpenAdmitted { agent, kind: owned, account, record })
    }
}
