//! The policy evaluator against a table of cases: wildcards in each position, lists, Deny over
//! Allow, default deny, and malformed documents refused with where they went wrong.

use session_relay::policy::{Decision, Policy, evaluate};

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
            vec![allow(r#""ecs:Other""#, r#""nothing""#)],
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

#[test]
fn the_seed_documents_examples_parse() {
    let sample = r#"{"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "ecs:StartTerminalSession", "Resource": "*"},
        {"Effect": "Allow", "Action": ["ecs:DescribeUserBusinessBehavior", "ecs:DescribeCloudAssistantStatus",
                                        "ecs:ModifyCloudAssistantSettings"], "Resource": "*"}]}"#;
    let policy = Policy::parse(sample).unwrap();
    assert_eq!(policy.statements.len(), 2);
    assert!(policy.evaluate("ecs:ModifyCloudAssistantSettings", "anything").is_allowed());
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
            r#"{"Version": "1", "Statement": [{"Action": "a:b", "Resource": "*"}]}"#,
            "Statement[0].Effect",
            "missing",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "allow", "Action": "a:b", "Resource": "*"}]}"#,
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
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["a:b", 3], "Resource": "*"}]}"#,
            "Statement[0].Action[1]",
            "must be a string",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "a:b"}]}"#,
            "Statement[0].Resource",
            "missing",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": ""}]}"#,
            "Statement[0].Resource",
            "must not be empty",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "a:b", "Resources": "*"}]}"#,
            "Statement[0].Resources",
            "unknown key",
        ),
        (
            r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*"}, {"Effect": "Deny"}]}"#,
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
