//! The labels an operator gives the instance (`--label env=prod`), sent to the relay on every
//! dial (spec 11.1, `x-session-labels`), where users select instances by them and policies may
//! test them. They are checked here as the relay checks them, so that a bad one stops the agent
//! at its start (exit 2, naming it) instead of having every dial refused.

use std::collections::BTreeMap;

/// Labels one agent may give, at most.
pub const MAX_LABELS: usize = 16;

/// The longest label key or value.
const MAX_PART_LEN: usize = 64;

/// Keys the relay gives every instance itself: it refuses an agent naming one.
const RESERVED_KEYS: [&str; 3] = ["region", "account", "name"];

/// The instance's labels, by key: in order of key, each key once.
pub type Labels = BTreeMap<String, String>;

/// One `key=value`, as `--label` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: String,
}

impl core::str::FromStr for Label {
    type Err = String;

    fn from_str(text: &str) -> Result<Label, String> {
        let Some((key, value)) = text.split_once('=') else {
            return Err(format!("{text:?} is not key=value"));
        };
        if RESERVED_KEYS.contains(&key) {
            return Err(format!("{key} is the relay's own label"));
        }
        if !valid_part(key) || !valid_part(value) {
            return Err(format!(
                "{text:?}: a key and a value are each 1 to {MAX_PART_LEN} of A-Z a-z 0-9 - _ . @"
            ));
        }
        Ok(Label { key: key.to_owned(), value: value.to_owned() })
    }
}

/// Whether `text` may be a label's key or value: the characters of an instance name, so that a
/// label needs no quoting in the header, a listing or a policy.
fn valid_part(text: &str) -> bool {
    (1..=MAX_PART_LEN).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// The labels given, as the instance's: each key at most once, [`MAX_LABELS`] at most.
pub fn collect(given: Vec<Label>) -> Result<Labels, String> {
    let mut labels = Labels::new();
    for Label { key, value } in given {
        if labels.contains_key(&key) {
            return Err(format!("{key} is given twice"));
        }
        labels.insert(key, value);
    }
    if labels.len() > MAX_LABELS {
        return Err(format!("{} labels: at most {MAX_LABELS}", labels.len()));
    }
    Ok(labels)
}

/// The header's value: `env=prod,role=web`.
pub(crate) fn header(labels: &Labels) -> String {
    labels.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(text: &str) -> Result<Label, String> {
        text.parse()
    }

    #[test]
    fn labels_are_key_value_in_the_names_characters_and_go_in_order_of_key() {
        let given = ["role=web", "env=prod", "owner=ops@example.com", "zone=eu-west-1a"];
        let labels = collect(given.iter().map(|l| label(l).unwrap()).collect()).unwrap();
        assert_eq!(header(&labels), "env=prod,owner=ops@example.com,role=web,zone=eu-west-1a");
        assert_eq!(header(&Labels::new()), "");
        let longest = format!("{}={}", "k".repeat(64), "v".repeat(64));
        assert!(label(&longest).is_ok());
    }

    #[test]
    fn a_bad_label_says_what_is_wrong() {
        for (text, problem) in [
            ("env", "\"env\" is not key=value"),
            ("env=", "a key and a value are each 1 to 64"),
            ("=prod", "a key and a value"),
            ("env=a=b", "a key and a value"),
            ("env=a,b=c", "a key and a value"),
            ("env=a b", "a key and a value"),
            ("env=caf\u{e9}", "a key and a value"),
            ("name=web-1", "name is the relay's own label"),
            ("region=eu", "region is the relay's own label"),
            ("account=other", "account is the relay's own label"),
        ] {
            let refused = label(text).expect_err(text);
            assert!(refused.contains(problem), "{text}: {refused}");
        }
        assert!(label(&format!("{}=v", "k".repeat(65))).is_err());
        assert!(label(&format!("k={}", "v".repeat(65))).is_err());

        let twice = vec![label("env=prod").unwrap(), label("env=dev").unwrap()];
        assert_eq!(collect(twice), Err("env is given twice".to_owned()));
        let many = (0..17).map(|i| label(&format!("k{i}=v")).unwrap()).collect::<Vec<_>>();
        assert_eq!(collect(many[..16].to_vec()).map(|l| l.len()), Ok(16));
        assert_eq!(collect(many), Err("17 labels: at most 16".to_owned()));
    }
}
