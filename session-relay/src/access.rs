//! The gate: whether a user may do an action on a resource, asked at every entry point, and
//! the names of the resources. A refusal says who was refused what and why, and is audited.
//!
//! Resources are named `srn:session:<region>:<account>:<type>/<id>`:
//! - `instance/<id>` for starting sessions and port forwards, and for status;
//! - `session/<id>` for ending a session;
//! - `settings` (no id) for the account's switch.

use crate::audit::Audit;
use crate::policy::{Decision, evaluate};
use crate::store::{Principal, Store};

/// Start a shell or a command.
pub const START_SESSION: &str = "session:StartSession";
/// Start a port forward.
pub const START_PORT_FORWARD: &str = "session:StartPortForward";
/// See an instance in the list, with its status.
pub const DESCRIBE_INSTANCE_STATUS: &str = "session:DescribeInstanceStatus";
/// Turn an account's session management on or off.
pub const MODIFY_SETTINGS: &str = "session:ModifySettings";
/// End one of one's own sessions.
pub const TERMINATE_SESSION: &str = "session:TerminateSession";

/// Asks the store's policies; shared by every task.
#[derive(Debug, Clone)]
pub struct Access {
    /// Where the policies, tokens and instances are.
    pub store: Store,
    /// The relay's region, the third part of its resource names.
    pub region: String,
    pub(crate) audit: Audit,
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
        let refused = match self.decide(who, action, resource) {
            Ok(()) => return Ok(()),
            Err(refused) => refused,
        };
        self.audit.write(serde_json::json!({
            "event": "refused",
            "user": who.user,
            "action": action,
            "resource": resource,
            "reason": refused,
        }));
        Err(refused)
    }

    /// Whether `who` may do `action`, as a test of resources, without auditing a refusal: for
    /// filtering a list. The token and policies are read once, for every resource tested; a
    /// token that no longer stands, or a store that fails, allows nothing.
    pub fn allowed<'a>(&self, who: &Principal, action: &'a str) -> impl Fn(&str) -> bool + 'a {
        let policies = self.policies(who).ok();
        move |resource| policies.as_deref().is_some_and(|p| evaluate(p, action, resource).is_allowed())
    }

    /// The policies of `who`, if their token still stands.
    fn policies(&self, who: &Principal) -> Result<Vec<crate::policy::Policy>, String> {
        self.store.token_valid(&who.token).map_err(|e| e.to_string())?;
        self.store.policies_of(&who.user).map_err(|e| e.to_string())
    }

    /// As [`Access::check`], leaving the audit to the caller.
    pub(crate) fn decide(&self, who: &Principal, action: &str, resource: &str) -> Result<(), String> {
        let policies = self.policies(who)?;
        match evaluate(&policies, action, resource) {
            Decision::Allow => Ok(()),
            Decision::ExplicitDeny => {
                Err(format!("{} may not {action} on {resource}: a policy denies it", who.user))
            }
            Decision::ImplicitDeny => {
                Err(format!("{} may not {action} on {resource}: no policy allows it", who.user))
            }
        }
    }
}
