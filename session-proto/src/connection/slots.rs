//! The channel table: room for `C` channels at once. With `alloc`, only as many slots as were in
//! use at once exist, and none once every channel is closed, so that a connection with room for
//! a thousand channels (a relay's, to an agent) costs what it uses, not what it might. Without
//! it, the `C` slots are inline. Slots keep their index while they exist.

use super::channel::Channel;

#[derive(Debug)]
pub(super) struct Slots<const C: usize> {
    #[cfg(feature = "alloc")]
    slots: alloc::vec::Vec<Option<Channel>>,
    #[cfg(not(feature = "alloc"))]
    slots: [Option<Channel>; C],
}

impl<const C: usize> Slots<C> {
    pub(super) const fn new() -> Self {
        #[cfg(feature = "alloc")]
        let slots = alloc::vec::Vec::new();
        #[cfg(not(feature = "alloc"))]
        let slots = [const { None }; C];
        Slots { slots }
    }

    /// How many slots exist: every index below it may hold a channel.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn iter(&self) -> core::slice::Iter<'_, Option<Channel>> {
        self.slots.iter()
    }

    pub(super) fn iter_mut(&mut self) -> core::slice::IterMut<'_, Option<Channel>> {
        self.slots.iter_mut()
    }

    pub(super) fn get_mut(&mut self, index: usize) -> Option<&mut Option<Channel>> {
        self.slots.get_mut(index)
    }

    /// Whether one more channel fits.
    pub(super) fn has_room(&self) -> bool {
        self.slots.len() < C || self.slots.iter().any(Option::is_none)
    }

    /// Puts `channel` in a free slot; false when all `C` are in use.
    pub(super) fn insert(&mut self, channel: Channel) -> bool {
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some(channel);
            return true;
        }
        #[cfg(feature = "alloc")]
        if self.slots.len() < C {
            self.slots.push(Some(channel));
            return true;
        }
        false
    }

    /// Frees the slot at `index`.
    pub(super) fn clear(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = None;
        }
        #[cfg(feature = "alloc")]
        {
            // Only trailing slots go, so that the others keep their index.
            while self.slots.last().is_some_and(Option::is_none) {
                self.slots.pop();
            }
            if self.slots.len() <= self.slots.capacity() / 4 {
                self.slots.shrink_to(self.slots.len() * 2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::channel::{Kind, State};
    use super::*;

    fn channel(id: u16) -> Channel {
        Channel::new(id, true, State::Open, Kind::Terminal, 1, 1)
    }

    #[test]
    fn slots_hold_c_channels_keep_their_index_and_go_when_freed() {
        let mut slots = Slots::<3>::new();
        for id in [1, 3, 5] {
            assert!(slots.has_room() && slots.insert(channel(id)));
        }
        assert!(!slots.has_room() && !slots.insert(channel(7)), "room for C only");
        slots.clear(0);
        let ids = |slots: &Slots<3>| slots.iter().map(|s| s.map(|c| c.id)).collect::<heapless::Vec<_, 3>>();
        assert_eq!(ids(&slots)[1..], [Some(3), Some(5)], "the others keep their index");
        assert!(slots.insert(channel(7)));
        assert_eq!(ids(&slots)[0], Some(7), "a freed slot is used again");
        for index in 0..3 {
            slots.clear(index);
        }
        assert!(slots.iter().all(Option::is_none));
        #[cfg(feature = "alloc")]
        assert_eq!((slots.len(), slots.slots.capacity()), (0, 0), "nothing kept once all are closed");
    }
}
