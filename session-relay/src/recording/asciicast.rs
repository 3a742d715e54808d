//! asciicast, the format of the recordings: version 3 as written (a header line, then one
//! `[interval, code, data]` line per event, the interval in seconds since the event before),
//! and version 2 for older players (the same events at times since the start, and no `x`).
//! <https://docs.asciinema.org/manual/asciicast/v3/>, <https://docs.asciinema.org/manual/asciicast/v2/>.

use serde::Serialize;
use serde_json::Value;
use session_proto::ExitStatus;

/// The most bytes of text one output or input event carries: a longer piece of output becomes
/// several events at the same time. Escaped, a byte takes at most six (`\u001b`), so every line
/// stays well inside a chunk (`MAX_LINE`).
pub(crate) const MAX_EVENT_TEXT: usize = 8 * 1024;

/// The longest line the writer makes: an event of [`MAX_EVENT_TEXT`] bytes, all escaped, with
/// its interval and code; headers are shorter (their strings are clipped).
pub(crate) const MAX_LINE: usize = 6 * MAX_EVENT_TEXT + 64;

/// Strings of the header longer than this are clipped: a command line can be long.
const MAX_HEADER_TEXT: usize = 4096;

/// The terminal of a recording's start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Term {
    pub(crate) cols: u16,
    pub(crate) rows: u16,
    /// `TERM` of the Open's pty; absent for a command without a terminal.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
}

/// The first line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Header {
    pub(crate) version: u8,
    pub(crate) term: Term,
    /// Unix seconds of the session's start.
    pub(crate) timestamp: i64,
    /// An Exec's command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) command: Option<String>,
    /// `<session id>: <user> on <instance>, <kind>`.
    pub(crate) title: String,
}

impl Header {
    /// The header line, newline included.
    pub(crate) fn line(&self) -> Vec<u8> {
        let mut header = self.clone();
        header.command = header.command.map(|c| clip(c, MAX_HEADER_TEXT));
        header.title = clip(header.title, MAX_HEADER_TEXT);
        // A struct of strings and numbers always serializes.
        let mut line = serde_json::to_vec(&header).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

fn clip(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// What an event line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    Output,
    Input,
    Resize,
    Marker,
    Exit,
}

impl Code {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Code::Output => "o",
            Code::Input => "i",
            Code::Resize => "r",
            Code::Marker => "m",
            Code::Exit => "x",
        }
    }

    fn parse(code: &str) -> Option<Code> {
        Some(match code {
            "o" => Code::Output,
            "i" => Code::Input,
            "r" => Code::Resize,
            "m" => Code::Marker,
            "x" => Code::Exit,
            _ => return None,
        })
    }
}

/// Seconds with six decimals, from microseconds: exact, so that intervals summed by a player
/// give the times measured (floats summed would drift).
pub(crate) fn seconds(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Appends the line of one event to `out`.
pub(crate) fn event(out: &mut Vec<u8>, micros: u64, code: Code, data: &str) {
    out.push(b'[');
    out.extend_from_slice(seconds(micros).as_bytes());
    out.extend_from_slice(b", \"");
    out.extend_from_slice(code.as_str().as_bytes());
    out.extend_from_slice(b"\", ");
    // A string always serializes; serde_json escapes control characters as `\uXXXX`.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"]\n");
}

/// `text` in pieces of at most [`MAX_EVENT_TEXT`] bytes, cut at character boundaries.
pub(crate) fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(MAX_EVENT_TEXT);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// The `x` event's data: the exit code, or 128 + the signal that killed the process, as a
/// shell reports it.
pub(crate) fn exit_status(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(code) => code.to_string(),
        ExitStatus::Signal { signal, .. } => (128 + u32::from(signal.0)).to_string(),
    }
}

/// One line of a recording, read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// The header: a JSON object.
    Header(Value),
    /// An event, at `micros` after the one before.
    Event {
        /// The interval, in microseconds.
        micros: u64,
        /// `o`, `i`, `r`, `m` or `x`.
        code: String,
        /// Its data.
        data: String,
    },
    /// A comment (`#`) or an empty line: v3 players skip them.
    Skip,
}

/// Why a line is not asciicast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine(pub String);

impl core::fmt::Display for BadLine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadLine {}

/// Parses one line (without its newline) of a v3 recording.
pub fn parse_line(line: &str) -> Result<Line, BadLine> {
    if line.is_empty() || line.starts_with('#') {
        return Ok(Line::Skip);
    }
    let value: Value = serde_json::from_str(line).map_err(|e| BadLine(format!("not JSON: {e}")))?;
    match value {
        Value::Object(_) => Ok(Line::Header(value)),
        Value::Array(items) => match items.as_slice() {
            [Value::Number(time), Value::String(code), Value::String(data)] => {
                let seconds = time.as_f64().filter(|t| t.is_finite() && *t >= 0.0);
                let seconds = seconds.ok_or_else(|| BadLine(format!("bad interval {time}")))?;
                if Code::parse(code).is_none() {
                    return Err(BadLine(format!("unknown event code {code:?}")));
                }
                let micros = (seconds * 1e6).round() as u64;
                Ok(Line::Event { micros, code: code.clone(), data: data.clone() })
            }
            _ => Err(BadLine("an event is [interval, code, data]".to_owned())),
        },
        _ => Err(BadLine("neither a header nor an event".to_owned())),
    }
}

/// Rewrites a v3 recording as v2: the header's `term` becomes `width`, `height` and `env.TERM`,
/// each event's time is the sum of the intervals so far, and `x` (which v2 does not have) is
/// left out. Comments are left out too: a v2 reader takes every line for an event.
#[derive(Debug, Default)]
pub struct ToV2 {
    at: u64,
    header_seen: bool,
}

impl ToV2 {
    /// The v2 line (newline included) for one v3 line, if it has one.
    pub fn line(&mut self, line: &str) -> Result<Option<String>, BadLine> {
        match parse_line(line)? {
            Line::Skip => Ok(None),
            Line::Header(header) if !self.header_seen => {
                self.header_seen = true;
                Ok(Some(v2_header(&header)?))
            }
            Line::Header(_) => Err(BadLine("a second header".to_owned())),
            Line::Event { .. } if !self.header_seen => Err(BadLine("an event before the header".to_owned())),
            Line::Event { micros, code, data } => {
                self.at = self.at.saturating_add(micros);
                if code == "x" {
                    return Ok(None);
                }
                let mut out = Vec::with_capacity(data.len() + 32);
                let code = Code::parse(&code).unwrap_or(Code::Marker);
                event(&mut out, self.at, code, &data);
                Ok(Some(String::from_utf8_lossy(&out).into_owned()))
            }
        }
    }
}

fn v2_header(v3: &Value) -> Result<String, BadLine> {
    let term = v3.get("term").ok_or_else(|| BadLine("the header has no term".to_owned()))?;
    let size = |key: &str| term.get(key).and_then(Value::as_u64).filter(|&n| n > 0);
    let (Some(width), Some(height)) = (size("cols"), size("rows")) else {
        return Err(BadLine("the header's term has no cols and rows".to_owned()));
    };
    let mut header = serde_json::Map::new();
    header.insert("version".into(), 2.into());
    header.insert("width".into(), width.into());
    header.insert("height".into(), height.into());
    for key in ["timestamp", "command", "title"] {
        if let Some(value) = v3.get(key) {
            header.insert(key.into(), value.clone());
        }
    }
    if let Some(kind) = term.get("type").and_then(Value::as_str) {
        header.insert("env".into(), serde_json::json!({ "TERM": kind }));
    }
    Ok(format!("{}\n", Value::Object(header)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_line_of_json_whatever_the_text() {
        let mut out = Vec::new();
        event(&mut out, 1_500_000, Code::Output, "a\"b\\c\u{1b}[1m\r\n\u{0}é");
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line, "[1.500000, \"o\", \"a\\\"b\\\\c\\u001b[1m\\r\\n\\u0000é\"]\n");
        assert_eq!(
            parse_line(line.trim_end()).unwrap(),
            Line::Event { micros: 1_500_000, code: "o".into(), data: "a\"b\\c\u{1b}[1m\r\n\u{0}é".into() }
        );
    }

    #[test]
    fn long_text_is_cut_at_characters_into_bounded_events() {
        let text = "€".repeat(MAX_EVENT_TEXT);
        let parts: Vec<&str> = pieces(&text).collect();
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| p.len() <= MAX_EVENT_TEXT && !p.is_empty()));
        let worst = "\u{1}".repeat(MAX_EVENT_TEXT);
        let mut out = Vec::new();
        event(&mut out, u64::from(u32::MAX) * 1_000_000, Code::Output, &worst);
        assert!(out.len() <= MAX_LINE, "{} > {MAX_LINE}", out.len());
    }

    #[test]
    fn v2_has_absolute_times_and_no_exit() {
        let mut v2 = ToV2::default();
        let header = r#"{"version":3,"term":{"cols":80,"rows":24,"type":"xterm"},"timestamp":5,"title":"t"}"#;
        let out = v2.line(header).unwrap().unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"version": 2, "width": 80, "height": 24, "timestamp": 5, "title": "t",
                               "env": {"TERM": "xterm"}})
        );
        assert_eq!(v2.line(r#"[0.25, "o", "a"]"#).unwrap().unwrap(), "[0.250000, \"o\", \"a\"]\n");
        assert_eq!(v2.line("# a comment").unwrap(), None);
        assert_eq!(v2.line(r#"[0.5, "r", "90x30"]"#).unwrap().unwrap(), "[0.750000, \"r\", \"90x30\"]\n");
        assert_eq!(v2.line(r#"[1.0, "x", "0"]"#).unwrap(), None);
        assert_eq!(v2.line(r#"[0.000001, "m", "gap"]"#).unwrap().unwrap(), "[1.750001, \"m\", \"gap\"]\n");
        assert!(v2.line(r#"[1, "q", ""]"#).is_err());
    }
}
