//! The policy evaluator against a table of cases: wildcards in each position, lists, Deny over
//! Allow, default deny, conditions on a forward's target, and malformed documents refused with
//! where they went wrong.

use session_relay::policy::{Context, Decision, Policy, Request, evaluate};

const ACCOUNT: &str = "srn:session:eu-1:1234:instance/";

fn res(id: &str) -> String {
    format!("{ACCOUNT}{id}")
}

fn policy(statements: &str) -> Policy {
    Policy::parse(&format!(r#"{{"Version": "1", "Statement": [{statements}]}}"#)).expect("a valid policy")
}

fn allow(action: &str, resource: &str) -> String {
    format!(r#"{{"Effect": "Allow", "Action": {action}, "Resource": {resource}}}"#)
}

fn deny(action: &str, resource: &str) -> String {
    format!(r#"{{"Effect": "Deny", "Action": {action}, "Resource": {resource}}}"#)
}

#[test]
fn decisions() {
    use Decision::{Allow, ExplicitDeny, ImplicitDeny};
    let start = "session:StartSession";
    let cases: Vec<(&str, Vec<String>, &str, String, Decision)> = vec![
        (
            "exact action and resource",
            vec![allow(r#""session:StartSession""#, &format!("{:?}", res("i-001")))],
            start,
            res("i-001"),
            Allow,
        ),
        (
            "another instance",
            vec![allow(r#""session:StartSession""#, &format!("{:?}", res("i-001")))],
            start,
            res("i-002"),
            ImplicitDeny,
        ),
        (
            "another action",
            vec![allow(r#""session:StartSession""#, r#""*""#)],
            "session:StartPortForward",
            res("i-001"),
            ImplicitDeny,
        ),
        ("resource *", vec![allow(r#""session:StartSession""#, r#""*""#)], start, res("i-9"), Allow),
        (
            "action *",
            vec![allow(r#""*""#, &format!("{:?}", res("i-001")))],
            "session:TerminateSession",
            res("i-001"),
            Allow,
        ),
        (
            "service wildcard",
            vec![allow(r#""session:*""#, r#""*""#)],
            "session:ModifySettings",
            res("x"),
            Allow,
        ),
        (
            "service wildcard, other service",
            vec![allow(r#""session:*""#, r#""*""#)],
            "ecs:StartSession",
            res("x"),
            ImplicitDeny,
        ),
        (
            "action prefix wildcard",
            vec![allow(r#""session:Start*""#, r#""*""#)],
            "session:StartPortForward",
            res("x"),
            Allow,
        ),
        (
            "action prefix wildcard, no match",
            vec![allow(r#""session:Start*""#, r#""*""#)],
            "session:TerminateSession",
            res("x"),
            ImplicitDeny,
        ),
        (
            "action suffix wildcard",
            vec![allow(r#""session:*Session""#, r#""*""#)],
            "session:TerminateSession",
            res("x"),
            Allow,
        ),
        (
            "action case-insensitive",
            vec![allow(r#""SESSION:startsession""#, r#""*""#)],
            start,
            res("x"),
            Allow,
        ),
        (
            "instance prefix i-001*",
            vec![allow(r#""session:StartSession""#, &format!("{:?}", res("i-001*")))],
            start,
            res("i-0017"),
            Allow,
        ),
        (
            "instance prefix i-001* vs i-002",
            vec![allow(r#""session:StartSession""#, &format!("{:?}", res("i-001*")))],
            start,
            res("i-002"),
            ImplicitDeny,
        ),
        (
            "instance prefix matches itself",
            vec![allow(r#""session:StartSession""#, &format!("{:?}", res("i-001*")))],
            start,
            res("i-001"),
            Allow,
        ),
        (
            "region wildcard",
            vec![allow(r#""session:StartSession""#, r#""srn:session:*:1234:instance/i-001""#)],
            start,
            "srn:session:us-9:1234:instance/i-001".into(),
            Allow,
        ),
        (
            "region wildcard, other account",
            vec![allow(r#""session:StartSession""#, r#""srn:session:*:1234:instance/i-001""#)],
            start,
            "srn:session:us-9:9999:instance/i-001".into(),
            ImplicitDeny,
        ),
        (
            "account wildcard",
            vec![allow(r#""session:StartSession""#, r#""srn:session:eu-1:*:instance/i-001""#)],
            start,
            "srn:session:eu-1:42:instance/i-001".into(),
            Allow,
        ),
        (
            "account wildcard, other region",
            vec![allow(r#""session:StartSession""#, r#""srn:session:eu-1:*:instance/i-001""#)],
            start,
            "srn:session:eu-2:42:instance/i-001".into(),
            ImplicitDeny,
        ),
        (
            "type wildcard",
            vec![allow(r#""session:StartSession""#, r#""srn:session:eu-1:1234:*/i-001""#)],
            start,
            res("i-001"),
            Allow,
        ),
        (
            "middle wildcard spans colons",
            vec![allow(r#""session:StartSession""#, r#""srn:*:instance/i-001""#)],
            start,
            res("i-001"),
            Allow,
        ),
        (
            "two wildcards",
            vec![allow(r#""session:StartSession""#, r#""srn:session:*:*:instance/i-00*""#)],
            start,
            res("i-0042"),
            Allow,
        ),
        (
            "two wildcards, no match",
            vec![allow(r#""session:StartSession""#, r#""srn:session:*:*:instance/i-00*""#)],
            start,
            res("j-0042"),
            ImplicitDeny,
        ),
        (
            "wildcard must match a suffix",
            vec![allow(r#""session:StartSession""#, r#""*i-001""#)],
            start,
            res("i-0011"),
            ImplicitDeny,
        ),
        (
            "resource case-sensitive",
            vec![allow(r#""session:StartSession""#, &format!("{:?}", res("I-001")))],
            start,
            res("i-001"),
            ImplicitDeny,
        ),
        (
            "action list",
            vec![allow(r#"["session:StartSession", "session:StartPortForward"]"#, r#""*""#)],
            "session:StartPortForward",
            res("x"),
            Allow,
        ),
        (
            "action list, absent",
            vec![allow(r#"["session:StartSession", "session:StartPortForward"]"#, r#""*""#)],
            "session:ModifySettings",
            res("x"),
            ImplicitDeny,
        ),
        (
            "resource list",
            vec![allow(r#""session:StartSession""#, &format!("[{:?}, {:?}]", res("i-001"), res("i-002")))],
            start,
            res("i-002"),
            Allow,
        ),
        (
            "resource list, absent",
            vec![allow(r#""session:StartSession""#, &format!("[{:?}, {:?}]", res("i-001"), res("i-002")))],
            start,
            res("i-003"),
            ImplicitDeny,
        ),
        (
            "deny beats allow",
            vec![
                allow(r#""session:*""#, r#""*""#),
                deny(r#""session:StartSession""#, &format!("{:?}", res("i-0017"))),
            ],
            start,
            res("i-0017"),
            ExplicitDeny,
        ),
        (
            "deny elsewhere leaves allow",
            vec![
                allow(r#""session:*""#, r#""*""#),
                deny(r#""session:StartSession""#, &format!("{:?}", res("i-0017"))),
            ],
            start,
            res("i-0018"),
            Allow,
        ),
        (
            "deny first, allow after",
            vec![deny(r#""*""#, r#""*""#), allow(r#""*""#, r#""*""#)],
            start,
            res("x"),
            ExplicitDeny,
        ),
        (
            "deny of another action",
            vec![allow(r#""*""#, r#""*""#), deny(r#""session:ModifySettings""#, r#""*""#)],
            start,
            res("x"),
            Allow,
        ),
        ("deny alone", vec![deny(r#""session:StartSession""#, r#""*""#)], start, res("x"), ExplicitDeny),
        (
            "deny alone, other action: still no allow",
            vec![deny(r#""session:StartSession""#, r#""*""#)],
            "session:StartPortForward",
            res("x"),
            ImplicitDeny,
        ),
        (
            "no statement matches",
            vec![allow(r#""session:TerminateSession""#, r#""nothing""#)],
            start,
            res("x"),
            ImplicitDeny,
        ),
        (
            "status action",
            vec![allow(r#""session:DescribeInstanceStatus""#, r#""*""#)],
            "session:DescribeInstanceStatus",
            res("i-1"),
            Allow,
        ),
        (
            "settings action",
            vec![allow(r#""session:ModifySettings""#, r#""srn:session:*:1234:account""#)],
            "session:ModifySettings",
            "srn:session:eu-1:1234:account".into(),
            Allow,
        ),
        (
            "empty resource name never matches a literal",
            vec![allow(r#""*""#, r#""a""#)],
            start,
            String::new(),
            ImplicitDeny,
        ),
        ("star matches an empty name", vec![allow(r#""*""#, r#""*""#)], start, String::new(), Allow),
        ("many stars", vec![allow(r#""*""#, r#""***i-***1***""#)], start, res("i-001"), Allow),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for (name, statements, action, resource, expected) in &cases {
        let policy = policy(&statements.join(", "));
        assert_eq!(policy.evaluate(action, resource), *expected, "{name}");
    }
}

#[test]
fn policies_attached_together_combine_deny_first() {
    let grants = policy(&allow(r#""session:*""#, r#""*""#));
    let fence = policy(&deny(r#""session:StartSession""#, r#""*:instance/i-002*""#));
    let both = [grants.clone(), fence];
    assert_eq!(evaluate(&both, "session:StartSession", &res("i-0017")), Decision::Allow);
    assert_eq!(evaluate(&both, "session:StartSession", &res("i-002")), Decision::ExplicitDeny);
    assert_eq!(
        evaluate(&[], "session:StartSession", &res("i-0017")),
        Decision::ImplicitDeny,
        "nothing attached"
    );
    assert!(grants.evaluate("session:StartSession", &res("i-002")).is_allowed());
}

/// The seed documents' example names another service's actions: this relay refuses them, saying
/// which, rather than store a policy that grants nothing; the same statements in this relay's
/// actions parse.
#[test]
fn the_seed_documents_examples_are_refused_for_their_actions_and_parse_in_ours() {
    let sample = r#"{"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "ecs:StartTerminalSession", "Resource": "*"},
        {"Effect": "Allow", "Action": ["ecs:DescribeUserBusinessBehavior", "ecs:DescribeCloudAssistantStatus",
                                        "ecs:ModifyCloudAssistantSettings"], "Resource": "*"}]}"#;
    let refused = Policy::parse(sample).unwrap_err();
    assert_eq!(refused.at, "Statement[0].Action");
    assert!(refused.problem.starts_with("ecs:StartTerminalSession is not an action: "), "{refused}");

    let ours = r#"{"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "session:StartSession", "Resource": "*"},
        {"Effect": "Allow", "Action": ["session:DescribeInstanceStatus", "session:ModifySettings"],
         "Resource": "*"}]}"#;
    let policy = Policy::parse(ours).unwrap();
    assert_eq!(policy.statements.len(), 2);
    assert!(policy.evaluate("session:ModifySettings", "anything").is_allowed());
}

/// An action pattern names one of the relay's actions, or matches one with its `*`s; a
/// misspelt one would match nothing and grant (or deny) nothing without a word.
#[test]
fn unknown_actions_are_refused_naming_them_and_wildcards_must_match_one() {
    let known = "the actions are session:StartSession, session:StartPortForward, \
                 session:ListFiles, session:ReadFile, session:WriteFile, \
                 session:DescribeInstanceStatus, session:TerminateSession, session:ModifySettings, \
                 session:ReadRecording";
    let refusals = [
        (
            r#""session:StartSesion""#,
            "Statement[0].Action",
            format!("session:StartSesion is not an action: {known}"),
        ),
        (
            r#"["session:StartSession", "session:TerminateSessions"]"#,
            "Statement[0].Action[1]",
            format!("session:TerminateSessions is not an action: {known}"),
        ),
        (r#""ecs:*""#, "Statement[0].Action", format!("ecs:* matches no action: {known}")),
        (r#""session:Stop*""#, "Statement[0].Action", format!("session:Stop* matches no action: {known}")),
        (r#""*:Describe""#, "Statement[0].Action", format!("*:Describe matches no action: {known}")),
        (r#""StartSession""#, "Statement[0].Action", "an action is service:Name (or *)".to_owned()),
    ];
    for (action, at, problem) in refusals {
        let document = format!(r#"{{"Version": "1", "Statement": [{}]}}"#, allow(action, r#""*""#));
        let refused = Policy::parse(&document).expect_err(action);
        assert_eq!((refused.at.as_str(), refused.problem.as_str()), (at, problem.as_str()), "{action}");
    }
    // In a Deny as in an Allow: a misspelt Deny would deny nothing.
    let document =
        format!(r#"{{"Version": "1", "Statement": [{}]}}"#, deny(r#""session:StartSesion""#, r#""*""#));
    assert!(Policy::parse(&document).is_err());

    for action in [
        r#""*""#,
        r#""session:*""#,
        r#""session:Start*""#,
        r#""*:*Session""#,
        r#""*:StartPortForward""#,
        r#""SESSION:startsession""#,
        r#""session:*Status""#,
    ] {
        let document = format!(r#"{{"Version": "1", "Statement": [{}]}}"#, allow(action, r#""*""#));
        assert!(Policy::parse(&document).is_ok(), "{action}");
    }
}

#[test]
fn malformed_documents_say_where() {
    let cases = [
        ("not json", "", "not valid JSON"),
        (r#"[]"#, "", "a policy is a JSON object"),
        (r#"{"Statement": []}"#, "Version", "missing"),
        (r#"{"Version": 1, "Statement": []}"#, "Version", "must be the string \"1\""),
        (r#"{"Version": "2012-10-17", "Statement": []}"#, "Version", "must be the string \"1\""),
        (r#"{"Version": "1"}"#, "Statement", "missing"),
        (r#"{"Version": "1", "Statement": []}"#, "Statement", "must not be empty"),
        (r#"{"Version": "1", "Statement": "x"}"#, "Statement", "must be a statement or a list of them"),
        (r#"{"Version": "1", "Statement": [], "Extra": 1}"#, "Extra", "unknown key"),
        (r#"{"Version": "1", "Statement": [7]}"#, "Statement[0]", "a statement is a JSON object"),
        (
            r#"{"Version": "1", "Statement": [{"Action": "session:StartSession", "Resource": "*"}]}"#,
            "Statement[0].Effect",
            "missing",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "allow", "Action": "session:StartSession", "Resource": "*"}]}"#,
            "Statement[0].Effect",
            "must be",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Resource": "*"}]}"#,
            "Statement[0].Action",
            "missing",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}"#,
            "Statement[0].Action",
            "must not be empty",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "StartSession", "Resource": "*"}]}"#,
            "Statement[0].Action",
            "service:Name",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["session:StartSession", 3], "Resource": "*"}]}"#,
            "Statement[0].Action[1]",
            "must be a string",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "session:StartSession"}]}"#,
            "Statement[0].Resource",
            "missing",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "session:StartSession", "Resource": ""}]}"#,
            "Statement[0].Resource",
            "must not be empty",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "session:StartSession", "Resources": "*"}]}"#,
            "Statement[0].Resources",
            "unknown key",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "session:StartSession", "Resource": "*"}, {"Effect": "Deny"}]}"#,
            "Statement[1].Action",
            "missing",
        ),
    ];
    for (document, at, problem) in cases {
        let refused = Policy::parse(document).expect_err(document);
        assert_eq!(refused.at, at, "{document}");
        assert!(refused.problem.contains(problem), "{document}: {refused}");
    }
}

const FORWARD: &str = "session:StartPortForward";

fn to(host: &str, port: u16) -> Context<'_> {
    Context::Forward { host, port }
}

/// An Allow of `action` on every resource, under `condition`.
fn allow_if(action: &str, condition: &str) -> String {
    format!(r#"{{"Effect": "Allow", "Action": "{action}", "Resource": "*", "Condition": {condition}}}"#)
}

/// A Deny of `action` on every resource, under `condition`.
fn deny_if(action: &str, condition: &str) -> String {
    format!(r#"{{"Effect": "Deny", "Action": "{action}", "Resource": "*", "Condition": {condition}}}"#)
}

/// A name, the statements, the action, its context, the decision, and the conditions that a
/// refusal names (joined with `and`).
type ConditionCase<'a> = (&'a str, Vec<String>, &'a str, Context<'a>, Decision, &'a str);

#[test]
fn condition_decisions() {
    use Decision::{Allow, ExplicitDeny, ImplicitDeny};
    let loopback = r#"{"StringEquals": {"session:ForwardHost": "127.0.0.1"}}"#;
    let internal = r#"{"StringLike": {"session:ForwardHost": "*.internal"}}"#;
    let db = r#"{"StringEquals": {"session:ForwardHost": "127.0.0.1"}, "NumericEquals": {"session:ForwardPort": 5432}}"#;
    let ssh = r#"{"NumericEquals": {"session:ForwardPort": "22"}}"#;
    let everything = allow(r#""session:*""#, r#""*""#);
    let cases: Vec<ConditionCase<'_>> = vec![
        ("host equals", vec![allow_if(FORWARD, loopback)], FORWARD, to("127.0.0.1", 80), Allow, ""),
        (
            "another host",
            vec![allow_if(FORWARD, loopback)],
            FORWARD,
            to("127.0.0.2", 80),
            ImplicitDeny,
            "StringEquals session:ForwardHost 127.0.0.1",
        ),
        (
            "another spelling of the address is another string",
            vec![allow_if(FORWARD, loopback)],
            FORWARD,
            to("127.1", 80),
            ImplicitDeny,
            "StringEquals session:ForwardHost 127.0.0.1",
        ),
        (
            "names compare without regard to case",
            vec![allow_if(FORWARD, r#"{"StringEquals": {"session:ForwardHost": "DB.Example"}}"#)],
            FORWARD,
            to("db.example", 5432),
            Allow,
            "",
        ),
        (
            "a list of hosts: any one",
            vec![allow_if(FORWARD, r#"{"StringEquals": {"session:ForwardHost": ["10.0.0.1", "::1"]}}"#)],
            FORWARD,
            to("::1", 80),
            Allow,
            "",
        ),
        (
            "a list of hosts, none",
            vec![allow_if(FORWARD, r#"{"StringEquals": {"session:ForwardHost": ["10.0.0.1", "::1"]}}"#)],
            FORWARD,
            to("0:0:0:0:0:0:0:1", 80),
            ImplicitDeny,
            "StringEquals session:ForwardHost [10.0.0.1, ::1]",
        ),
        ("like: a suffix", vec![allow_if(FORWARD, internal)], FORWARD, to("db.eu.internal", 1), Allow, ""),
        (
            "like: case-insensitive",
            vec![allow_if(FORWARD, internal)],
            FORWARD,
            to("DB.INTERNAL", 1),
            Allow,
            "",
        ),
        (
            "like: the suffix must end the name",
            vec![allow_if(FORWARD, internal)],
            FORWARD,
            to("db.internal.example.com", 1),
            ImplicitDeny,
            "StringLike session:ForwardHost *.internal",
        ),
        (
            "like: an address prefix also matches a name that starts so",
            vec![allow_if(FORWARD, r#"{"StringLike": {"session:ForwardHost": "10.0.*"}}"#)],
            FORWARD,
            to("10.0.attacker.example", 1),
            Allow,
            "",
        ),
        ("port equals", vec![allow_if(FORWARD, db)], FORWARD, to("127.0.0.1", 5432), Allow, ""),
        (
            "port differs",
            vec![allow_if(FORWARD, db)],
            FORWARD,
            to("127.0.0.1", 5433),
            ImplicitDeny,
            "NumericEquals session:ForwardPort 5432",
        ),
        (
            "both operators must hold: the host differs",
            vec![allow_if(FORWARD, db)],
            FORWARD,
            to("localhost", 5432),
            ImplicitDeny,
            "StringEquals session:ForwardHost 127.0.0.1",
        ),
        ("a port written as a string", vec![allow_if(FORWARD, ssh)], FORWARD, to("10.0.0.1", 22), Allow, ""),
        (
            "at most",
            vec![allow_if(FORWARD, r#"{"NumericLessThanEquals": {"session:ForwardPort": 1023}}"#)],
            FORWARD,
            to("h", 1023),
            Allow,
            "",
        ),
        (
            "above at most",
            vec![allow_if(FORWARD, r#"{"NumericLessThanEquals": {"session:ForwardPort": 1023}}"#)],
            FORWARD,
            to("h", 1024),
            ImplicitDeny,
            "NumericLessThanEquals session:ForwardPort 1023",
        ),
        (
            "a range: at least and at most",
            vec![allow_if(
                FORWARD,
                r#"{"NumericGreaterThanEquals": {"session:ForwardPort": 8000}, "NumericLessThanEquals": {"session:ForwardPort": 8999}}"#,
            )],
            FORWARD,
            to("h", 8000),
            Allow,
            "",
        ),
        (
            "below the range",
            vec![allow_if(
                FORWARD,
                r#"{"NumericGreaterThanEquals": {"session:ForwardPort": 8000}, "NumericLessThanEquals": {"session:ForwardPort": 8999}}"#,
            )],
            FORWARD,
            to("h", 7999),
            ImplicitDeny,
            "NumericGreaterThanEquals session:ForwardPort 8000",
        ),
        (
            "ports: a list",
            vec![allow_if(FORWARD, r#"{"NumericEquals": {"session:ForwardPort": [80, "443"]}}"#)],
            FORWARD,
            to("h", 443),
            Allow,
            "",
        ),
        (
            "condition keys compare without regard to case",
            vec![allow_if(FORWARD, r#"{"NumericEquals": {"SESSION:forwardport": 22}}"#)],
            FORWARD,
            to("h", 22),
            Allow,
            "",
        ),
        (
            "a forward condition is false for a shell: no key, no grant",
            vec![allow_if("session:*", ssh)],
            "session:StartSession",
            Context::Empty,
            ImplicitDeny,
            "",
        ),
        (
            "nor for a listing",
            vec![allow_if("*", ssh)],
            "session:DescribeInstanceStatus",
            Context::Empty,
            ImplicitDeny,
            "",
        ),
        (
            "deny with a condition: it holds",
            vec![everything.clone(), deny_if(FORWARD, ssh)],
            FORWARD,
            to("10.0.0.1", 22),
            ExplicitDeny,
            "NumericEquals session:ForwardPort 22",
        ),
        (
            "deny with a condition: it does not hold",
            vec![everything.clone(), deny_if(FORWARD, ssh)],
            FORWARD,
            to("10.0.0.1", 2222),
            Allow,
            "",
        ),
        (
            "deny with a forward condition leaves shells alone",
            vec![everything.clone(), deny_if("*", ssh)],
            "session:StartSession",
            Context::Empty,
            Allow,
            "",
        ),
        (
            "deny: every condition must hold",
            vec![everything.clone(), deny_if(FORWARD, db)],
            FORWARD,
            to("127.0.0.1", 5432),
            ExplicitDeny,
            "NumericEquals session:ForwardPort 5432 and StringEquals session:ForwardHost 127.0.0.1",
        ),
        (
            "deny: one condition fails, no deny",
            vec![everything.clone(), deny_if(FORWARD, db)],
            FORWARD,
            to("127.0.0.2", 5432),
            Allow,
            "",
        ),
        (
            "an unconditional allow alongside a conditional one",
            vec![allow_if(FORWARD, ssh), allow(&format!("{FORWARD:?}"), r#""*""#)],
            FORWARD,
            to("h", 80),
            Allow,
            "",
        ),
        (
            "a condition on another resource is not named",
            vec![format!(
                r#"{{"Effect": "Allow", "Action": "{FORWARD}", "Resource": "*:instance/other", "Condition": {ssh}}}"#
            )],
            FORWARD,
            to("h", 80),
            ImplicitDeny,
            "",
        ),
        (
            "no target yet: a conditional allow may admit",
            vec![allow_if(FORWARD, db)],
            FORWARD,
            Context::AnyForward,
            Allow,
            "",
        ),
        (
            "no target yet: a conditional deny does not refuse",
            vec![allow(&format!("{FORWARD:?}"), r#""*""#), deny_if(FORWARD, ssh)],
            FORWARD,
            Context::AnyForward,
            Allow,
            "",
        ),
        (
            "no target yet: an unconditional deny refuses",
            vec![allow_if(FORWARD, db), deny(&format!("{FORWARD:?}"), r#""*""#)],
            FORWARD,
            Context::AnyForward,
            ExplicitDeny,
            "",
        ),
    ];
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for (name, statements, action, context, expected, named) in &cases {
        let policy = policy(&statements.join(", "));
        let resource = res("i-001");
        let verdict =
            policy.decide(&Request { action, resource: &resource, context: *context, labels: None });
        assert_eq!(verdict.decision, *expected, "{name}");
        let conditions: Vec<String> = verdict.conditions.iter().map(ToString::to_string).collect();
        assert_eq!(conditions.join(" and "), *named, "{name}: the conditions a refusal names");
    }
}

#[test]
fn malformed_conditions_say_where() {
    let statement = |condition: &str| {
        format!(
            r#"{{"Version": "1", "Statement": [{{"Effect": "Allow", "Action": "session:StartPortForward", "Resource": "*", "Condition": {condition}}}]}}"#
        )
    };
    let cases = [
        (r#""x""#, "Statement[0].Condition", "must be an object of condition operators"),
        ("{}", "Statement[0].Condition", "must not be empty"),
        (
            r#"{"StringEqual": {"session:ForwardHost": "a"}}"#,
            "Statement[0].Condition.StringEqual",
            "unknown condition operator",
        ),
        (
            r#"{"stringequals": {"session:ForwardHost": "a"}}"#,
            "Statement[0].Condition.stringequals",
            "unknown condition operator",
        ),
        (
            r#"{"IpAddress": {"session:ForwardHost": "10.0.0.0/8"}}"#,
            "Statement[0].Condition.IpAddress",
            "unknown condition operator",
        ),
        (
            r#"{"StringLike": "a"}"#,
            "Statement[0].Condition.StringLike",
            "must be an object of condition keys",
        ),
        (r#"{"StringLike": {}}"#, "Statement[0].Condition.StringLike", "must not be empty"),
        (
            r#"{"StringLike": {"session:ForwardHosts": "a"}}"#,
            "Statement[0].Condition.StringLike.session:ForwardHosts",
            "unknown condition key",
        ),
        (
            r#"{"StringEquals": {"aws:SourceIp": "10.0.0.1"}}"#,
            "Statement[0].Condition.StringEquals.aws:SourceIp",
            "unknown condition key",
        ),
        (
            r#"{"StringEquals": {"session:ForwardPort": "22"}}"#,
            "Statement[0].Condition.StringEquals.session:ForwardPort",
            "StringEquals compares strings; session:ForwardPort is a number",
        ),
        (
            r#"{"NumericEquals": {"session:ForwardHost": "10.0.0.1"}}"#,
            "Statement[0].Condition.NumericEquals.session:ForwardHost",
            "NumericEquals compares numbers; session:ForwardHost is a string",
        ),
        (
            r#"{"StringEquals": {"session:ForwardHost": []}}"#,
            "Statement[0].Condition.StringEquals.session:ForwardHost",
            "must not be empty",
        ),
        (
            r#"{"StringEquals": {"session:ForwardHost": ["a", ""]}}"#,
            "Statement[0].Condition.StringEquals.session:ForwardHost[1]",
            "must not be empty",
        ),
        (
            r#"{"StringEquals": {"session:ForwardHost": 7}}"#,
            "Statement[0].Condition.StringEquals.session:ForwardHost",
            "must be a string or a list of strings",
        ),
        (
            r#"{"NumericEquals": {"session:ForwardPort": 0}}"#,
            "Statement[0].Condition.NumericEquals.session:ForwardPort",
            "a port is an integer from 1 to 65535",
        ),
        (
            r#"{"NumericLessThanEquals": {"session:ForwardPort": 65536}}"#,
            "Statement[0].Condition.NumericLessThanEquals.session:ForwardPort",
            "a port is an integer from 1 to 65535",
        ),
        (
            r#"{"NumericEquals": {"session:ForwardPort": [22, "ssh"]}}"#,
            "Statement[0].Condition.NumericEquals.session:ForwardPort[1]",
            "a port is an integer from 1 to 65535",
        ),
        (
            r#"{"NumericEquals": {"session:ForwardPort": 22.5}}"#,
            "Statement[0].Condition.NumericEquals.session:ForwardPort",
            "a port is an integer from 1 to 65535",
        ),
        (
            r#"{"NumericGreaterThanEquals": {"session:ForwardPort": "-1"}}"#,
            "Statement[0].Condition.NumericGreaterThanEquals.session:ForwardPort",
            "a port is an integer from 1 to 65535",
        ),
        (
            r#"{"NumericEquals": {"session:ForwardPort": []}}"#,
            "Statement[0].Condition.NumericEquals.session:ForwardPort",
            "must not be empty",
        ),
    ];
    assert!(cases.len() >= 20, "{} cases", cases.len());
    for (condition, at, problem) in cases {
        let document = statement(condition);
        let refused = Policy::parse(&document).expect_err(&document);
        assert_eq!(refused.at, at, "{document}");
        assert!(refused.problem.contains(problem), "{document}: {refused}");
    }
    // In a later statement, the index says which.
    let document = r#"{"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "session:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "session:*", "Resource": "*", "Conditions": {}}]}"#;
    let refused = Policy::parse(document).unwrap_err();
    assert_eq!(
        (refused.at.as_str(), refused.problem.contains("unknown key")),
        ("Statement[1].Conditions", true)
    );
}

/// The policies the README and spec section 11.5 show are valid, and mean what they say.
#[test]
fn the_documented_policies_parse() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("the README");
    let web = readme
        .split("cat > web.json <<'JSON'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nJSON\n").next())
        .expect("the README's web.json");
    let web = Policy::parse(web).unwrap_or_else(|e| panic!("the README's policy: {e}"));
    let web_1 = "srn:session:local:default:instance/web-1";
    let forward =
        |host, port| Request { action: FORWARD, resource: web_1, context: to(host, port), labels: None };
    assert!(web.decide(&forward("127.0.0.1", 80)).decision.is_allowed());
    assert!(!web.decide(&forward("127.0.0.1", 22)).decision.is_allowed());
    assert!(!web.decide(&forward("169.254.169.254", 80)).decision.is_allowed());

    let spec = std::fs::read_to_string(format!("{root}/spec/PROTOCOL.md")).expect("the spec");
    let section = spec
        .split("### 11.5 ")
        .nth(1)
        .and_then(|rest| rest.split("### 11.6 ").next())
        .expect("spec section 11.5");
    let examples: Vec<&str> =
        section.split("```json\n").skip(1).filter_map(|block| block.split("```").next()).collect();
    assert!(examples.len() >= 2, "section 11.5 shows its examples");
    let examples: Vec<Policy> =
        examples.iter().map(|e| Policy::parse(e).unwrap_or_else(|error| panic!("{error}: {e}"))).collect();

    // The forward example says what it decides.
    let forwards = &examples[1];
    let db_1 = "srn:session:local:default:instance/db-1";
    let on =
        |resource, host, port| Request { action: FORWARD, resource, context: to(host, port), labels: None };
    assert_eq!(forwards.decide(&on(db_1, "127.0.0.1", 5432)).decision, Decision::Allow);
    let refused = forwards.decide(&on(db_1, "127.0.0.1", 6379));
    assert_eq!(refused.decision, Decision::ImplicitDeny);
    assert_eq!(refused.conditions[0].to_string(), "NumericEquals session:ForwardPort 5432");
    assert_eq!(forwards.decide(&on(web_1, "web.internal", 8080)).decision, Decision::Allow);
    assert_eq!(forwards.decide(&on(db_1, "web.internal", 9000)).decision, Decision::ImplicitDeny);
    assert_eq!(forwards.decide(&on(db_1, "web.internal", 22)).decision, Decision::ExplicitDeny);
    let everything = Policy::parse(session_relay::dev::FULL_ACCESS).unwrap();
    let both = [everything, forwards.clone()];
    let ssh = session_relay::policy::decide(&both, &on(web_1, "127.0.0.1", 22));
    assert_eq!(ssh.decision, Decision::ExplicitDeny, "never port 22, whatever another policy allows");
    assert!(!forwards.evaluate("session:StartSession", db_1).is_allowed(), "no shell");
}
