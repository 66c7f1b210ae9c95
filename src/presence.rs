//! Presence and no lost signal (protocol v1.1 §3–§4), the parts that are not membership:
//! the limits, each peer's sequence cursor and replay buffer, and resume tokens. Pure.
//!
//! Invariants:
//! - `seq` is per peer, starts at 1, and is never reused: [`Cursor::sent`] only grows, and it
//!   travels with the member (its socket's attachment while connected, its `away` row while
//!   away), so it continues across resumes and evictions.
//! - A peer's [`Outbox`] holds, in `seq` order, the kept frames it has not acknowledged; at most
//!   `RESUME_BUFFER_FRAMES` of them. What overflows is dropped oldest first and recorded as a
//!   lost range, which a resume reports as `warning replay_gap`.
//! - A kept frame is *durable* once it is in the room's storage. Frames for an away peer are
//!   durable at once; frames for a connected peer only when still unacknowledged once the
//!   room has been quiet for [`FLUSH_DELAY_MS`], so a peer that acknowledges promptly costs no
//!   storage write (see `docs/storage.md`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::protocol::{LeaveReason, PeerId};

/// How long a room must be quiet (no client event) before what only memory holds (kept frames
/// of connected peers, attachments behind) is written. Well under the 10 s an object must be
/// idle before the runtime may evict it ([`crate::rate::EVICTION_IDLE_MS`]), so nothing held
/// only in memory is lost to eviction; a busy room, which cannot be evicted, writes nothing.
pub const FLUSH_DELAY_MS: u64 = 2_000;

/// Longest resume token accepted (v1.1 §3: at most 512 bytes).
pub const MAX_RESUME_TOKEN_BYTES: usize = 512;

/// `HEARTBEAT_TIMEOUT_MS`, `RESUME_GRACE_MS`, `RESUME_BUFFER_FRAMES`, `TOKEN_EXPIRY_WARNING_MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceLimits {
    /// Silence after which a socket is closed 4408; 0 disables heartbeats.
    pub heartbeat_timeout_ms: u64,
    /// How long an abruptly gone peer stays away and resumable; 0 is v1 (gone at once).
    pub resume_grace_ms: u64,
    /// Frames kept per peer for replay.
    pub resume_buffer_frames: usize,
    /// `warning token_expiring` this long before a connection's token deadline.
    pub token_expiry_warning_ms: u64,
}

impl PresenceLimits {
    pub const DEFAULT: PresenceLimits = PresenceLimits {
        heartbeat_timeout_ms: 60_000,
        resume_grace_ms: 30_000,
        resume_buffer_frames: 256,
        token_expiry_warning_ms: 60_000,
    };
}

impl Default for PresenceLimits {
    fn default() -> Self {
        PresenceLimits::DEFAULT
    }
}

/// Where a peer's sequence stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// The last `seq` sent (or kept) for the peer; 0 before the first.
    pub sent: u64,
    /// The last `seq` the peer acknowledged.
    pub acked: u64,
    /// Kept frames lost to overflow after `acked`: the first and last `seq` of the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<(u64, u64)>,
}

impl Cursor {
    /// Takes the next `seq`.
    pub fn next_seq(&mut self) -> u64 {
        self.sent += 1;
        self.sent
    }

    /// Records that kept frame `seq` was dropped for overflow (or never kept).
    pub fn lose(&mut self, seq: u64) {
        self.lost = Some(match self.lost {
            Some((from, _)) => (from, seq),
            None => (seq, seq),
        });
    }

    /// A cumulative ack of `seq` (already checked to be at most `sent`).
    fn ack(&mut self, seq: u64) {
        if seq <= self.acked {
            return;
        }
        self.acked = seq;
        self.lost = match self.lost {
            Some((_, to)) if seq >= to => None,
            Some((from, to)) => Some((from.max(seq + 1), to)),
            None => None,
        };
    }
}

/// Why a peer is away, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Away {
    pub since_ms: u64,
    /// What `peer_away` said, and what `peer_left` will say.
    pub reason: LeaveReason,
}

/// A frame kept for replay: its wire text, `seq` included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub seq: u64,
    pub text: String,
    /// When it was sent, for the flush.
    pub at_ms: u64,
    /// Whether storage holds it.
    pub durable: bool,
}

/// What an [`Outbox`] change requires of storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxWrite {
    /// Drop the stored frames up to and including `seq`.
    DropThrough(u64),
}

/// A peer's kept, unacknowledged frames, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbox {
    kept: VecDeque<Kept>,
    /// `at_ms` of the oldest frame storage does not hold yet.
    pending_since: Option<u64>,
}

impl Outbox {
    /// Rebuilds a peer's outbox from its stored frames (any order).
    pub fn from_stored(mut frames: Vec<(u64, String)>) -> Outbox {
        frames.sort_by_key(|(seq, _)| *seq);
        frames.dedup_by_key(|(seq, _)| *seq);
        Outbox {
            kept: frames
                .into_iter()
                .map(|(seq, text)| Kept {
                    seq,
                    text,
                    at_ms: 0,
                    durable: true,
                })
                .collect(),
            pending_since: None,
        }
    }

    pub fn frames(&self) -> impl Iterator<Item = &Kept> {
        self.kept.iter()
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The highest stored `seq`, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.kept.back().map(|k| k.seq)
    }

    /// When the oldest frame that storage does not hold yet was sent.
    pub fn pending_since(&self) -> Option<u64> {
        self.pending_since
    }

    /// Keeps `text` as `seq`; `durable` when the caller stores it now. At most `capacity`
    /// frames stay: the oldest overflow into `cursor.lost`. Answers the storage write the
    /// overflow needs, if it dropped a stored frame.
    pub fn keep(
        &mut self,
        seq: u64,
        text: String,
        at_ms: u64,
        durable: bool,
        capacity: usize,
        cursor: &mut Cursor,
    ) -> Option<OutboxWrite> {
        // Kept in send order, with times that never go down (a clock that went back is held
        // level): the oldest frame storage lacks is then the first one not durable, found
        // without a scan of the whole buffer on every frame.
        let at_ms = self.kept.back().map_or(at_ms, |last| at_ms.max(last.at_ms));
        self.kept.push_back(Kept {
            seq,
            text,
            at_ms,
            durable,
        });
        if !durable && self.pending_since.is_none() {
            self.pending_since = Some(at_ms);
        }
        let (mut dropped_stored, mut dropped_pending) = (None, false);
        while self.kept.len() > capacity {
            let Some(old) = self.kept.pop_front() else {
                break;
            };
            cursor.lose(old.seq);
            if old.durable {
                dropped_stored = Some(old.seq);
            } else {
                dropped_pending = true;
            }
        }
        if dropped_pending {
            self.recompute_pending();
        }
        dropped_stored.map(OutboxWrite::DropThrough)
    }

    /// A cumulative ack: drops the frames up to `seq`. Answers the storage write it needs
    /// (only when a dropped frame had been stored).
    ///
    /// Also answers when the newest frame it covers was sent (ms), if one was kept in memory
    /// since it was sent (not read back from storage): the `relay_latency_ms` of this `ack`.
    pub fn ack(&mut self, seq: u64, cursor: &mut Cursor) -> (Option<OutboxWrite>, Option<u64>) {
        cursor.ack(seq);
        let mut stored = false;
        let mut newest = None;
        while self.kept.front().is_some_and(|k| k.seq <= seq) {
            if let Some(k) = self.kept.pop_front() {
                stored |= k.durable;
                if k.at_ms > 0 {
                    newest = Some(k.at_ms);
                }
            }
        }
        self.recompute_pending();
        (stored.then_some(OutboxWrite::DropThrough(seq)), newest)
    }

    /// Marks the frames sent at or before `cutoff_ms` durable and answers them, for storage.
    pub fn flush(&mut self, cutoff_ms: u64) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for k in self
            .kept
            .iter_mut()
            .filter(|k| !k.durable && k.at_ms <= cutoff_ms)
        {
            k.durable = true;
            out.push((k.seq, k.text.clone()));
        }
        self.recompute_pending();
        out
    }

    /// The frames to replay after `acked`, in order.
    pub fn after(&self, acked: u64) -> impl Iterator<Item = &Kept> {
        self.kept.iter().filter(move |k| k.seq > acked)
    }

    /// The send time of the first frame not durable: the earliest, as times never go down.
    fn recompute_pending(&mut self) {
        self.pending_since = self.kept.iter().find(|k| !k.durable).map(|k| k.at_ms);
    }
}

/// The resume token of `peer` with `secret`: `<peerId>.<secret>`. Opaque to clients.
pub fn resume_token(peer: &PeerId, secret: &str) -> String {
    format!("{}.{secret}", peer.as_str())
}

/// Splits a resume token into the peer id and the secret it claims. `None` for anything that
/// is not one of ours in shape.
pub fn parse_resume_token(token: &str) -> Option<(&str, &str)> {
    if token.is_empty() || token.len() > MAX_RESUME_TOKEN_BYTES {
        return None;
    }
    let (peer, secret) = token.split_once('.')?;
    let shaped = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (shaped(peer) && shaped(secret)).then_some((peer, secret))
}

/// Compares two secrets in time that depends only on their lengths.
pub fn secrets_match(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
