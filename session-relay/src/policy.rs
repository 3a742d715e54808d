//! Permission policies in the form the seed documents show, and their evaluation: who may do
//! which action on which resource, for a port forward to which target, and for a file at which
//! path. The relay asks it at every entry point (`access.rs`).
//!
//! ```json
//! { "Version": "1",
//!   "Statement": [
//!     { "Effect": "Allow", "Action": "session:StartSession",
//!       "Resource": "srn:session:*:1234:instance/i-001*" },
//!     { "Effect": "Allow", "Action": "session:StartPortForward", "Resource": "*",
//!       "Condition": { "StringEquals": { "session:ForwardHost": "127.0.0.1" },
//!                      "NumericEquals": { "session:ForwardPort": ["5432", "8080"] } } },
//!     { "Effect": "Allow", "Action": "session:ReadFile", "Resource": "*:instance/web-*",
//!       "Condition": { "StringLike": { "session:FilePath": "/var/log/*" } } },
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
//!   `StringLike` on `session:ForwardHost`, `session:FilePath` and `session:SessionOwner` (the
//!   user whose session a recording is, for `session:ReadRecording`), `NumericEquals`,
//!   `NumericLessThanEquals` and `NumericGreaterThanEquals` on `session:ForwardPort`. One of a
//!   list's values must match; every operator and key must hold. A request without the key (a
//!   shell, a command, a listing) makes a condition on it false: a statement with a forward
//!   condition speaks of forwards only, and one with a path condition of requests that name a
//!   path only, whether it allows or denies; one statement may not have both.
//! - `StringEquals` and `StringLike` on `session:InstanceLabel/<key>` test the label `<key>`
//!   that the instance's agent last gave (`x-session-labels`), byte for byte: every request on
//!   an instance has its labels, whatever its kind, so the key goes with any other; a request on
//!   a session or settings, or on an instance without that label, makes it false. `<key>` is a
//!   label's key, and not one of the relay's own (`region`, `account`, `name`).
//! - A host compares without regard to ASCII case, a path byte for byte: paths are
//!   case-sensitive, and may be any bytes but NUL (not only UTF-8). A path on the wire is
//!   absolute and in normal form, so `/var/log/*` confines to what is under `/var/log`; a path
//!   value that no such path can match (`var/log`, `/srv/app/`, `/a/../b`) is an error.
//! - An explicit Deny beats any Allow; without a matching Allow the answer is deny.
//! - A malformed document is refused with an error that names where: `Statement[1].Effect`,
//!   `Statement[0].Condition.StringLike.session:ForwardHost[2]`.

use core::fmt;

use serde_json::{Map, Value};
use session_link::pattern::{glob, glob_bytes};

pub use crate::labels::Labels;
use crate::labels::{RESERVED_KEYS, valid_key};

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
/// List a directory, stat a path, or learn the login user's home directory.
pub const LIST_FILES: &str = "session:ListFiles";
/// Download a file.
pub const READ_FILE: &str = "session:ReadFile";
/// Upload a file, make a directory, rename, remove, or change a mode.
pub const WRITE_FILE: &str = "session:WriteFile";
/// List the recordings of an instance's sessions, and read (export, play, watch) them.
pub const READ_RECORDING: &str = "session:ReadRecording";

/// Every action the relay asks about: an action pattern in a policy must match one of them.
pub const ACTIONS: [&str; 9] = [
    START_SESSION,
    START_PORT_FORWARD,
    LIST_FILES,
    READ_FILE,
    WRITE_FILE,
    DESCRIBE_INSTANCE_STATUS,
    TERMINATE_SESSION,
    MODIFY_SETTINGS,
    READ_RECORDING,
];

/// The longest action or resource pattern or name accepted, and the longest condition value.
pub const MAX_NAME_LEN: usize = 1024;

/// The condition key whose value is the host a Forward Open names, as it names it.
pub const FORWARD_HOST: &str = "session:ForwardHost";
/// The condition key whose value is the port a Forward Open names.
pub const FORWARD_PORT: &str = "session:ForwardPort";
/// The condition key whose value is the path a file request names, as its bytes.
pub const FILE_PATH: &str = "session:FilePath";
/// The condition key whose value is the user whose session a recording is.
pub const SESSION_OWNER: &str = "session:SessionOwner";
/// The prefix of the condition keys whose values are an instance's labels, as its agent last
/// gave them: `session:InstanceLabel/env` is its label `env`.
pub const INSTANCE_LABEL: &str = "session:InstanceLabel/";

/// The three file actions, so that a file request cannot be asked with another action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    /// [`LIST_FILES`]: list a directory, stat a path, learn the home directory.
    List,
    /// [`READ_FILE`]: download.
    Read,
    /// [`WRITE_FILE`]: upload, make a directory, rename, remove, change a mode.
    Write,
}

impl FileAction {
    /// Every file action, for asking whether any could be allowed.
    pub const ALL: [FileAction; 3] = [FileAction::List, FileAction::Read, FileAction::Write];

    /// The action's name in a policy: `session:ReadFile`, ...
    pub const fn name(self) -> &'static str {
        match self {
            FileAction::List => LIST_FILES,
            FileAction::Read => READ_FILE,
            FileAction::Write => WRITE_FILE,
        }
    }
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants the actions on the resources.
    Allow,
    /// Refuses them, whatever else allows them.
    Deny,
}

/// How a `session:ForwardHost` or `session:FilePath` condition compares the request's value
/// with its values: a host without regard to ASCII case, a path byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringOperator {
    /// `StringEquals`: equal.
    Equals,
    /// `StringLike`: as `StringEquals`, where `*` in a value matches any run of bytes.
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
    /// On `session:FilePath`.
    FilePath {
        /// How the path is compared (case-sensitively, as bytes).
        operator: StringOperator,
        /// The paths or path patterns, as written.
        values: Vec<String>,
    },
    /// On `session:SessionOwner`.
    SessionOwner {
        /// How the user is compared (case-sensitively, as user names are).
        operator: StringOperator,
        /// The users or user patterns, as written.
        values: Vec<String>,
    },
    /// On `session:InstanceLabel/<key>`.
    InstanceLabel {
        /// The label's key, as written after the prefix (compared byte for byte).
        key: String,
        /// How the label's value is compared (byte for byte).
        operator: StringOperator,
        /// The values or value patterns, as written.
        values: Vec<String>,
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
        fn string(operator: StringOperator) -> &'static str {
            match operator {
                StringOperator::Equals => "StringEquals",
                StringOperator::Like => "StringLike",
            }
        }
        match self {
            Condition::ForwardHost { operator, values } => {
                write!(f, "{} {FORWARD_HOST} ", string(*operator))?;
                list(f, values)
            }
            Condition::FilePath { operator, values } => {
                write!(f, "{} {FILE_PATH} ", string(*operator))?;
                list(f, values)
            }
            Condition::SessionOwner { operator, values } => {
                write!(f, "{} {SESSION_OWNER} ", string(*operator))?;
                list(f, values)
            }
            Condition::InstanceLabel { key, operator, values } => {
                write!(f, "{} {INSTANCE_LABEL}{key} ", string(*operator))?;
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
    /// Whether it holds for `request`; `None` when that cannot be known yet (a forward whose
    /// target, or a file request whose path, is not named).
    fn holds(&self, request: &Request<'_>) -> Option<bool> {
        use Condition::{FilePath, ForwardHost, ForwardPort, InstanceLabel, SessionOwner};
        if let InstanceLabel { key, operator, values } = self {
            // Known for every request on an instance, whatever its kind; absent otherwise, or
            // when the instance has no such label: then false, as any absent key.
            let Some(value) = request.labels.and_then(|labels| labels.get(key)) else { return Some(false) };
            return Some(match operator {
                StringOperator::Equals => values.iter().any(|v| v == value),
                StringOperator::Like => values.iter().any(|v| glob(v, value)),
            });
        }
        Some(match (self, request.context) {
            (ForwardHost { .. } | ForwardPort { .. }, Context::AnyForward)
            | (FilePath { .. }, Context::AnyFile) => return None,
            (ForwardHost { operator: StringOperator::Equals, values }, Context::Forward { host, .. }) => {
                values.iter().any(|v| v.eq_ignore_ascii_case(host))
            }
            (ForwardHost { operator: StringOperator::Like, values }, Context::Forward { host, .. }) => {
                let host = host.to_ascii_lowercase();
                values.iter().any(|v| glob(&v.to_ascii_lowercase(), &host))
            }
            (ForwardPort { operator, values }, Context::Forward { port, .. }) => {
                values.iter().any(|&v| match operator {
                    NumericOperator::Equals => port == v,
                    NumericOperator::LessThanEquals => port <= v,
                    NumericOperator::GreaterThanEquals => port >= v,
                })
            }
            // Paths are case-sensitive, and need not be UTF-8: compared as bytes.
            (FilePath { operator: StringOperator::Equals, values }, Context::File { path }) => {
                values.iter().any(|v| v.as_bytes() == path)
            }
            (FilePath { operator: StringOperator::Like, values }, Context::File { path }) => {
                values.iter().any(|v| glob_bytes(v.as_bytes(), path))
            }
            (SessionOwner { operator: StringOperator::Equals, values }, Context::Session { owner }) => {
                values.iter().any(|v| v == owner)
            }
            (SessionOwner { operator: StringOperator::Like, values }, Context::Session { owner }) => {
                values.iter().any(|v| glob(v, owner))
            }
            // A key the request does not have makes the condition false (AWS does the same):
            // so a grant with a forward condition never lends itself to a shell or a file, nor
            // one with a path condition to a shell, a forward or the home directory, nor one
            // with an owner condition to anything but a recording.
            (_, Context::Empty)
            | (ForwardHost { .. } | ForwardPort { .. }, Context::File { .. } | Context::AnyFile)
            | (FilePath { .. }, Context::Forward { .. } | Context::AnyForward)
            | (ForwardHost { .. } | ForwardPort { .. } | FilePath { .. }, Context::Session { .. })
            | (SessionOwner { .. }, Context::Forward { .. } | Context::AnyForward)
            | (SessionOwner { .. }, Context::File { .. } | Context::AnyFile) => false,
            (InstanceLabel { .. }, _) => return Some(false),
        })
    }

    /// Whether the request has the key it is on: only then may a refusal name it. A request on
    /// an instance may be told of a label condition its instance did not meet, even for want of
    /// the label: that is why it was refused, whatever its kind.
    fn on_key_of(&self, request: &Request<'_>) -> bool {
        matches!(
            (self, request.context),
            (Condition::ForwardHost { .. } | Condition::ForwardPort { .. }, Context::Forward { .. })
                | (Condition::FilePath { .. }, Context::File { .. })
                | (Condition::SessionOwner { .. }, Context::Session { .. })
        ) || matches!(self, Condition::InstanceLabel { .. }) && request.labels.is_some()
    }
}

/// A path as a refusal shows it: as UTF-8 text, except that a backslash is shown as `\\` and
/// each byte of a control character, or of a sequence that is not UTF-8, as `\xNN` (two
/// lowercase hex digits). So any path shows on one line, and the exact bytes can be read back.
pub fn show_path(path: &[u8]) -> String {
    let mut shown = String::with_capacity(path.len());
    let escape = |shown: &mut String, bytes: &[u8]| {
        for byte in bytes {
            shown.push_str(&format!("\\x{byte:02x}"));
        }
    };
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => shown.push_str("\\\\"),
                c if c.is_control() => escape(&mut shown, c.encode_utf8(&mut [0; 4]).as_bytes()),
                c => shown.push(c),
            }
        }
        escape(&mut shown, chunk.invalid());
    }
    shown
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
    /// Whether it has a condition on a forward's key, and one on a file's: then no request
    /// could meet it, since none has both.
    fn mixes_forward_and_file(&self) -> bool {
        let file = |c: &Condition| matches!(c, Condition::FilePath { .. });
        let forward =
            |c: &Condition| matches!(c, Condition::ForwardHost { .. } | Condition::ForwardPort { .. });
        self.conditions.iter().any(file) && self.conditions.iter().any(forward)
    }

    /// Whether it has a condition on a recording's owner and one on another kind of request's
    /// key: no request has both. An instance's labels are not of a kind: every request on an
    /// instance has them, a recording's too.
    fn mixes_owner_and_other(&self) -> bool {
        let owner = |c: &Condition| matches!(c, Condition::SessionOwner { .. });
        let kind = |c: &Condition| !matches!(c, Condition::InstanceLabel { .. });
        self.conditions.iter().any(owner) && !self.conditions.iter().filter(|c| kind(c)).all(owner)
    }

    /// Whether its conditions all hold for `request`: `Some(false)` when one does not, with the
    /// first such, `None` when one cannot be known yet.
    fn conditions_hold(&self, request: &Request<'_>) -> (Option<bool>, Option<&Condition>) {
        let mut known = true;
        for condition in &self.conditions {
            match condition.holds(request) {
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
    /// None: a shell, a command, a listing, a termination, a switch, a file request without a
    /// path (the home directory). Every condition is false.
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
    /// A file request naming `path` (`session:FilePath`): absolute, in normal form, any bytes
    /// but NUL. A rename is two requests, one for each path.
    File {
        /// `session:FilePath`.
        path: &'a [u8],
    },
    /// Some file request whose path is not named yet: as [`Context::AnyForward`], for paths.
    AnyFile,
    /// A request about a recorded session of `owner`'s (`session:ReadRecording`).
    Session {
        /// `session:SessionOwner`: the user whose session it was.
        owner: &'a str,
    },
}

impl<'a> Context<'a> {
    /// The context of a file request: with its path, or, for one without (the home directory),
    /// none, so that no path condition holds for it.
    pub fn file(path: Option<&'a [u8]>) -> Context<'a> {
        path.map_or(Context::Empty, |path| Context::File { path })
    }
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
    /// The labels of the instance, for a request on an instance (`session:InstanceLabel/<key>`);
    /// `None` for a request on a session or settings, which has none.
    pub labels: Option<&'a Labels>,
}

impl<'a> Request<'a> {
    /// `action` on `resource` in `context`, with no instance's labels.
    pub fn new(action: &'a str, resource: &'a str, context: Context<'a>) -> Request<'a> {
        Request { action, resource, context, labels: None }
    }

    /// The same request, on an instance that has `labels`.
    pub fn on(self, labels: &'a Labels) -> Request<'a> {
        Request { labels: Some(labels), ..self }
    }
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
    /// for [`Decision::ImplicitDeny`] of a forward or of a file request with a path, the first
    /// condition that its target or path did not meet of a statement that would have allowed
    /// the action on the resource; otherwise none.
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
    let statement = Statement { effect, actions, resources, conditions };
    if statement.mixes_forward_and_file() {
        return Err(error(
            format!("{at}.Condition"),
            format!(
                "a condition on {FILE_PATH} and one on {FORWARD_HOST} or {FORWARD_PORT} in one \
                 statement: no request has both, so it would apply to none"
            ),
        ));
    }
    if statement.mixes_owner_and_other() {
        return Err(error(
            format!("{at}.Condition"),
            format!(
                "a condition on {SESSION_OWNER} and one on {FORWARD_HOST}, {FORWARD_PORT} or \
                 {FILE_PATH} in one statement: no request has both, so it would apply to none"
            ),
        ));
    }
    Ok(statement)
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
            if let Some(label) = label_key(key) {
                conditions.push(label_condition(&at, &op, name, label, values)?);
                continue;
            }
            let condition = match (&op, key.to_ascii_lowercase().as_str()) {
                (Operator::String(operator), "session:forwardhost") => Condition::ForwardHost {
                    operator: *operator,
                    values: names(&at, Some(values), |_| Ok(()))?,
                },
                (Operator::Numeric(operator), "session:forwardport") => {
                    Condition::ForwardPort { operator: *operator, values: ports(&at, values)? }
                }
                (Operator::String(operator), "session:filepath") => Condition::FilePath {
                    operator: *operator,
                    values: names(&at, Some(values), check_path_pattern)?,
                },
                (Operator::String(operator), "session:sessionowner") => Condition::SessionOwner {
                    operator: *operator,
                    values: names(&at, Some(values), |_| Ok(()))?,
                },
                (Operator::Numeric(_), "session:sessionowner") => {
                    return Err(error(at, format!("{name} compares numbers; {SESSION_OWNER} is a string")));
                }
                (Operator::String(_), "session:forwardport") => {
                    return Err(error(at, format!("{name} compares strings; {FORWARD_PORT} is a number")));
                }
                (Operator::Numeric(_), "session:forwardhost") => {
                    return Err(error(at, format!("{name} compares numbers; {FORWARD_HOST} is a string")));
                }
                (Operator::Numeric(_), "session:filepath") => {
                    return Err(error(at, format!("{name} compares numbers; {FILE_PATH} is a string")));
                }
                _ => {
                    return Err(error(
                        at,
                        format!(
                            "unknown condition key (expected {FORWARD_HOST}, {FORWARD_PORT}, {FILE_PATH}, \
                             {SESSION_OWNER} or {INSTANCE_LABEL}<key>)"
                        ),
                    ));
                }
            };
            conditions.push(condition);
        }
    }
    Ok(conditions)
}

/// The label a condition key names, when it is `session:InstanceLabel/<key>`: the prefix without
/// regard to ASCII case, as every key; the label's key as written, compared byte for byte.
fn label_key(key: &str) -> Option<&str> {
    let prefix = key.get(..INSTANCE_LABEL.len())?;
    prefix.eq_ignore_ascii_case(INSTANCE_LABEL).then(|| &key[INSTANCE_LABEL.len()..])
}

/// A condition on an instance's label `label`: a string, compared by a string operator; a key no
/// agent can give would hold for no instance, and is refused for that.
fn label_condition(
    at: &str,
    op: &Operator,
    name: &str,
    label: &str,
    values: &Value,
) -> Result<Condition, PolicyError> {
    if RESERVED_KEYS.contains(&label) {
        return Err(error(
            at,
            format!(
                "{label} is a label the relay gives, never an agent: use the resource name \
                 (srn:session:<region>:<account>:instance/<id>) to speak of it"
            ),
        ));
    }
    if !valid_key(label) {
        return Err(error(
            at,
            format!(
                "{INSTANCE_LABEL}<key>: a label's key is 1 to {} of A-Z a-z 0-9 - _ . @",
                crate::labels::MAX_LABEL_LEN
            ),
        ));
    }
    let Operator::String(operator) = op else {
        return Err(error(at, format!("{name} compares numbers; {INSTANCE_LABEL}{label} is a string")));
    };
    Ok(Condition::InstanceLabel {
        key: label.to_owned(),
        operator: *operator,
        values: names(at, Some(values), |_| Ok(()))?,
    })
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

/// Checks a `session:FilePath` value: one that no path on the wire can match (absolute, in
/// normal form: no empty, `.` or `..` component, no trailing `/` but the root's, no NUL) would
/// grant, or in a Deny refuse, nothing without a word. Only what no match can escape is
/// refused: the text between `*`s appears in every path the value matches.
fn check_path_pattern(value: &str) -> Result<(), String> {
    let literal = value.split('*');
    let last = value.rsplit('*').next().unwrap_or_default();
    let problem = if !value.starts_with(['/', '*']) {
        "a path is absolute: it starts with / (or the value with *)"
    } else if value.contains('\0') {
        "a path has no NUL byte"
    } else if literal.clone().any(|run| run.contains("//")) {
        "a path has no empty component (//)"
    } else if literal.clone().any(|run| run.contains("/./") || run.contains("/../"))
        || last.ends_with("/.")
        || last.ends_with("/..")
    {
        "a path has no . or .. component"
    } else if value.ends_with('/') && value.replace('*', "").len() > 1 {
        "a path does not end in / (but the root): /srv/app/* matches what is under /srv/app, \
         /srv/app the directory itself"
    } else {
        return Ok(());
    };
    Err(format!("{value} can match no path: {problem}"))
}

/// Whether a `/v1/client` connection to `resource` could be of use: whether StartSession, or
/// StartPortForward or a file action with its target or path not named yet, could be allowed
/// ([`Context::AnyForward`], [`Context::AnyFile`]). Each Open is decided again on its own.
pub fn may_hold_client(policies: &[Policy], resource: &str, labels: &Labels) -> bool {
    let file = FileAction::ALL.map(|action| (action.name(), Context::AnyFile));
    [(START_SESSION, Context::Empty), (START_PORT_FORWARD, Context::AnyForward)].into_iter().chain(file).any(
        |(action, context)| {
            let request = Request::new(action, resource, context).on(labels);
            decide(policies, &request).decision.is_allowed()
        },
    )
}

/// What `policies` together say of `action` on `resource` in a request without condition keys:
/// an explicit Deny in any of them wins, then any Allow, and otherwise deny.
pub fn evaluate(policies: &[Policy], action: &str, resource: &str) -> Decision {
    decide(policies, &Request::new(action, resource, Context::Empty)).decision
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
        let (holds, failed) = statement.conditions_hold(request);
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
            // Named in the refusal only when the request has a target or path that missed it: a
            // shell refused for want of a grant is not told about forward targets, nor a forward
            // about paths.
            (Effect::Allow, Some(false)) => {
                unmet = unmet.or(failed.filter(|c| c.on_key_of(request)));
            }
        }
    }
    if allowed {
        Verdict { decision: Decision::Allow, conditions: Vec::new() }
    } else {
        Verdict { decision: Decision::ImplicitDeny, conditions: unmet.into_iter().cloned().collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB_1: &str = "srn:session:local:default:instance/web-1";
    const WEB_2: &str = "srn:session:local:default:instance/web-2";
    const DB_1: &str = "srn:session:local:default:instance/db-1";

    fn policy(statements: &str) -> Policy {
        let document = format!(r#"{{"Version": "1", "Statement": [{statements}]}}"#);
        Policy::parse(&document).unwrap_or_else(|e| panic!("{e}: {document}"))
    }

    /// A statement of `effect` on `action` on every resource, with a `session:FilePath`
    /// condition of `operator` and `values` (JSON).
    fn on_path(effect: &str, action: &str, operator: &str, values: &str) -> String {
        format!(
            r#"{{"Effect": "{effect}", "Action": "{action}", "Resource": "*",
                "Condition": {{"{operator}": {{"session:FilePath": {values}}}}}}}"#
        )
    }

    fn unconditional(effect: &str, action: &str, resource: &str) -> String {
        format!(r#"{{"Effect": "{effect}", "Action": "{action}", "Resource": "{resource}"}}"#)
    }

    fn file<'a>(action: FileAction, resource: &'a str, path: Option<&'a [u8]>) -> Request<'a> {
        Request { action: action.name(), resource, context: Context::file(path), labels: None }
    }

    fn decision(policy: &Policy, action: FileAction, resource: &str, path: &[u8]) -> Decision {
        policy.decide(&file(action, resource, Some(path))).decision
    }

    fn refusal(document: &str) -> (String, String) {
        let refused = Policy::parse(document).expect_err(document);
        (refused.at, refused.problem)
    }

    #[test]
    fn the_file_actions_and_the_path_key_parse() {
        let policy = policy(&format!(
            "{}, {}",
            on_path("Allow", "session:*File*", "StringLike", r#"["/var/log", "/var/log/*"]"#),
            on_path("Deny", "SESSION:writefile", "StringEquals", r#""/etc/passwd""#),
        ));
        assert_eq!(
            policy.statements[0].conditions,
            vec![Condition::FilePath {
                operator: StringOperator::Like,
                values: vec!["/var/log".to_owned(), "/var/log/*".to_owned()],
            }]
        );
        assert_eq!(
            policy.statements[0].conditions[0].to_string(),
            "StringLike session:FilePath [/var/log, /var/log/*]"
        );
        assert_eq!(
            policy.statements[1].conditions[0].to_string(),
            "StringEquals session:FilePath /etc/passwd"
        );
        for action in FileAction::ALL {
            assert!(ACTIONS.contains(&action.name()), "{action:?} is a known action");
            assert_eq!(decision(&policy, action, WEB_1, b"/var/log/syslog"), Decision::Allow, "{action:?}");
        }
        // `session:*File*` names the three file actions, and nothing else.
        let shell = Request { action: START_SESSION, resource: WEB_1, context: Context::Empty, labels: None };
        assert_eq!(policy.decide(&shell).decision, Decision::ImplicitDeny);
        // Condition keys are matched without regard to case, as the other keys are.
        let lower = on_path("Allow", "session:ReadFile", "StringLike", r#""/srv/*""#)
            .replace("session:FilePath", "session:filepath");
        let lower = self::policy(&lower);
        assert_eq!(decision(&lower, FileAction::Read, WEB_1, b"/srv/x"), Decision::Allow);
    }

    #[test]
    fn misspelt_file_actions_are_refused_naming_the_actions() {
        let statement = |action: &str| {
            format!(r#"{{"Version": "1", "Statement": {}}}"#, unconditional("Allow", action, "*"))
        };
        let known = "the actions are session:StartSession, session:StartPortForward, session:ListFiles, \
                     session:ReadFile, session:WriteFile, session:DescribeInstanceStatus, \
                     session:TerminateSession, session:ModifySettings, session:ReadRecording";
        for (action, problem) in [
            ("session:ReadFiles", format!("session:ReadFiles is not an action: {known}")),
            ("session:ListFile", format!("session:ListFile is not an action: {known}")),
            ("session:*Files*Now", format!("session:*Files*Now matches no action: {known}")),
        ] {
            assert_eq!(refusal(&statement(action)), ("Statement[0].Action".to_owned(), problem));
        }
        for action in ["session:*File*", "session:*File", "session:ListFiles", "*:WriteFile", "*"] {
            assert!(Policy::parse(&statement(action)).is_ok(), "{action}");
        }
    }

    #[test]
    fn path_values_that_can_match_no_path_are_refused() {
        let document = |operator: &str, values: &str| {
            format!(
                r#"{{"Version": "1", "Statement": [{}]}}"#,
                on_path("Allow", "session:ReadFile", operator, values)
            )
        };
        let at = "Statement[0].Condition.StringLike.session:FilePath";
        for (values, at, problem) in [
            (r#""var/log/*""#, at.to_owned(), "var/log/* can match no path: a path is absolute"),
            (r#""/srv/app/""#, at.to_owned(), "/srv/app/ can match no path: a path does not end in /"),
            (r#""/srv/*/""#, at.to_owned(), "/srv/*/ can match no path: a path does not end in /"),
            (r#""/a/../b""#, at.to_owned(), "/a/../b can match no path: a path has no . or .. component"),
            (r#""/a/*/.""#, at.to_owned(), "/a/*/. can match no path: a path has no . or .. component"),
            (r#""/a/*/..""#, at.to_owned(), "/a/*/.. can match no path: a path has no . or .. component"),
            (r#""/a/./*""#, at.to_owned(), "/a/./* can match no path: a path has no . or .. component"),
            (r#""/a//b""#, at.to_owned(), "/a//b can match no path: a path has no empty component"),
            (r#""/a\u0000b""#, at.to_owned(), "can match no path: a path has no NUL byte"),
            (r#"["/ok", ""]"#, format!("{at}[1]"), "must not be empty"),
            (r#"7"#, at.to_owned(), "must be a string or a list of strings"),
        ] {
            let (refused_at, problem_given) = refusal(&document("StringLike", values));
            assert_eq!(refused_at, at, "{values}");
            assert!(problem_given.contains(problem), "{values}: {problem_given}");
        }
        // What some path in normal form can match is valid: the root, a `*` that may stand for
        // a whole component, dots within a name.
        for values in
            [r#""/""#, r#""*/""#, r#""*""#, r#""/srv/app""#, r#""/a/*..b""#, r#""*/.ssh/*""#, r#""/a/.b/*""#]
        {
            assert!(Policy::parse(&document("StringEquals", values)).is_ok(), "{values}");
        }
        // A path is a string: the numeric operators do not take it.
        let numeric = document("NumericEquals", r#""/srv""#);
        assert_eq!(
            refusal(&numeric),
            (
                "Statement[0].Condition.NumericEquals.session:FilePath".to_owned(),
                "NumericEquals compares numbers; session:FilePath is a string".to_owned()
            )
        );
        let unknown = document("StringLike", r#""/srv""#).replace("session:FilePath", "session:FilePaths");
        assert!(refusal(&unknown).1.contains(
            "(expected session:ForwardHost, session:ForwardPort, session:FilePath, session:SessionOwner or \
             session:InstanceLabel/<key>)"
        ));
    }

    #[test]
    fn a_recording_is_read_by_its_session_owner_condition_and_nothing_else_is() {
        let policy = policy(
            r#"{"Effect": "Allow", "Action": "session:ReadRecording", "Resource": "*",
                "Condition": {"StringLike": {"session:SessionOwner": ["alice", "ops-*"]}}}"#,
        );
        let read = |owner| {
            policy
                .decide(&Request {
                    action: READ_RECORDING,
                    resource: WEB_1,
                    context: Context::Session { owner },
                    labels: None,
                })
                .decision
        };
        assert_eq!(read("alice"), Decision::Allow);
        assert_eq!(read("ops-1"), Decision::Allow);
        assert_eq!(read("Alice"), Decision::ImplicitDeny, "user names compare byte for byte");
        assert_eq!(read("bob"), Decision::ImplicitDeny);
        // The condition speaks of recordings only: no other request has the key.
        let listing =
            Request { action: READ_RECORDING, resource: WEB_1, context: Context::Empty, labels: None };
        assert_eq!(policy.decide(&listing).decision, Decision::ImplicitDeny);
        let refused = policy.decide(&Request {
            action: READ_RECORDING,
            resource: WEB_1,
            context: Context::Session { owner: "bob" },
            labels: None,
        });
        assert_eq!(refused.conditions.len(), 1, "the condition that did not hold is named");
        assert_eq!(refused.conditions[0].to_string(), "StringLike session:SessionOwner [alice, ops-*]");
        // A numeric operator, or another key beside it, is refused.
        let numeric = r#"{"Version": "1", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"NumericEquals": {"session:SessionOwner": 1}}}}"#;
        assert!(
            refusal(numeric).1.contains("NumericEquals compares numbers; session:SessionOwner is a string")
        );
        let mixed = r#"{"Version": "1", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"StringLike": {"session:SessionOwner": "a", "session:FilePath": "/x"}}}}"#;
        assert_eq!(refusal(mixed).0, "Statement[0].Condition");
        assert!(refusal(mixed).1.contains("no request has both"));
    }

    #[test]
    fn one_statement_may_not_speak_of_forwards_and_files() {
        let document = r#"{"Version": "1", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
            "Condition": {"StringLike": {"session:FilePath": "/etc/*", "session:ForwardHost": "*"}}}]}"#;
        let (at, problem) = refusal(document);
        assert_eq!(at, "Statement[0].Condition");
        assert!(problem.contains("no request has both"), "{problem}");
    }

    #[test]
    fn a_path_prefix_confines_to_what_is_under_it() {
        let policy = policy(&on_path("Allow", "session:ReadFile", "StringLike", r#""/var/log/*""#));
        for path in [&b"/var/log/syslog"[..], b"/var/log/nginx/access.log", b"/var/log/with space"] {
            assert_eq!(
                decision(&policy, FileAction::Read, WEB_1, path),
                Decision::Allow,
                "{}",
                show_path(path)
            );
        }
        for path in [&b"/var/log"[..], b"/var/logs/x", b"/var/lo", b"/etc/shadow", b"/"] {
            let verdict = policy.decide(&file(FileAction::Read, WEB_1, Some(path)));
            assert_eq!(verdict.decision, Decision::ImplicitDeny, "{}", show_path(path));
            // The refusal names the path condition the path did not meet.
            assert_eq!(verdict.conditions[0].to_string(), "StringLike session:FilePath /var/log/*");
        }
        // Reading is not writing, nor listing.
        assert_eq!(decision(&policy, FileAction::Write, WEB_1, b"/var/log/syslog"), Decision::ImplicitDeny);
        assert_eq!(decision(&policy, FileAction::List, WEB_1, b"/var/log/syslog"), Decision::ImplicitDeny);
        // `StringEquals` is one path exactly: a `*` in it is itself.
        let exact = self::policy(&on_path("Allow", "session:ReadFile", "StringEquals", r#""/var/log/*""#));
        assert_eq!(decision(&exact, FileAction::Read, WEB_1, b"/var/log/syslog"), Decision::ImplicitDeny);
        assert_eq!(decision(&exact, FileAction::Read, WEB_1, b"/var/log/*"), Decision::Allow);
    }

    #[test]
    fn an_explicit_deny_of_a_path_wins() {
        let policy = policy(&format!(
            "{}, {}",
            unconditional("Allow", "session:*", "*"),
            on_path("Deny", "session:*", "StringLike", r#"["/etc/shadow", "*/.ssh/*"]"#),
        ));
        let denied = policy.decide(&file(FileAction::Read, WEB_1, Some(b"/etc/shadow")));
        assert_eq!(denied.decision, Decision::ExplicitDeny);
        assert_eq!(denied.conditions[0].to_string(), "StringLike session:FilePath [/etc/shadow, */.ssh/*]");
        assert_eq!(
            decision(&policy, FileAction::Write, WEB_1, b"/home/alice/.ssh/authorized_keys"),
            Decision::ExplicitDeny
        );
        assert_eq!(decision(&policy, FileAction::Read, WEB_1, b"/etc/hosts"), Decision::Allow);
        // A Deny with a path condition refuses no shell, no forward and no home directory.
        let shell = Request { action: START_SESSION, resource: WEB_1, context: Context::Empty, labels: None };
        assert_eq!(policy.decide(&shell).decision, Decision::Allow);
        let forward = Context::Forward { host: "127.0.0.1", port: 22 };
        let forward = Request { action: START_PORT_FORWARD, resource: WEB_1, context: forward, labels: None };
        assert_eq!(policy.decide(&forward).decision, Decision::Allow);
        assert_eq!(policy.decide(&file(FileAction::List, WEB_1, None)).decision, Decision::Allow);
    }

    #[test]
    fn the_home_directory_needs_a_grant_without_a_path_condition() {
        let conditional = policy(&on_path("Allow", "session:ListFiles", "StringLike", r#""*""#));
        let home = conditional.decide(&file(FileAction::List, WEB_1, None));
        // Even `*`: a request without a path has no value for the key.
        assert_eq!(home, Verdict { decision: Decision::ImplicitDeny, conditions: Vec::new() });
        assert_eq!(decision(&conditional, FileAction::List, WEB_1, b"/home/alice"), Decision::Allow);
        let plain = policy(&unconditional("Allow", "session:ListFiles", "*:instance/web-*"));
        assert_eq!(plain.decide(&file(FileAction::List, WEB_1, None)).decision, Decision::Allow);
        assert_eq!(plain.decide(&file(FileAction::List, DB_1, None)).decision, Decision::ImplicitDeny);
    }

    #[test]
    fn paths_compare_case_sensitively_and_hosts_do_not() {
        let policy = policy(&format!(
            "{}, {}",
            on_path("Allow", "session:ReadFile", "StringLike", r#""/var/log/*""#),
            on_path("Allow", "session:ReadFile", "StringEquals", r#""/etc/hosts""#),
        ));
        assert_eq!(decision(&policy, FileAction::Read, WEB_1, b"/var/log/x"), Decision::Allow);
        assert_eq!(decision(&policy, FileAction::Read, WEB_1, b"/VAR/log/x"), Decision::ImplicitDeny);
        assert_eq!(decision(&policy, FileAction::Read, WEB_1, b"/etc/hosts"), Decision::Allow);
        assert_eq!(decision(&policy, FileAction::Read, WEB_1, b"/etc/HOSTS"), Decision::ImplicitDeny);
        // A Deny is as exact: `/etc/SHADOW` is another file.
        let deny = self::policy(&format!(
            "{}, {}",
            unconditional("Allow", "session:ReadFile", "*"),
            on_path("Deny", "session:ReadFile", "StringEquals", r#""/etc/shadow""#),
        ));
        assert_eq!(decision(&deny, FileAction::Read, WEB_1, b"/etc/shadow"), Decision::ExplicitDeny);
        assert_eq!(decision(&deny, FileAction::Read, WEB_1, b"/etc/SHADOW"), Decision::Allow);
        let host = self::policy(
            r#"{"Effect": "Allow", "Action": "session:StartPortForward", "Resource": "*",
                "Condition": {"StringEquals": {"session:ForwardHost": "LocalHost"}}}"#,
        );
        let forward = Request {
            action: START_PORT_FORWARD,
            resource: WEB_1,
            context: Context::Forward { host: "localhost", port: 80 },
            labels: None,
        };
        assert_eq!(host.decide(&forward).decision, Decision::Allow);
    }

    #[test]
    fn paths_that_are_not_utf8_compare_as_bytes() {
        let policy = policy(&format!(
            "{}, {}",
            on_path("Allow", "session:*File*", "StringLike", r#""/srv/*""#),
            on_path("Deny", "session:*File*", "StringLike", r#""/srv/secret/*""#),
        ));
        let odd = b"/srv/caf\xe9/\xff\xfe.bin";
        assert_eq!(decision(&policy, FileAction::Read, WEB_1, odd), Decision::Allow);
        assert_eq!(decision(&policy, FileAction::Write, WEB_1, b"/srv/secret/\xff"), Decision::ExplicitDeny);
        assert_eq!(decision(&policy, FileAction::Read, WEB_1, b"/tmp/\xff"), Decision::ImplicitDeny);
        // The replacement character that a lossy conversion would make is not the byte.
        let replacement =
            self::policy(&on_path("Allow", "session:ReadFile", "StringEquals", r#""/tmp/\ufffd""#));
        assert_eq!(decision(&replacement, FileAction::Read, WEB_1, b"/tmp/\xff"), Decision::ImplicitDeny);
        assert_eq!(
            decision(&replacement, FileAction::Read, WEB_1, "/tmp/\u{fffd}".as_bytes()),
            Decision::Allow
        );
    }

    #[test]
    fn a_shown_path_is_one_line_and_reads_back_exactly() {
        assert_eq!(show_path(b"/etc/shadow"), "/etc/shadow");
        assert_eq!(show_path("/srv/café/a b".as_bytes()), "/srv/café/a b");
        assert_eq!(show_path(b"/tmp/a\xff.log"), "/tmp/a\\xff.log");
        assert_eq!(show_path(b"/tmp/a\nb\tc\x7f"), "/tmp/a\\x0ab\\x09c\\x7f");
        assert_eq!(show_path(b"/tmp/back\\slash"), "/tmp/back\\\\slash");
        // A C1 control character is valid UTF-8, and still escaped, byte by byte.
        assert_eq!(show_path("/tmp/\u{85}".as_bytes()), "/tmp/\\xc2\\x85");
        // A literal `\xff` in a name is told apart from the byte.
        assert_ne!(show_path(b"/tmp/\\xff"), show_path(b"/tmp/\xff"));
    }

    #[test]
    fn keys_of_one_kind_never_hold_for_requests_of_another() {
        let forward_only = policy(
            r#"{"Effect": "Allow", "Action": "session:*", "Resource": "*",
                "Condition": {"StringLike": {"session:ForwardHost": "*"}}}"#,
        );
        assert_eq!(decision(&forward_only, FileAction::Read, WEB_1, b"/etc/hosts"), Decision::ImplicitDeny);
        let refused = forward_only.decide(&file(FileAction::Read, WEB_1, Some(b"/etc/hosts")));
        assert!(refused.conditions.is_empty(), "a file refusal names no forward condition");
        let path_only = policy(&on_path("Allow", "session:*", "StringLike", r#""*""#));
        for context in [Context::Forward { host: "127.0.0.1", port: 80 }, Context::AnyForward] {
            let forward = Request { action: START_PORT_FORWARD, resource: WEB_1, context, labels: None };
            let verdict = path_only.decide(&forward);
            assert_eq!(verdict.decision, Decision::ImplicitDeny, "{context:?}");
            assert!(verdict.conditions.is_empty(), "a forward refusal names no path condition");
        }
        assert_eq!(decision(&path_only, FileAction::Write, WEB_1, b"/x"), Decision::Allow);
    }

    #[test]
    fn a_rename_is_two_write_requests() {
        // The API in access.rs asks for the source and then the destination; here, that each
        // half is decided on its own path.
        let policy = policy(&on_path("Allow", "session:WriteFile", "StringLike", r#""/srv/app/*""#));
        let both = |from: &[u8], to: &[u8]| {
            [from, to].iter().all(|path| decision(&policy, FileAction::Write, WEB_1, path).is_allowed())
        };
        assert!(both(b"/srv/app/a", b"/srv/app/b"));
        assert!(!both(b"/srv/app/a", b"/tmp/a"), "not out of where one may write");
        assert!(!both(b"/etc/passwd", b"/srv/app/passwd"), "nor into it");
    }

    #[test]
    fn a_client_connection_is_admitted_for_file_grants_alone() {
        let admits = |statements: &str, resource: &str| {
            may_hold_client(&[policy(statements)], resource, &Labels::new())
        };
        // Unconditional, or conditional on a path not named yet.
        assert!(admits(&unconditional("Allow", "session:ListFiles", "*:instance/web-*"), WEB_1));
        assert!(!admits(&unconditional("Allow", "session:ListFiles", "*:instance/web-*"), DB_1));
        assert!(admits(&on_path("Allow", "session:ReadFile", "StringLike", r#""/var/log/*""#), WEB_2));
        assert!(admits(&on_path("Allow", "session:WriteFile", "StringEquals", r#""/srv/app/x""#), WEB_2));
        // A Deny of some paths does not refuse the connection; a Deny of all does.
        let some = format!(
            "{}, {}",
            unconditional("Allow", "session:ReadFile", "*"),
            on_path("Deny", "session:ReadFile", "StringLike", r#""/etc/*""#)
        );
        assert!(admits(&some, WEB_1));
        let all = format!(
            "{}, {}",
            unconditional("Allow", "session:ReadFile", "*"),
            unconditional("Deny", "session:*", "*")
        );
        assert!(!admits(&all, WEB_1));
        // Neither a listing of instances nor a path-conditional forward-only grant admits: a
        // forward has no path.
        assert!(!admits(&unconditional("Allow", "session:DescribeInstanceStatus", "*"), WEB_1));
        let forward_with_path = on_path("Allow", "session:StartPortForward", "StringLike", r#""*""#);
        assert!(!admits(&forward_with_path, WEB_1));
        // As before: a shell, or a forward to some target.
        assert!(admits(&unconditional("Allow", "session:StartSession", "*"), WEB_1));
        let forward = r#"{"Effect": "Allow", "Action": "session:StartPortForward", "Resource": "*",
            "Condition": {"NumericEquals": {"session:ForwardPort": 5432}}}"#;
        assert!(admits(forward, WEB_1));
    }

    fn labels(header: &str) -> Labels {
        crate::labels::parse(header).expect("labels")
    }

    #[test]
    fn an_instance_label_condition_parses_and_names_its_key() {
        let policy = policy(
            r#"{"Effect": "Allow", "Action": "session:StartSession", "Resource": "*",
                "Condition": {"StringLike": {"SESSION:instancelabel/env": ["prod", "stag*"]}}}"#,
        );
        assert_eq!(
            policy.statements[0].conditions,
            vec![Condition::InstanceLabel {
                key: "env".to_owned(),
                operator: StringOperator::Like,
                values: vec!["prod".to_owned(), "stag*".to_owned()],
            }]
        );
        assert_eq!(
            policy.statements[0].conditions[0].to_string(),
            "StringLike session:InstanceLabel/env [prod, stag*]"
        );
        let document = |key: &str, operator: &str| {
            format!(
                r#"{{"Version": "1", "Statement": {{"Effect": "Allow", "Action": "*", "Resource": "*",
                    "Condition": {{"{operator}": {{"{key}": "x"}}}}}}}}"#
            )
        };
        for (key, operator, problem) in [
            (
                "session:InstanceLabel/account",
                "StringEquals",
                "account is a label the relay gives, never an agent",
            ),
            ("session:InstanceLabel/name", "StringLike", "name is a label the relay gives"),
            ("session:InstanceLabel/region", "StringLike", "region is a label the relay gives"),
            ("session:InstanceLabel/", "StringEquals", "a label's key is 1 to 64 of"),
            ("session:InstanceLabel/a b", "StringEquals", "a label's key is 1 to 64 of"),
            (
                "session:InstanceLabel/env",
                "NumericEquals",
                "NumericEquals compares numbers; session:InstanceLabel/env is a string",
            ),
            ("session:InstanceLabels/env", "StringEquals", "unknown condition key"),
        ] {
            let (at, given) = refusal(&document(key, operator));
            assert_eq!(at, format!("Statement[0].Condition.{operator}.{key}"));
            assert!(given.contains(problem), "{key}: {given}");
        }
        // The key after the prefix is compared byte for byte: `Name` is not `name`.
        assert!(Policy::parse(&document("session:InstanceLabel/Name", "StringEquals")).is_ok());
        // With any other key, a recording's owner too: every request on an instance has labels.
        let owner = r#"{"Version": "1", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"StringEquals": {"session:SessionOwner": "alice", "session:InstanceLabel/env": "prod"}}}}"#;
        assert!(Policy::parse(owner).is_ok());
    }

    #[test]
    fn an_instance_label_condition_holds_for_every_request_on_an_instance_that_has_it() {
        let policy = policy(&format!(
            "{}, {}",
            r#"{"Effect": "Allow", "Action": "session:*", "Resource": "*:instance/*",
                "Condition": {"StringEquals": {"session:InstanceLabel/env": "prod"}}}"#,
            r#"{"Effect": "Deny", "Action": "session:*", "Resource": "*",
                "Condition": {"StringLike": {"session:InstanceLabel/tier": "secret*"}}}"#,
        ));
        let (prod, dev, none, secret) =
            (labels("env=prod,role=web"), labels("env=dev"), Labels::new(), labels("env=prod,tier=secret-1"));
        let decide = |action, context, labels: Option<&Labels>| {
            policy.decide(&Request { action, resource: WEB_1, context, labels })
        };
        let forward = Context::Forward { host: "127.0.0.1", port: 22 };
        let owner = Context::Session { owner: "bob" };
        for (action, context) in [
            (START_SESSION, Context::Empty),
            (START_PORT_FORWARD, forward),
            (READ_FILE, Context::File { path: b"/etc/hosts" }),
            (LIST_FILES, Context::Empty),
            (DESCRIBE_INSTANCE_STATUS, Context::Empty),
            (READ_RECORDING, owner),
            (START_PORT_FORWARD, Context::AnyForward),
        ] {
            assert_eq!(
                decide(action, context, Some(&prod)).decision,
                Decision::Allow,
                "{action} {context:?}"
            );
            let refused = decide(action, context, Some(&dev));
            assert_eq!(refused.decision, Decision::ImplicitDeny, "{action}");
            // Named: the instance's label is why, whatever the request's kind.
            assert_eq!(refused.conditions[0].to_string(), "StringEquals session:InstanceLabel/env prod");
            let without = decide(action, context, Some(&none));
            assert_eq!(without.decision, Decision::ImplicitDeny, "no label, no grant");
            assert_eq!(without.conditions.len(), 1, "named too: the instance lacks it");
            let denied = decide(action, context, Some(&secret));
            assert_eq!(denied.decision, Decision::ExplicitDeny, "{action}");
            assert_eq!(denied.conditions[0].to_string(), "StringLike session:InstanceLabel/tier secret*");
        }
        // A request on no instance has no labels: the Allow does not apply, nor is it named.
        let settings = decide(MODIFY_SETTINGS, Context::Empty, None);
        assert_eq!(settings, Verdict { decision: Decision::ImplicitDeny, conditions: Vec::new() });
        // Values compare byte for byte, keys too.
        assert_eq!(
            decide(START_SESSION, Context::Empty, Some(&labels("env=Prod"))).decision,
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(START_SESSION, Context::Empty, Some(&labels("Env=prod"))).decision,
            Decision::ImplicitDeny
        );
        // A client connection is admitted on what the instance's labels allow.
        assert!(may_hold_client(core::slice::from_ref(&policy), WEB_1, &prod));
        assert!(!may_hold_client(core::slice::from_ref(&policy), WEB_1, &dev));
        assert!(!may_hold_client(core::slice::from_ref(&policy), WEB_1, &secret));
    }

    #[test]
    fn a_label_condition_and_another_key_must_both_hold() {
        let policy = policy(
            r#"{"Effect": "Allow", "Action": "session:StartPortForward", "Resource": "*",
                "Condition": {"StringEquals": {"session:InstanceLabel/role": "db"},
                              "NumericEquals": {"session:ForwardPort": 5432}}}"#,
        );
        let (db, web) = (labels("role=db"), labels("role=web"));
        let forward = |port, labels| {
            let context = Context::Forward { host: "127.0.0.1", port };
            policy.decide(&Request::new(START_PORT_FORWARD, WEB_1, context).on(labels)).decision
        };
        assert_eq!(forward(5432, &db), Decision::Allow);
        assert_eq!(forward(22, &db), Decision::ImplicitDeny);
        assert_eq!(forward(5432, &web), Decision::ImplicitDeny);
        let shell = policy.decide(&Request::new(START_SESSION, WEB_1, Context::Empty).on(&db));
        assert_eq!(
            shell.decision,
            Decision::ImplicitDeny,
            "a forward condition still speaks of forwards only"
        );
    }

    /// The policy of spec section 11.5's JSON example that mentions `needle`, parsed.
    fn spec_example(needle: &str) -> Policy {
        let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/PROTOCOL.md");
        let spec = std::fs::read_to_string(spec).expect("the spec");
        let section = spec
            .split("### 11.5 ")
            .nth(1)
            .and_then(|rest| rest.split("### 11.6 ").next())
            .expect("spec section 11.5");
        let example = section
            .split("```json\n")
            .skip(1)
            .filter_map(|block| block.split("```").next())
            .find(|block| block.contains(needle))
            .unwrap_or_else(|| panic!("an example with {needle}"));
        Policy::parse(example).unwrap_or_else(|e| panic!("{e}: {example}"))
    }

    /// The label example of spec section 11.5 parses and decides what the text says it does.
    #[test]
    fn the_spec_label_example_means_what_it_says() {
        let policy = spec_example("session:InstanceLabel/");
        let web = |id: &str| format!("srn:session:local:default:instance/{id}");
        let shell = |id: &str, labels: &Labels| {
            policy.decide(&Request::new(START_SESSION, &web(id), Context::Empty).on(labels))
        };
        assert_eq!(shell("web-1", &labels("env=dev")).decision, Decision::Allow);
        let prod = shell("web-2", &labels("env=prod"));
        assert_eq!(prod.decision, Decision::ExplicitDeny);
        assert_eq!(prod.conditions[0].to_string(), "StringLike session:InstanceLabel/env prod*");
        assert_eq!(shell("web-3", &Labels::new()).decision, Decision::Allow);
        let (web_2, prod) = (web("web-2"), labels("env=prod"));
        let listed = Request::new(DESCRIBE_INSTANCE_STATUS, &web_2, Context::Empty).on(&prod);
        assert_eq!(policy.decide(&listed).decision, Decision::Allow, "still listed");
        let forward = |id: &str, labels: &Labels| {
            let context = Context::Forward { host: "127.0.0.1", port: 5432 };
            policy.decide(&Request::new(START_PORT_FORWARD, &web(id), context).on(labels))
        };
        assert_eq!(forward("web-4", &labels("role=db")).decision, Decision::Allow);
        let not_db = forward("web-5", &labels("role=web"));
        assert_eq!(not_db.decision, Decision::ImplicitDeny);
        assert_eq!(not_db.conditions[0].to_string(), "StringEquals session:InstanceLabel/role db");
        let db_1 = forward("db-1", &labels("role=db"));
        assert_eq!(db_1, Verdict { decision: Decision::ImplicitDeny, conditions: Vec::new() });
    }

    /// The file example of spec section 11.5 parses and decides what the text says it does.
    #[test]
    fn the_spec_file_example_means_what_it_says() {
        let policy = spec_example("session:FilePath");
        use FileAction::{List, Read, Write};
        assert_eq!(decision(&policy, List, WEB_2, b"/var/log"), Decision::Allow);
        assert_eq!(decision(&policy, Read, WEB_2, b"/var/log/nginx/access.log"), Decision::Allow);
        let auth = policy.decide(&file(Read, WEB_2, Some(b"/var/log/auth.log")));
        assert_eq!(auth.decision, Decision::ExplicitDeny);
        assert_eq!(auth.conditions[0].to_string(), "StringLike session:FilePath /var/log/auth.log*");
        let shadow = policy.decide(&file(Read, WEB_2, Some(b"/etc/shadow")));
        assert_eq!(shadow.decision, Decision::ImplicitDeny);
        assert_eq!(shadow.conditions[0].to_string(), "StringLike session:FilePath [/var/log, /var/log/*]");
        assert_eq!(decision(&policy, Read, WEB_2, b"/VAR/LOG/syslog"), Decision::ImplicitDeny);
        assert_eq!(decision(&policy, Write, WEB_1, b"/srv/app/release.tar"), Decision::Allow);
        let upload = policy.decide(&file(Write, WEB_2, Some(b"/srv/app/release.tar")));
        assert_eq!(upload, Verdict { decision: Decision::ImplicitDeny, conditions: Vec::new() });
        assert_eq!(decision(&policy, Write, WEB_1, b"/srv/app/b"), Decision::Allow);
        assert_eq!(decision(&policy, Write, WEB_1, b"/tmp/b"), Decision::ImplicitDeny);
        assert_eq!(decision(&policy, Read, WEB_1, b"/srv/app/config"), Decision::ImplicitDeny);
        assert_eq!(policy.decide(&file(List, WEB_1, None)).decision, Decision::ImplicitDeny);
        let policies = [policy];
        assert!(may_hold_client(&policies, WEB_2, &Labels::new()));
        assert!(!may_hold_client(&policies, DB_1, &Labels::new()));
        for (action, context) in [(START_SESSION, Context::Empty), (START_PORT_FORWARD, Context::AnyForward)]
        {
            let request = Request { action, resource: WEB_1, context, labels: None };
            assert_eq!(decide(&policies, &request).decision, Decision::ImplicitDeny, "{action}");
        }
    }
}
