//! The room's one deadline scheduler. Pure.
//!
//! Every time-driven rule of a room (heartbeat sweep, resume grace, token warning and expiry,
//! the flush of unacknowledged frames, ring timeouts and call limits) is a [`Deadline`]
//! that the room computes from its own state ([`crate::room::Room::deadlines`]), so nothing
//! about time lives outside the state that eviction preserves. The glue keeps the deadlines on
//! two clocks ([`Clocks`]): one in-memory timer while the object is awake, and the runtime's
//! alarm, written once the room falls quiet, for when it is not; either feeds `on_alarm(now)`
//! back into the room, which handles everything due and answers the next one. A new kind of
//! deadline is a new [`Due`] variant and a line in `deadlines()`; this module does not change.

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

/// What the glue does with its two clocks after an event ([`Clocks::plan`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// Write the runtime alarm for this time now.
    pub alarm: Option<u64>,
    /// (Re)arm the in-memory timer for this time.
    pub timer: Option<u64>,
}

/// The room's two clocks: the runtime alarm and the object's in-memory timer.
///
/// The alarm is what wakes an evicted room, and writing it is a storage write (the first one
/// of a new object's life is its costliest; in Miniflare it cost about 0.35 ms of every
/// connect into a new room, two connects per room). An object is evicted only after about 10 s
/// without an event, so the alarm only has to be right by the time the room has been quiet for
/// a while: until then the in-memory timer serves every deadline, and the alarm is written once,
/// at the quiet point ([`crate::room::Room::quiet_at`]: [`crate::presence::FLUSH_DELAY_MS`]
/// after the last client event), with whatever is then the earliest deadline. A busy room (new
/// members, moved deadlines) writes no alarm at all; a connect answers without one.
///
/// The flush ([`Due::Flush`]) is on the timer only: it protects memory, which an eviction
/// loses, and it always comes before one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clocks {
    /// The runtime alarm, as far as this wake knows it.
    pub alarm: Alarm,
    /// The in-memory timer.
    pub timer: Alarm,
}

impl Clocks {
    /// Given the room's deadlines at `now` (`next_alarm`: every deadline but the flush; `flush`;
    /// `quiet_at`: when the room falls quiet), what to write now.
    pub fn plan(
        &mut self,
        now: u64,
        next_alarm: Option<u64>,
        flush: Option<u64>,
        quiet_at: u64,
    ) -> Plan {
        // The alarm is behind when the room must wake earlier than the pending one (or none is
        // known: a new object, or one that just woke).
        let behind = match (next_alarm, self.alarm.pending()) {
            (Some(next), Some(set)) => next < set,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let alarm = if behind && now >= quiet_at {
            self.alarm.plan(next_alarm)
        } else {
            None
        };
        // Still behind: the timer serves the deadline itself if it comes first, and otherwise
        // fires at the quiet point to write the alarm (a busy room's quiet point moves on; the
        // timer then looks again).
        let owed = (behind && alarm.is_none())
            .then(|| next_alarm.map_or(quiet_at, |next| next.min(quiet_at)));
        let timer_at = [flush, owed].into_iter().flatten().min();
        Plan {
            alarm,
            timer: self.timer.plan(timer_at),
        }
    }
}
