//! Time as the caller tells it: the state machine has no clock of its own.

/// A point in time, in milliseconds since an epoch of the caller's choosing. Pass readings of one
/// monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(pub u64);

impl Instant {
    /// `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `ms` milliseconds later, saturating at the end of time.
    pub const fn after(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }
}
