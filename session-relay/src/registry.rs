//! The instances the relay knows: which agent connection serves each, and its status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::route::AgentTx;

/// How an instance's agent can be reached.
#[derive(Clone)]
pub(crate) struct Entry {
    /// Which agent connection this is, so that a replaced one does not unregister its successor.
    pub(crate) serial: u64,
    /// The agent's task: requests of clients' tasks, and re-attaches.
    pub(crate) to_agent: AgentTx,
    /// The session's resume token.
    pub(crate) token: Vec<u8>,
    /// The public key the agent proved: sessions go to it only while the store holds that key
    /// for the instance.
    pub(crate) key: Vec<u8>,
    pub(crate) online: bool,
    pub(crate) last_seen: SystemTime,
}

impl core::fmt::Debug for Entry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The resume token authorises a re-attach: never in a log.
        f.debug_struct("Entry")
            .field("serial", &self.serial)
            .field("online", &self.online)
            .field("last_seen", &self.last_seen)
            .finish_non_exhaustive()
    }
}

/// Instances by name, shared by every task of the relay.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A task that panicked while holding the lock left the map consistent: every update
        // is a single insert or field write.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, name: &str) -> Option<Entry> {
        self.lock().get(name).cloned()
    }

    /// Registers `entry` for `name`, returning the entry it replaces.
    pub(crate) fn insert(&self, name: &str, entry: Entry) -> Option<Entry> {
        self.lock().insert(name.to_owned(), entry)
    }

    /// Forgets `name` if `serial` still serves it.
    pub(crate) fn remove(&self, name: &str, serial: u64) {
        let mut map = self.lock();
        if map.get(name).is_some_and(|e| e.serial == serial) {
            map.remove(name);
        }
    }

    /// Marks `name` online or offline (detached, waiting for its agent) if `serial` serves it.
    pub(crate) fn set_online(&self, name: &str, serial: u64, online: bool) {
        if let Some(entry) = self.lock().get_mut(name).filter(|e| e.serial == serial) {
            entry.online = online;
            entry.last_seen = SystemTime::now();
        }
    }

    /// The instances whose agents are connected (not detached) now.
    pub(crate) fn online(&self) -> std::collections::HashSet<String> {
        self.lock().iter().filter(|(_, e)| e.online).map(|(name, _)| name.clone()).collect()
    }

    /// Whether `name`'s agent is connected (not detached) now.
    pub fn is_online(&self, name: &str) -> bool {
        self.lock().get(name).is_some_and(|e| e.online)
    }

    /// Whether `name` has an agent session here, connected or detached, and when its agent
    /// was last seen (Unix seconds).
    pub(crate) fn presence(&self, name: &str, key: &[u8]) -> Option<(bool, i64)> {
        let map = self.lock();
        let entry = map.get(name).filter(|e| crate::secret::constant_time_eq(&e.key, key))?;
        let seen = entry.last_seen.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        Some((entry.online, seen))
    }
}
