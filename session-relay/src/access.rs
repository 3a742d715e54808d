//! The gate: whether a user may do an action on a resource, asked at every entry point, and
//! the names of the resources. A refusal says who was refused what and why, and is audited.
//!
//! Resources are named `srn:session:<region>:<account>:<type>/<id>`:
//! - `instance/<id>` for starting sessions and port forwards, for files, and for status;
//! - `session/<id>` for ending a session;
//! - `settings` (no id) for the account's switch.

use session_proto::owned::OwnedOpenKind;
use session_proto::{FileRequest, OpenKind, RefuseReason};

use crate::audit::{Audit, Record, SessionRecord, describe};
use crate::policy::{Context, Decision, Labels, Policy, Request, decide, may_hold_client, show_path};
use crate::recording::{self, Recorder, Recordings};
use crate::registry::{Entry, Registry};
use crate::secret::{self, constant_time_eq};
use crate::store::{Principal, Store};

pub use crate::policy::{
    DESCRIBE_INSTANCE_STATUS, FileAction, LIST_FILES, MODIFY_SETTINGS, READ_FILE, READ_RECORDING,
    START_PORT_FORWARD, START_SESSION, TERMINATE_SESSION, WRITE_FILE,
};

/// Asks the store's policies; shared by every task.
#[derive(Debug, Clone)]
pub struct Access {
    /// Where the policies, tokens and instances are.
    pub store: Store,
    /// The relay's region, the third part of its resource names.
    pub region: String,
    pub(crate) audit: Audit,
    /// Where sessions are recorded (spec 12.12); nowhere by default.
    pub(crate) recordings: Recordings,
    /// This relay's id in the store, random at each start: a restarted relay is another one.
    pub(crate) relay: String,
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
    /// Its recording, for a shell or command its account records in full; inert otherwise.
    pub(crate) recording: Recorder,
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
        let relay = match secret::random::<8>() {
            Ok(bytes) => hex::encode(bytes),
            // Only told apart from other relays on the store: the process and the time will do.
            Err(_) => format!("{:08x}{:08x}", std::process::id(), crate::store::unix_now()),
        };
        Access { store, region: region.to_owned(), audit, recordings: Recordings::default(), relay }
    }

    /// The same gate, recording sessions to `recordings`: each session's audit record goes
    /// there too, and ends its recording.
    pub fn with_recordings(mut self, recordings: Recordings) -> Access {
        self.audit = self.audit.with_recordings(recordings.tap());
        self.recordings = recordings;
        self
    }

    /// Where sessions are recorded.
    pub fn recordings(&self) -> &Recordings {
        &self.recordings
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
        let request = Request::new(action, resource, Context::Empty);
        self.decide(who, &request).inspect_err(|refused| {
            self.audit.write(&Record {
                actor: Some(who.user.clone()),
                action: Some(action.to_owned()),
                resource: Some(resource.to_owned()),
                ..Record::refused(refused.as_str())
            });
        })
    }

    /// As [`Access::check`], for a request with condition keys (`context`), on an instance
    /// with `labels` when it is on one.
    pub fn check_in(
        &self,
        who: &Principal,
        action: &str,
        resource: &str,
        context: Context<'_>,
        labels: Option<&Labels>,
    ) -> Result<(), String> {
        let request = Request { action, resource, context, labels };
        self.decide(who, &request).inspect_err(|refused| {
            self.audit.write(&Record {
                actor: Some(who.user.clone()),
                action: Some(action.to_owned()),
                resource: Some(resource.to_owned()),
                ..Record::refused(refused.as_str())
            });
        })
    }

    /// Whether `who` may hold a `/v1/client` connection to instance `resource`, which has
    /// `labels` (spec 11.4): whether StartSession, or StartPortForward or a file action for
    /// some target or path not named yet, could be allowed. Each Open is checked again on its
    /// own. The refusal, audited, is the one for StartSession, as it was before forwards and
    /// files could admit.
    pub fn check_client(&self, who: &Principal, resource: &str, labels: &Labels) -> Result<(), String> {
        if self.policies(who).is_ok_and(|policies| may_hold_client(&policies, resource, labels)) {
            return Ok(());
        }
        self.check_in(who, START_SESSION, resource, Context::Empty, Some(labels))
    }

    /// Whether `who` may do file `action` on instance `resource` for `path`, or for no path
    /// (the home directory: then no `session:FilePath` condition holds). Not audited: the
    /// caller audits the refusal with what was asked, as `Access::admit_open` does. The
    /// refusal names the path after the resource, as [`show_path`] shows it.
    pub fn decide_file(
        &self,
        who: &Principal,
        action: FileAction,
        (resource, labels): (&str, &Labels),
        path: Option<&[u8]>,
    ) -> Result<(), String> {
        let request = Request::new(action.name(), resource, Context::file(path)).on(labels);
        self.decide(who, &request)
    }

    /// Whether `who` may rename `from` to `to` on instance `resource`: WriteFile for both paths,
    /// so that a rename cannot move a file out of (or into) where its user may write. The
    /// source is asked first; the refusal names the path refused. Not audited, as
    /// [`Access::decide_file`].
    pub fn decide_rename(
        &self,
        who: &Principal,
        (resource, labels): (&str, &Labels),
        from: &[u8],
        to: &[u8],
    ) -> Result<(), String> {
        let policies = self.policies(who)?;
        for path in [from, to] {
            let request = Request::new(FileAction::Write.name(), resource, Context::File { path }).on(labels);
            refusal(&who.user, &policies, &request)?;
        }
        Ok(())
    }

    /// Whether `who` may do `action` in `context`, as a test of resources (each with its
    /// instance's labels, for a resource that is an instance), without auditing a refusal: for
    /// filtering a list, or for asking whether an action could be allowed before an Open names
    /// its target or path ([`Context::AnyForward`], [`Context::AnyFile`]). The token and
    /// policies are read once, for every resource tested; a token that no longer stands, or a
    /// store that fails, allows nothing.
    pub fn allowed<'a>(
        &self,
        who: &Principal,
        action: &'a str,
        context: Context<'a>,
    ) -> impl Fn(&str, Option<&Labels>) -> bool + 'a {
        let policies = self.policies(who).ok();
        move |resource, labels| {
            let request = Request { action, resource, context, labels };
            policies.as_deref().is_some_and(|p| decide(p, &request).decision.is_allowed())
        }
    }

    /// As [`Access::allowed`], each test with a context of its own: for a list whose items each
    /// have their own condition keys (recordings, by their session's user).
    pub fn allowed_each<'a>(
        &self,
        who: &Principal,
        action: &'a str,
    ) -> impl Fn(&str, Context<'_>, Option<&Labels>) -> bool + 'a {
        let policies = self.policies(who).ok();
        move |resource, context, labels| {
            let request = Request { action, resource, context, labels };
            policies.as_deref().is_some_and(|p| decide(p, &request).decision.is_allowed())
        }
    }

    /// The policies of `who`, if their token still stands.
    fn policies(&self, who: &Principal) -> Result<Vec<Policy>, String> {
        self.store.token_valid(&who.token).map_err(|e| e.to_string())?;
        self.store.policies_of(&who.user).map_err(|e| e.to_string())
    }

    /// As [`Access::check`] for any request, leaving the audit to the caller.
    fn decide(&self, who: &Principal, request: &Request<'_>) -> Result<(), String> {
        refusal(&who.user, &self.policies(who)?, request)
    }

    /// Every check an Open from `who` on their connection to `instance` gets, in order, and the
    /// audit of a refusal: the kind's action; the instance as the store has it now (it may have
    /// been removed, or registered anew with another key and account, since the connection
    /// began); its account's switch; the user's token and policies as they stand now, with the
    /// instance's labels as its agent last gave them; and an agent connection, among
    /// `registry`'s, that proved the key the store holds now. On a fleet connection (`fleet`,
    /// its id), whose Open names the instance, that it is registered comes first (spec 11.6);
    /// the records, a refusal's and the session's, carry the fleet's id.
    pub(crate) fn admit_open(
        &self,
        who: &Principal,
        instance: &str,
        kind: &OpenKind<'_>,
        registry: &Registry,
        fleet: Option<&str>,
    ) -> Result<OpenAdmitted, OpenRefused> {
        let mut record = Record {
            actor: Some(who.user.clone()),
            instance: Some(instance.to_owned()),
            fleet: fleet.map(str::to_owned),
            // What was asked for, said even by a refusal that comes before the policy's checks.
            kind: Some(describe(kind)),
            ..Record::refused("")
        };
        let admitted = match fleet {
            Some(_) => self
                .fleet_checks(instance)
                .and_then(|()| self.open_checks(who, instance, kind, registry, &mut record)),
            None => self.open_checks(who, instance, kind, registry, &mut record),
        };
        let admitted = admitted.map(|mut admitted| {
            admitted.record.fleet = fleet.map(str::to_owned);
            admitted
        });
        if let Err(refused) = &admitted {
            tracing::info!(user = %who.user, %instance, reason = %refused.reason, message = %refused.message, "open refused");
            record.reason = Some(refused.message.clone());
            self.audit.write(&record);
        }
        admitted
    }

    /// The check an Open on a fleet connection gets before the others: the instance it names is
    /// registered. Its name came from the peer, not from an admitted handshake.
    fn fleet_checks(&self, instance: &str) -> Result<(), OpenRefused> {
        match self.store.instance(instance) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                Err(OpenRefused::new(RefuseReason::UNAVAILABLE, format!("unknown instance {instance}")))
            }
            Err(e) => Err(OpenRefused::new(RefuseReason::UNAVAILABLE, e.to_string())),
        }
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
        // A forward's target is what its conditions (`session:ForwardHost`, `...Port`) see, a
        // file request's path what `session:FilePath` sees (spec 11.6).
        let ask = match kind {
            OpenKind::Shell { .. } | OpenKind::Exec { .. } => Ask::One(START_SESSION, Context::Empty),
            OpenKind::Forward { host, port } => {
                Ask::One(START_PORT_FORWARD, Context::Forward { host, port: *port })
            }
            OpenKind::File { request } => match *request {
                FileRequest::Home => Ask::One(LIST_FILES, Context::file(None)),
                FileRequest::Stat { path } | FileRequest::List { path } => {
                    Ask::One(LIST_FILES, Context::file(Some(path)))
                }
                FileRequest::Read { path, .. } => Ask::One(READ_FILE, Context::file(Some(path))),
                FileRequest::Write { path, .. }
                | FileRequest::Mkdir { path, .. }
                | FileRequest::Remove { path }
                | FileRequest::Chmod { path, .. } => Ask::One(WRITE_FILE, Context::file(Some(path))),
                FileRequest::Rename { from, to, .. } => Ask::Rename { from, to },
                _ => return Err(OpenRefused::new(Why::UNKNOWN_KIND, "")),
            },
            _ => return Err(OpenRefused::new(Why::UNKNOWN_KIND, "")),
        };
        let action = match ask {
            Ask::One(action, _) => action,
            Ask::Rename { .. } => WRITE_FILE,
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
        let labels = &registered.labels;
        let decided = match ask {
            Ask::One(action, context) => {
                self.decide(who, &Request::new(action, &resource, context).on(labels))
            }
            Ask::Rename { from, to } => self.decide_rename(who, (&resource, labels), from, to),
        };
        decided.map_err(|message| OpenRefused::new(Why::PROHIBITED, message))?;
        // A shell or command to be recorded in full, while recording is required and failing,
        // is not started (spec 11.6, 12.12): it would run unrecorded.
        let recorded = self
            .recordings
            .admit(&account, kind)
            .map_err(|message| OpenRefused::new(Why::UNAVAILABLE, message))?;
        let serving = |e: &Entry| e.online && constant_time_eq(&e.key, &registered.public_key);
        let Some(agent) = registry.get(instance).filter(serving) else {
            // Relays do not forward to each other yet (spec C.3): the client is told where to go.
            let message = match self.store.agent_elsewhere(instance, &self.relay) {
                Ok(Some(address)) => {
                    format!("instance {instance} is connected to the relay at {address}, not this one")
                }
                _ => format!("instance {instance} is not connected to the relay"),
            };
            return Err(OpenRefused::new(Why::UNAVAILABLE, message));
        };
        let owned = OwnedOpenKind::new(kind).map_err(|_| OpenRefused::new(Why::UNKNOWN_KIND, ""))?;
        let suffix = secret::random::<8>()
            .map_err(|_| OpenRefused::new(Why::RESOURCE_SHORTAGE, "no randomness for a session id"))?;
        let id = format!("{}-{}", who.user, hex::encode(suffix));
        let mut record = SessionRecord::start(id, &who.user, instance, (action, resource), kind);
        record.recording = recorded.map(|settings| settings.mode);
        let recording = recorded.map_or_else(Recorder::default, |settings| {
            let session = recording::Session {
                id: &record.id,
                user: &who.user,
                instance,
                account: &account,
                kind,
                describe: record.kind(),
            };
            self.recordings.recorder(&session, settings)
        });
        Ok(OpenAdmitted { agent, kind: owned, account, record, recording })
    }
}

/// What an Open asks the policies: one action in a context, or a rename's two paths.
enum Ask<'a> {
    One(&'static str, Context<'a>),
    Rename { from: &'a [u8], to: &'a [u8] },
}

/// What `policies` say of `user`'s `request`, in words when they refuse it: who, what, on
/// what, for which forward target or path, if any, and the condition that decided, if one did.
fn refusal(user: &str, policies: &[Policy], request: &Request<'_>) -> Result<(), String> {
    let verdict = decide(policies, request);
    let Request { action, resource, context, .. } = request;
    let target = match context {
        // An IPv6 address in brackets, so that its port stands apart.
        Context::Forward { host, port } if host.contains(':') => format!(" for [{host}]:{port}"),
        Context::Forward { host, port } => format!(" for {host}:{port}"),
        Context::File { path } => format!(" for {}", show_path(path)),
        Context::Session { owner } => format!(" for a session of {owner}"),
        Context::Empty | Context::AnyForward | Context::AnyFile => String::new(),
    };
    let conditions = verdict.conditions.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ");
    let why = match verdict.decision {
        Decision::Allow => return Ok(()),
        Decision::ExplicitDeny if conditions.is_empty() => "a policy denies it".to_owned(),
        Decision::ExplicitDeny => format!("a policy denies it (condition {conditions})"),
        Decision::ImplicitDeny if conditions.is_empty() => "no policy allows it".to_owned(),
        Decision::ImplicitDeny => format!("no policy allows it (condition {conditions} does not hold)"),
    };
    Err(format!("{user} may not {action} on {resource}{target}: {why}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audit::Audit;

    /// An instance without labels.
    static NONE: Labels = Labels::new();

    /// A gate whose store has user alice, with `statements` as her one policy, and her
    /// principal.
    fn gate(statements: &str) -> (Access, Principal) {
        let store = Store::in_memory().expect("a store");
        store.add_user("alice").expect("a user");
        let document = format!(r#"{{"Version": "1", "Statement": [{statements}]}}"#);
        store.put_policy("files", &document).expect("a valid policy");
        store.attach("alice", "files").expect("attached");
        let (token, _) = store.create_token("alice", Duration::from_secs(3600)).expect("a token");
        let who = store.authenticate(&token).expect("the token stands");
        (Access::new(store, "local", Audit::log_only()), who)
    }

    const LOGS: &str = r#"{"Effect": "Allow", "Action": ["session:ListFiles", "session:ReadFile"],
        "Resource": "*:instance/web-*", "Condition": {"StringLike": {"session:FilePath": "/var/log/*"}}}"#;
    const APP: &str = r#"{"Effect": "Allow", "Action": "session:WriteFile", "Resource": "*:instance/web-1",
        "Condition": {"StringLike": {"session:FilePath": "/srv/app/*"}}}"#;
    const NO_SECRETS: &str = r#"{"Effect": "Deny", "Action": "session:*File*", "Resource": "*",
        "Condition": {"StringLike": {"session:FilePath": "*/secret*"}}}"#;

    #[test]
    fn a_file_refusal_names_the_path_after_the_resource() {
        let (access, who) = gate(&format!("{LOGS}, {APP}, {NO_SECRETS}"));
        let web_1 = access.instance("default", "web-1");
        assert_eq!(
            access.decide_file(&who, FileAction::Read, (&web_1, &NONE), Some(b"/var/log/syslog")),
            Ok(())
        );
        assert_eq!(
            access.decide_file(&who, FileAction::Read, (&web_1, &NONE), Some(b"/etc/shadow")),
            Err("alice may not session:ReadFile on srn:session:local:default:instance/web-1 for /etc/shadow: \
                 no policy allows it (condition StringLike session:FilePath /var/log/* does not hold)"
                .to_owned())
        );
        // No statement speaks of the action on the resource: no condition to name.
        let web_2 = access.instance("default", "web-2");
        assert_eq!(
            access.decide_file(&who, FileAction::Write, (&web_2, &NONE), Some(b"/srv/app/x")),
            Err("alice may not session:WriteFile on srn:session:local:default:instance/web-2 for /srv/app/x: \
                 no policy allows it"
                .to_owned())
        );
        assert_eq!(
            access.decide_file(&who, FileAction::Read, (&web_1, &NONE), Some(b"/var/log/secret.log")),
            Err("alice may not session:ReadFile on srn:session:local:default:instance/web-1 for \
                 /var/log/secret.log: a policy denies it (condition StringLike session:FilePath */secret*)"
                .to_owned())
        );
    }

    #[test]
    fn a_path_that_is_not_utf8_is_decided_as_bytes_and_shown_escaped() {
        let (access, who) = gate(&format!("{LOGS}, {NO_SECRETS}"));
        let web_1 = access.instance("default", "web-1");
        assert_eq!(
            access.decide_file(&who, FileAction::Read, (&web_1, &NONE), Some(b"/var/log/\xff\xfe")),
            Ok(())
        );
        let refused =
            access.decide_file(&who, FileAction::Read, (&web_1, &NONE), Some(b"/var/log/secret\xff\nx"));
        let refused = refused.expect_err("a secret");
        assert!(refused.contains(" for /var/log/secret\\xff\\x0ax: a policy denies it"), "{refused}");
        let refused = access
            .decide_file(&who, FileAction::Read, (&web_1, &NONE), Some(b"/VAR/log/x"))
            .expect_err("case");
        assert!(refused.contains(" for /VAR/log/x: no policy allows it"), "{refused}");
    }

    #[test]
    fn the_home_directory_is_refused_when_every_grant_names_paths() {
        let (access, who) = gate(LOGS);
        let web_1 = access.instance("default", "web-1");
        assert_eq!(
            access.decide_file(&who, FileAction::List, (&web_1, &NONE), None),
            Err("alice may not session:ListFiles on srn:session:local:default:instance/web-1: \
                 no policy allows it"
                .to_owned())
        );
        let (access, who) = gate(r#"{"Effect": "Allow", "Action": "session:ListFiles", "Resource": "*"}"#);
        assert_eq!(access.decide_file(&who, FileAction::List, (&web_1, &NONE), None), Ok(()));
    }

    #[test]
    fn a_rename_needs_write_on_both_paths_and_names_the_one_refused() {
        let (access, who) = gate(&format!("{APP}, {NO_SECRETS}"));
        let web_1 = access.instance("default", "web-1");
        assert_eq!(access.decide_rename(&who, (&web_1, &NONE), b"/srv/app/a", b"/srv/app/b"), Ok(()));
        let out = access
            .decide_rename(&who, (&web_1, &NONE), b"/srv/app/a", b"/tmp/a")
            .expect_err("out of the app");
        assert!(out.starts_with("alice may not session:WriteFile on "), "{out}");
        assert!(out.contains("web-1 for /tmp/a: no policy allows it"), "{out}");
        let into = access
            .decide_rename(&who, (&web_1, &NONE), b"/etc/passwd", b"/srv/app/passwd")
            .expect_err("into it");
        assert!(into.contains("web-1 for /etc/passwd: no policy allows it"), "{into}");
        let denied = access
            .decide_rename(&who, (&web_1, &NONE), b"/srv/app/a", b"/srv/app/secret")
            .expect_err("denied");
        assert!(denied.contains("for /srv/app/secret: a policy denies it"), "{denied}");
        // Writing each path is what is asked, not reading or listing.
        let (reader, who) = gate(LOGS);
        assert!(reader.decide_rename(&who, (&web_1, &NONE), b"/var/log/a", b"/var/log/b").is_err());
    }

    #[test]
    fn file_grants_alone_admit_a_client_connection() {
        let (access, who) = gate(LOGS);
        let web_1 = access.instance("default", "web-1");
        assert_eq!(access.check_client(&who, &web_1, &NONE), Ok(()));
        // Elsewhere, the refusal is the one for StartSession, as before.
        let db_1 = access.instance("default", "db-1");
        assert_eq!(
            access.check_client(&who, &db_1, &NONE),
            Err("alice may not session:StartSession on srn:session:local:default:instance/db-1: \
                 no policy allows it"
                .to_owned())
        );
        // A Deny of every file action on the instance leaves nothing to hold a connection for.
        let (access, who) = gate(&format!(
            r#"{LOGS}, {{"Effect": "Deny", "Action": "session:*", "Resource": "*:instance/web-1"}}"#
        ));
        assert!(access.check_client(&who, &web_1, &NONE).is_err());
        // A token that no longer stands admits nothing, whatever the policies allow.
        let (access, who) = gate(LOGS);
        access.store.revoke_token(&who.token).expect("revoked");
        let refused = access.check_client(&who, &web_1, &NONE).expect_err("revoked");
        assert!(refused.contains("revoked"), "{refused}");
        assert!(access.decide_file(&who, FileAction::Read, (&web_1, &NONE), Some(b"/var/log/x")).is_err());
    }
}
