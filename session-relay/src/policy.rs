//! Permission policies in the form the seed documents show, and their evaluation: who may do
//! which action on which resource. The relay asks it at every entry point (`access.rs`).
//!
//! ```json
//! { "Version": "1",
//!   "Statement": [
//!     { "Effect": "Allow", "Action": "session:StartSession",
//!       "Resource": "srn:session:*:1234:instance/i-001*" },
//!     { "Effect": "Deny", "Action": ["session:*"], "Resource": "*:instance/i-0017" } ] }
//! ```
//!
//! Rules:
//! - `Version` is `"1"`. `Statement` is a non-empty list (or a single statement). A statement
//!   has exactly `Effect` (`Allow` or `Deny`), `Action` and `Resource`, each a string or a
//!   non-empty list of strings; any other key is an error, so a misspelt key cannot widen or
//!   narrow a grant silently.
//! - An action is `service:Name`; a resource is any name, conventionally
//!   `srn:session:<region>:<account>:instance/<id>`. In both, `*` matches any run of characters
//!   (`:` and `/` included), in any position and any number of times. Actions compare without
//!   regard to ASCII case, resources exactly.
//! - An explicit Deny beats any Allow; without a matching Allow the answer is deny.
//! - A malformed document is refused with an error that names where: `Statement[1].Effect`.

use core::fmt;

use serde_json::Value;

/// The longest action or resource pattern or name accepted.
pub const MAX_NAME_LEN: usize = 1024;

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants the actions on the resources.
    Allow,
    /// Refuses them, whatever else allows them.
    Deny,
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

    /// What this policy alone says of `action` on `resource`.
    pub fn evaluate(&self, action: &str, resource: &str) -> Decision {
        evaluate(core::slice::from_ref(self), action, resource)
    }
}

fn parse_statement(at: &str, value: &Value) -> Result<Statement, PolicyError> {
    let Value::Object(fields) = value else {
        return Err(error(at, "a statement is a JSON object"));
    };
    if let Some(key) = fields.keys().find(|k| !matches!(k.as_str(), "Effect" | "Action" | "Resource")) {
        return Err(error(format!("{at}.{key}"), "unknown key (expected Effect, Action and Resource)"));
    }
    let effect = match fields.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(_) => return Err(error(format!("{at}.Effect"), "must be \"Allow\" or \"Deny\"")),
        None => return Err(error(format!("{at}.Effect"), "missing")),
    };
    let actions = names(&format!("{at}.Action"), fields.get("Action"), check_action)?;
    let resources = names(&format!("{at}.Resource"), fields.get("Resource"), |_| Ok(()))?;
    Ok(Statement { effect, actions, resources })
}

/// A string or a non-empty list of strings, each passing `check`.
fn names(
    at: &str,
    value: Option<&Value>,
    check: impl Fn(&str) -> Result<(), &'static str>,
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

fn check_action(action: &str) -> Result<(), &'static str> {
    if action == "*" {
        return Ok(());
    }
    match action.split_once(':') {
        Some((service, name)) if !service.is_empty() && !name.is_empty() => Ok(()),
        _ => Err("an action is service:Name (or *)"),
    }
}

/// What `policies` together say of `action` on `resource`: an explicit Deny in any of them
/// wins, then any Allow, and otherwise deny.
pub fn evaluate(policies: &[Policy], action: &str, resource: &str) -> Decision {
    let mut allowed = false;
    for statement in policies.iter().flat_map(|p| &p.statements) {
        let acts =
            statement.actions.iter().any(|p| glob(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()));
        if !acts || !statement.resources.iter().any(|p| glob(p, resource)) {
            continue;
        }
        match statement.effect {
            Effect::Deny => return Decision::ExplicitDeny,
            Effect::Allow => allowed = true,
        }
    }
    if allowed { Decision::Allow } else { Decision::ImplicitDeny }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters. Linear in
/// practice: on a mismatch only the most recent `*` is retried.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}
