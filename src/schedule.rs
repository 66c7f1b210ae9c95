//! The room's one deadline scheduler. Pure.
//!
//! Every time-driven rule of a room (heartbeat sweep, resume grace, token warning and expiry,
//! the flush of unacknowledged frames, ring timeouts and call limits) is a [`Deadline`]
//! that the room computes from its own state ([`crate::room::Room::deadlines`]), so nothing
//! about time lives outside the state that eviction preserves. The glue keeps exactly one
//! runtime alarm at the earliest deadline ([`Alarm`]) and feeds `on_alarm(now)` back into the
//! room, which handles everything due and answers the next one. A new kind of deadline is a
//! new [`Due`] variant and a line in `deadlines()`; this module does not change.

use crate::protocol::PeerId;

/// What is due at a deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Close sockets silent for longer than `HEARTBEAT_TIMEOUT_MS`.
    HeartbeatSweep,
    /// Store kept frames unacknowledged for [`crate::presence::FLUSH_DELAY_MS`], and write
    /// changed attachments back.
    Flush,
    /// Warn a peer that its token expires soon.
    TokenWarning(PeerId),
    /// End a connection whose token expired.
    TokenExpiry(PeerId),
    /// An away peer's grace ends.
    GraceEnd(PeerId),
    /// An invitation to a call stops ringing (`CALL_RING_TIMEOUT_MS`).
    RingTimeout { call: String, peer: PeerId },
    /// A call reaches `MAX_CALL_DURATION_MS`.
    CallLimit(String),
    /// A peer's TURN credentials are due for renewal (`ice_servers`).
    IceRefresh(PeerId),
}

/// One point in time at which the room has something to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub at_ms: u64,
    pub due: Due,
}

/// The earliest of `deadlines`.
pub fn earliest<'a>(deadlines: impl IntoIterator<Item = &'a Deadline>) -> Option<u64> {
    deadlines.into_iter().map(|d| d.at_ms).min()
}

/// The glue's one alarm. Setting an alarm is a storage operation, so it is set only when the
/// room needs to wake *earlier* than the alarm already pending: an alarm that fires early finds
/// nothing due and re-plans, and a stale one costs one empty wake. After an eviction the
/// pending alarm is unknown (reading it is asynchronous); the first plan then sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alarm {
    set_at: Option<u64>,
}

impl Alarm {
    /// Given the room's next deadline, the time to set the alarm to, if it must be set.
    pub fn plan(&mut self, next: Option<u64>) -> Option<u64> {
        match (next, self.set_at) {
            (Some(next), Some(set)) if set <= next => None,
            (Some(next), _) => {
                self.set_at = Some(next);
                Some(next)
            }
            (None, _) => None,
        }
    }

    /// The alarm fired: none is pending any more.
    pub fn fired(&mut self) {
        self.set_at = None;
    }

    /// When the pending alarm fires, if one is known.
    pub fn pending(&self) -> Option<u64> {
        self.set_at
    }
}
