//! Abuse control (protocol v1.1 §2): token buckets, the notice cadence, strikes, bans, the
//! connect bucket and the connection cap, as plain values driven by a clock given in
//! milliseconds.
//!
//! Where each piece lives and why is stated once, in [`crate::storage`]. The room owns one
//! [`ConnectionLimiter`] per connection, one room [`TokenBucket`] and one [`Identities`]; per
//! client frame it calls [`ConnectionLimiter::check`] (before decoding, with [`sniff_class`]),
//! then [`ConnectionLimiter::reclassify`] if the decoded type says otherwise, and on every
//! [`Verdict::Drop`] [`Identities::on_drop`]. Per upgrade it calls [`Identities::admit_check`].
//! After each event it drains [`Identities::take_writes`] into storage effects.
//!
//! Invariants:
//! - Exact integer arithmetic: a bucket holds whole units of 1/[`UNITS_PER_TOKEN`] token and
//!   gains a whole number of them every millisecond, so a refill never rounds and fractions
//!   carry over. Every sum and product saturates: no input overflows or panics.
//! - The clock may go backwards: a bucket then gains nothing until the clock is past the last
//!   time it saw, so a wrong clock never mints tokens.
//! - A frame costs exactly one token of its (decoded) class and one token of the room; a
//!   class never spends the other class's budget, and a frame dropped by the room does not cost
//!   its sender's own bucket.
//! - At most one `rate_limited` error and one `throttled` warning per connection within any
//!   1000 ms ([`NOTICE_INTERVAL_MS`]); further drops are silent but count (in `dropped` and in
//!   strikes).
//! - Everything durable (strikes, bans, connect buckets) changes only together with a queued
//!   [`Write`] that carries the record's new state, so the table always equals the in-memory
//!   [`Identities`]: a passed frame queues nothing, a new strike second or a ban one upsert, an
//!   admitted upgrade one upsert, a refused upgrade nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{close, ending_close_code, ErrorCode};
use crate::storage::Write;

/// A token is this many units. 60 000 is the number of milliseconds in a minute: a refill of
/// `n` per second adds `60 n` units per millisecond and one of `n` per minute adds `n`, so both
/// kinds of bucket refill exactly, every millisecond, in integers.
pub const UNITS_PER_TOKEN: u64 = 60_000;

/// Least time between two notices of one kind to one connection. A sliding 1000 ms rather than
/// the calendar second: two notices at 999 ms and 1000 ms would be one per calendar second
/// each, yet a client would see two within a millisecond.
pub const NOTICE_INTERVAL_MS: u64 = 1000;

/// Strikes count within this many seconds: the spec's "within one minute".
pub const STRIKE_WINDOW_S: u64 = 60;

/// The least idle time after which the runtime may evict a Durable Object (Cloudflare evicts an
/// object about 10 s after its last event; hibernation with open sockets is the same). State
/// that is back to its resting value within this time cannot be told apart from state lost to
/// an eviction, so it need not be stored.
pub const EVICTION_IDLE_MS: u64 = 10_000;

/// The abuse limits (`RATE_*` and `MAX_CONNECTIONS_PER_USER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `RATE_MSG_PER_S`: refill of a connection's bucket for every frame but `candidate`.
    pub msg_per_s: u64,
    /// `RATE_MSG_BURST`: that bucket's size.
    pub msg_burst: u64,
    /// `RATE_CANDIDATE_PER_S`: refill of a connection's bucket for `candidate` frames.
    pub candidate_per_s: u64,
    /// `RATE_CANDIDATE_BURST`: that bucket's size.
    pub candidate_burst: u64,
    /// `RATE_ROOM_PER_S`: refill and size of the room's bucket (all frames together).
    pub room_per_s: u64,
    /// `RATE_CONNECT_PER_MIN`: refill per minute and size of an identity's connect bucket.
    pub connect_per_min: u64,
    /// `RATE_ABUSE_STRIKES`: strikes within [`STRIKE_WINDOW_S`] that close 4429 and ban. Above
    /// 60 it can never be reached (a minute has 60 seconds): bans are then off.
    pub abuse_strikes: usize,
    /// `RATE_BAN_S` in milliseconds: how long a ban refuses the identity.
    pub ban_ms: u64,
    /// `MAX_CONNECTIONS_PER_USER`: open connections of one identity in one room.
    pub max_connections_per_user: usize,
}

impl RateLimits {
    /// The spec's defaults (protocol v1.1 §1).
    pub const DEFAULT: RateLimits = RateLimits {
        msg_per_s: 20,
        msg_burst: 100,
        candidate_per_s: 20,
        candidate_burst: 100,
        room_per_s: 500,
        connect_per_min: 30,
        abuse_strikes: 10,
        ban_ms: 60_000,
        max_connections_per_user: 4,
    };

    /// A full room bucket (burst = `room_per_s`, so it refills within a second).
    pub const fn room_bucket(&self) -> TokenBucket {
        TokenBucket::full(self.room_per_s)
    }
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits::DEFAULT
    }
}

/// A token bucket with continuous refill. It stores no rate: the caller passes the same
/// refill and burst every time (from [`RateLimits`]), and a bucket refilled per second is never
/// used per minute or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenBucket {
    /// Units ([`UNITS_PER_TOKEN`] per token) held at `at_ms`.
    level: u64,
    /// The latest time the bucket was refilled to; never moves backwards.
    at_ms: u64,
}

impl TokenBucket {
    /// A bucket holding `burst` tokens.
    pub const fn full(burst: u64) -> TokenBucket {
        TokenBucket {
            level: burst.saturating_mul(UNITS_PER_TOKEN),
            at_ms: 0,
        }
    }

    pub(crate) const fn from_parts(level: u64, at_ms: u64) -> TokenBucket {
        TokenBucket { level, at_ms }
    }

    pub(crate) const fn level(&self) -> u64 {
        self.level
    }

    pub(crate) const fn at_ms(&self) -> u64 {
        self.at_ms
    }

    /// Takes one token from a bucket refilled by `per_s` a second: `Err(retry_after_ms)` when
    /// there is none, the wait until one whole token is there (at least 1; `u64::MAX` when none
    /// ever will be: `per_s` or `burst` 0).
    pub fn take(&mut self, now_ms: u64, per_s: u64, burst: u64) -> Result<(), u64> {
        self.take_units(now_ms, per_second(per_s), burst)
    }

    /// [`take`](Self::take) for a bucket refilled by `per_min` a minute.
    pub fn take_per_minute(&mut self, now_ms: u64, per_min: u64, burst: u64) -> Result<(), u64> {
        self.take_units(now_ms, per_minute(per_min), burst)
    }

    /// Milliseconds until the bucket (refilled by `per_s` a second) is full again; 0 if it is.
    pub fn ms_until_full(&self, now_ms: u64, per_s: u64, burst: u64) -> u64 {
        let cap = capacity(burst);
        self.ms_until(now_ms, per_second(per_s), cap, cap)
    }

    /// [`ms_until_full`](Self::ms_until_full) for a bucket refilled by `per_min` a minute.
    pub fn ms_until_full_per_minute(&self, now_ms: u64, per_min: u64, burst: u64) -> u64 {
        let cap = capacity(burst);
        self.ms_until(now_ms, per_minute(per_min), cap, cap)
    }

    /// Whole tokens available at `now_ms` (refilled by `per_s` a second).
    pub fn tokens(&self, now_ms: u64, per_s: u64, burst: u64) -> u64 {
        self.level_at(now_ms, per_second(per_s), capacity(burst)) / UNITS_PER_TOKEN
    }

    /// Whole tokens available at `now_ms` (refilled by `per_min` a minute).
    pub fn tokens_per_minute(&self, now_ms: u64, per_min: u64, burst: u64) -> u64 {
        self.level_at(now_ms, per_minute(per_min), capacity(burst)) / UNITS_PER_TOKEN
    }

    fn take_units(&mut self, now_ms: u64, units_per_ms: u64, burst: u64) -> Result<(), u64> {
        let cap = capacity(burst);
        self.level = self.level_at(now_ms, units_per_ms, cap);
        self.at_ms = self.at_ms.max(now_ms);
        if self.level >= UNITS_PER_TOKEN {
            self.level -= UNITS_PER_TOKEN;
            Ok(())
        } else {
            Err(self
                .ms_until(now_ms, units_per_ms, cap, UNITS_PER_TOKEN)
                .max(1))
        }
    }

    /// Gives back the token a frame took from this bucket in the same event.
    fn refund(&mut self, burst: u64) {
        self.level = self
            .level
            .saturating_add(UNITS_PER_TOKEN)
            .min(capacity(burst));
    }

    fn level_at(&self, now_ms: u64, units_per_ms: u64, cap: u64) -> u64 {
        let elapsed = now_ms.saturating_sub(self.at_ms);
        self.level
            .saturating_add(elapsed.saturating_mul(units_per_ms))
            .min(cap)
    }

    /// Milliseconds until the bucket holds `target` units (`u64::MAX`: never).
    fn ms_until(&self, now_ms: u64, units_per_ms: u64, cap: u64, target: u64) -> u64 {
        let level = self.level_at(now_ms, units_per_ms, cap);
        if level >= target {
            return 0;
        }
        if target > cap || units_per_ms == 0 {
            return u64::MAX;
        }
        // Behind a clock that went backwards, refilling resumes only at `at_ms`.
        let lag = self.at_ms.saturating_sub(now_ms);
        lag.saturating_add((target - level).div_ceil(units_per_ms))
    }
}

const fn capacity(burst: u64) -> u64 {
    burst.saturating_mul(UNITS_PER_TOKEN)
}

const fn per_second(per_s: u64) -> u64 {
    per_s.saturating_mul(UNITS_PER_TOKEN / 1000)
}

const fn per_minute(per_min: u64) -> u64 {
    per_min.saturating_mul(UNITS_PER_TOKEN / 60_000)
}

/// Which bucket of a connection a frame draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameClass {
    /// A `candidate` frame.
    Candidate,
    /// Every other client frame.
    Other,
}

impl FrameClass {
    /// The class of a decoded frame type.
    pub fn of_type(frame_type: &str) -> FrameClass {
        if frame_type == "candidate" {
            FrameClass::Candidate
        } else {
            FrameClass::Other
        }
    }
}

/// Classifies a frame before it is decoded, so a flood is dropped without the cost of decoding
/// it. A hint only: the room re-checks against the decoded type with
/// [`ConnectionLimiter::reclassify`], so a frame that sniffs as one class and decodes as the
/// other is charged to its decoded class alone and never gets both budgets.
pub fn sniff_class(text: &str) -> FrameClass {
    match sniff_type(text) {
        Some("candidate") => FrameClass::Candidate,
        _ => FrameClass::Other,
    }
}

/// The value of the first top-level `"type"` key, read without decoding: `None` when there is
/// none, when the value is not a string, or when key or value is spelled with escapes (the
/// decoder still reads those; they just take the slow path). One pass over the bytes up to the
/// key, tracking strings (with their escapes) and nesting, so a `"type"` inside a string or a
/// nested object does not count. The room may use it to spot frames the spec never limits
/// (`ack`) before charging them.
pub fn sniff_type(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                let end = string_end(bytes, start)?;
                let after = skip_whitespace(bytes, end + 1);
                if depth == 1 && &bytes[start..end] == b"type" && bytes.get(after) == Some(&b':') {
                    let value = skip_whitespace(bytes, after + 1);
                    if bytes.get(value) != Some(&b'"') {
                        return None;
                    }
                    let value_end = string_end(bytes, value + 1)?;
                    let raw = &text[value + 1..value_end];
                    return (!raw.contains('\\')).then_some(raw);
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the `"` that closes the string whose text starts at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn skip_whitespace(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// What to do with a client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Pass,
    /// Drop it unprocessed, send `notice` if there is one, and count the drop as a strike
    /// ([`Identities::on_drop`]).
    Drop { notice: Option<Notice> },
}

/// What a dropped frame's sender is told (the room encodes the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// `error {code:"rate_limited", retryAfterMs}`: a non-candidate frame over its bucket, or
    /// any frame over the room's bucket.
    RateLimited { retry_after_ms: u64 },
    /// `warning {code:"throttled", dropped, retryAfterMs}`: candidates over their bucket;
    /// `dropped` counts every candidate dropped for that bucket since the previous `throttled`
    /// warning, this one included (candidates dropped by the room are told by `rate_limited`
    /// and not counted here).
    Throttled { dropped: u64, retry_after_ms: u64 },
}

/// One connection's buckets and notice cadence. Kept in memory; stored in the socket's
/// attachment only when [`needs_persisting`](Self::needs_persisting) says losing it to an
/// eviction would reset a limit. An older copy restored from an attachment can only hold more
/// tokens than the lost state did, never fewer, so a stale attachment is lenient, never unfair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionLimiter {
    msg: TokenBucket,
    candidate: TokenBucket,
    /// When the last `rate_limited` error went out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error_ms: Option<u64>,
    /// When the last `throttled` warning went out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_warning_ms: Option<u64>,
    /// Candidates dropped since the last `throttled` warning. Not worth storing on its own: it
    /// is lost on eviction only after 10 s without a frame, when the flood it counts is over.
    #[serde(default, skip_serializing_if = "is_zero")]
    dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ConnectionLimiter {
    /// A new connection's limiter: both buckets full, nothing dropped yet.
    pub fn new(limits: &RateLimits) -> ConnectionLimiter {
        ConnectionLimiter {
            msg: TokenBucket::full(limits.msg_burst),
            candidate: TokenBucket::full(limits.candidate_burst),
            last_error_ms: None,
            last_warning_ms: None,
            dropped: 0,
        }
    }

    /// Charges one frame of `class` to this connection, then to the room's bucket `room`.
    /// Over the connection's bucket: dropped with `rate_limited` (other frames) or `throttled`
    /// (candidates), without touching the room's bucket. Over the room's bucket: dropped with
    /// `rate_limited` whatever the class, and the connection's token is given back. Notices
    /// respect the cadence ([`NOTICE_INTERVAL_MS`]).
    pub fn check(
        &mut self,
        class: FrameClass,
        now_ms: u64,
        limits: &RateLimits,
        room: &mut TokenBucket,
    ) -> Verdict {
        let (per_s, burst) = rates(class, limits);
        if let Err(retry_after_ms) = self.bucket(class).take(now_ms, per_s, burst) {
            return self.dropped(class, now_ms, retry_after_ms);
        }
        if let Err(retry_after_ms) = room.take(now_ms, limits.room_per_s, limits.room_per_s) {
            self.bucket(class).refund(burst);
            return self.dropped(FrameClass::Other, now_ms, retry_after_ms);
        }
        Verdict::Pass
    }

    /// A frame [`check`](Self::check)ed as `sniffed` decoded as `decoded` (in the same event):
    /// gives the `sniffed` token back and charges `decoded` instead, with that class's verdict
    /// and notice. The room's token stays spent (it was one frame either way). `Pass` and no
    /// change when the classes agree.
    pub fn reclassify(
        &mut self,
        sniffed: FrameClass,
        decoded: FrameClass,
        now_ms: u64,
        limits: &RateLimits,
    ) -> Verdict {
        if sniffed == decoded {
            return Verdict::Pass;
        }
        let (_, sniffed_burst) = rates(sniffed, limits);
        self.bucket(sniffed).refund(sniffed_burst);
        let (per_s, burst) = rates(decoded, limits);
        match self.bucket(decoded).take(now_ms, per_s, burst) {
            Ok(()) => Verdict::Pass,
            Err(retry_after_ms) => self.dropped(decoded, now_ms, retry_after_ms),
        }
    }

    /// True when a bucket would not be full again within [`EVICTION_IDLE_MS`]: then losing
    /// this limiter to an eviction would reset a limit that had not refilled by itself, so the
    /// room stores it in the socket's attachment. Never true with the defaults: a bucket of 100
    /// refilled by 20 a second is full again 5 s after it was emptied, well within 10 s.
    pub fn needs_persisting(&self, now_ms: u64, limits: &RateLimits) -> bool {
        self.msg
            .ms_until_full(now_ms, limits.msg_per_s, limits.msg_burst)
            > EVICTION_IDLE_MS
            || self
                .candidate
                .ms_until_full(now_ms, limits.candidate_per_s, limits.candidate_burst)
                > EVICTION_IDLE_MS
    }

    /// The candidates dropped silently since the last `throttled` warning, told now if the
    /// cadence allows (`retryAfterMs` 0: the frame that asks passed). The room calls it when a
    /// frame passes, so that once a flood is over its sender learns of every dropped candidate
    /// and the `dropped` counts add up.
    pub fn flush_throttled(&mut self, now_ms: u64) -> Option<Notice> {
        if self.dropped == 0 || !due(&mut self.last_warning_ms, now_ms) {
            return None;
        }
        Some(Notice::Throttled {
            dropped: std::mem::take(&mut self.dropped),
            retry_after_ms: 0,
        })
    }

    /// The bucket for `class` (read-only, for logs and tests).
    pub fn bucket_of(&self, class: FrameClass) -> &TokenBucket {
        match class {
            FrameClass::Candidate => &self.candidate,
            FrameClass::Other => &self.msg,
        }
    }

    fn bucket(&mut self, class: FrameClass) -> &mut TokenBucket {
        match class {
            FrameClass::Candidate => &mut self.candidate,
            FrameClass::Other => &mut self.msg,
        }
    }

    /// A drop told as `class`'s notice (a room drop is told as `Other`: `rate_limited`).
    fn dropped(&mut self, class: FrameClass, now_ms: u64, retry_after_ms: u64) -> Verdict {
        let notice = match class {
            FrameClass::Other => due(&mut self.last_error_ms, now_ms)
                .then_some(Notice::RateLimited { retry_after_ms }),
            FrameClass::Candidate => {
                self.dropped = self.dropped.saturating_add(1);
                due(&mut self.last_warning_ms, now_ms).then(|| Notice::Throttled {
                    dropped: std::mem::take(&mut self.dropped),
                    retry_after_ms,
                })
            }
        };
        Verdict::Drop { notice }
    }
}

fn rates(class: FrameClass, limits: &RateLimits) -> (u64, u64) {
    match class {
        FrameClass::Candidate => (limits.candidate_per_s, limits.candidate_burst),
        FrameClass::Other => (limits.msg_per_s, limits.msg_burst),
    }
}

/// Whether a notice may go out now, given when the last one of its kind did (and if so, records
/// it). The distance is taken either way, so a clock that jumps back by more than the interval
/// cannot silence notices until it catches up.
fn due(last_ms: &mut Option<u64>, now_ms: u64) -> bool {
    match *last_ms {
        Some(last) if last.abs_diff(now_ms) < NOTICE_INTERVAL_MS => false,
        _ => {
            *last_ms = Some(now_ms);
            true
        }
    }
}

/// One identity's strikes: the distinct unix seconds in which it had frames dropped, within the
/// last [`STRIKE_WINDOW_S`] seconds as of the last new strike (older ones are forgotten then).
/// Sorted, no duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Strikes {
    seconds: Vec<u64>,
}

/// What a drop did to an identity's strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrikeOutcome {
    /// This second already had a drop: nothing changed (nothing to store).
    AlreadyCounted,
    /// A new strike second: `strikes` within the window, below the limit.
    Counted { strikes: usize },
    /// The limit is reached: the strikes are cleared and the identity is refused until
    /// `until_ms`. The room answers the connection that dropped the frame with `rate_limited`
    /// and closes it with [`ending_close_code`]`(RateLimited)` (4429).
    Ban { until_ms: u64 },
}

impl Strikes {
    /// Strikes from stored seconds (any order, duplicates allowed).
    pub(crate) fn from_seconds(mut seconds: Vec<u64>) -> Strikes {
        seconds.sort_unstable();
        seconds.dedup();
        Strikes { seconds }
    }

    /// The stored seconds, oldest first.
    pub fn seconds(&self) -> &[u64] {
        &self.seconds
    }

    /// Strikes that count at `now_ms`.
    pub fn count(&self, now_ms: u64) -> usize {
        let now_s = now_ms / 1000;
        self.seconds
            .iter()
            .filter(|&&s| in_window(s, now_s))
            .count()
    }

    /// Records a drop at `now_ms`.
    pub fn record(&mut self, now_ms: u64, limits: &RateLimits) -> StrikeOutcome {
        let now_s = now_ms / 1000;
        if self.seconds.contains(&now_s) {
            return StrikeOutcome::AlreadyCounted;
        }
        self.seconds.retain(|&s| in_window(s, now_s));
        let at = self.seconds.partition_point(|&s| s < now_s);
        self.seconds.insert(at, now_s);
        let strikes = self.seconds.len();
        if strikes >= limits.abuse_strikes {
            self.seconds.clear();
            StrikeOutcome::Ban {
                until_ms: now_ms.saturating_add(limits.ban_ms),
            }
        } else {
            StrikeOutcome::Counted { strikes }
        }
    }

    /// From when no stored strike counts any more.
    fn expire_at_ms(&self) -> u64 {
        self.seconds.last().map_or(0, |&s| {
            s.saturating_add(STRIKE_WINDOW_S).saturating_mul(1000)
        })
    }
}

/// Whether a strike in second `s` counts in second `now_s` (a strike from a clock that has since
/// gone back still counts until it ages out).
fn in_window(s: u64, now_s: u64) -> bool {
    s.saturating_add(STRIKE_WINDOW_S) > now_s
}

/// What the room keeps (durably) about one identity: its strikes, its ban and its connect
/// bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    strikes: Strikes,
    banned_until_ms: Option<u64>,
    /// Refilled by `connect_per_min` a minute.
    connect: TokenBucket,
    /// From when the record holds nothing (no strike counts, no ban in force, connect bucket
    /// full), computed with the limits of its last change and stored with it, so that pruning in
    /// memory and in SQL ([`crate::storage::PRUNE`]) agree exactly.
    quiet_at_ms: u64,
}

impl IdentityRecord {
    pub(crate) fn from_parts(
        strikes: Strikes,
        banned_until_ms: Option<u64>,
        connect: TokenBucket,
        quiet_at_ms: u64,
    ) -> IdentityRecord {
        IdentityRecord {
            strikes,
            banned_until_ms,
            connect,
            quiet_at_ms,
        }
    }

    fn new(limits: &RateLimits) -> IdentityRecord {
        IdentityRecord {
            strikes: Strikes::default(),
            banned_until_ms: None,
            connect: TokenBucket::full(limits.connect_per_min),
            quiet_at_ms: 0,
        }
    }

    /// The identity's strikes.
    pub fn strikes(&self) -> &Strikes {
        &self.strikes
    }

    /// The end of its latest ban (in force while it is later than now).
    pub fn banned_until_ms(&self) -> Option<u64> {
        self.banned_until_ms
    }

    /// Its connect bucket (refilled per minute).
    pub fn connect(&self) -> &TokenBucket {
        &self.connect
    }

    /// From when it holds nothing and may be pruned.
    pub fn quiet_at_ms(&self) -> u64 {
        self.quiet_at_ms
    }

    /// The ban's remaining time, if one is in force.
    fn ban_remaining(&self, now_ms: u64) -> Option<u64> {
        self.banned_until_ms
            .filter(|&until| until > now_ms)
            .map(|until| until - now_ms)
    }

    fn touch(&mut self, now_ms: u64, limits: &RateLimits) {
        let connect_full_at = now_ms.saturating_add(self.connect.ms_until_full_per_minute(
            now_ms,
            limits.connect_per_min,
            limits.connect_per_min,
        ));
        self.quiet_at_ms = self
            .strikes
            .expire_at_ms()
            .max(self.banned_until_ms.unwrap_or(0))
            .max(connect_full_at);
    }
}

/// Why an upgrade is refused before it becomes a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitRefusal {
    /// A ban is in force for another `retry_after_ms`.
    Banned { retry_after_ms: u64 },
    /// The identity's connect bucket is empty for another `retry_after_ms`.
    ConnectRate { retry_after_ms: u64 },
    /// The identity already has `MAX_CONNECTIONS_PER_USER` open connections here.
    ConnectionLimit,
}

impl AdmitRefusal {
    /// The `error` frame's code: `rate_limited` or `connection_limit`.
    pub const fn code(&self) -> ErrorCode {
        match self {
            AdmitRefusal::Banned { .. } | AdmitRefusal::ConnectRate { .. } => {
                ErrorCode::RateLimited
            }
            AdmitRefusal::ConnectionLimit => ErrorCode::ConnectionLimit,
        }
    }

    /// The close code after the `error` frame: 4429 for a ban or the connect rate, 1013 for the
    /// connection cap.
    pub const fn close_code(&self) -> u16 {
        match ending_close_code(self.code()) {
            Some(code) => code,
            None => close::TRY_AGAIN_LATER,
        }
    }

    /// The `error` frame's `retryAfterMs` (none for the connection cap: it ends when one of the
    /// identity's connections does, not at a time).
    pub const fn retry_after_ms(&self) -> Option<u64> {
        match *self {
            AdmitRefusal::Banned { retry_after_ms }
            | AdmitRefusal::ConnectRate { retry_after_ms } => Some(retry_after_ms),
            AdmitRefusal::ConnectionLimit => None,
        }
    }

    /// A short close reason (also fit for logs).
    pub const fn reason(&self) -> &'static str {
        match self {
            AdmitRefusal::Banned { .. } => "banned",
            AdmitRefusal::ConnectRate { .. } => "connect rate",
            AdmitRefusal::ConnectionLimit => "connection limit",
        }
    }
}

/// The room's durable abuse state: one [`IdentityRecord`] per identity (keyed by the salted user
/// hash), read once from storage when the object wakes ([`crate::storage::load_rows`]), then
/// kept in memory; every change queues a [`Write`] drained by [`take_writes`](Self::take_writes).
#[derive(Debug, Clone, Default)]
pub struct Identities {
    records: BTreeMap<String, IdentityRecord>,
    writes: Vec<Write>,
}

impl Identities {
    pub(crate) fn from_records(records: BTreeMap<String, IdentityRecord>) -> Identities {
        Identities {
            records,
            writes: Vec::new(),
        }
    }

    /// May `user`, with `open_connections_of_user` connections already open in this room,
    /// connect now? Checks, in order: a ban in force (the strongest answer, and its
    /// `retryAfterMs` is the one that matters), the connection cap (a state, not a rate: no
    /// waiting helps, so no `retryAfterMs`), then the connect bucket. `Ok` spends one connect
    /// token and queues one write; a refusal spends nothing and queues nothing (a refused
    /// upgrade costs no budget, so waiting out a ban or closing a connection is enough to get
    /// back in). Call it after every other refusal the room may give (room full), so that an
    /// upgrade refused for another reason does not spend a token either.
    pub fn admit_check(
        &mut self,
        user: &str,
        now_ms: u64,
        limits: &RateLimits,
        open_connections_of_user: usize,
    ) -> Result<(), AdmitRefusal> {
        let existing = self.records.get(user);
        if let Some(retry_after_ms) = existing.and_then(|r| r.ban_remaining(now_ms)) {
            return Err(AdmitRefusal::Banned { retry_after_ms });
        }
        if open_connections_of_user >= limits.max_connections_per_user {
            return Err(AdmitRefusal::ConnectionLimit);
        }
        let mut record = existing
            .cloned()
            .unwrap_or_else(|| IdentityRecord::new(limits));
        record
            .connect
            .take_per_minute(now_ms, limits.connect_per_min, limits.connect_per_min)
            .map_err(|retry_after_ms| AdmitRefusal::ConnectRate { retry_after_ms })?;
        self.store(user, record, now_ms, limits);
        Ok(())
    }

    /// A frame of `user`'s was dropped for rate at `now_ms`: counts a strike (one write per new
    /// strike second) and bans at the limit (one write, which also clears the strikes).
    pub fn on_drop(&mut self, user: &str, now_ms: u64, limits: &RateLimits) -> StrikeOutcome {
        let mut record = self
            .records
            .get(user)
            .cloned()
            .unwrap_or_else(|| IdentityRecord::new(limits));
        let outcome = record.strikes.record(now_ms, limits);
        match outcome {
            StrikeOutcome::AlreadyCounted => return outcome,
            StrikeOutcome::Counted { .. } => {}
            StrikeOutcome::Ban { until_ms } => record.banned_until_ms = Some(until_ms),
        }
        self.store(user, record, now_ms, limits);
        outcome
    }

    /// Forgets every record that holds nothing at `now_ms` (see
    /// [`IdentityRecord::quiet_at_ms`]) and returns how many; queues one [`Write::Prune`] when
    /// any was forgotten. Cheap enough to call at every wake-up or upgrade.
    pub fn prune(&mut self, now_ms: u64) -> usize {
        let before = self.records.len();
        self.records.retain(|_, r| r.quiet_at_ms > now_ms);
        let pruned = before - self.records.len();
        if pruned > 0 {
            self.writes.push(Write::Prune { now_ms });
        }
        pruned
    }

    /// The writes queued since the last call, in order: apply them all, as they come.
    pub fn take_writes(&mut self) -> Vec<Write> {
        std::mem::take(&mut self.writes)
    }

    /// `user`'s record, if it has one.
    pub fn get(&self, user: &str) -> Option<&IdentityRecord> {
        self.records.get(user)
    }

    /// Every record, by user.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &IdentityRecord)> {
        self.records.iter().map(|(user, r)| (user.as_str(), r))
    }

    /// How many identities have a record.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no identity has a record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn store(&mut self, user: &str, mut record: IdentityRecord, now_ms: u64, limits: &RateLimits) {
        record.touch(now_ms, limits);
        // The object is evicted only after EVICTION_IDLE_MS without an event. A record that
        // holds nothing by then (a connect bucket that refills within that time: the first
        // few connects of an identity) would read back from storage as exactly what a missing
        // row reads as, so it is not written. Strikes and bans always are. A row left from an
        // earlier write is then older than memory, and only ever more lenient: its bucket has
        // refilled at least as far by the time it is read.
        if record.quiet_at_ms > now_ms.saturating_add(EVICTION_IDLE_MS) {
            self.writes.push(Write::Upsert {
                user: user.to_owned(),
                record: record.clone(),
            });
        }
        self.records.insert(user.to_owned(), record);
    }
}

/// Same records (pending writes aside): what a round trip through storage must preserve.
impl PartialEq for Identities {
    fn eq(&self, other: &Identities) -> bool {
        self.records == other.records
    }
}
