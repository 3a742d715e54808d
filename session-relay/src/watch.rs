//! What a running relay and `session-relay admin`, another process, tell each other through
//! the store (spec 12.10). Once every [`WATCH_EVERY`], the relay:
//!
//! - notes in the store that it runs (`relays`), and publishes the sessions it holds
//!   (`live_sessions`), which `admin session list` reads;
//! - takes the terminations `admin session terminate` asked of it (`terminations`), ends those
//!   sessions, and answers each request;
//! - checks the token and the instance of each session in progress against the store, and ends
//!   the sessions whose token no longer stands (revoked, expired, its user removed) or whose
//!   instance was removed.
//!
//! The store is the channel because it already is the one both processes share, guarded by the
//! file's permissions alone: no port to open, and nothing new to authenticate. Polling bounds
//! how late a change takes effect: one period after its commit, plus the time the store takes to
//! answer. The period costs the relay a few small queries a second, whatever happens.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use session_proto::EndReason;
use tokio::task::JoinHandle;

use crate::access::Access;
use crate::registry::Registry;
use crate::route::Why;
use crate::secret;
use crate::sessions::{Active, Sessions, terminated_by};
use crate::store::{
    ALREADY_ENDED, Instance, LiveSession, Refusal, RelayMark, Store, StoreError, TERMINATED, unix_now,
};

/// How often the relay reads and writes the store for what an operator does: the bound on how
/// late a termination, a revoked token or a removed instance ends a session.
pub(crate) const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A task that is aborted when this is dropped: the watch ends with the relay that runs it.
#[derive(Debug)]
pub(crate) struct Watching(JoinHandle<()>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts watching the store for the relay listening at `address`, which holds `sessions` and
/// the agents of `registry`.
pub(crate) fn start(access: &Access, sessions: Sessions, registry: Registry, address: String) -> Watching {
    let mark = RelayMark { id: access.relay.clone(), address, pid: std::process::id(), started: unix_now() };
    let watcher = Watcher { mark, published: HashSet::new(), ending: HashSet::new(), held: HashSet::new() };
    Watching(tokio::spawn(watch(access.store.clone(), sessions, registry, watcher)))
}

async fn watch(store: Store, sessions: Sessions, registry: Registry, mut watcher: Watcher) {
    let mut ticks = tokio::time::interval(WATCH_EVERY);
    // A store that was slow to answer delays the next look; looks do not pile up after it.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = sessions.snapshot();
        let agents = registry.online();
        let store = store.clone();
        // The store may wait for another process's lock (up to its busy timeout): never on a
        // thread that moves sessions' data.
        let looked = tokio::task::spawn_blocking(move || {
            let ends =
                watcher.tick(&store, &now).and_then(|ends| watcher.hold(&store, agents).map(|()| ends));
            (watcher, ends, now)
        })
        .await;
        let Ok((back, ends, now)) = looked else {
            tracing::error!("the relay's watch of its store failed; sessions are no longer published");
            return;
        };
        watcher = back;
        let ends = match ends {
            Ok(ends) => ends,
            Err(e) => {
                tracing::warn!(error = %e, "the store could not be read for terminations, tokens and instances");
                continue;
            }
        };
        let by_id: HashMap<&str, &Active> = now.iter().map(|(id, a)| (id.as_str(), a)).collect();
        for (id, why) in ends {
            if let Some(active) = by_id.get(id.as_str()) {
                tracing::info!(session = %id, user = %active.owner, why = %why.message, "ending session");
                active.end(why);
            }
        }
    }
}

/// What the relay has told the store so far.
#[derive(Debug)]
struct Watcher {
    mark: RelayMark,
    /// The sessions whose rows are in the store.
    published: HashSet<String>,
    /// Sessions told to end, not yet gone from the relay's map: never published again.
    ending: HashSet<String>,
    /// The agents whose location the store has as this relay.
    held: HashSet<String>,
}

impl Watcher {
    /// One look at the store, given the sessions in progress `now`: the sessions to end, and
    /// why. The store's rows change only if the whole look succeeds; otherwise the next look
    /// does it all again.
    fn tick(&mut self, store: &Store, now: &[(String, Active)]) -> Result<Vec<(String, Why)>, StoreError> {
        if store.relay_alive(&self.mark)? {
            // New, or taken for gone while it was slow (its rows removed): all written anew.
            self.published.clear();
            self.held.clear();
        }
        let here: HashMap<&str, &Active> = now.iter().map(|(id, a)| (id.as_str(), a)).collect();
        let mut ends: Vec<(String, Why)> = Vec::new();
        let mut answers: Vec<(String, &str)> = Vec::new();
        for (session, by) in store.termination_requests(&self.mark.id)? {
            if here.contains_key(session.as_str()) && !self.ending.contains(&session) {
                ends.push((session.clone(), terminated_by(&by)));
                answers.push((session, TERMINATED));
            } else {
                answers.push((session, ALREADY_ENDED));
            }
        }
        let mut tokens: HashMap<&str, Option<Why>> = HashMap::new();
        let mut instances: HashMap<&str, Option<Instance>> = HashMap::new();
        for (id, active) in now {
            if self.ending.contains(id) || ends.iter().any(|(ending, _)| ending == id) {
                continue;
            }
            let token = match tokens.get(active.token.as_str()) {
                Some(why) => why.clone(),
                None => {
                    let why = token_gone(store.token_valid(&active.token));
                    tokens.insert(&active.token, why.clone());
                    why
                }
            };
            if let Some(why) = token {
                ends.push((id.clone(), why));
                continue;
            }
            let registered = match instances.get(active.instance.as_str()) {
                Some(registered) => registered.clone(),
                None => {
                    // A store that cannot answer ends nothing: only a removal does.
                    let Ok(registered) = store.instance(&active.instance) else { continue };
                    instances.insert(&active.instance, registered.clone());
                    registered
                }
            };
            let keeps_key = registered.is_some_and(|i| secret::constant_time_eq(&i.public_key, &active.key));
            if !keeps_key {
                let message = format!("instance {} was removed", active.instance);
                ends.push((id.clone(), Why { code: EndReason::TERMINATED, message }));
            }
        }
        let ended: HashSet<&str> = ends.iter().map(|(id, _)| id.as_str()).collect();
        let live: HashSet<&str> =
            here.keys().copied().filter(|id| !ended.contains(id) && !self.ending.contains(*id)).collect();
        let added: Vec<LiveSession> = live
            .iter()
            .filter(|id| !self.published.contains(**id))
            .filter_map(|id| here.get(id).map(|active| published(id, active, &self.mark.address)))
            .collect();
        let gone: Vec<String> =
            self.published.iter().filter(|id| !live.contains(id.as_str())).cloned().collect();
        // An idle relay writes its heartbeat alone.
        if !(added.is_empty() && gone.is_empty() && answers.is_empty()) {
            store.publish_sessions(&self.mark.id, &added, &gone, &answers)?;
        }
        for id in &gone {
            self.published.remove(id);
        }
        self.published.extend(added.into_iter().map(|s| s.id));
        self.ending.extend(ended.iter().map(|id| (*id).to_owned()));
        self.ending.retain(|id| here.contains_key(id.as_str()));
        Ok(ends)
    }
}

impl Watcher {
    /// Tells the store which agents this relay holds now, `agents`: only what changed.
    fn hold(&mut self, store: &Store, agents: HashSet<String>) -> Result<(), StoreError> {
        let held: Vec<String> = agents.difference(&self.held).cloned().collect();
        let released: Vec<String> = self.held.difference(&agents).cloned().collect();
        if !(held.is_empty() && released.is_empty()) {
            store.hold_agents(&self.mark.id, &held, &released)?;
        }
        self.held = agents;
        Ok(())
    }
}

/// Why a session ends whose token no longer stands; `None` while it stands, or when the store
/// cannot say (a store that fails ends nothing).
fn token_gone(standing: Result<(), Refusal>) -> Option<Why> {
    let message = match standing {
        Ok(()) | Err(Refusal::Store(_)) => return None,
        Err(Refusal::Revoked(_)) => "the token this session was started with was revoked",
        Err(Refusal::Expired(_)) => "the token this session was started with has expired",
        // Its row is gone: its user was removed, and their tokens with them.
        Err(_) => "the token this session was started with no longer exists: its user was removed",
    };
    Some(Why { code: EndReason::TERMINATED, message: message.to_owned() })
}

fn published(id: &str, active: &Active, relay: &str) -> LiveSession {
    LiveSession {
        id: id.to_owned(),
        user: active.owner.clone(),
        instance: active.instance.clone(),
        account: active.account.clone(),
        kind: active.kind.clone(),
        started: active.started,
        relay: relay.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::ToClient;
    use crate::store::ActivationTerms;
    use tokio::sync::mpsc;

    const KEY: [u8; 32] = [7; 32];

    /// A store with instance `web-1` (key [`KEY`]) and user alice, and a token of hers.
    fn store() -> (Store, String) {
        let store = Store::in_memory().unwrap();
        let terms =
            ActivationTerms { account: "default".into(), label: None, ttl: Duration::from_secs(60), uses: 1 };
        let (code, _) = store.create_activation(&terms).unwrap();
        store.register("web-1", &KEY, &code).unwrap();
        store.add_user("alice").unwrap();
        let (_, token) = store.create_token("alice", Duration::from_secs(60)).unwrap();
        (store, token)
    }

    fn session(token: &str, route: u64) -> (Active, mpsc::UnboundedReceiver<ToClient>) {
        let (client, told) = mpsc::unbounded_channel();
        let active = Active {
            owner: "alice".into(),
            instance: "web-1".into(),
            account: "default".into(),
            kind: "shell".into(),
            started: 1,
            token: token.into(),
            key: KEY.to_vec(),
            client,
            route,
        };
        (active, told)
    }

    fn watcher() -> Watcher {
        let mark = RelayMark { id: "r".into(), address: "127.0.0.1:7070".into(), pid: 1, started: 0 };
        Watcher { mark, published: HashSet::new(), ending: HashSet::new(), held: HashSet::new() }
    }

    fn listed(store: &Store) -> Vec<String> {
        store.live_sessions().unwrap().into_iter().map(|s| s.id).collect()
    }

    #[test]
    fn sessions_are_published_and_those_asked_for_or_taken_away_are_ended_once() {
        let (store, token) = store();
        let (_, other) = store.create_token("alice", Duration::from_secs(60)).unwrap();
        let (a, _) = session(&token, 1);
        let (b, _) = session(&other, 2);
        let mut now = vec![("alice-a".to_owned(), a), ("alice-b".to_owned(), b)];
        let mut watcher = watcher();
        assert!(watcher.tick(&store, &now).unwrap().is_empty(), "nothing to end");
        assert_eq!(listed(&store), ["alice-a", "alice-b"]);

        // Asked for by an operator: ended with who asked, taken off the list at once.
        store.request_termination("alice-a", "admin:carol").unwrap();
        let ends = watcher.tick(&store, &now).unwrap();
        assert_eq!(ends.len(), 1);
        assert_eq!(
            (ends[0].0.as_str(), ends[0].1.message.as_str()),
            ("alice-a", "the session was terminated by admin:carol")
        );
        assert_eq!(ends[0].1.code, EndReason::TERMINATED);
        assert_eq!(listed(&store), ["alice-b"]);
        assert_eq!(store.termination_outcome("alice-a").unwrap(), Some(Some(TERMINATED.to_owned())));
        // Still in the relay's map until its client task has ended it: neither ended again nor
        // published again.
        store.revoke_token(&token).unwrap();
        assert!(watcher.tick(&store, &now).unwrap().is_empty());
        assert_eq!(listed(&store), ["alice-b"]);
        now.remove(0);

        store.revoke_token(&other).unwrap();
        let ends = watcher.tick(&store, &now).unwrap();
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].1.message, "the token this session was started with was revoked");
        assert!(listed(&store).is_empty());
    }

    #[test]
    fn an_expired_token_or_a_removed_user_or_instance_ends_sessions_and_an_ended_one_answers_its_request() {
        let (store, token) = store();
        let (a, _) = session(&token, 1);
        let now = vec![("alice-a".to_owned(), a)];
        let mut watcher = watcher();
        watcher.tick(&store, &now).unwrap();
        store.request_termination("alice-a", "admin:carol").unwrap();
        // The session ended on its own before the relay looked.
        assert!(watcher.tick(&store, &[]).unwrap().is_empty());
        assert_eq!(store.termination_outcome("alice-a").unwrap(), Some(Some(ALREADY_ENDED.to_owned())));

        let mut watcher = self::watcher();
        store.remove_instance("web-1").unwrap();
        let ends = watcher.tick(&store, &now).unwrap();
        assert_eq!(ends[0].1.message, "instance web-1 was removed");

        // Registered anew with another key: the sessions of the old key's agent end too.
        let (store, token) = self::store();
        let (mut a, _) = session(&token, 1);
        a.key = vec![8; 32];
        let ends = self::watcher().tick(&store, &[("alice-a".to_owned(), a)]).unwrap();
        assert_eq!(ends[0].1.message, "instance web-1 was removed");

        // A token that expired while its session ran (made expired here, so no clock is waited on).
        let (store, _) = self::store();
        let (_, expired) = store.create_token("alice", Duration::ZERO).unwrap();
        let (a, _) = session(&expired, 1);
        let ends = self::watcher().tick(&store, &[("alice-a".to_owned(), a)]).unwrap();
        assert_eq!(ends[0].1.message, "the token this session was started with has expired");

        let (store, token) = self::store();
        let (a, _) = session(&token, 1);
        store.remove_user("alice").unwrap();
        let ends = self::watcher().tick(&store, &[("alice-a".to_owned(), a)]).unwrap();
        assert_eq!(
            ends[0].1.message,
            "the token this session was started with no longer exists: its user was removed"
        );
    }

    #[tokio::test]
    async fn an_ended_session_is_told_why_through_its_client_task() {
        let (store, token) = store();
        let sessions = Sessions::default();
        let (a, mut told) = session(&token, 9);
        sessions.insert("alice-a", a);
        let access = Access::new(store.clone(), "local", crate::audit::Audit::log_only());
        let _watching = start(&access, sessions, Registry::default(), "127.0.0.1:7070".into());
        store.revoke_token(&token).unwrap();
        let message = tokio::time::timeout(Duration::from_secs(10), told.recv()).await.unwrap();
        let Some(ToClient::Terminate { route, why }) = message else { panic!("{message:?}") };
        assert_eq!((route, why.message.as_str()), (9, "the token this session was started with was revoked"));
    }
}
