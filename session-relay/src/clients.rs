//! Clients' resumable sessions, by their resume token: a browser whose network dropped, or a
//! client that lost its connection, re-attaches to the session it had (spec 12.9), as an
//! agent does to its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ring::digest::{SHA256, digest};

use crate::route::ClientTx;

/// Where a client's session can be reached.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Which task this is, so that an ended one does not unregister a later one.
    pub(crate) serial: u64,
    /// Only its own user may re-attach to a session, to the same instance.
    pub(crate) user: String,
    pub(crate) instance: String,
    pub(crate) to_client: ClientTx,
}

/// Sessions by the SHA-256 of their token: a lookup's timing tells nothing of a token.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clients {
    inner: Arc<Mutex<HashMap<[u8; 32], Entry>>>,
}

impl Clients {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // Every change is one insert or remove.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, token: &[u8], entry: Entry) {
        self.lock().insert(key(token), entry);
    }

    /// The session `token` names, when it is `user`'s on `instance`.
    pub(crate) fn get(&self, token: &[u8], user: &str, instance: &str) -> Option<ClientTx> {
        let clients = self.lock();
        let entry = clients.get(&key(token)).filter(|e| e.user == user && e.instance == instance)?;
        Some(entry.to_client.clone())
    }

    /// Forgets `token`'s session if `serial` still holds it.
    pub(crate) fn remove(&self, token: &[u8], serial: u64) {
        let mut clients = self.lock();
        if clients.get(&key(token)).is_some_and(|e| e.serial == serial) {
            clients.remove(&key(token));
        }
    }
}

fn key(token: &[u8]) -> [u8; 32] {
    let mut key = [0; 32];
    key.copy_from_slice(digest(&SHA256, token).as_ref());
    key
}
