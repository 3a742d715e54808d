//! Permission policies in the form the seed documents show, and their evaluation: who may do
//! which action on which resource, and, for a port forward, to which target. The relay asks it
//! at every entry point (`access.rs`).
//!
//! ```json
//! { "Version": "1",
//!   "Statement": [
//!     { "Effect": "Allow", "Action": "session:StartSession",
//!       "Resource": "srn:session:*:1234:instance/i-001*" },
//!     { "Effect": "Allow", "Action": "session:StartPortForward", "Resource": "*",
//!       "Condition": { "StringEquals": { "session:ForwardHost": "127.0.0.1" },
//!                      "NumericEquals": { "session:ForwardPort": ["5432", "8080"] } } },
//!     { "Effect": "Deny", "Action": ["session:*"], "Resource": "*:instance/i-0017" } ] }
//! ```
//!
//! Rules:
//! - `Version` is `"1"`. `Statement` is a non-empty list (or a single statement). A statement
//!   has exactly `Effect` (`Allow` or `Deny`), `Action` and `Resource`, each a string or a
//!   non-empty list of strings, and may have `Condition`; any other key is an error, so a
//!   misspelt key cannot widen or narrow a grant silently.
//! - An action is `service:Name`; a resource is any name, conventionally
//!   `srn:session:<region>:<account>:instance/<id>`. In both, `*` matches any run of characters
//!   (`:` and `/` included), in any position and any number of times. Actions compare without
//!   regard to ASCII case, resources exactly.
//! - An action pattern must name one of [`ACTIONS`], or match one with its `*`s:
//!   `session:StartSesion` and `ecs:*` are errors (`... is not an action: the actions are ...`),
//!   `session:*`, `session:Start*` and `*` are not.
//! - A `Condition` maps operators to keys to a value or a list of values: `StringEquals` and
//!   `StringLike` on `session:ForwardHost`, `NumericEquals`, `NumericLessThanEquals` and
//!   `NumericGreaterThanEquals` on `session:ForwardPort`. One of a list's values must match;
//!   every operator and key must hold. A request without the key (a shell, a command, a
//!   listing) makes a condition on it false: a statement with a forward condition speaks of
//!   forwards only, whether it allows or denies.
//! - An explicit Deny beats any Allow; without a matching Allow the answer is deny.
//! - A malformed document is refused with an error that names where: `Statement[1].Effect`,
//!   `Statement[0].Condition.StringLike.session:ForwardHost[2]`.

use core::fmt;

use serde_json::{Map, Value};
use session_link::pattern::glob;

/// Start a shell or a command.
pub const START_SESSION: &str = "session:StartSession";
/// Start a port forward.
pub const START_PORT_FORWARD: &str = "session:StartPortForward";
/// See an instance in the list, with its status.
pub const DESCRIBE_INSTANCE_STATUS: &str = "session:DescribeInstanceStatus";
/// End one of one's own sessions.
pub const TERMINATE_SESSION: &str = "session:TerminateSession";
/// Turn an account's session management on or off.
pub const MODIFY_SETTINGS: &str = "session:ModifySettings";

/// Every action the relay asks about: an action pattern in a policy must match one of them.
pub const ACTIONS: [&str; 5] =
    [START_SESSION, START_PORT_FORWARD, DESCRIBE_INSTANCE_STATUS, TERMINATE_SESSION, MODIFY_SETTINGS];

/// The longest action or resource pattern or name accepted, and the longest condition value.
pub const MAX_NAME_LEN: usize = 1024;

/// The condition key whose value is the host a Forward Open names, as it names it.
pub const FORWARD_HOST: &str = "session:ForwardHost";
/// The condition key whose value is the port a Forward Open names.
pub const FORWARD_PORT: &str = "session:ForwardPort";

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants the actions on the resources.
    Allow,
    /// Refuses them, whatever else allows them.
    Deny,
}

/// How a `session:ForwardHost` condition compares the request's host with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringOperator {
    /// `StringEquals`: equal, without regard to ASCII case.
    Equals,
    /// `StringLike`: as `StringEquals`, where `*` in a value matches any run of characters.
    Like,
}

/// How a `session:ForwardPort` condition compares the request's port with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericOperator {
    /// `NumericEquals`: the port is the value.
    Equals,
    /// `NumericLessThanEquals`: the port is at most the value.
    LessThanEquals,
    /// `NumericGreaterThanEquals`: the port is at least the value.
    GreaterThanEquals,
}

/// One operator on one key of a statement's `Condition`, with its values: it holds when the
/// request's value of the key matches one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// On `session:ForwardHost`.
    ForwardHost {
        /// How the host is compared.
        operator: StringOperator,
        /// The hosts or host patterns, as written.
        values: Vec<String>,
    },
    /// On `session:ForwardPort`.
    ForwardPort {
        /// How the port is compared.
        operator: NumericOperator,
        /// The ports.
        values: Vec<u16>,
    },
}

impl fmt::Display for Condition {
    /// `StringEquals session:ForwardHost 127.0.0.1`, `NumericEquals session:ForwardPort [22, 3389]`:
    /// the words of a refusal that a condition decided.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, values: &[T]) -> fmt::Result {
            match values {
                [one] => write!(f, "{one}"),
                many => {
                    f.write_str("[")?;
                    for (i, value) in many.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{value}")?;
                    }
                    f.write_str("]")
                }
            }
        }
        match self {
            Condition::ForwardHost { operator, values } => {
                let name = match operator {
                    StringOperator::Equals => "StringEquals",
                    StringOperator::Like => "StringLike",
                };
                write!(f, "{name} {FORWARD_HOST} ")?;
                list(f, values)
            }
            Condition::ForwardPort { operator, values } => {
                let name = match operator {
                    NumericOperator::Equals => "NumericEquals",
                    NumericOperator::LessThanEquals => "NumericLessThanEquals",
                    NumericOperator::GreaterThanEquals => "NumericGreaterThanEquals",
                };
                write!(f, "{name} {FORWARD_PORT} ")?;
                list(f, values)
            }
        }
    }
}

impl Condition {
    /// Whether it holds for a request in `context`; `None` when that cannot be known yet (a
    /// forward whose target is not named).
    fn holds(&self, context: Context<'_>) -> Option<bool> {
        let (host, port) = match context {
            // A key the request does not have makes the condition false (AWS does the same):
            // so a grant with a forward condition never lends itself to a shell.
            Context::Empty => return Some(false),
            Context::AnyForward => return None,
            Context::Forward { host, port } => (host, port),
        };
        Some(match self {
            Condition::ForwardHost { operator: StringOperator::Equals, values } => {
                values.iter().any(|v| v.eq_ignore_ascii_case(host))
            }
            Condition::ForwardHost { operator: StringOperator::Like, values } => {
                let host = host.to_ascii_lowercase();
                values.iter().any(|v| glob(&v.to_ascii_lowercase(), &host))
            }
            Condition::ForwardPort { operator, values } => values.iter().any(|&v| match operator {
                NumericOperator::Equals => port == v,
                NumericOperator::LessThanEquals => port <= v,
                NumericOperator::GreaterThanEquals => port >= v,
            }),
        })
    }
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Allow or Deny.
    pub effect: Effect,
    /// Action patterns.
    pub actions: Vec<String>,
    /// Resource patterns.
    pub resources: Vec<String>,
    /// Conditions that must all hold for the statement to apply; none when it has no
    /// `Condition`.
    pub conditions: Vec<Condition>,
}

impl Statement {
    /// Whether its conditions all hold in `context`: `Some(false)` when one does not, with the
    /// first such, `None` when one cannot be known yet.
    fn conditions_hold(&self, context: Context<'_>) -> (Option<bool>, Option<&Condition>) {
        let mut known = true;
        for condition in &self.conditions {
            match condition.holds(context) {
                Some(false) => return (Some(false), Some(condition)),
                None => known = false,
                Some(true) => {}
            }
        }
        (known.then_some(true), None)
    }
}

/// A parsed, validated policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its statements, in order (order does not change the outcome).
    pub statements: Vec<Statement>,
}

/// Why a policy document was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Where in the document: `Version`, `Statement[2].Action[0]`, or empty for the whole.
    pub at: String,
    /// What is wrong there.
    pub problem: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.at, self.problem)
        }
    }
}

impl std::error::Error for PolicyError {}

fn error(at: impl Into<String>, problem: impl Into<String>) -> PolicyError {
    PolicyError { at: at.into(), problem: problem.into() }
}

/// The values of the condition keys a request has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context<'a> {
    /// None: a shell, a command, a listing, a termination, a switch. Every condition is false.
    Empty,
    /// A port forward to `host:port`, as the Open names them (the host is not resolved).
    Forward {
        /// `session:ForwardHost`.
        host: &'a str,
        /// `session:ForwardPort`.
        port: u16,
    },
    /// Some port forward whose target is not named yet: whether one could be allowed at all,
    /// asked when a client's connection is admitted, before its first Open. A condition is
    /// taken to hold for an Allow (some target may meet it) and not to hold for a Deny (some
    /// target may escape it); each Open is then decided with its own target.
    AnyForward,
}

/// A request to decide: an action on a resource, in a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `session:StartPortForward`, ...
    pub action: &'a str,
    /// `srn:session:...`
    pub resource: &'a str,
    /// The values of the condition keys.
    pub context: Context<'a>,
}

/// The outcome of evaluating a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allow,
    /// A statement denies it explicitly.
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// A decision, and the conditions that made it, so that a refusal can name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The decision.
    pub decision: Decision,
    /// For [`Decision::ExplicitDeny`], the denying statement's conditions (all of which held);
    /// for [`Decision::ImplicitDeny`] of a forward, the first condition that its target did not
    /// meet of a statement that would have allowed the action on the resource; otherwise none.
    pub conditions: Vec<Condition>,
}

impl Policy {
    /// Parses and validates a policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let document: Value =
            serde_json::from_str(text).map_err(|e| error("", format!("not valid JSON: {e}")))?;
        let Value::Object(fields) = document else {
            return Err(error("", "a policy is a JSON object"));
        };
        if let Some(key) = fields.keys().find(|k| !matches!(k.as_str(), "Version" | "Statement")) {
            return Err(error(key.as_str(), "unknown key (expected Version and Statement)"));
        }
        match fields.get("Version") {
            Some(Value::String(v)) if v == "1" => {}
            Some(_) => return Err(error("Version", "must be the string \"1\"")),
            None => return Err(error("Version", "missing")),
        }
        let statements = match fields.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
            Some(Value::Array(_)) => return Err(error("Statement", "must not be empty")),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => return Err(error("Statement", "must be a statement or a list of them")),
            None => return Err(error("Statement", "missing")),
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, value)| parse_statement(&format!("Statement[{i}]"), value))
            .collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }

    /// What this policy alone says of `action` on `resource`, in a request without condition
    /// keys.
    pub fn evaluate(&self, action: &str, resource: &str) -> Decision {
        evaluate(core::slice::from_ref(self), action, resource)
    }

    /// What this policy alone says of `request`, and why.
    pub fn decide(&self, request: &Request<'_>) -> Verdict {
        decide(core::slice::from_ref(self), request)
    }
}

fn parse_statement(at: &str, value: &Value) -> Result<Statement, PolicyError> {
    let Value::Object(fields) = value else {
        return Err(error(at, "a statement is a JSON object"));
    };
    if let Some(key) =
        fields.keys().find(|k| !matches!(k.as_str(), "Effect" | "Action" | "Resource" | "Condition"))
    {
        return Err(error(
            format!("{at}.{key}"),
            "unknown key (expected Effect, Action, Resource and optionally Condition)",
        ));
    }
    let effect = match fields.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(_) => return Err(error(format!("{at}.Effect"), "must be \"Allow\" or \"Deny\"")),
        None => return Err(error(format!("{at}.Effect"), "missing")),
    };
    let actions = names(&format!("{at}.Action"), fields.get("Action"), check_action)?;
    let resources = names(&format!("{at}.Resource"), fields.get("Resource"), |_| Ok(()))?;
    let conditions = match fields.get("Condition") {
        None => Vec::new(),
        Some(value) => parse_conditions(&format!("{at}.Condition"), value)?,
    };
    Ok(Statement { effect, actions, resources, conditions })
}

/// The operators of the grammar, and the kind of key each compares.
enum Operator {
    String(StringOperator),
    Numeric(NumericOperator),
}

const OPERATORS: &str =
    "StringEquals, StringLike, NumericEquals, NumericLessThanEquals or NumericGreaterThanEquals";

fn operator(name: &str) -> Option<Operator> {
    Some(match name {
        "StringEquals" => Operator::String(StringOperator::Equals),
        "StringLike" => Operator::String(StringOperator::Like),
        "NumericEquals" => Operator::Numeric(NumericOperator::Equals),
        "NumericLessThanEquals" => Operator::Numeric(NumericOperator::LessThanEquals),
        "NumericGreaterThanEquals" => Operator::Numeric(NumericOperator::GreaterThanEquals),
        _ => return None,
    })
}

/// `{"<operator>": {"<key>": values, ...}, ...}`, flattened to one [`Condition`] per operator
/// and key. Operators are case-sensitive, as `Allow` and `Deny` are; keys are not, as actions
/// are not (and as AWS has it).
fn parse_conditions(at: &str, value: &Value) -> Result<Vec<Condition>, PolicyError> {
    let operators = object(at, value, "an object of condition operators")?;
    let mut conditions = Vec::new();
    for (name, keys) in operators {
        let at = format!("{at}.{name}");
        let Some(op) = operator(name) else {
            return Err(error(at, format!("unknown condition operator (expected {OPERATORS})")));
        };
        for (key, values) in object(&at, keys, "an object of condition keys")? {
            let at = format!("{at}.{key}");
            let condition = match (&op, key.to_ascii_lowercase().as_str()) {
                (Operator::String(operator), "session:forwardhost") => Condition::ForwardHost {
                    operator: *operator,
                    values: names(&at, Some(values), |_| Ok(()))?,
                },
                (Operator::Numeric(operator), "session:forwardport") => {
                    Condition::ForwardPort { operator: *operator, values: ports(&at, values)? }
                }
                (Operator::String(_), "session:forwardport") => {
                    return Err(error(at, format!("{name} compares strings; {FORWARD_PORT} is a number")));
                }
                (Operator::Numeric(_), "session:forwardhost") => {
                    return Err(error(at, format!("{name} compares numbers; {FORWARD_HOST} is a string")));
                }
                _ => {
                    return Err(error(
                        at,
                        format!("unknown condition key (expected {FORWARD_HOST} or {FORWARD_PORT})"),
                    ));
                }
            };
            conditions.push(condition);
        }
    }
    Ok(conditions)
}

/// A non-empty JSON object.
fn object<'v>(at: &str, value: &'v Value, what: &str) -> Result<&'v Map<String, Value>, PolicyError> {
    match value {
        Value::Object(map) if map.is_empty() => Err(error(at, "must not be empty")),
        Value::Object(map) => Ok(map),
        _ => Err(error(at, format!("must be {what}"))),
    }
}

/// A port or a non-empty list of ports, each a JSON integer or a string of decimal digits (as
/// AWS writes numbers), from 1 to 65535 as a Forward's port is.
fn ports(at: &str, value: &Value) -> Result<Vec<u16>, PolicyError> {
    let items: Vec<(String, &Value)> = match value {
        Value::Array(list) if list.is_empty() => return Err(error(at, "must not be empty")),
        Value::Array(list) => list.iter().enumerate().map(|(i, v)| (format!("{at}[{i}]"), v)).collect(),
        one => vec![(at.to_owned(), one)],
    };
    items
        .into_iter()
        .map(|(at, value)| {
            let port = match value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                    s.parse::<u64>().ok()
                }
                _ => None,
            };
            port.and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0)
                .ok_or_else(|| error(at, "a port is an integer from 1 to 65535 (a number or a string)"))
        })
        .collect()
}

/// A string or a non-empty list of strings, each passing `check`.
fn names(
    at: &str,
    value: Option<&Value>,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, PolicyError> {
    let items: Vec<(String, &Value)> = match value {
        None => return Err(error(at, "missing")),
        Some(Value::Array(list)) if list.is_empty() => return Err(error(at, "must not be empty")),
        Some(Value::Array(list)) => list.iter().enumerate().map(|(i, v)| (format!("{at}[{i}]"), v)).collect(),
        Some(one) => vec![(at.to_owned(), one)],
    };
    items
        .into_iter()
        .map(|(at, value)| match value {
            Value::String(name) if name.is_empty() => Err(error(at, "must not be empty")),
            Value::String(name) if name.len() > MAX_NAME_LEN => Err(error(at, "longer than 1024 bytes")),
            Value::String(name) => check(name).map(|()| name.clone()).map_err(|problem| error(at, problem)),
            _ => Err(error(at, "must be a string or a list of strings")),
        })
        .collect()
}

/// Checks an action pattern: `service:Name` (or `*`) that names, or with `*` matches, at least
/// one of [`ACTIONS`]. A misspelt action (`session:StartSesion`) would otherwise match nothing,
/// and silently grant nothing, or, in a Deny, silently deny nothing.
fn check_action(action: &str) -> Result<(), String> {
    let shaped = action == "*"
        || action.split_once(':').is_some_and(|(service, name)| !service.is_empty() && !name.is_empty());
    if !shaped {
        return Err("an action is service:Name (or *)".to_owned());
    }
    let pattern = action.to_ascii_lowercase();
    if ACTIONS.iter().any(|known| glob(&pattern, &known.to_ascii_lowercase())) {
        return Ok(());
    }
    let known = ACTIONS.join(", ");
    if action.contains('*') {
        Err(format!("{action} matches no action: the actions are {known}"))
    } else {
        Err(format!("{action} is not an action: the actions are {known}"))
    }
}

/// What `policies` together say of `action` on `resource` in a request without condition keys:
/// an explicit Deny in any of them wins, then any Allow, and otherwise deny.
pub fn evaluate(policies: &[Policy], action: &str, resource: &str) -> Decision {
    decide(policies, &Request { action, resource, context: Context::Empty }).decision
}

/// What `policies` together say of `request`, and the conditions that decided it: a statement
/// applies when an action pattern and a resource pattern match and its conditions hold; an
/// applying Deny in any of them wins, then an applying Allow, and otherwise deny.
pub fn decide(policies: &[Policy], request: &Request<'_>) -> Verdict {
    let action = request.action.to_ascii_lowercase();
    let mut allowed = false;
    let mut unmet: Option<&Condition> = None;
    for statement in policies.iter().flat_map(|p| &p.statements) {
        let acts = statement.actions.iter().any(|p| glob(&p.to_ascii_lowercase(), &action));
        if !acts || !statement.resources.iter().any(|p| glob(p, request.resource)) {
            continue;
        }
        let (holds, failed) = statement.conditions_hold(request.context);
        match (statement.effect, holds) {
            (Effect::Deny, Some(true)) => {
                return Verdict {
                    decision: Decision::ExplicitDeny,
                    conditions: statement.conditions.clone(),
                };
            }
            // A Deny whose conditions do not hold, or may not: it does not apply.
            (Effect::Deny, _) => {}
            (Effect::Allow, Some(true) | None) => allowed = true,
            // Named in the refusal only when the request has a target that missed it: a shell
            // refused for want of a grant is not told about forward targets.
            (Effect::Allow, Some(false)) if matches!(request.context, Context::Forward { .. }) => {
                unmet = unmet.or(failed);
            }
            (Effect::Allow, Some(false)) => {}
        }
    }
    if allowed {
        Verdict { decision: Decision::Allow, conditions: Vec::new() }
    } else {
        Verdict { decision: Decision::ImplicitDeny, conditions: unmet.into_iter().cloned().collect() }
    }
}
