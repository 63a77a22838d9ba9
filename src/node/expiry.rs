//! When tokens run out: the deadlines of this node's sockets in order, so the sweeper looks
//! only at sockets that are due instead of at every socket on every tick.

use std::{collections::BTreeSet, sync::Mutex};

use socketioxide::socket::Sid;

/// Socket deadlines: token `exp` plus the leeway, in seconds since the Unix epoch.
///
/// An entry is added at the handshake, moved by `refreshToken` and removed at the
/// disconnect; one that outlives its socket (a connection that failed half-way) is dropped
/// when it falls due.
#[derive(Default)]
pub struct ExpirySchedule {
    deadlines: Mutex<BTreeSet<(u64, Sid)>>,
}

impl ExpirySchedule {
    /// Schedules socket `sid` to be closed once `deadline` has passed.
    pub fn add(&self, deadline: u64, sid: Sid) {
        self.lock().insert((deadline, sid));
    }

    /// Forgets the entry of socket `sid` at `deadline` (disconnect, or a refresh moved it).
    pub fn remove(&self, deadline: u64, sid: Sid) {
        self.lock().remove(&(deadline, sid));
    }

    /// Removes and returns the sockets whose deadline lies before `now`.
    pub fn take_due(&self, now: u64) -> Vec<Sid> {
        let mut deadlines = self.lock();
        let mut due = Vec::new();
        while let Some(&(deadline, sid)) = deadlines.first() {
            if deadline >= now {
                break;
            }
            deadlines.pop_first();
            due.push(sid);
        }
        due
    }

    /// How many sockets are scheduled.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no socket is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(u64, Sid)>> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_past_deadlines_fall_due_in_order() {
        let schedule = ExpirySchedule::default();
        let (a, b, c) = (Sid::new(), Sid::new(), Sid::new());
        schedule.add(30, a);
        schedule.add(10, b);
        schedule.add(20, c);
        assert!(schedule.take_due(10).is_empty(), "a deadline equal to now is not past");
        assert_eq!(schedule.take_due(21), vec![b, c]);
        assert_eq!(schedule.len(), 1);
        assert!(schedule.take_due(21).is_empty(), "taken entries are gone");
    }

    #[test]
    fn a_moved_or_removed_entry_never_falls_due() {
        let schedule = ExpirySchedule::default();
        let (a, b) = (Sid::new(), Sid::new());
        schedule.add(10, a);
        schedule.add(10, b);
        // `a` refreshed its token; `b` disconnected.
        schedule.remove(10, a);
        schedule.add(100, a);
        schedule.remove(10, b);
        assert!(schedule.take_due(50).is_empty());
        assert_eq!(schedule.take_due(101), vec![a]);
        assert!(schedule.is_empty());
    }
}
