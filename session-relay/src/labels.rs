//! The labels an agent gives its instance (spec 11.1, `x-session-labels`): `key=value` pairs
//! that the relay stores with the instance at each proof, lists in `/v1/instances`, and that
//! policies may test (`session:InstanceLabel/<key>`, 11.5).

use std::collections::BTreeMap;

/// The request header an agent sends its labels in.
pub use session_link::identity::LABELS_HEADER;

/// Labels one agent may give, at most: a listing shows each, and each is stored.
pub const MAX_LABELS: usize = 16;

/// The longest label key or value.
pub const MAX_LABEL_LEN: usize = 64;

/// Keys the relay gives every instance itself (`/v1/instances`): an agent naming one would
/// claim its own account or region.
pub const RESERVED_KEYS: [&str; 3] = ["region", "account", "name"];

/// An instance's labels, by key: as its agent last gave them.
pub type Labels = BTreeMap<String, String>;

/// Whether `text` may be a label's key or value: 1 to 64 bytes of `A-Z a-z 0-9 - _ . @`, the
/// characters of a name (11.1), so that a label needs no quoting anywhere it is shown.
pub fn valid_part(text: &str) -> bool {
    (1..=MAX_LABEL_LEN).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// Whether `key` is one an agent may give: a valid part that is not one of the relay's own.
pub fn valid_key(key: &str) -> bool {
    valid_part(key) && !RESERVED_KEYS.contains(&key)
}

/// The labels of an `x-session-labels` value: `key=value` pairs separated by `,`, no spaces;
/// an empty value is no labels, as an absent header is. The error says what is wrong, for the
/// 400 that refuses the agent.
pub fn parse(header: &str) -> Result<Labels, String> {
    let mut labels = Labels::new();
    if header.is_empty() {
        return Ok(labels);
    }
    for pair in header.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("{pair:?} is not key=value"));
        };
        if RESERVED_KEYS.contains(&key) {
            return Err(format!("{key} is the relay's own label"));
        }
        if !valid_part(key) || !valid_part(value) {
            return Err(format!(
                "{pair:?}: a key and a value are each 1 to {MAX_LABEL_LEN} of A-Z a-z 0-9 - _ . @"
            ));
        }
        if labels.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(format!("{key} is given twice"));
        }
        if labels.len() > MAX_LABELS {
            return Err(format!("more than {MAX_LABELS} labels"));
        }
    }
    Ok(labels)
}

/// Labels as the header writes them, in order of key: `env=prod,role=web`; empty for none.
pub fn show(labels: &Labels) -> String {
    labels.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_key_value_pairs_in_the_names_characters() {
        let labels = parse("role=web,env=prod,zone=eu-west-1a,owner=ops@example.com").unwrap();
        assert_eq!(labels.len(), 4);
        assert_eq!(labels["env"], "prod");
        assert_eq!(show(&labels), "env=prod,owner=ops@example.com,role=web,zone=eu-west-1a");
        assert_eq!(parse(""), Ok(Labels::new()));
        assert_eq!(parse(&show(&labels)), Ok(labels));
    }

    #[test]
    fn a_bad_header_says_what_is_wrong() {
        for (header, problem) in [
            ("env", "\"env\" is not key=value"),
            ("env=prod,", "\"\" is not key=value"),
            ("env=prod, role=web", "\" role=web\": a key and a value are each 1 to 64"),
            ("env=", "\"env=\": a key and a value"),
            ("=prod", "\"=prod\": a key and a value"),
            ("env=a=b", "\"env=a=b\": a key and a value"),
            ("env=caf\u{e9}", "a key and a value"),
            ("env=prod,env=dev", "env is given twice"),
            ("account=other", "account is the relay's own label"),
            ("name=web-1", "name is the relay's own label"),
            ("region=eu", "region is the relay's own label"),
        ] {
            let refused = parse(header).expect_err(header);
            assert!(refused.contains(problem), "{header}: {refused}");
        }
        let long = "k".repeat(65);
        assert!(parse(&format!("{long}=v")).is_err());
        assert!(parse(&format!("k={long}")).is_err());
        assert!(parse(&format!("{}=v", &long[..64])).is_ok());
        let sixteen: Vec<String> = (0..16).map(|i| format!("k{i}=v")).collect();
        assert_eq!(parse(&sixteen.join(",")).map(|l| l.len()), Ok(16));
        let seventeen = format!("{},k16=v", sixteen.join(","));
        assert_eq!(parse(&seventeen), Err("more than 16 labels".to_owned()));
        // Keys compare byte for byte: these are two labels.
        assert_eq!(parse("Env=a,env=b").map(|l| l.len()), Ok(2));
        assert!(valid_key("Name"), "only the exact reserved keys are reserved");
        assert!(!valid_key("name"));
    }
}
