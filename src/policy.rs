//! The backend room policy (`POLICY_URL` with the secret `POLICY_TOKEN`, or a service binding
//! named `POLICY`): the app's own backend says whether a `sub` may enter a room.
//!
//! Invariants:
//! - It is asked only about a verified token: for one without a `rooms` claim, or for every
//!   token with `ROOM_POLICY=always` (then a `rooms` claim, if present, must allow the room too).
//! - The question is `POST {"sub","room"}` with `Authorization: Bearer <POLICY_TOKEN>`; the
//!   answer `200 {"allow": bool, "ttlS"?: n}`. Anything else (another status, a body that is
//!   not that, no answer within [`TIMEOUT_MS`]) fails closed: `unavailable`, never admitted.
//! - Each answer, allow or deny, is cached for its `ttlS` (default [`DEFAULT_TTL_S`], at most
//!   [`MAX_TTL_S`], `0` = not cached) under a key made from the salted hash of `sub` and the
//!   room, so the cache never holds a plain `sub`: per isolate ([`DecisionCache`], which is all
//!   there is on a `*.workers.dev` host, where the Cache API does nothing) and in the Cache API
//!   (shared by the isolates of a data center, on a custom domain).

use serde::Deserialize;
use serde_json::json;

use crate::auth::{AuthError, Identity};
use crate::protocol::RoomId;

/// How long a decision is cached when the answer gives no `ttlS`.
pub const DEFAULT_TTL_S: u64 = 60;
/// Longest cache time accepted from an answer.
pub const MAX_TTL_S: u64 = 3600;
/// How long the backend may take to answer.
pub const TIMEOUT_MS: u64 = 2_000;
/// Largest answer read.
pub const MAX_ANSWER_BYTES: usize = 4096;

/// When the policy is asked (`ROOM_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMode {
    /// Only for tokens without a `rooms` claim (`ROOM_POLICY=claim`, the default).
    WithoutRoomsClaim,
    /// For every token (`ROOM_POLICY=always`).
    Always,
}

/// Where the policy lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    pub mode: PolicyMode,
    /// `POLICY_URL`; with the `POLICY` binding, the URL it is called with (a default if unset).
    pub url: String,
    /// `POLICY_TOKEN`, sent as a bearer token.
    pub token: Option<String>,
    /// Whether the `POLICY` service binding is used instead of the network.
    pub binding: bool,
}

/// A decision of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    /// How long it may be cached, in seconds (0: not cached).
    pub ttl_s: u64,
}

/// What authorizing `identity` for `room` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomCheck {
    /// Decided by the token alone.
    Done(Result<(), AuthError>),
    /// Ask the policy (or its cache) about `sub` in the room, then [`after_policy`].
    AskPolicy,
}

/// Whether `identity` may enter `room` by its token, or the policy must be asked.
pub fn check_room(identity: &Identity, room: &RoomId, policy: Option<&PolicyConfig>) -> RoomCheck {
    let by_claim = identity.may_enter(room);
    match (policy.map(|p| p.mode), &by_claim) {
        (None, _) => RoomCheck::Done(by_claim),
        (Some(PolicyMode::WithoutRoomsClaim), Err(AuthError::NoRooms)) => RoomCheck::AskPolicy,
        (Some(PolicyMode::WithoutRoomsClaim), _) => RoomCheck::Done(by_claim),
        (Some(PolicyMode::Always), Ok(()) | Err(AuthError::NoRooms)) => RoomCheck::AskPolicy,
        (Some(PolicyMode::Always), Err(_)) => RoomCheck::Done(by_claim),
    }
}

/// The outcome once the policy answered (`None`: it could not be asked or did not answer).
pub fn after_policy(decision: Option<Decision>) -> Result<(), AuthError> {
    match decision {
        Some(Decision { allow: true, .. }) => Ok(()),
        Some(Decision { allow: false, .. }) => Err(AuthError::PolicyDenied),
        None => Err(AuthError::Unavailable),
    }
}

/// The question's body.
pub fn request_body(sub: &str, room: &RoomId) -> String {
    json!({ "sub": sub, "room": room.as_str() }).to_string()
}

#[derive(Deserialize)]
struct Answer {
    allow: bool,
    #[serde(default, rename = "ttlS")]
    ttl_s: Option<serde_json::Number>,
}

/// Reads the backend's answer: `None` for anything but `200` with `{"allow": bool, "ttlS"?}`.
pub fn parse_answer(status: u16, body: &str) -> Option<Decision> {
    if status != 200 || body.len() > MAX_ANSWER_BYTES {
        return None;
    }
    let answer: Answer = serde_json::from_str(body).ok()?;
    let ttl_s = match answer.ttl_s {
        None => DEFAULT_TTL_S,
        // A negative or fractional TTL is a backend bug: not cached rather than guessed.
        Some(n) => n.as_u64().map_or(0, |n| n.min(MAX_TTL_S)),
    };
    Some(Decision {
        allow: answer.allow,
        ttl_s,
    })
}

/// Most decisions one isolate keeps.
pub const MAX_CACHED_DECISIONS: usize = 1024;

/// Decisions cached in one isolate until they expire.
#[derive(Debug, Clone, Default)]
pub struct DecisionCache {
    /// (key, allow, expires at ms)
    entries: Vec<(String, bool, u64)>,
}

impl DecisionCache {
    /// The decision cached under `key`, if it has not expired at `now_ms`.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<Decision> {
        self.entries
            .iter()
            .find(|(k, _, expires)| k == key && now_ms < *expires)
            .map(|(_, allow, _)| Decision {
                allow: *allow,
                ttl_s: 0,
            })
    }

    /// Caches `decision` under `key` for its TTL (not at all for 0). When full, expired entries
    /// go first, then the oldest.
    pub fn put(&mut self, key: &str, decision: Decision, now_ms: u64) {
        if decision.ttl_s == 0 {
            return;
        }
        self.entries
            .retain(|(k, _, expires)| k != key && now_ms < *expires);
        if self.entries.len() >= MAX_CACHED_DECISIONS {
            self.entries.remove(0);
        }
        let expires = now_ms.saturating_add(decision.ttl_s.saturating_mul(1000));
        self.entries.push((key.to_owned(), decision.allow, expires));
    }
}

/// The cache key of a decision about `user` (the salted hash of `sub`) in `room`: a URL, as the
/// Cache API wants, on a host that never resolves.
pub fn cache_key(user: &str, room: &RoomId) -> String {
    format!("https://policy.edgesignal.invalid/{user}/{}", room.as_str())
}
