//! How the listing commands print: a table for people, with times in words ("5 min ago"), or
//! JSON for programs (`-o json`), with times in RFC 3339. Both come from the relay's JSON
//! answers (spec 11.4), whose times are Unix seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Columns for people, times in words.
    Table,
    /// The relay's answer as one JSON object, times in RFC 3339 (UTC).
    Json,
}

/// `unix` seconds as words from `now`: "just now", "42 s ago", "5 min ago", "3 h ago",
/// "2 days ago"; "never" when there is no time.
pub(crate) fn ago(unix: Option<i64>, now: SystemTime) -> String {
    let Some(unix) = unix else { return "never".to_owned() };
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let seconds = now.saturating_sub(unix).max(0);
    match seconds {
        0..5 => "just now".to_owned(),
        5..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86_400 => format!("{} h ago", seconds / 3600),
        86_400..172_800 => "1 day ago".to_owned(),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

/// `unix` seconds in RFC 3339, UTC, to the second.
pub(crate) fn rfc3339(unix: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(unix.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Replaces the Unix-seconds field `key` of each object in `listing[list]` by RFC 3339.
fn times_in_rfc3339(listing: &Value, list: &str, key: &str) -> Value {
    let mut listing = listing.clone();
    if let Some(items) = listing.get_mut(list).and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            let time = item.get(key).and_then(Value::as_i64);
            item.insert(key.to_owned(), time.map_or(Value::Null, |t| Value::String(rfc3339(t))));
        }
    }
    listing
}

fn items<'a>(listing: &'a Value, list: &str) -> impl Iterator<Item = &'a Map<String, Value>> {
    listing.get(list).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_object)
}

fn text(item: &Map<String, Value>, key: &str) -> String {
    item.get(key).and_then(Value::as_str).unwrap_or("-").to_owned()
}

/// The instances of a `/v1/instances` answer.
pub(crate) fn instances(listing: &Value, format: Format, now: SystemTime) -> String {
    if format == Format::Json {
        return format!("{}\n", times_in_rfc3339(listing, "instances", "last_seen"));
    }
    let mut out = format!(
        "{:<20} {:<13} {:<9} {:<12} {:<10} {:<12} NAME\n",
        "INSTANCE", "STATUS", "VERSION", "LAST SEEN", "REGION", "ACCOUNT"
    );
    for instance in items(listing, "instances") {
        let labels = instance.get("labels").and_then(Value::as_object).cloned().unwrap_or_default();
        let seen = ago(instance.get("last_seen").and_then(Value::as_i64), now);
        out.push_str(&format!(
            "{:<20} {:<13} {:<9} {:<12} {:<10} {:<12} {}\n",
            text(instance, "name"),
            text(instance, "status"),
            text(instance, "agent_version"),
            seen,
            text(&labels, "region"),
            text(&labels, "account"),
            text(&labels, "name"),
        ));
    }
    out
}

/// The sessions of a `/v1/sessions` answer.
pub(crate) fn sessions(listing: &Value, format: Format, now: SystemTime) -> String {
    if format == Format::Json {
        return format!("{}\n", times_in_rfc3339(listing, "sessions", "started"));
    }
    let mut out = format!("{:<40} {:<20} {:<12} KIND\n", "SESSION", "INSTANCE", "STARTED");
    for session in items(listing, "sessions") {
        let started = ago(session.get("started").and_then(Value::as_i64), now);
        out.push_str(&format!(
            "{:<40} {:<20} {:<12} {}\n",
            text(session, "id"),
            text(session, "instance"),
            started,
            text(session, "kind"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW as u64)
    }

    #[test]
    fn times_read_as_words() {
        let cases = [
            (None, "never"),
            (Some(NOW), "just now"),
            (Some(NOW + 30), "just now"),
            (Some(NOW - 42), "42 s ago"),
            (Some(NOW - 300), "5 min ago"),
            (Some(NOW - 3 * 3600 - 5), "3 h ago"),
            (Some(NOW - 90_000), "1 day ago"),
            (Some(NOW - 9 * 86_400), "9 days ago"),
        ];
        for (time, words) in cases {
            assert_eq!(ago(time, now()), words, "{time:?}");
        }
    }

    #[test]
    fn json_output_has_rfc3339_times_and_the_rest_as_the_relay_said() {
        let listing = serde_json::json!({"instances": [
            {"name": "web-1", "status": "online", "last_seen": NOW, "labels": {"region": "local"}},
            {"name": "web-2", "status": "offline", "last_seen": null, "labels": {}},
        ]});
        let json: Value = serde_json::from_str(&instances(&listing, Format::Json, now())).unwrap();
        assert_eq!(json["instances"][0]["last_seen"], "2026-01-01T00:00:00Z");
        assert_eq!(json["instances"][1]["last_seen"], Value::Null);
        assert_eq!(json["instances"][0]["labels"]["region"], "local");
        let table = instances(&listing, Format::Table, now());
        assert!(table.lines().nth(1).unwrap().contains("just now"), "{table}");
        assert!(table.lines().nth(2).unwrap().contains("never"), "{table}");
    }

    #[test]
    fn sessions_print_their_start_in_words_or_rfc3339() {
        let listing = serde_json::json!({"sessions": [
            {"id": "alice-0123456789abcdef", "instance": "web-1", "kind": "shell", "started": NOW - 120},
        ]});
        assert!(sessions(&listing, Format::Table, now()).contains("2 min ago"));
        let json: Value = serde_json::from_str(&sessions(&listing, Format::Json, now())).unwrap();
        assert_eq!(json["sessions"][0]["started"], "2025-12-31T23:58:00Z");
    }
}
