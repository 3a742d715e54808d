//! Which instances a run reaches: `--target` names and globs, and `--label key=value`, against
//! the relay's listing (`/v1/instances`, the instances this user may see, with their labels).

use std::collections::BTreeSet;

use serde_json::Value;
use session_proto::is_instance_name;

/// What the command line selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    /// `--target`: names, and globs of `*` (any run) and `?` (any one character).
    pub(crate) names: Vec<String>,
    /// `--label`: each pair must be one of the instance's labels.
    pub(crate) labels: Vec<(String, String)>,
}

/// A `--target`: an instance name, or a glob of one; checked here so that a typo is a usage
/// error, not a target the relay calls unknown.
pub(crate) fn target(text: &str) -> Result<String, String> {
    let glob_chars = text.bytes().all(|b| b == b'*' || b == b'?' || name_char(b));
    let fits = if is_glob(text) {
        !text.is_empty()
    } else {
        (1..=session_proto::MAX_INSTANCE_LEN).contains(&text.len())
    };
    if glob_chars && fits {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?}: a name is 1 to {} of A-Z a-z 0-9 - _ . @, a glob may hold * and ? too",
            session_proto::MAX_INSTANCE_LEN
        ))
    }
}

/// A `--label`: `key=value`, as `list` shows labels.
pub(crate) fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

fn name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.@".contains(&b)
}

fn is_glob(name: &str) -> bool {
    name.contains(['*', '?'])
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters and `?` for
/// any one. On a mismatch only the most recent `*` is retried, so it is linear in practice.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = n.get(ni) {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&pc) if pc == c || pc == b'?' => {
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
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == b'*')
}

impl Selection {
    /// Whether the relay's listing is needed: only names given, none a glob, need none, and the
    /// first target starts a round trip sooner.
    pub(crate) fn needs_listing(&self) -> bool {
        !self.labels.is_empty() || self.names.iter().any(|name| is_glob(name))
    }

    /// The targets, in order of name, each once. A name with no glob character is kept even
    /// when the listing does not hold it (the relay answers for it: unknown, or not allowed),
    /// unless `--label` is given, whose labels only the listing tells.
    pub(crate) fn select(&self, listing: Option<&Value>) -> Vec<String> {
        let listed: Vec<(&str, Option<&serde_json::Map<String, Value>>)> = listing
            .and_then(|listing| listing.get("instances"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|instance| {
                // Checked, as it may become a file's name under --output-dir.
                let name = instance
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|name| is_instance_name(name.as_bytes()))?;
                Some((name, instance.get("labels").and_then(Value::as_object)))
            })
            .collect();
        let labelled = |labels: Option<&serde_json::Map<String, Value>>| {
            self.labels.iter().all(|(key, value)| {
                labels.and_then(|l| l.get(key)).and_then(Value::as_str) == Some(value.as_str())
            })
        };
        let mut chosen = BTreeSet::new();
        for (name, labels) in &listed {
            let named = self.names.is_empty() || self.names.iter().any(|pattern| glob(pattern, name));
            if named && labelled(*labels) {
                chosen.insert((*name).to_owned());
            }
        }
        if self.labels.is_empty() {
            chosen.extend(self.names.iter().filter(|name| !is_glob(name)).cloned());
        }
        chosen.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_take_a_star_for_any_run_and_a_question_mark_for_one() {
        for (pattern, name) in [
            ("*", "web-1"),
            ("web-*", "web-1"),
            ("web-?", "web-1"),
            ("w?b-*", "wab-12"),
            ("*-1?", "db-10"),
            ("a*b*c", "axxbyyc"),
            ("exact", "exact"),
        ] {
            assert!(glob(pattern, name), "{pattern} ~ {name}");
        }
        for (pattern, name) in
            [("web-?", "web-10"), ("web-?", "web-"), ("web-*", "db-1"), ("?", ""), ("exact", "exactly")]
        {
            assert!(!glob(pattern, name), "{pattern} !~ {name}");
        }
    }

    #[test]
    fn targets_and_labels_are_checked_as_given() {
        assert_eq!(target("web-*"), Ok("web-*".to_owned()));
        assert_eq!(target("i-0017"), Ok("i-0017".to_owned()));
        for bad in ["", "web/1", "web 1", "caf\u{e9}", &"a".repeat(65)] {
            assert!(target(bad).is_err(), "{bad:?}");
        }
        assert_eq!(label("env=prod"), Ok(("env".to_owned(), "prod".to_owned())));
        assert!(label("env").is_err());
        assert!(label("=prod").is_err());
    }

    fn listing() -> Value {
        let instance = |name: &str, env: &str, role: &str| {
            json!({"name": name, "status": "online",
                   "labels": {"region": "local", "account": "test", "name": name, "env": env, "role": role}})
        };
        json!({"instances": [
            instance("web-2", "prod", "web"),
            instance("web-1", "prod", "web"),
            instance("web-10", "dev", "web"),
            instance("db-1", "prod", "db"),
            {"name": "bare", "status": "offline", "labels": {"region": "local"}},
        ]})
    }

    fn select(names: &[&str], labels: &[(&str, &str)], listing: Option<&Value>) -> Vec<String> {
        let selection = Selection {
            names: names.iter().map(|&n| n.to_owned()).collect(),
            labels: labels.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect(),
        };
        selection.select(listing)
    }

    #[test]
    fn names_globs_and_labels_select_in_order_of_name() {
        let listing = listing();
        let listing = Some(&listing);
        assert_eq!(select(&["web-?"], &[], listing), ["web-1", "web-2"]);
        assert_eq!(select(&["web-*", "db-1"], &[], listing), ["db-1", "web-1", "web-10", "web-2"]);
        assert_eq!(select(&[], &[("env", "prod")], listing), ["db-1", "web-1", "web-2"]);
        // Labels are ANDed, with each other and with the names.
        assert_eq!(select(&[], &[("env", "prod"), ("role", "web")], listing), ["web-1", "web-2"]);
        assert_eq!(select(&["*-1*"], &[("env", "prod")], listing), ["db-1", "web-1"]);
        assert_eq!(select(&[], &[("region", "local"), ("env", "dev")], listing), ["web-10"]);
        assert!(select(&["nothing-*"], &[], listing).is_empty());
        assert!(select(&[], &[("env", "staging")], listing).is_empty());
    }

    #[test]
    fn a_plain_name_is_kept_unlisted_unless_labels_must_be_checked() {
        let listing = listing();
        assert_eq!(select(&["gone", "web-1", "web-1"], &[], Some(&listing)), ["gone", "web-1"]);
        assert_eq!(select(&["gone", "web-1"], &[("env", "prod")], Some(&listing)), ["web-1"]);
        assert_eq!(select(&["b", "a"], &[], None), ["a", "b"]);
        let plain = Selection { names: vec!["web-1".into()], labels: Vec::new() };
        assert!(!plain.needs_listing());
        assert!(Selection { names: vec!["web-*".into()], ..plain.clone() }.needs_listing());
        assert!(Selection { labels: vec![("env".into(), "prod".into())], ..plain }.needs_listing());
    }
}
