//! How many connections may be in their handshake at once, in all and from one source address,
//! and where the handshake's slow work runs: so that peers who have proved nothing cannot take
//! the relay's descriptors, or the workers that move open sessions' data.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Connections in their handshake (TLS, WebSocket, an agent's proof and Hello) at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// In all: what unauthenticated peers may hold of the relay's descriptors.
    pub total: usize,
    /// From one source address.
    pub per_source: usize,
}

impl Default for HandshakeLimits {
    /// 512 in all and 64 from one address: handshakes take a few milliseconds, and a peer
    /// that stalls in one is dropped after 10 s.
    fn default() -> Self {
        HandshakeLimits { total: 512, per_source: 64 }
    }
}

impl HandshakeLimits {
    /// These limits on a process allowed `descriptors` open files: handshakes take at most
    /// half of them, so that authenticated connections, sessions and the store keep the rest.
    pub fn within(self, descriptors: u64) -> HandshakeLimits {
        let half = usize::try_from(descriptors / 2).unwrap_or(usize::MAX).max(1);
        HandshakeLimits { total: self.total.min(half), per_source: self.per_source.min(half) }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// The handshakes in progress, shared by the accept loop and the connections' tasks.
#[derive(Debug, Clone)]
pub(crate) struct Handshakes {
    limits: HandshakeLimits,
    counts: Arc<Mutex<Counts>>,
}

/// One connection's place among the handshakes in progress, given back when dropped: once
/// the peer has proved who it is, or has gone.
#[derive(Debug)]
pub(crate) struct Slot {
    counts: Arc<Mutex<Counts>>,
    source: IpAddr,
}

/// Which limit a connection met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Total,
    Source,
}

impl Handshakes {
    pub(crate) fn new(limits: HandshakeLimits) -> Handshakes {
        Handshakes { limits, counts: Arc::default() }
    }

    /// A slot for a connection from `source`, if both limits allow one more.
    pub(crate) fn enter(&self, source: IpAddr) -> Result<Slot, Full> {
        let mut counts = lock(&self.counts);
        if counts.total >= self.limits.total {
            return Err(Full::Total);
        }
        let from_source = counts.by_source.entry(source).or_default();
        if *from_source >= self.limits.per_source {
            return Err(Full::Source);
        }
        *from_source += 1;
        counts.total += 1;
        Ok(Slot { counts: Arc::clone(&self.counts), source })
    }
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // Every change is two counters under the lock: a panic cannot leave them apart.
    counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(from_source) = counts.by_source.get_mut(&self.source) {
            *from_source = from_source.saturating_sub(1);
            if *from_source == 0 {
                counts.by_source.remove(&self.source);
            }
        }
    }
}

/// Runs `work` (store queries, a signature check, a registration's commit) off the workers
/// that move open sessions' data: on a multi-threaded runtime the worker hands its other
/// tasks to a fresh one while this blocks. How many run at once is bounded by the handshake
/// slots.
pub(crate) fn off_workers<T>(work: impl FnOnce() -> T) -> T {
    let flavor = tokio::runtime::Handle::try_current().map(|runtime| runtime.runtime_flavor());
    match flavor {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_in_all_and_per_source_and_come_back() {
        let handshakes = Handshakes::new(HandshakeLimits { total: 3, per_source: 2 });
        let (a, b, c) = ([127, 0, 0, 2].into(), [127, 0, 0, 3].into(), [127, 0, 0, 4].into());
        let first = handshakes.enter(a).unwrap();
        let _second = handshakes.enter(a).unwrap();
        assert_eq!(handshakes.enter(a).unwrap_err(), Full::Source);
        let _third = handshakes.enter(b).unwrap();
        assert_eq!(handshakes.enter(c).unwrap_err(), Full::Total);
        drop(first);
        assert!(handshakes.enter(c).is_ok());
    }

    #[test]
    fn limits_leave_half_the_descriptors_to_authenticated_work() {
        let limits = HandshakeLimits::default().within(256);
        assert_eq!(limits, HandshakeLimits { total: 128, per_source: 64 });
        assert_eq!(HandshakeLimits::default().within(1 << 20), HandshakeLimits::default());
    }
}
