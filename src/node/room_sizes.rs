//! How many sockets of this node are in each client room, kept as joins and leaves happen.
//!
//! `userJoined` / `userLeft` are only sent while a room is small (`ROOM_EVENTS_MAX_MEMBERS`).
//! Counting the room's sockets at every join would make filling a room of n sockets cost n²;
//! this counter answers in constant time. It counts the sockets that joined through
//! `joinRoom` (each session remembers its counted rooms, so a disconnect gives back exactly
//! those); sockets moved by the admin UI are not counted.

use std::{collections::HashMap, sync::Mutex};

/// Client room → sockets of this node in it.
#[derive(Default)]
pub struct RoomSizes {
    sizes: Mutex<HashMap<String, usize>>,
}

impl RoomSizes {
    /// Counts one more socket in `room`; returns the new size.
    pub fn joined(&self, room: &str) -> usize {
        let mut sizes = self.lock();
        let size = sizes.entry(room.to_string()).or_insert(0);
        *size += 1;
        *size
    }

    /// The current size of `room` (0 if nobody counted is in it).
    pub fn size(&self, room: &str) -> usize {
        self.lock().get(room).copied().unwrap_or(0)
    }

    /// Counts one socket out of `room`; an empty room is forgotten.
    pub fn left(&self, room: &str) {
        let mut sizes = self.lock();
        if let Some(size) = sizes.get_mut(room) {
            *size = size.saturating_sub(1);
            if *size == 0 {
                sizes.remove(room);
            }
        }
    }

    /// How many rooms have at least one counted socket.
    pub fn rooms(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.sizes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_joins_and_leaves_and_empty_rooms_are_forgotten() {
        let sizes = RoomSizes::default();
        assert_eq!(sizes.joined("a"), 1);
        assert_eq!(sizes.joined("a"), 2);
        assert_eq!(sizes.joined("b"), 1);
        sizes.left("a");
        assert_eq!(sizes.size("a"), 1);
        sizes.left("a");
        sizes.left("a");
        assert_eq!(sizes.size("a"), 0, "never below zero");
        assert_eq!(sizes.rooms(), 1, "only b is left");
    }
}
