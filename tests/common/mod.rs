//! Shared test harness: a room driven by fake peers and a fake id source, and a JWT minter
//! that is independent of the verifier under test.
#![allow(dead_code)]

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use edgesignal::id::{IdSource, TokenGrant};
use edgesignal::presence::PresenceLimits;
use edgesignal::protocol::{PeerId, RoomId};
use edgesignal::rate::Identities;
use edgesignal::rate::RateLimits;
use edgesignal::room::{Admission, Arrival, Effect, Member, Room, RoomLimits};
use edgesignal::storage::{load_rows, Row, SqlValue, Write, PRUNE, UPSERT};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Sequential ids: `ID000000000000000000000001`, …; deterministic, distinct. Refresh tokens
/// it knows (`grants`) verify to their grant ([`CountingIds::check_refresh`]); any other fails
/// as the edge would.
#[derive(Default)]
pub struct CountingIds(u64, pub BTreeMap<String, TokenGrant>);

impl CountingIds {
    /// What the glue's token check answers for an [`Effect::CheckRefresh`].
    pub fn check_refresh(&self, token: &str) -> Result<TokenGrant, String> {
        self.1
            .get(token)
            .cloned()
            .ok_or_else(|| "the token is not valid".to_owned())
    }
}

impl IdSource for CountingIds {
    fn next_id(&mut self) -> String {
        self.0 += 1;
        format!("ID{:024}", self.0)
    }
}

/// What the room's storage holds, driven only by the writes the room emits.
#[derive(Default, Debug)]
pub struct Durable {
    pub identity: Table,
    /// `away` rows: peer → member JSON.
    pub away: BTreeMap<String, String>,
    /// `kept` rows: (peer, seq) → text.
    pub kept: BTreeMap<(String, u64), String>,
    /// `call` rows: id → call JSON.
    pub calls: BTreeMap<String, String>,
    /// Rows written, as SQLite counts them (a no-op delete writes none).
    pub rows_written: u64,
}

impl Durable {
    pub fn apply(&mut self, write: &Write) {
        match write {
            Write::Upsert { .. } | Write::Prune { .. } => {
                self.rows_written += 1;
                self.identity.apply(vec![write.clone()]);
            }
            Write::Away { peer, member, .. } => {
                self.rows_written += 1;
                self.away.insert(peer.clone(), member.clone());
            }
            Write::Back { peer } => {
                self.rows_written += u64::from(self.away.remove(peer).is_some());
            }
            Write::Keep { peer, seq, text } => {
                if !self.kept.contains_key(&(peer.clone(), *seq)) {
                    self.rows_written += 1;
                    self.kept.insert((peer.clone(), *seq), text.clone());
                }
            }
            Write::KeepMany { peer, frames } => {
                for (seq, text) in frames {
                    self.apply(&Write::Keep {
                        peer: peer.clone(),
                        seq: *seq,
                        text: text.clone(),
                    });
                }
            }
            Write::DropKept { peer, through } => {
                let before = self.kept.len();
                self.kept.retain(|(p, s), _| !(p == peer && s <= through));
                self.rows_written += (before - self.kept.len()) as u64;
            }
            Write::ForgetKept { peer } => {
                let before = self.kept.len();
                self.kept.retain(|(p, _), _| p != peer);
                self.rows_written += (before - self.kept.len()) as u64;
            }
            Write::Call { id, call } => {
                self.rows_written += 1;
                self.calls.insert(id.clone(), call.clone());
            }
            Write::DropCall { id } => {
                self.rows_written += u64::from(self.calls.remove(id).is_some());
            }
        }
    }
}

pub const LIMITS: RoomLimits = RoomLimits {
    max_peers: 8,
    max_frame_bytes: 64 * 1024,
    rate: RateLimits::DEFAULT,
    presence: PresenceLimits::DEFAULT,
    calls: edgesignal::call::CallLimits::DEFAULT,
    log_level: edgesignal::observe::Level::Debug,
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
    /// Each open socket's attachment, as the runtime would hand it back after an eviction.
    pub attachments: BTreeMap<PeerId, Member>,
    /// The room's storage.
    pub durable: Durable,
    /// Log lines and data points the room emitted, in order.
    pub logs: Vec<edgesignal::observe::LogLine>,
    pub metrics: Vec<edgesignal::observe::DataPoint>,
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
            attachments: BTreeMap::new(),
            durable: Durable::default(),
            logs: Vec::new(),
            metrics: Vec::new(),
        }
    }

    /// What the Durable Object does after the runtime evicted it: the room is rebuilt from the
    /// open sockets' attachments and from storage, and everything in memory only is gone.
    pub fn evict(&mut self) {
        let limits = self.room.limits();
        let id = self.room.id().clone();
        let connected: Vec<Member> = self.attachments.values().cloned().collect();
        let away = self
            .durable
            .away
            .iter()
            .filter(|(peer, _)| {
                !connected
                    .iter()
                    .any(|m| m.peer_id.as_str() == peer.as_str())
            })
            .map(|(_, json)| serde_json::from_str::<Member>(json).unwrap());
        let kept: Vec<(String, u64, String)> = self
            .durable
            .kept
            .iter()
            .map(|((peer, seq), text)| (peer.clone(), *seq, text.clone()))
            .collect();
        let calls = self
            .durable
            .calls
            .values()
            .map(|json| serde_json::from_str(json).unwrap());
        self.room = Room::rebuild(id, limits, connected.clone().into_iter().chain(away))
            .with_kept(kept)
            .with_calls(calls)
            .with_ice(self.room.ice().clone())
            .with_identities(self.durable.identity.load());
        for write in self.room.take_cleanup() {
            self.durable.apply(&write);
            self.stored.push(write);
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
                self.attachments
                    .insert(member.peer_id.clone(), member.clone());
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
                    self.attachments.remove(&peer);
                    self.closed.insert(peer, code);
                }
                Effect::Persist { member } => {
                    if self.attachments.contains_key(&member.peer_id) {
                        self.attachments
                            .insert(member.peer_id.clone(), member.clone());
                    }
                    self.persisted.push(member)
                }
                Effect::Store(write) => {
                    self.durable.apply(&write);
                    self.stored.push(write)
                }
                Effect::Log(line) => self.logs.push(line),
                Effect::Metric(point) => self.metrics.push(point),
                Effect::CheckRefresh {
                    peer,
                    token,
                    correlation_id,
                } => {
                    let checked = self.ids.check_refresh(&token);
                    let more =
                        self.room
                            .on_refresh_checked(&peer, checked, correlation_id, self.now);
                    self.apply(more);
                }
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
#[derive(Default, Debug)]
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

/// An HS256 token signed with `secret` (for algorithm-confusion cases), `header` merged over
/// `{"alg":"HS256"}`.
pub fn mint_with_secret(secret: &[u8], claims: Value, header: Value) -> String {
    let mut full = serde_json::json!({"alg":"HS256"});
    if let (Some(full), Value::Object(extra)) = (full.as_object_mut(), header) {
        full.extend(extra);
    }
    mint(&full, &claims, secret)
}

/// Checks a public-key signature natively, as WebCrypto does in the Worker: with jwt-compact's
/// ES256 (p256), EdDSA (ed25519-compact) and RS256 (rsa).
pub fn native_check(check: &edgesignal::keys::SignatureCheck) -> bool {
    use edgesignal::keys::Alg;
    use jwt_compact::alg::{Ed25519, Es256, Rsa};
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{Algorithm, AlgorithmSignature};
    fn run<A: Algorithm>(alg: A, check: &edgesignal::keys::SignatureCheck) -> Option<bool>
    where
        for<'a> A::VerifyingKey: TryFrom<&'a JsonWebKey<'a>>,
    {
        let jwk_text = check.key.jwk();
        let jwk: JsonWebKey<'_> = serde_json::from_str(&jwk_text).ok()?;
        let key = A::VerifyingKey::try_from(&jwk).ok()?;
        let signature = A::Signature::try_from_slice(&check.signature).ok()?;
        Some(alg.verify_signature(&signature, &key, &check.message))
    }
    match check.key.alg {
        Alg::Es256 => run(Es256, check),
        Alg::EdDsa => run(Ed25519, check),
        Alg::Rs256 => run(Rsa::rs256(), check),
        Alg::Hs256 => None,
    }
    .unwrap_or(false)
}
