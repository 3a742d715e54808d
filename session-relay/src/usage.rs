//! What each user holds of each instance, against the relay's limits: so that one user's
//! connections and sessions cannot take an instance's channels (and its agent's processes)
//! from everyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// How much of one instance one user may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Client connections to the instance; and fleet connections, counted apart (`/v1/fleet`
    /// reaches no one instance).
    pub connections_per_user: usize,
    /// Sessions (shells, commands, port forwards) on the instance, over all the user's
    /// connections.
    pub channels_per_user: usize,
}

impl Default for Limits {
    /// 8 connections and 32 sessions per user and instance: far more than a person uses, far
    /// less than an agent's 256 channels.
    fn default() -> Self {
        Limits { connections_per_user: 8, channels_per_user: 32 }
    }
}

/// The instance key fleet connections count under: no instance has an empty name.
const FLEET: &str = "";

/// Which count a lease holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connection,
    Channel,
}

#[derive(Debug, Default, Clone, Copy)]
struct Held {
    connections: usize,
    channels: usize,
}

/// The counts of every user and instance, shared by every task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Usage {
    held: Arc<Mutex<HashMap<(String, String), Held>>>,
}

/// A connection or channel counted against its user's limit until dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    usage: Usage,
    key: (String, String),
    kind: Kind,
}

/// Why a lease was not given: the limit reached, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OverLimit(pub(crate) String);

impl Usage {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Held>> {
        // Every change is one counter: a panic cannot leave the map half-changed.
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a connection of `user` to `instance`, if the limit allows one more.
    pub(crate) fn connect(&self, user: &str, instance: &str, limits: &Limits) -> Result<Lease, OverLimit> {
        self.lease(user, instance, Kind::Connection, limits.connections_per_user)
    }

    /// Counts a fleet connection of `user` (`/v1/fleet`), if the limit allows one more: fleet
    /// connections count as connections to one instance of their own, named by no name can be
    /// (""), whatever instances their channels reach; each channel counts on its instance.
    pub(crate) fn connect_fleet(&self, user: &str, limits: &Limits) -> Result<Lease, OverLimit> {
        self.lease(user, FLEET, Kind::Connection, limits.connections_per_user)
    }

    /// Counts a session of `user` on `instance`, if the limit allows one more.
    pub(crate) fn open(&self, user: &str, instance: &str, limits: &Limits) -> Result<Lease, OverLimit> {
        self.lease(user, instance, Kind::Channel, limits.channels_per_user)
    }

    fn lease(&self, user: &str, instance: &str, kind: Kind, limit: usize) -> Result<Lease, OverLimit> {
        let key = (user.to_owned(), instance.to_owned());
        let mut held = self.lock();
        let entry = held.entry(key.clone()).or_default();
        let (count, what, flag) = match kind {
            Kind::Connection => (&mut entry.connections, "connections to", "--max-connections-per-user"),
            Kind::Channel => (&mut entry.channels, "sessions on", "--max-channels-per-user"),
        };
        if *count >= limit {
            let held = if instance == FLEET {
                format!("{count} fleet connections")
            } else {
                format!("{count} {what} instance {instance}")
            };
            return Err(OverLimit(format!("{user} holds {held}, the relay's limit per user ({flag})")));
        }
        *count += 1;
        drop(held);
        Ok(Lease { usage: self.clone(), key, kind })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = self.usage.lock();
        if let Some(entry) = held.get_mut(&self.key) {
            match self.kind {
                Kind::Connection => entry.connections = entry.connections.saturating_sub(1),
                Kind::Channel => entry.channels = entry.channels.saturating_sub(1),
            }
            if entry.connections == 0 && entry.channels == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_count_up_to_the_limit_and_give_back_when_dropped() {
        let usage = Usage::default();
        let limits = Limits { connections_per_user: 2, channels_per_user: 1 };
        let first = usage.connect("alice", "web", &limits).unwrap();
        let _second = usage.connect("alice", "web", &limits).unwrap();
        let refused = usage.connect("alice", "web", &limits).unwrap_err();
        assert_eq!(
            refused.0,
            "alice holds 2 connections to instance web, the relay's limit per user (--max-connections-per-user)"
        );
        assert!(usage.connect("bob", "web", &limits).is_ok(), "another user's share is theirs");
        assert!(usage.connect("alice", "db", &limits).is_ok(), "another instance's too");
        drop(first);
        assert!(usage.connect("alice", "web", &limits).is_ok());
        let _one = usage.open("alice", "web", &limits).unwrap();
        assert!(usage.open("alice", "web", &limits).is_err());
    }

    #[test]
    fn fleet_connections_have_a_count_of_their_own() {
        let usage = Usage::default();
        let limits = Limits { connections_per_user: 1, channels_per_user: 1 };
        let _web = usage.connect("alice", "web", &limits).unwrap();
        let fleet = usage.connect_fleet("alice", &limits).unwrap();
        assert_eq!(
            usage.connect_fleet("alice", &limits).unwrap_err().0,
            "alice holds 1 fleet connections, the relay's limit per user (--max-connections-per-user)"
        );
        assert!(usage.connect_fleet("bob", &limits).is_ok());
        drop(fleet);
        assert!(usage.connect_fleet("alice", &limits).is_ok());
    }
}
