//! Shared test harness: a room driven by fake peers and a fake id source, and a JWT minter
//! that is independent of the verifier under test.
#![allow(dead_code)]

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use edgesignal::id::IdSource;
use edgesignal::presence::PresenceLimits;
use edgesignal::protocol::{PeerId, RoomId};
use edgesignal::rate::Identities;
use edgesignal::rate::RateLimits;
use edgesignal::room::{Admission, Arrival, Effect, Room, RoomLimits};
use edgesignal::storage::{load_rows, Row, SqlValue, Write, PRUNE, UPSERT};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Sequential ids: `PEER00000000000000000000001`, …; deterministic, distinct.
#[derive(Default)]
pub struct CountingIds(u64);

impl IdSource for CountingIds {
    fn next_id(&mut self) -> String {
        self.0 += 1;
        format!("ID{:024}", self.0)
    }
}

pub const LIMITS: RoomLimits = RoomLimits {
    max_peers: 8,
    max_frame_bytes: 64 * 1024,
    rate: RateLimits::DEFAULT,
    presence: PresenceLimits::DEFAULT,
};

/// Protocol v1's presence: no grace (an abrupt disconnect is `peer_left` at once).
pub const V1: RoomLimits = RoomLimits {
    presence: PresenceLimits {
        resume_grace_ms: 0,
        ..PresenceLimits::DEFAULT
    },
    ..LIMITS
};

/// A room plus what each fake peer has received and how its socket was closed.
pub struct Harness {
    pub room: Room,
    pub ids: CountingIds,
    pub inbox: BTreeMap<PeerId, Vec<Value>>,
    pub closed: BTreeMap<PeerId, u16>,
    /// Attachments written back by `Effect::Persist`.
    pub persisted: Vec<edgesignal::room::Member>,
    /// Durable writes (`Effect::Store`), in order.
    pub stored: Vec<Write>,
    /// The fake clock, in ms since the epoch; tests move it forward.
    pub now: u64,
    /// Every frame each peer received, as sent (`seq` included), never taken.
    pub raw: BTreeMap<PeerId, Vec<Value>>,
    /// The `seq` of each sequenced frame each peer received, in order.
    pub seqs: BTreeMap<PeerId, Vec<u64>>,
    /// Peers whose previous socket a resume replaced (closed 4409).
    pub replaced: Vec<PeerId>,
    /// Alarms fired.
    pub alarms: u64,
}

impl Harness {
    pub fn new(room: &str) -> Harness {
        Harness::with_limits(room, LIMITS)
    }

    pub fn with_limits(room: &str, limits: RoomLimits) -> Harness {
        Harness {
            room: Room::rebuild(RoomId::parse(room).unwrap(), limits, []),
            ids: CountingIds::default(),
            inbox: BTreeMap::new(),
            closed: BTreeMap::new(),
            persisted: Vec::new(),
            stored: Vec::new(),
            now: NOW_MS,
            raw: BTreeMap::new(),
            seqs: BTreeMap::new(),
            replaced: Vec::new(),
            alarms: 0,
        }
    }

    /// Moves the fake clock forward by `ms`.
    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    /// Admits `user`, or answers the refusal's error frame and close code.
    pub fn try_join(&mut self, user: &str) -> Result<PeerId, (Value, u16)> {
        self.try_arrive(Arrival::new(user)).map(|(peer, _)| peer)
    }

    /// Admits an arrival (a resume attempt, a token deadline); answers the peer and whether it
    /// resumed, or the refusal's error frame and close code. A resumed peer's previous socket is
    /// closed 4409 here, as the glue does.
    pub fn try_arrive(&mut self, arrival: Arrival) -> Result<(PeerId, bool), (Value, u16)> {
        match self.room.admit(arrival, self.now, &mut self.ids) {
            Admission::Accepted {
                member,
                effects,
                resumed,
            } => {
                if resumed && !self.closed.contains_key(&member.peer_id) {
                    self.replaced.push(member.peer_id.clone());
                }
                self.closed.remove(&member.peer_id);
                self.inbox.insert(member.peer_id.clone(), Vec::new());
                self.apply(effects);
                Ok((member.peer_id, resumed))
            }
            Admission::Refused { frame, code, .. } => {
                Err((serde_json::from_str(&frame.to_text()).unwrap(), code))
            }
        }
    }

    /// Admits a peer and returns its id; panics if refused.
    pub fn join(&mut self, user: &str) -> PeerId {
        match self.try_join(user) {
            Ok(peer) => peer,
            Err(refused) => panic!("expected admission, got {refused:?}"),
        }
    }

    /// The resume token `peer` last received in `joined`.
    pub fn token_of(&self, peer: &PeerId) -> String {
        self.room.member(peer).unwrap().resume_token()
    }

    /// Reconnects `user` with `token`; panics if refused.
    pub fn resume(&mut self, user: &str, token: &str) -> (PeerId, bool) {
        let arrival = Arrival {
            resume: Some(token.to_owned()),
            ..Arrival::new(user)
        };
        self.try_arrive(arrival).expect("admitted")
    }

    /// The runtime's alarm at the current time, with the given auto-response timestamps.
    pub fn alarm(&mut self, pings: &[(PeerId, u64)]) {
        self.alarms += 1;
        let effects = self.room.on_alarm(self.now, pings);
        self.apply(effects);
    }

    /// Moves the clock to the next deadline (if any within `limit_ms`) and fires the alarm.
    pub fn run_until_idle_or(&mut self, limit_ms: u64) -> bool {
        match self.room.next_deadline() {
            Some(at) if at <= self.now + limit_ms => {
                self.now = self.now.max(at);
                self.alarm(&[]);
                true
            }
            _ => false,
        }
    }

    pub fn text(&mut self, from: &PeerId, text: &str) {
        let effects = self.room.on_text(from, text, self.now, &mut self.ids);
        self.apply(effects);
    }

    pub fn json(&mut self, from: &PeerId, frame: Value) {
        self.text(from, &frame.to_string());
    }

    pub fn close(&mut self, peer: &PeerId, code: u16) {
        let effects = self.room.on_close(peer, None, code, self.now);
        self.apply(effects);
    }

    pub fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Deliver { to, text } => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    assert!(
                        !self.closed.contains_key(&to),
                        "sent {value} to closed peer {to:?}"
                    );
                    let seq = value["seq"].as_u64().expect("a delivered frame has a seq");
                    self.seqs.entry(to.clone()).or_default().push(seq);
                    self.raw.entry(to.clone()).or_default().push(value.clone());
                    let mut value = value;
                    value.as_object_mut().unwrap().remove("seq");
                    self.inbox.entry(to).or_default().push(value);
                }
                Effect::Send { to, frame } => {
                    // Round-trip through the wire text, as a client would see it.
                    let value: Value = serde_json::from_str(&frame.to_text()).unwrap();
                    assert!(value.get("seq").is_none(), "{value} is not sequenced");
                    for peer in to {
                        self.raw
                            .entry(peer.clone())
                            .or_default()
                            .push(value.clone());
                        assert!(
                            !self.closed.contains_key(&peer),
                            "sent {value} to closed peer {peer:?}"
                        );
                        self.inbox.entry(peer).or_default().push(value.clone());
                    }
                }
                Effect::Close { peer, code, .. } => {
                    self.closed.insert(peer, code);
                }
                Effect::Persist { member } => self.persisted.push(member),
                Effect::Store(write) => self.stored.push(write),
            }
        }
    }

    /// Takes everything `peer` received so far.
    pub fn take(&mut self, peer: &PeerId) -> Vec<Value> {
        std::mem::take(self.inbox.entry(peer.clone()).or_default())
    }

    /// Takes exactly one frame.
    pub fn one(&mut self, peer: &PeerId) -> Value {
        let mut frames = self.take(peer);
        assert_eq!(frames.len(), 1, "expected one frame, got {frames:?}");
        frames.remove(0)
    }
}

/// Signs `claims` under `header` with HMAC-SHA256 (or the hash `header.alg` names, for
/// HS384 tests), without the verifier's library.
pub fn mint(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match header["alg"].as_str() {
        Some("HS384") => {
            let mut mac = Hmac::<sha2::Sha384>::new_from_slice(secret).unwrap();
            mac.update(signing_input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Some("none") => Vec::new(),
        _ => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(signing_input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

pub const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
/// A fixed "now": 2026-11-22T00:00:00Z.
pub const NOW_S: i64 = 1_795_305_600;
pub const NOW_MS: u64 = NOW_S as u64 * 1000;

pub fn hs256(claims: Value) -> String {
    mint(
        &serde_json::json!({"alg":"HS256","typ":"JWT"}),
        &claims,
        SECRET.as_bytes(),
    )
}

/// The `identity` table as SQLite would hold it, driven only by the statements' bindings.
#[derive(Default)]
pub struct Table(pub BTreeMap<String, Row>);

impl Table {
    pub fn apply(&mut self, writes: Vec<Write>) {
        for write in writes {
            let (sql, values) = write.statement();
            match (sql, values.as_slice()) {
                (
                    UPSERT,
                    [SqlValue::Text(user), SqlValue::Text(strikes), banned, SqlValue::Integer(level), SqlValue::Integer(at), SqlValue::Integer(quiet)],
                ) => {
                    let banned_until_ms = match banned {
                        SqlValue::Null => None,
                        SqlValue::Integer(ms) => Some(*ms),
                        other => panic!("{other:?}"),
                    };
                    self.0.insert(
                        user.clone(),
                        Row {
                            user: user.clone(),
                            strikes: strikes.clone(),
                            banned_until_ms,
                            connect_level: *level,
                            connect_at_ms: *at,
                            quiet_at_ms: *quiet,
                        },
                    );
                }
                (PRUNE, [SqlValue::Integer(now)]) => self.0.retain(|_, row| row.quiet_at_ms > *now),
                other => panic!("unexpected statement {other:?}"),
            }
        }
    }

    pub fn load(&self) -> Identities {
        load_rows(self.0.values().cloned())
    }
}
