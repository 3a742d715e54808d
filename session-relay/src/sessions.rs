//! The sessions in progress, by id, so that their owners can list and end them, and so that the
//! relay can publish them to its store for an operator and end those whose token or instance
//! an operator took away (`watch.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::answers;
use crate::route::{ClientTx, RouteId, ToClient, Why};

/// A session in progress.
#[derive(Debug, Clone)]
pub(crate) struct Active {
    pub(crate) owner: String,
    pub(crate) instance: String,
    pub(crate) account: String,
    pub(crate) kind: String,
    pub(crate) started: i64,
    /// The id of the token it was started with: revoking that token ends it.
    pub(crate) token: String,
    /// The key its agent proved: removing the instance, or registering it anew with another
    /// key, ends it.
    pub(crate) key: Vec<u8>,
    /// Its client connection's task, and its route there.
    pub(crate) client: ClientTx,
    pub(crate) route: RouteId,
}

/// Sessions by id, shared by every task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sessions {
    inner: Arc<Mutex<HashMap<String, Active>>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Active>> {
        // Every update is one insert or remove: a panic cannot leave the map half-changed.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, id: &str, active: Active) {
        self.lock().insert(id.to_owned(), active);
    }

    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub(crate) fn get(&self, id: &str) -> Option<Active> {
        self.lock().get(id).cloned()
    }

    /// Every session, as it is now.
    pub(crate) fn snapshot(&self) -> Vec<(String, Active)> {
        self.lock().iter().map(|(id, active)| (id.clone(), active.clone())).collect()
    }

    /// `owner`'s sessions, by start.
    pub(crate) fn of(&self, owner: &str) -> answers::Sessions {
        let map = self.lock();
        let mut mine: Vec<(&String, &Active)> = map.iter().filter(|(_, a)| a.owner == owner).collect();
        mine.sort_by_key(|(id, a)| (a.started, *id));
        let sessions = mine
            .into_iter()
            .map(|(id, a)| answers::SessionStatus {
                id: id.clone(),
                instance: a.instance.clone(),
                kind: a.kind.clone(),
                started: a.started,
            })
            .collect();
        answers::Sessions { sessions }
    }
}

impl Active {
    /// Asks the session's client task to end it, telling the client `why`; false if that task
    /// is gone.
    pub(crate) fn end(&self, why: Why) -> bool {
        self.client.send(ToClient::Terminate { route: self.route, why }).is_ok()
    }
}

/// Why a session ends when someone ended it: Reason TERMINATED, `the session was terminated by
/// <by>` (a user, or `admin:<login>`).
pub(crate) fn terminated_by(by: &str) -> Why {
    Why { code: session_proto::EndReason::TERMINATED, message: format!("the session was terminated by {by}") }
}
