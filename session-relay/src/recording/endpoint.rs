//! The recordings over the relay's port (spec 11.4): `/v1/recordings`, the list a user may
//! read, as one JSON answer; and `/v1/recordings/<id>?from=<offset>`, one recording, as text
//! messages of one chunk each, every chunk checked against the chain before it goes. Reading
//! needs `session:ReadRecording` on the recording's instance (11.5), whose condition key
//! `session:SessionOwner` is the user whose session it was.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::index::{self, Entry};
use super::read::Recording;
use crate::access::{Access, READ_RECORDING};
use crate::clip;
use crate::handshakes::off_workers;
use crate::policy::{Context, Labels};
use crate::sessions::Sessions;
use crate::store::Principal;

/// Recordings listed at most, newest first, unless the request asks for fewer.
pub(crate) const MAX_LISTED: u32 = 1000;

/// How often a followed recording is looked at for new chunks.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Looks at a followed recording after its session ended, at most, before giving its end up.
const FOLLOW_AFTER_END: u32 = 20;

/// Why a request for recordings is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denied {
    /// 404.
    NotFound(String),
    /// 403, audited by the gate.
    Forbidden(String),
    /// 503: the store or the files failed.
    Unavailable(String),
}

/// `/v1/recordings`: the newest `limit` recordings that `who` may read.
pub(crate) fn listing(access: &Access, who: &Principal, limit: u32) -> Result<String, Denied> {
    let entries =
        index::list(&access.store, limit.min(MAX_LISTED)).map_err(|e| Denied::Unavailable(e.to_string()))?;
    let reads = access.allowed_each(who, READ_RECORDING);
    // Each recording is on its instance, whose labels are as its agent last gave them: read
    // once for the whole list. An instance no longer registered has none.
    let labels: HashMap<String, Labels> = access
        .store
        .instances()
        .map_err(|e| Denied::Unavailable(e.to_string()))?
        .into_iter()
        .map(|instance| (instance.id, instance.labels))
        .collect();
    let none = Labels::new();
    let readable: Vec<serde_json::Value> = entries
        .iter()
        .filter(|entry| {
            let resource = access.instance(&entry.account, &entry.instance);
            let labels = labels.get(&entry.instance).unwrap_or(&none);
            reads(&resource, Context::Session { owner: &entry.user }, Some(labels))
        })
        .map(Entry::to_json)
        .collect();
    Ok(serde_json::json!({ "recordings": readable }).to_string())
}

/// One recording on its way to a reader.
#[derive(Debug)]
pub(crate) struct Stream {
    entry: Entry,
    recording: Option<Recording>,
    /// The session runs here and its recording is not indexed yet: the writer, behind, has not
    /// begun it. The stream waits for it.
    pending: bool,
    /// Byte `from` of the recording: the first chunk sent holds it.
    from: u64,
    follow: bool,
    sessions: Sessions,
    store: crate::store::Store,
}

/// `/v1/recordings/<id>?from=<offset>[&follow=1]`: recording `id`, if `who` may read it, from
/// the chunk that holds byte `from` of its `.cast`. A metadata entry is its description alone.
pub(crate) fn open(
    access: &Access,
    who: &Principal,
    id: &str,
    from: u64,
    follow: bool,
    sessions: &Sessions,
) -> Result<Stream, Denied> {
    let indexed = index::get(&access.store, id).map_err(|e| Denied::Unavailable(e.to_string()))?;
    let pending = indexed.is_none();
    let entry = match indexed {
        Some(entry) => entry,
        // Begun at the gate, not yet by the writer: what the session's owner and instance are
        // is known here, for the policy.
        None => sessions
            .get(id)
            .map(|active| provisional(id, &active))
            .ok_or_else(|| Denied::NotFound(format!("no recording {id}")))?,
    };
    let resource = access.instance(&entry.account, &entry.instance);
    let instance = access.store.instance(&entry.instance).map_err(|e| Denied::Unavailable(e.to_string()))?;
    let labels = instance.map(|instance| instance.labels).unwrap_or_default();
    access
        .check_in(who, READ_RECORDING, &resource, Context::Session { owner: &entry.user }, Some(&labels))
        .map_err(Denied::Forbidden)?;
    let recording = match &entry.path {
        None => None,
        Some(_) => {
            Some(Recording::of(&entry).map_err(|e| Denied::Unavailable(format!("recording {id}: {e}")))?)
        }
    };
    let (sessions, store) = (sessions.clone(), access.store.clone());
    Ok(Stream { entry, recording, pending, from, follow, sessions, store })
}

/// The entry of a session running here whose recording the writer has not begun yet.
fn provisional(id: &str, active: &crate::sessions::Active) -> Entry {
    Entry {
        id: id.to_owned(),
        user: active.owner.clone(),
        instance: active.instance.clone(),
        account: active.account.clone(),
        kind: active.kind.clone(),
        mode: super::Mode::Full.as_str().to_owned(),
        input: false,
        started: active.started as f64,
        ended: None,
        path: None,
        size: 0,
        chunks: None,
        sha256: None,
        unrecorded: 0,
        record: None,
    }
}

impl Stream {
    /// Waits until the writer has begun the recording, while its session runs and, unless
    /// following, for a few looks at most; what it then finds is what is sent.
    async fn wait_for_the_writer(&mut self) {
        let mut looks = 0;
        loop {
            if let Ok(Some(entry)) = off_workers(|| index::get(&self.store, &self.entry.id)) {
                let recording = entry.path.as_ref().map(|_| off_workers(|| Recording::of(&entry)));
                match recording {
                    Some(Ok(recording)) => {
                        self.recording = Some(recording);
                        self.entry = entry;
                        return;
                    }
                    // Metadata alone, known once the session ended.
                    None => {
                        self.entry = entry;
                        return;
                    }
                    // Indexed, its files not made yet.
                    Some(Err(_)) => {}
                }
            }
            // A follower waits while the session runs; anyone waits a few looks once it ended.
            looks += match (self.sessions.get(&self.entry.id).is_some(), self.follow) {
                (true, true) => 0,
                (true, false) => 1,
                (false, _) => FOLLOW_AFTER_END / 4,
            };
            if looks > FOLLOW_AFTER_END {
                return;
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }

    /// Sends the description (`{"recording": {...}, "from": <offset>}`), then a text message
    /// per chunk, then a Close without a status; a chunk that does not verify ends it with a
    /// Close 1011 saying which. Following, it waits for more chunks while the session runs.
    pub(crate) async fn serve<S>(mut self, ws: &mut WebSocketStream<S>) -> Result<(), String>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.pending {
            self.wait_for_the_writer().await;
        }
        let first = self
            .recording
            .as_ref()
            .map_or(0, |r| r.chunks().partition_point(|c| c.offset + c.len <= self.from));
        let from = self.recording.as_ref().map_or(0, |r| {
            r.chunks()
                .get(first)
                .map_or_else(|| r.chunks().last().map_or(0, |c| c.offset + c.len), |c| c.offset)
        });
        let head = serde_json::json!({ "recording": self.entry.to_json(), "from": from });
        ws.send(WsMessage::text(head.to_string())).await.map_err(|e| e.to_string())?;
        let Some(mut recording) = self.recording.take() else {
            let _ = ws.close(None).await;
            return Ok(());
        };
        let mut next = first;
        // Looks since the session ended: its recording's end comes a chunk interval after at
        // most, unless its relay died first (then it never comes).
        let mut since_ended = 0;
        loop {
            while next < recording.chunks().len() {
                let read = off_workers(|| recording.read(next));
                let text = read.map_err(|e| e.to_string()).and_then(|bytes| {
                    String::from_utf8(bytes).map_err(|_| format!("chunk {next} is not UTF-8"))
                });
                match text {
                    Ok(text) => ws.send(WsMessage::text(text)).await.map_err(|e| e.to_string())?,
                    Err(why) => {
                        let reason = clip(&why, 123).to_owned();
                        let _ = ws
                            .close(Some(CloseFrame { code: CloseCode::Error, reason: reason.into() }))
                            .await;
                        return Err(why);
                    }
                }
                next += 1;
            }
            if self.sessions.get(&self.entry.id).is_none() {
                since_ended += 1;
            }
            if !self.follow || recording.end().is_some() || since_ended > FOLLOW_AFTER_END {
                break;
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
            if let Err(e) = off_workers(|| recording.refresh()) {
                return Err(e.to_string());
            }
        }
        let _ = ws.close(None).await;
        Ok(())
    }
}
