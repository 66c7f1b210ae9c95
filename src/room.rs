//! The room: membership, presence and targeted relay, as a value driven by events.
//!
//! Invariants:
//! - A [`Room`] holds only what its members' sockets hold (each connected [`Member`] is a
//!   socket's attachment) and what storage holds (away members, kept frames, identities), so
//!   the Durable Object can rebuild it after hibernation ([`Room::rebuild`], [`Room::with_kept`],
//!   [`Room::with_identities`]) and carry on exactly where it was. What changes on every frame
//!   (each peer's `seq` cursor, its last frame time) is written back by the flush deadline,
//!   once the room has been quiet for [`crate::presence::FLUSH_DELAY_MS`], well before an
//!   eviction can happen.
//! - Nothing crosses rooms: a relay's addressee must be a member of this room (an away member
//!   counts: the frame is kept for it).
//! - Existing members hear `peer_joined` in the same event that admits the newcomer, before
//!   the newcomer can send anything; frames from one sender to one addressee leave in order.
//! - Every frame to a member but `error` and `pong` takes the member's next `seq`; every kept
//!   kind stays in its [`crate::presence::Outbox`] until acknowledged, so a resume replays
//!   exactly what was not acknowledged, with the original `seq` (v1.1 §3).
//! - Every frame but a valid `ack` is charged to its connection's and the room's rate limits
//!   ([`crate::rate`]) before it is decoded; a dropped frame changes nothing but the limiter and
//!   the sender's strikes. What must outlive an eviction comes out as [`Effect::Store`]; a
//!   relayed frame whose addressee acknowledges it promptly stores nothing.
//! - Time-driven behaviour is a set of deadlines derived from the state ([`Room::deadlines`]):
//!   the glue keeps one alarm at [`Room::next_deadline`] and calls [`Room::on_alarm`].
//! - The room never reads a clock or a random source, and does no I/O: it returns [`Effect`]s.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::call::{CallDue, CallLimits, Calls, Initiate, Outcome};
use crate::error::{
    close, close_code_for, ending_close_code, reciprocal_close_code, ErrorCode, WarningCode,
};
use crate::ice::{ice_servers, refresh_at, IceConfig};
use crate::id::{IdSource, TokenGrant};
use crate::observe::{DataPoint, Level, LogLine, MessageCounts, Metric};
use crate::presence::{
    parse_resume_token, resume_token, secrets_match, Away, Cursor, Kept, Outbox, OutboxWrite,
    PresenceLimits, FLUSH_DELAY_MS,
};
use crate::protocol::{
    decode, encode_relay, with_seq, ClientFrame, LeaveReason, Metadata, PeerId, PeerInfo, Refusal,
    RoomId, ServerFrame, Signal, Status,
};
use crate::rate::{
    sniff_type, ConnectionLimiter, FrameClass, Identities, Notice, RateLimits, StrikeOutcome,
    TokenBucket, Verdict,
};
use crate::schedule::{earliest, Deadline, Due};
use crate::storage::Write;

/// Limits a room enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimits {
    /// `MAX_PEERS_PER_ROOM`: members, away ones included.
    pub max_peers: usize,
    /// `MAX_FRAME_BYTES`: text frames over it are refused unparsed.
    pub max_frame_bytes: usize,
    /// `RATE_*`, `MAX_CONNECTIONS_PER_USER`.
    pub rate: RateLimits,
    /// `HEARTBEAT_TIMEOUT_MS`, `RESUME_*`, `TOKEN_EXPIRY_WARNING_MS`.
    pub presence: PresenceLimits,
    /// `CALL_RING_TIMEOUT_MS`, `MAX_CALL_DURATION_MS`.
    pub calls: CallLimits,
    /// `LOG_LEVEL`: lines below it are not even built (per-frame lines are `debug`).
    pub log_level: Level,
}

/// One member: what its socket's attachment stores (or, while it is away, its `away` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub peer_id: PeerId,
    /// Admission order within the room: larger joined later. Decides roles (the smaller is
    /// polite toward the larger).
    pub seq: u64,
    /// Salted hash of the token's `sub`; the plain `sub` never reaches the room.
    pub user: String,
    pub metadata: Metadata,
    /// The connection's rate limiter, stored only when losing it to an eviction would reset a
    /// limit that has not refilled by itself ([`ConnectionLimiter::needs_persisting`]; never
    /// with the default limits). The live limiter is the room's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limiter: Option<ConnectionLimiter>,
    /// Which connection of this peer is current: 0 at admission, +1 per resume. A close event
    /// from an older socket of the peer changes nothing.
    #[serde(default)]
    pub conn: u32,
    /// The secret half of the peer's resume token.
    #[serde(default)]
    pub resume_secret: String,
    /// The peer's `seq` so far.
    #[serde(default)]
    pub cursor: Cursor,
    /// The last frame from its socket (ms since the epoch); pings answered by the runtime are
    /// read at each heartbeat sweep.
    #[serde(default)]
    pub seen_ms: u64,
    /// The connection's token deadline: `exp` plus the 60 s leeway, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// Whether `warning token_expiring` went out for the current deadline.
    #[serde(default)]
    pub warned: bool,
    /// Set while the peer is away (its socket ended without `leave`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away: Option<Away>,
    /// When the ephemeral TURN credentials it was last given expire (ms): fresh ones go out
    /// before ([`crate::ice::refresh_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_expires_ms: Option<u64>,
    /// When it was admitted (ms), for `connection_duration_ms`.
    #[serde(default)]
    pub joined_ms: u64,
    /// Its current connection's trace id, in every log line about it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace: String,
}

impl Member {
    pub fn status(&self) -> Status {
        if self.away.is_some() {
            Status::Away
        } else {
            Status::Available
        }
    }

    pub fn resume_token(&self) -> String {
        resume_token(&self.peer_id, &self.resume_secret)
    }
}

/// A connection that reached the room: who it is, until when, and what it would resume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Arrival {
    /// Salted hash of the token's `sub`.
    pub user: String,
    /// The token's deadline (`exp` plus the leeway), ms since the epoch.
    pub expires_ms: Option<u64>,
    /// The resume token offered, if any.
    pub resume: Option<String>,
    /// The connection's trace id (W3C `traceparent` of the upgrade, else made at the edge).
    pub trace: Option<String>,
}

impl Arrival {
    pub fn new(user: impl Into<String>) -> Arrival {
        Arrival {
            user: user.into(),
            ..Arrival::default()
        }
    }
}

/// What the glue must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send `frame` to each of `to` (serialize once). Only frames without `seq`: `error`, `pong`.
    Send { to: Vec<PeerId>, frame: ServerFrame },
    /// Send `text` (a sequenced frame, `seq` included) to `to`.
    Deliver { to: PeerId, text: String },
    /// Close `peer`'s socket with `code`.
    Close {
        peer: PeerId,
        code: u16,
        reason: &'static str,
    },
    /// Store `member` as its socket's attachment.
    Persist { member: Member },
    /// Write to the room's durable storage ([`crate::storage`]).
    Store(Write),
    /// Write a log line (the glue filters by `LOG_LEVEL`).
    Log(LogLine),
    /// Write an Analytics Engine data point.
    Metric(DataPoint),
    /// Check `token` for this room as the edge checks an upgrade's (it may need keys fetched or
    /// a signature checked by the runtime, so it is not done here), then answer with
    /// [`Room::on_refresh_checked`].
    CheckRefresh {
        peer: PeerId,
        token: String,
        correlation_id: Option<String>,
    },
}

/// The outcome of an upgrade that reached the room.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Accept the socket (hibernatable, tagged with the peer id, `member` as attachment), then
    /// apply `effects`. When `resumed`, the peer's previous socket (if still open) is closed
    /// 4409 first: the new socket takes its place.
    Accepted {
        member: Member,
        effects: Vec<Effect>,
        resumed: bool,
    },
    /// Accept the socket only to send `frame` and close it with `code`; it never becomes a member
    /// and no member hears of it.
    Refused {
        frame: ServerFrame,
        code: u16,
        reason: &'static str,
    },
}

/// What a member's connection has in memory only.
#[derive(Debug, Clone, Default)]
struct Live {
    /// `None` while away.
    limiter: Option<ConnectionLimiter>,
    outbox: Outbox,
    /// Since when the member differs from what its attachment (or away row) holds.
    dirty_since: Option<u64>,
}

/// A room's live membership.
#[derive(Debug, Clone)]
pub struct Room {
    id: RoomId,
    limits: RoomLimits,
    /// Sorted by `seq`: oldest first.
    members: Vec<Member>,
    /// Each member's in-memory state, at the same index as in `members` (a handful: a scan beats
    /// hashing, in time and in code).
    live: Vec<Live>,
    /// All frames of the room together (`RATE_ROOM_PER_S`); in memory, it refills within 1 s.
    room_bucket: TokenBucket,
    /// Strikes, bans and connect buckets per identity: durable ([`crate::storage`]).
    identities: Identities,
    /// When the last heartbeat sweep ran in this wake.
    last_sweep_ms: Option<u64>,
    /// When the last client event (an upgrade, a frame, a close) reached the room in this wake.
    last_event_ms: u64,
    /// Peers with kept frames in storage that are not members ([`Room::take_cleanup`]).
    orphans: Vec<String>,
    /// The room's calls (v1.1 §6); stored whenever one changes ([`crate::call`]).
    calls: Calls,
    /// STUN and TURN for `joined` and `ice_servers` (v1.1 §5).
    ice: IceConfig,
    /// Client frames by type since the last flush ([`MessageCounts`]).
    messages: MessageCounts,
    /// Frames dropped for rate since the last flush: (reason, user, count).
    drops: Vec<(&'static str, String, u64)>,
    /// Offers waiting for their answer: (offerer, answerer, first offer at ms). In memory: a
    /// negotiation lasts milliseconds.
    offers: Vec<(PeerId, PeerId, u64)>,
}

impl Room {
    /// Rebuilds a room from its members: the open sockets' attachments and the stored away
    /// members (any order).
    pub fn rebuild(
        id: RoomId,
        limits: RoomLimits,
        members: impl IntoIterator<Item = Member>,
    ) -> Room {
        let mut members: Vec<Member> = members.into_iter().collect();
        members.sort_by(|a, b| a.seq.cmp(&b.seq).then_with(|| a.peer_id.cmp(&b.peer_id)));
        members.dedup_by(|a, b| a.peer_id == b.peer_id);
        let live = members
            .iter()
            .map(|m| Live {
                limiter: m.away.is_none().then(|| {
                    m.limiter
                        .clone()
                        .unwrap_or_else(|| ConnectionLimiter::new(&limits.rate))
                }),
                ..Live::default()
            })
            .collect();
        Room {
            id,
            room_bucket: limits.rate.room_bucket(),
            limits,
            members,
            live,
            identities: Identities::default(),
            last_sweep_ms: None,
            last_event_ms: 0,
            orphans: Vec::new(),
            calls: Calls::new(limits.calls),
            ice: IceConfig::default(),
            messages: MessageCounts::default(),
            drops: Vec::new(),
            offers: Vec::new(),
        }
    }

    /// The same room with `STUN_SERVERS`/`TURN_*` (the default: Cloudflare's STUN, no TURN).
    pub fn with_ice(mut self, ice: IceConfig) -> Room {
        self.ice = ice;
        self
    }

    /// The same room with the calls read from durable storage. Participants and invitees that
    /// are no longer members (gone with a crash) leave their calls at the next event.
    pub fn with_calls(mut self, calls: impl IntoIterator<Item = crate::call::Call>) -> Room {
        self.calls = std::mem::take(&mut self.calls).with_calls(calls);
        self
    }

    /// The room's STUN and TURN settings.
    pub fn ice(&self) -> &IceConfig {
        &self.ice
    }

    /// The room's calls.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// A member's presence: `away` while its socket is gone, `in_call` while it rings or talks.
    pub fn status(&self, member: &Member) -> Status {
        if member.away.is_some() {
            Status::Away
        } else if self.calls.in_call(&member.peer_id) {
            Status::InCall
        } else {
            Status::Available
        }
    }

    /// The same room with the identities read from durable storage.
    pub fn with_identities(mut self, identities: Identities) -> Room {
        self.identities = identities;
        self
    }

    /// The same room with the kept frames read from durable storage: `(peer, seq, text)`.
    /// Frames of peers that are no longer members are ignored, and [`Room::take_cleanup`] drops them.
    pub fn with_kept(mut self, frames: impl IntoIterator<Item = (String, u64, String)>) -> Room {
        let mut by_peer: Vec<(usize, Vec<(u64, String)>)> = Vec::new();
        for (peer, seq, text) in frames {
            let Some(index) = self.index(peer.as_str()) else {
                // Kept for a peer that is no longer a member (its socket went with a crash or
                // a redeploy): nobody can resume it.
                if !self.orphans.contains(&peer) {
                    self.orphans.push(peer);
                }
                continue;
            };
            match by_peer.iter_mut().find(|(i, _)| *i == index) {
                Some((_, list)) => list.push((seq, text)),
                None => by_peer.push((index, vec![(seq, text)])),
            }
        }
        for (index, frames) in by_peer {
            let acked = self.members[index].cursor.acked;
            let outbox =
                Outbox::from_stored(frames.into_iter().filter(|(s, _)| *s > acked).collect());
            // Frames kept for an away peer are stored one by one, its row is not rewritten for
            // each: `seq` continues after the highest stored.
            let cursor = &mut self.members[index].cursor;
            cursor.sent = cursor.sent.max(outbox.last_seq().unwrap_or(0));
            self.live[index].outbox = outbox;
        }
        self
    }

    /// The writes that drop what storage holds for peers that are no longer members (found by
    /// [`Room::with_kept`]); the glue runs them once after loading.
    pub fn take_cleanup(&mut self) -> Vec<Write> {
        std::mem::take(&mut self.orphans)
            .into_iter()
            .map(|peer| Write::ForgetKept { peer })
            .collect()
    }

    /// Strikes, bans and connect buckets per identity.
    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    pub fn id(&self) -> &RoomId {
        &self.id
    }

    pub fn limits(&self) -> RoomLimits {
        self.limits
    }

    /// Members, oldest first, away ones included.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, peer: &PeerId) -> Option<&Member> {
        self.members.iter().find(|m| &m.peer_id == peer)
    }

    /// The frames kept for `peer`'s replay, oldest first.
    pub fn kept(&self, peer: &PeerId) -> Vec<Kept> {
        self.index(peer.as_str())
            .map(|i| self.live[i].outbox.frames().cloned().collect())
            .unwrap_or_default()
    }

    fn index(&self, peer: &str) -> Option<usize> {
        self.members.iter().position(|m| m.peer_id.as_str() == peer)
    }

    /// A new connection with a verified identity at `now_ms`. With a valid resume token for a
    /// member of this room and the same identity, it takes that peer back; otherwise it is a
    /// fresh peer. Refused when the room is full (a resume never is), or when the identity is
    /// banned, has `MAX_CONNECTIONS_PER_USER` connections open or is over its connect rate: a
    /// refused upgrade spends nothing and stores nothing.
    pub fn admit(&mut self, arrival: Arrival, now_ms: u64, ids: &mut dyn IdSource) -> Admission {
        self.last_event_ms = now_ms;
        let resumed = arrival
            .resume
            .as_deref()
            .and_then(parse_resume_token)
            .and_then(|(peer, secret)| {
                let index = self.index(peer)?;
                let m = &self.members[index];
                (m.user == arrival.user && secrets_match(&m.resume_secret, secret)).then_some(index)
            });
        if resumed.is_none() && self.members.len() >= self.limits.max_peers {
            let code = ErrorCode::RoomFull;
            return Admission::Refused {
                frame: Refusal::new(
                    code,
                    format!(
                        "room `{}` is full ({} peers); try again later",
                        self.id.as_str(),
                        self.limits.max_peers
                    ),
                )
                .into_frame(),
                code: close_code_for(code).unwrap_or(close::TRY_AGAIN_LATER),
                reason: "room full",
            };
        }
        let open = self
            .members
            .iter()
            .enumerate()
            .filter(|(i, m)| m.user == arrival.user && m.away.is_none() && Some(*i) != resumed)
            .count();
        if let Err(refusal) =
            self.identities
                .admit_check(&arrival.user, now_ms, &self.limits.rate, open)
        {
            let code = refusal.code();
            return Admission::Refused {
                frame: Refusal::new(code, refusal_message(&refusal, &self.id))
                    .retry_after(refusal.retry_after_ms())
                    .into_frame(),
                code: refusal.close_code(),
                reason: refusal.reason(),
            };
        }
        match resumed {
            Some(index) => self.resume(index, arrival, now_ms, ids),
            None => self.admit_fresh(arrival, now_ms, ids),
        }
    }

    fn admit_fresh(&mut self, arrival: Arrival, now_ms: u64, ids: &mut dyn IdSource) -> Admission {
        let seq = self
            .members
            .iter()
            .map(|m| m.seq)
            .max()
            .map_or(1, |s| s + 1);
        let member = Member {
            peer_id: ids.next_peer_id(),
            seq,
            user: arrival.user,
            metadata: Metadata::new(),
            limiter: None,
            conn: 0,
            resume_secret: ids.next_secret(),
            cursor: Cursor::default(),
            seen_ms: now_ms,
            expires_ms: arrival.expires_ms,
            warned: false,
            away: None,
            ice_expires_ms: None,
            joined_ms: now_ms,
            trace: arrival.trace.clone().unwrap_or_default(),
        };
        let peer = member.peer_id.clone();
        self.members.push(member);
        self.live.push(Live {
            limiter: Some(ConnectionLimiter::new(&self.limits.rate)),
            ..Live::default()
        });
        let index = self.members.len() - 1;
        let mut effects = self.storage_writes();
        let joined = self.joined_frame(index, false, now_ms);
        self.deliver(&mut effects, index, joined, now_ms);
        let frame = ServerFrame::PeerJoined {
            room_id: self.id.clone(),
            peer_id: peer.clone(),
            metadata: Metadata::new(),
            status: Status::Available,
            polite: true,
        };
        self.broadcast(&mut effects, &peer, &frame, now_ms);
        effects.push(Effect::Log(self.line(Level::Info, "room.join", index)));
        self.gauges(&mut effects);
        self.accepted(index, effects, false, now_ms)
    }

    /// The end of an admission: the token warning if it is due, and the member as its new
    /// socket's attachment (which is then current: nothing to write back).
    fn accepted(
        &mut self,
        index: usize,
        mut effects: Vec<Effect>,
        resumed: bool,
        now_ms: u64,
    ) -> Admission {
        self.warn_if_expiring(&mut effects, index, now_ms);
        self.live[index].dirty_since = None;
        Admission::Accepted {
            member: self.members[index].clone(),
            effects,
            resumed,
        }
    }

    /// Takes the peer at `index` back on a new connection: `joined` (resumed), the gap if
    /// frames overflowed, then every kept frame after its last ack with its original `seq`;
    /// the others hear `peer_back` if it was away.
    fn resume(
        &mut self,
        index: usize,
        arrival: Arrival,
        now_ms: u64,
        ids: &mut dyn IdSource,
    ) -> Admission {
        let mut effects = self.storage_writes();
        let member = &mut self.members[index];
        let was_away = member.away.take().is_some();
        member.conn = member.conn.wrapping_add(1);
        member.resume_secret = ids.next_secret();
        member.seen_ms = now_ms;
        member.expires_ms = arrival.expires_ms;
        member.warned = false;
        member.limiter = None;
        if let Some(trace) = arrival.trace {
            member.trace = trace;
        }
        let peer = member.peer_id.clone();
        let (acked, lost) = (member.cursor.acked, member.cursor.lost);
        self.live[index].limiter = Some(ConnectionLimiter::new(&self.limits.rate));
        self.live[index].dirty_since = None;
        if was_away {
            effects.push(Effect::Store(Write::Back {
                peer: peer.as_str().to_owned(),
            }));
        }
        let joined = self.joined_frame(index, true, now_ms);
        self.deliver(&mut effects, index, joined, now_ms);
        if let Some((from, to)) = lost {
            let gap = ServerFrame::Warning {
                code: WarningCode::ReplayGap,
                message: format!(
                    "{} frame(s) kept for you were lost: the replay buffer overflowed",
                    to - from + 1
                ),
                dropped: None,
                retry_after_ms: None,
                from: Some(from),
                to: Some(to),
                expires_at: None,
            };
            self.deliver(&mut effects, index, gap, now_ms);
        }
        for kept in self.live[index].outbox.after(acked) {
            effects.push(Effect::Deliver {
                to: peer.clone(),
                text: kept.text.clone(),
            });
        }
        if was_away {
            let frame = ServerFrame::PeerBack {
                room_id: self.id.clone(),
                peer_id: peer.clone(),
            };
            self.broadcast(&mut effects, &peer, &frame, now_ms);
        }
        effects.push(Effect::Log(
            self.line(Level::Info, "room.resume", index)
                .with("wasAway", was_away),
        ));
        self.gauges(&mut effects);
        self.accepted(index, effects, true, now_ms)
    }

    /// A text frame from `sender` at `now_ms`.
    pub fn on_text(
        &mut self,
        sender: &PeerId,
        text: &str,
        now_ms: u64,
        ids: &mut dyn IdSource,
    ) -> Vec<Effect> {
        let Some(index) = self.index(sender.as_str()) else {
            // A socket that already left (or was never admitted): its late frames are dropped.
            return Vec::new();
        };
        if self.members[index].away.is_some() {
            return Vec::new();
        }
        self.last_event_ms = now_ms;
        self.members[index].seen_ms = now_ms;
        self.touch(index, now_ms);
        // Charged before anything is parsed: a flood costs a scan for `"type"`, not a decode.
        // An oversized frame is not even scanned. An `ack` is never charged (v1.1 §3) unless it
        // turns out not to be a valid one.
        let sniffed = if text.len() > self.limits.max_frame_bytes {
            Some(FrameClass::Other)
        } else {
            match sniff_type(text) {
                Some("ack") => None,
                Some("candidate") => Some(FrameClass::Candidate),
                _ => Some(FrameClass::Other),
            }
        };
        let mut effects = match sniffed {
            Some(class) => match self.charge(sender, class, now_ms) {
                Ok(effects) => effects,
                Err(dropped) => return dropped,
            },
            None => Vec::new(),
        };
        let envelope = match decode(text, self.limits.max_frame_bytes) {
            Ok(envelope) => envelope,
            Err(refusal) => {
                if sniffed.is_none() {
                    // Looked like an ack, is not one: it pays like any other frame.
                    if let Err(dropped) = self.charge(sender, FrameClass::Other, now_ms) {
                        return dropped;
                    }
                }
                effects.push(self.refuse(sender, refusal));
                return effects;
            }
        };
        let decoded = match &envelope.frame {
            ClientFrame::Signal(Signal {
                payload: crate::protocol::Payload::Candidate { .. },
                ..
            }) => Some(FrameClass::Candidate),
            ClientFrame::Ack { seq } if *seq <= self.members[index].cursor.sent => None,
            _ => Some(FrameClass::Other),
        };
        if decoded != sniffed {
            // A frame whose `type` the sniffer misread (it answers `Other` when unsure) pays
            // its real class instead, so it cannot spend two budgets.
            let rate = self.limits.rate;
            let verdict = match (sniffed, decoded) {
                (Some(sniffed), Some(decoded)) => self.limiter(sender).map_or(Verdict::Pass, |l| {
                    l.reclassify(sniffed, decoded, now_ms, &rate)
                }),
                (None, Some(decoded)) => match self.charge(sender, decoded, now_ms) {
                    Ok(more) => {
                        effects.extend(more);
                        Verdict::Pass
                    }
                    Err(dropped) => return dropped,
                },
                // Sniffed as something else, decoded as a valid ack: refund nothing (a frame
                // that hides its type pays), but it goes through.
                _ => Verdict::Pass,
            };
            if let Verdict::Drop { notice } = verdict {
                let reason = drop_reason(decoded.unwrap_or(FrameClass::Other));
                effects.extend(self.dropped(sender, reason, notice, now_ms));
                return effects;
            }
        }
        if effects.is_empty() {
            // The usual case: nothing owed before the frame's own effects.
            return self.handle(index, envelope, now_ms, ids);
        }
        effects.extend(self.handle(index, envelope, now_ms, ids));
        effects
    }

    fn handle(
        &mut self,
        index: usize,
        envelope: crate::protocol::Envelope<'_>,
        now_ms: u64,
        ids: &mut dyn IdSource,
    ) -> Vec<Effect> {
        let sender = self.members[index].peer_id.clone();
        let correlation_id = envelope.correlation_id;
        let mut counted = Vec::new();
        if let Some(count) = self.messages.count(envelope.frame.kind()) {
            // A room that is never quiet still reports its counts.
            counted.push(Effect::Metric(
                DataPoint {
                    count: count as f64,
                    ..DataPoint::new(Metric::Messages, self.id.as_str(), count as f64)
                }
                .detail(envelope.frame.kind()),
            ));
        }
        let result = match envelope.frame {
            ClientFrame::Join {
                room_id,
                metadata,
                peer_id,
            } => self.join(index, &room_id, metadata, peer_id.as_deref(), now_ms),
            ClientFrame::Leave { room_id } => self.leave(index, &room_id, now_ms),
            ClientFrame::Signal(signal) => {
                self.relay(index, &signal, correlation_id.as_deref(), now_ms, ids)
            }
            ClientFrame::Ping => Ok(vec![Effect::Send {
                to: vec![sender.clone()],
                frame: ServerFrame::Pong,
            }]),
            ClientFrame::Ack { seq } => self.ack(index, seq),
            ClientFrame::Refresh { token } => Ok(vec![Effect::CheckRefresh {
                peer: sender.clone(),
                token: token.into_owned(),
                correlation_id: correlation_id.as_deref().map(str::to_owned),
            }]),
            ClientFrame::CallInitiate { to, media, call_id } => {
                let to: Vec<PeerId> = to.into_iter().map(PeerId::from_server).collect();
                let members = &self.members;
                let is_member =
                    |p: &PeerId| members.iter().any(|m| &m.peer_id == p && m.away.is_none());
                let new_id = ids.next_id();
                let initiate = Initiate {
                    from: &sender,
                    to: &to,
                    media: media.unwrap_or_default(),
                    call_id: call_id.as_deref(),
                };
                self.calls
                    .initiate(initiate, new_id, &is_member, now_ms)
                    .map(|outcome| self.call_effects(outcome, now_ms))
            }
            ClientFrame::CallAnswer { call_id } => self
                .calls
                .answer(&sender, &call_id, now_ms)
                .map(|outcome| self.call_effects(outcome, now_ms)),
            ClientFrame::CallReject { call_id, reason } => self
                .calls
                .reject(&sender, &call_id, reason)
                .map(|outcome| self.call_effects(outcome, now_ms)),
            ClientFrame::CallHangup { call_id } => self
                .calls
                .hangup(&sender, &call_id)
                .map(|outcome| self.call_effects(outcome, now_ms)),
        };
        let mut effects = result.unwrap_or_else(|mut refusal| {
            refusal.correlation_id = correlation_id.map(Cow::into_owned);
            vec![self.refuse(&sender, refusal)]
        });
        effects.extend(counted);
        effects
    }

    /// A binary frame from `sender` at `now_ms`: the protocol is text only. Charged like any
    /// other frame, so a binary flood cannot turn into a flood of errors.
    pub fn on_binary(&mut self, sender: &PeerId, now_ms: u64) -> Vec<Effect> {
        let Some(index) = self.index(sender.as_str()) else {
            return Vec::new();
        };
        if self.members[index].away.is_some() {
            return Vec::new();
        }
        self.last_event_ms = now_ms;
        self.members[index].seen_ms = now_ms;
        self.touch(index, now_ms);
        let mut effects = match self.charge(sender, FrameClass::Other, now_ms) {
            Ok(effects) => effects,
            Err(dropped) => return dropped,
        };
        effects.push(self.refuse(
            sender,
            Refusal::new(
                ErrorCode::BadRequest,
                "binary frames are not supported; send JSON text",
            ),
        ));
        effects
    }

    /// Charges one frame of `class` to `sender`'s limiter and the room's bucket. `Ok` with the
    /// effects that go before the frame's own (a `throttled` warning owed from a flood that is
    /// over; an attachment that must carry the limiter), or `Err` with everything a dropped
    /// frame causes.
    fn charge(
        &mut self,
        sender: &PeerId,
        class: FrameClass,
        now_ms: u64,
    ) -> Result<Vec<Effect>, Vec<Effect>> {
        let rate = self.limits.rate;
        let Some(index) = self.index(sender.as_str()) else {
            return Ok(Vec::new());
        };
        let Some(limiter) = self.live[index].limiter.as_mut() else {
            return Ok(Vec::new());
        };
        match limiter.check(class, now_ms, &rate, &mut self.room_bucket) {
            Verdict::Drop { notice } => {
                return Err(self.dropped(sender, drop_reason(class), notice, now_ms))
            }
            Verdict::Pass => {}
        }
        let mut effects = Vec::new();
        let throttled = limiter.flush_throttled(now_ms);
        let snapshot = limiter
            .needs_persisting(now_ms, &rate)
            .then(|| limiter.clone());
        if let Some(notice) = throttled {
            self.notice(&mut effects, index, notice, now_ms);
        }
        if let Some(snapshot) = snapshot {
            let member = &mut self.members[index];
            member.limiter = Some(snapshot);
            effects.push(Effect::Persist {
                member: member.clone(),
            });
        }
        Ok(effects)
    }

    /// A frame of `sender`'s was dropped for rate: its notice (if the cadence allows one), a
    /// strike for its identity, and at the strike limit the ban: `error rate_limited` and close
    /// 4429. A banned peer is gone at once (`peer_left` with `disconnect`): it may not resume.
    /// A frame of `sender` dropped for rate (`reason`: `rate_limited` or `throttled`).
    fn dropped(
        &mut self,
        sender: &PeerId,
        reason: &'static str,
        notice: Option<Notice>,
        now_ms: u64,
    ) -> Vec<Effect> {
        let Some(index) = self.index(sender.as_str()) else {
            return Vec::new();
        };
        let user = self.members[index].user.clone();
        let outcome = self.identities.on_drop(&user, now_ms, &self.limits.rate);
        let mut effects = self.storage_writes();
        match self
            .drops
            .iter_mut()
            .find(|(r, u, _)| *r == reason && *u == user)
        {
            Some((_, _, count)) => *count += 1,
            None => self.drops.push((reason, user.clone(), 1)),
        }
        if let StrikeOutcome::Ban { until_ms } = outcome {
            effects.push(Effect::Log(
                self.line(Level::Warn, "rate.ban", index)
                    .with("untilMs", until_ms),
            ));
            effects.push(Effect::Metric(
                DataPoint::new(Metric::Drops, self.id.as_str(), 1.0)
                    .detail("ban")
                    .user(&user),
            ));
            let retry_after_ms = until_ms.saturating_sub(now_ms);
            effects.push(
                self.refuse(
                    sender,
                    Refusal::new(
                        ErrorCode::RateLimited,
                        format!(
                        "too many frames dropped for rate ({} seconds with drops within a minute); \
                         this identity may rejoin room `{}` in {} s",
                        self.limits.rate.abuse_strikes,
                        self.id.as_str(),
                        retry_after_ms.div_ceil(1000)
                    ),
                    )
                    .retry_after(Some(retry_after_ms)),
                ),
            );
            effects.push(Effect::Close {
                peer: sender.clone(),
                code: ending_close_code(ErrorCode::RateLimited).unwrap_or(close::RATE_LIMIT_ABUSE),
                reason: "rate limit abuse",
            });
            self.remove(&mut effects, index, LeaveReason::Disconnect, now_ms);
            return effects;
        }
        if let Some(notice) = notice {
            self.notice(&mut effects, index, notice, now_ms);
        }
        effects
    }

    /// `peer`'s connection closed (its close frame carried `code`) or failed, at `now_ms`.
    /// `conn` is the closed socket's connection number (`None`: the peer's current socket). The
    /// server always answers a close. The peer becomes away for `RESUME_GRACE_MS` (others hear
    /// `peer_away`), or is gone at once with a grace of 0; a close of a socket the peer no
    /// longer uses (replaced by a resume) changes nothing.
    pub fn on_close(
        &mut self,
        peer: &PeerId,
        conn: Option<u32>,
        code: u16,
        now_ms: u64,
    ) -> Vec<Effect> {
        self.last_event_ms = now_ms;
        let mut effects = Vec::new();
        if let Some(index) = self.index(peer.as_str()) {
            let member = &self.members[index];
            if member.away.is_none() && conn.is_none_or(|c| c == member.conn) {
                self.go_away(&mut effects, index, LeaveReason::Disconnect, now_ms);
            }
        }
        effects.push(Effect::Close {
            peer: peer.clone(),
            code: reciprocal_close_code(code),
            reason: "",
        });
        effects
    }

    /// The runtime's alarm at `now_ms`, with the time each socket's last ping was answered by
    /// the runtime (`pings`, which never woke the room). Handles everything due: token
    /// warnings and expiries, the heartbeat sweep, grace ends, the flush.
    pub fn on_alarm(&mut self, now_ms: u64, pings: &[(PeerId, u64)]) -> Vec<Effect> {
        for (peer, at) in pings {
            if let Some(index) = self.index(peer.as_str()) {
                let member = &mut self.members[index];
                member.seen_ms = member.seen_ms.max(*at);
            }
        }
        let mut effects = Vec::new();
        let warning_ms = self.limits.presence.token_expiry_warning_ms;
        // Token deadlines.
        let mut index = 0;
        while index < self.members.len() {
            let member = &self.members[index];
            match member.expires_ms {
                Some(deadline) if member.away.is_none() && deadline <= now_ms => {
                    let peer = member.peer_id.clone();
                    effects.push(self.refuse(
                        &peer,
                        Refusal::new(
                            ErrorCode::Unauthorized,
                            "your token expired; reconnect with a fresh one",
                        ),
                    ));
                    effects.push(Effect::Log(self.line(Level::Info, "token.expired", index)));
                    effects.push(Effect::Close {
                        peer,
                        code: close::UNAUTHORIZED,
                        reason: "token expired",
                    });
                    self.remove(&mut effects, index, LeaveReason::Leave, now_ms);
                    continue;
                }
                Some(deadline)
                    if member.away.is_none()
                        && !member.warned
                        && deadline.saturating_sub(warning_ms) <= now_ms =>
                {
                    self.warn_if_expiring(&mut effects, index, now_ms);
                }
                _ => {}
            }
            index += 1;
        }
        // Heartbeats.
        let timeout = self.limits.presence.heartbeat_timeout_ms;
        if self.sweep_at().is_some_and(|at| at <= now_ms) {
            let mut index = 0;
            while index < self.members.len() {
                let member = &self.members[index];
                if member.away.is_none() && now_ms.saturating_sub(member.seen_ms) > timeout {
                    effects.push(Effect::Close {
                        peer: member.peer_id.clone(),
                        code: close::HEARTBEAT_TIMEOUT,
                        reason: "heartbeat timeout",
                    });
                    if self.go_away(&mut effects, index, LeaveReason::Timeout, now_ms) {
                        continue;
                    }
                }
                index += 1;
            }
            self.last_sweep_ms = Some(now_ms);
        }
        // Grace ends.
        let grace = self.limits.presence.resume_grace_ms;
        let mut index = 0;
        while index < self.members.len() {
            match self.members[index].away {
                Some(away) if away.since_ms.saturating_add(grace) <= now_ms => {
                    self.remove(&mut effects, index, away.reason, now_ms);
                }
                _ => index += 1,
            }
        }
        // Fresh TURN credentials.
        self.renew_ice(&mut effects, now_ms);
        // Ring timeouts and call limits.
        let outcome = self.calls.on_due(now_ms);
        let call_effects = self.call_effects(outcome, now_ms);
        effects.extend(call_effects);
        self.flush(&mut effects, now_ms);
        effects
    }

    /// Everything the room must do at a given time, from its state alone.
    pub fn deadlines(&self) -> Vec<Deadline> {
        let mut deadlines = Vec::new();
        if let Some(at_ms) = self.sweep_at() {
            deadlines.push(Deadline {
                at_ms,
                due: Due::HeartbeatSweep,
            });
        }
        let presence = self.limits.presence;
        for member in &self.members {
            let peer = || member.peer_id.clone();
            match (member.away, member.expires_ms) {
                (Some(away), _) => deadlines.push(Deadline {
                    at_ms: away.since_ms.saturating_add(presence.resume_grace_ms),
                    due: Due::GraceEnd(peer()),
                }),
                (None, Some(deadline)) => {
                    if !member.warned {
                        deadlines.push(Deadline {
                            at_ms: deadline.saturating_sub(presence.token_expiry_warning_ms),
                            due: Due::TokenWarning(peer()),
                        });
                    }
                    deadlines.push(Deadline {
                        at_ms: deadline,
                        due: Due::TokenExpiry(peer()),
                    });
                }
                (None, None) => {}
            }
        }
        if let Some(at_ms) = self.flush_at() {
            deadlines.push(Deadline {
                at_ms,
                due: Due::Flush,
            });
        }
        for member in self.members.iter().filter(|m| m.away.is_none()) {
            if let Some(at_ms) = member
                .ice_expires_ms
                .and_then(|expires| refresh_at(&self.ice, expires))
            {
                deadlines.push(Deadline {
                    at_ms,
                    due: Due::IceRefresh(member.peer_id.clone()),
                });
            }
        }
        deadlines.extend(self.calls.deadlines().map(|(at_ms, due)| Deadline {
            at_ms,
            due: match due {
                CallDue::RingTimeout { call, peer } => Due::RingTimeout { call, peer },
                CallDue::MaxDuration { call } => Due::CallLimit(call),
            },
        }));
        deadlines
    }

    /// The earliest deadline. The same as the earliest of [`Room::deadlines`], without building
    /// them (it runs after every event): the earlier of [`Room::next_alarm_deadline`] and
    /// [`Room::flush_deadline`].
    pub fn next_deadline(&self) -> Option<u64> {
        let next = match (self.next_alarm_deadline(), self.flush_at()) {
            (Some(a), Some(f)) => Some(a.min(f)),
            (a, f) => a.or(f),
        };
        debug_assert_eq!(next, earliest(&self.deadlines()));
        next
    }

    /// When the flush is due ([`Due::Flush`]), if anything waits for one. It stores what only
    /// memory holds so that an eviction cannot drop it, so it matters only while the object is
    /// in memory: the glue keeps it with an in-memory timer, not the runtime's alarm, which a
    /// busy room would otherwise set again every `FLUSH_DELAY_MS` (each time a storage write
    /// and an event of its own).
    pub fn flush_deadline(&self) -> Option<u64> {
        self.flush_at()
    }

    /// The earliest deadline but the flush: when the room's one alarm must fire, in memory or
    /// evicted.
    pub fn next_alarm_deadline(&self) -> Option<u64> {
        let presence = self.limits.presence;
        let mut next = self.sweep_at();
        let mut consider = |at: u64| next = Some(next.map_or(at, |n: u64| n.min(at)));
        for member in &self.members {
            match (member.away, member.expires_ms) {
                (Some(away), _) => consider(away.since_ms.saturating_add(presence.resume_grace_ms)),
                (None, Some(deadline)) if !member.warned => {
                    consider(deadline.saturating_sub(presence.token_expiry_warning_ms));
                }
                (None, Some(deadline)) => consider(deadline),
                (None, None) => {}
            }
        }
        if let Some(at) = self.calls.next_deadline() {
            consider(at);
        }
        for member in self.members.iter().filter(|m| m.away.is_none()) {
            if let Some(at) = member
                .ice_expires_ms
                .and_then(|expires| refresh_at(&self.ice, expires))
            {
                consider(at);
            }
        }
        next
    }

    /// The next heartbeat sweep: when the stalest connected socket would have been silent for
    /// `HEARTBEAT_TIMEOUT_MS`, but not sooner than half of that after the previous sweep, so an
    /// idle healthy room wakes at most once per `HEARTBEAT_TIMEOUT_MS / 2`. None while no
    /// socket is connected.
    fn sweep_at(&self) -> Option<u64> {
        let timeout = self.limits.presence.heartbeat_timeout_ms;
        if timeout == 0 {
            return None;
        }
        let stalest = self
            .members
            .iter()
            .filter(|m| m.away.is_none())
            .map(|m| m.seen_ms)
            .min()?;
        let due = stalest.saturating_add(timeout);
        Some(match self.last_sweep_ms {
            Some(last) => due.max(last + timeout / 2),
            None => due,
        })
    }

    fn join(
        &mut self,
        index: usize,
        room_id: &str,
        metadata: Option<Metadata>,
        claimed: Option<&str>,
        now_ms: u64,
    ) -> Result<Vec<Effect>, Refusal> {
        self.check_room(Some(room_id))?;
        let sender = self.members[index].peer_id.clone();
        check_sender(&sender, claimed, "peerId")?;
        let mut effects = Vec::with_capacity(3);
        if let Some(metadata) = metadata {
            let member = &mut self.members[index];
            if member.metadata != metadata {
                member.metadata = metadata;
                let member = member.clone();
                effects.push(Effect::Persist {
                    member: member.clone(),
                });
                let frame = ServerFrame::PeerUpdated {
                    room_id: self.id.clone(),
                    peer_id: member.peer_id.clone(),
                    metadata: member.metadata.clone(),
                    status: self.status(&member),
                };
                self.broadcast(&mut effects, &sender, &frame, now_ms);
            }
        }
        let had = self.members[index].ice_expires_ms;
        let joined = self.joined_frame(index, false, now_ms);
        if self.members[index].ice_expires_ms != had {
            effects.push(Effect::Persist {
                member: self.members[index].clone(),
            });
        }
        self.deliver(&mut effects, index, joined, now_ms);
        Ok(effects)
    }

    fn leave(&mut self, index: usize, room_id: &str, now_ms: u64) -> Result<Vec<Effect>, Refusal> {
        self.check_room(Some(room_id))?;
        let peer = self.members[index].peer_id.clone();
        let mut effects = Vec::new();
        self.remove(&mut effects, index, LeaveReason::Leave, now_ms);
        effects.push(Effect::Close {
            peer,
            code: close::NORMAL,
            reason: "leave",
        });
        Ok(effects)
    }

    fn ack(&mut self, index: usize, seq: u64) -> Result<Vec<Effect>, Refusal> {
        let member = &mut self.members[index];
        if seq > member.cursor.sent {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!(
                    "ack {seq} is beyond the last seq sent to you ({})",
                    member.cursor.sent
                ),
            ));
        }
        let mut effects = Vec::new();
        let (write, newest) = self.live[index].outbox.ack(seq, &mut member.cursor);
        if let Some(OutboxWrite::DropThrough(through)) = write {
            effects.push(Effect::Store(Write::DropKept {
                peer: member.peer_id.as_str().to_owned(),
                through,
            }));
        }
        if let Some(sent) = newest {
            // One point per `ack` (clients ack in batches), not per frame.
            effects.push(Effect::Metric(
                DataPoint::new(
                    Metric::RelayLatencyMs,
                    self.id.as_str(),
                    self.last_event_ms.saturating_sub(sent) as f64,
                )
                .user(&self.members[index].user),
            ));
        }
        Ok(effects)
    }

    /// The answer to an [`Effect::CheckRefresh`] for `peer`: the grant of a token that passed the
    /// edge's checks, or why it did not. A peer that left (or went away) meanwhile gets nothing.
    pub fn on_refresh_checked(
        &mut self,
        peer: &PeerId,
        checked: Result<TokenGrant, String>,
        correlation_id: Option<String>,
        now_ms: u64,
    ) -> Vec<Effect> {
        let Some(index) = self.index(peer.as_str()) else {
            return Vec::new();
        };
        if self.members[index].away.is_some() {
            return Vec::new();
        }
        self.refresh(index, checked, now_ms)
            .unwrap_or_else(|mut refusal| {
                refusal.correlation_id = correlation_id;
                vec![self.refuse(peer, refusal)]
            })
    }

    fn refresh(
        &mut self,
        index: usize,
        checked: Result<TokenGrant, String>,
        now_ms: u64,
    ) -> Result<Vec<Effect>, Refusal> {
        let unauthorized = |why: &str| {
            Refusal::new(
                ErrorCode::Unauthorized,
                format!("refresh refused: {why}; the current token still holds"),
            )
        };
        let grant = checked.map_err(|why| unauthorized(&why))?;
        let member = &mut self.members[index];
        if grant.user != member.user {
            return Err(unauthorized("the token is for another identity"));
        }
        member.expires_ms = Some(grant.expires_ms);
        member.warned = false;
        let mut effects = vec![Effect::Persist {
            member: member.clone(),
        }];
        let frame = ServerFrame::Refreshed {
            expires_at: grant.expires_ms,
        };
        self.deliver(&mut effects, index, frame, now_ms);
        self.warn_if_expiring(&mut effects, index, now_ms);
        Ok(effects)
    }

    fn relay(
        &mut self,
        index: usize,
        signal: &Signal<'_>,
        correlation_id: Option<&str>,
        now_ms: u64,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Effect>, Refusal> {
        let sender = &self.members[index].peer_id;
        check_sender(sender, signal.from.as_deref(), "from")?;
        self.check_room(signal.room_id.as_deref())?;
        if signal.to == sender.as_str() {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "`to` is your own peer id; relay to another peer",
            ));
        }
        let to = self.index(&signal.to).ok_or_else(|| {
            Refusal::new(
                ErrorCode::TargetNotFound,
                format!("no peer `{}` in this room", short(&signal.to)),
            )
        })?;
        let made;
        let correlation_id = match correlation_id {
            Some(id) => id,
            None => {
                made = ids.next_id();
                &made
            }
        };
        let frame = encode_relay(
            &signal.payload,
            signal.call_id,
            &self.id,
            sender,
            &self.members[to].peer_id,
            correlation_id,
        );
        let mut effects = Vec::with_capacity(2);
        self.deliver(&mut effects, to, frame, now_ms);
        let kind = signal.payload.kind();
        if self.limits.log_level <= Level::Debug {
            effects.push(Effect::Log(
                self.line(Level::Debug, relay_event(kind), index)
                    .with("to", self.members[to].peer_id.as_str())
                    .with("correlationId", correlation_id),
            ));
        }
        // Only offers and answers are timed: a candidate costs no work here.
        if kind != "candidate" {
            let to_peer = self.members[to].peer_id.clone();
            self.negotiation(&mut effects, index, &to_peer, kind, now_ms);
        }
        Ok(effects)
    }

    /// Times a pair's negotiation: from the first `offer` to the `answer` that comes back.
    fn negotiation(
        &mut self,
        effects: &mut Vec<Effect>,
        index: usize,
        to: &PeerId,
        kind: &str,
        now_ms: u64,
    ) {
        let from = &self.members[index].peer_id;
        match kind {
            "offer" if !self.offers.iter().any(|(a, b, _)| a == from && b == to) => {
                self.offers.push((from.clone(), to.clone(), now_ms));
            }
            "answer" => {
                if let Some(i) = self
                    .offers
                    .iter()
                    .position(|(a, b, _)| a == to && b == from)
                {
                    let (_, _, at) = self.offers.remove(i);
                    effects.push(Effect::Metric(DataPoint::new(
                        Metric::NegotiationMs,
                        self.id.as_str(),
                        now_ms.saturating_sub(at) as f64,
                    )));
                }
            }
            _ => {}
        }
    }

    /// The peer at `index` lost its socket without `leave`: away for the grace (others hear
    /// `peer_away`; its row and its kept frames go to storage), or gone at once with a grace
    /// of 0. Answers whether it was removed (the indices after it moved).
    fn go_away(
        &mut self,
        effects: &mut Vec<Effect>,
        index: usize,
        reason: LeaveReason,
        now_ms: u64,
    ) -> bool {
        if self.limits.presence.resume_grace_ms == 0 {
            self.remove(effects, index, reason, now_ms);
            return true;
        }
        let member = &mut self.members[index];
        member.away = Some(Away {
            since_ms: now_ms,
            reason,
        });
        member.limiter = None;
        let peer = member.peer_id.clone();
        let live = &mut self.live[index];
        live.limiter = None;
        live.dirty_since = None;
        effects.push(Effect::Store(Write::Away {
            peer: peer.as_str().to_owned(),
            room: self.id.as_str().to_owned(),
            member: serde_json::to_string(member).unwrap_or_default(),
        }));
        for (seq, text) in live.outbox.flush(u64::MAX) {
            effects.push(Effect::Store(Write::Keep {
                peer: peer.as_str().to_owned(),
                seq,
                text,
            }));
        }
        let frame = ServerFrame::PeerAway {
            room_id: self.id.clone(),
            peer_id: peer.clone(),
            reason,
        };
        self.broadcast(effects, &peer, &frame, now_ms);
        effects.push(Effect::Log(
            self.line(Level::Info, "room.away", index)
                .with("reason", reason_str(reason)),
        ));
        self.gauges(effects);
        false
    }

    /// The peer at `index` is gone: others hear `peer_left`; what storage holds of it is
    /// dropped.
    fn remove(
        &mut self,
        effects: &mut Vec<Effect>,
        index: usize,
        reason: LeaveReason,
        now_ms: u64,
    ) {
        let line = self
            .line(Level::Info, "room.leave", index)
            .with("reason", reason_str(reason));
        let member = self.members.remove(index);
        let live = self.live.remove(index);
        let duration = now_ms.saturating_sub(member.joined_ms);
        effects.push(Effect::Log(line.with("durationMs", duration)));
        if member.joined_ms > 0 {
            effects.push(Effect::Metric(
                DataPoint::new(
                    Metric::ConnectionDurationMs,
                    self.id.as_str(),
                    duration as f64,
                )
                .detail(reason_str(reason))
                .user(&member.user),
            ));
        }
        self.offers
            .retain(|(a, b, _)| a != &member.peer_id && b != &member.peer_id);
        let peer = member.peer_id.as_str().to_owned();
        if member.away.is_some() {
            effects.push(Effect::Store(Write::Back { peer: peer.clone() }));
        }
        if live.outbox.frames().any(|k| k.durable) || member.away.is_some() {
            effects.push(Effect::Store(Write::ForgetKept { peer }));
        }
        let frame = ServerFrame::PeerLeft {
            room_id: self.id.clone(),
            peer_id: member.peer_id.clone(),
            reason,
        };
        self.broadcast(effects, &member.peer_id, &frame, now_ms);
        // A member that is gone counts as hung up (`disconnect`) in any call it was in.
        let outcome = self.calls.depart(&member.peer_id);
        effects.extend(self.call_effects(outcome, now_ms));
        self.gauges(effects);
        if self.members.is_empty() {
            // An empty room keeps no alarm: its counts go out now.
            self.flush_counts(effects);
        }
    }

    /// A log line about the member at `index`: room, peer, salted user, trace.
    fn line(&self, level: Level, event: &'static str, index: usize) -> LogLine {
        let member = &self.members[index];
        let line = LogLine::new(level, event)
            .with("room", self.id.as_str())
            .with("peer", member.peer_id.as_str())
            .with("user", member.user.as_str());
        if member.trace.is_empty() {
            line
        } else {
            line.with("trace", member.trace.as_str())
        }
    }

    /// The room's gauges after a membership change: connected members, and all members.
    fn gauges(&self, effects: &mut Vec<Effect>) {
        let connected = self.members.iter().filter(|m| m.away.is_none()).count();
        effects.push(Effect::Metric(DataPoint::new(
            Metric::Connections,
            self.id.as_str(),
            connected as f64,
        )));
        effects.push(Effect::Metric(DataPoint::new(
            Metric::RoomMembers,
            self.id.as_str(),
            self.members.len() as f64,
        )));
    }

    /// The aggregated counts (messages by type, drops by reason and user), as data points.
    fn flush_counts(&mut self, effects: &mut Vec<Effect>) {
        for (kind, count) in self.messages.take() {
            effects.push(Effect::Metric(
                DataPoint {
                    count: count as f64,
                    ..DataPoint::new(Metric::Messages, self.id.as_str(), count as f64)
                }
                .detail(kind),
            ));
        }
        for (reason, user, count) in std::mem::take(&mut self.drops) {
            effects.push(Effect::Metric(
                DataPoint {
                    count: count as f64,
                    ..DataPoint::new(Metric::Drops, self.id.as_str(), count as f64)
                }
                .detail(reason)
                .user(&user),
            ));
        }
    }

    /// Carries out a call transition: its frames (sequenced and kept, so a resume replays
    /// them), the storage of the calls that changed or ended, and `peer_updated` for every
    /// member whose status changed.
    fn call_effects(&mut self, outcome: Outcome, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (call, what, setup_ms) in &outcome.events {
            effects.push(Effect::Log(
                LogLine::new(Level::Info, "call.event")
                    .with("room", self.id.as_str())
                    .with("callId", call.as_str())
                    .with("outcome", what.as_str()),
            ));
            effects.push(Effect::Metric(
                DataPoint::new(Metric::Calls, self.id.as_str(), 1.0).detail(what.as_str()),
            ));
            if let Some(ms) = setup_ms {
                effects.push(Effect::Metric(DataPoint::new(
                    Metric::CallSetupMs,
                    self.id.as_str(),
                    *ms as f64,
                )));
            }
        }
        for (to, frame) in outcome.frames {
            if let Some(index) = self.index(to.as_str()) {
                self.deliver(&mut effects, index, frame, now_ms);
            }
        }
        for call in outcome.changed {
            effects.push(Effect::Store(Write::Call {
                id: call.id.clone(),
                call: serde_json::to_string(&call).unwrap_or_default(),
            }));
        }
        for id in outcome.ended {
            effects.push(Effect::Store(Write::DropCall { id }));
        }
        for peer in outcome.touched {
            let Some(member) = self.member(&peer).filter(|m| m.away.is_none()) else {
                continue;
            };
            let frame = ServerFrame::PeerUpdated {
                room_id: self.id.clone(),
                peer_id: peer.clone(),
                metadata: member.metadata.clone(),
                status: self.status(member),
            };
            self.broadcast(&mut effects, &peer, &frame, now_ms);
        }
        effects
    }

    /// When the room must store what only memory holds: once it has been quiet (no client
    /// event) for [`FLUSH_DELAY_MS`], if anything is unstored. Only an eviction can lose memory
    /// while the sockets stay open, and the runtime evicts only a room idle for about 10 s: so a
    /// busy room writes nothing however many frames go unacknowledged, and a quiet one has
    /// everything stored long before it can be evicted. (A crash loses the connected peers'
    /// sockets too, so their frames in storage could not be resumed anyway; see
    /// docs/protocol.md §6d.)
    fn flush_at(&self) -> Option<u64> {
        let counted = !self.messages.is_empty() || !self.drops.is_empty();
        (counted
            || self
                .live
                .iter()
                .any(|l| l.dirty_since.is_some() || l.outbox.pending_since().is_some()))
        .then_some(self.last_event_ms + FLUSH_DELAY_MS)
    }

    /// Stores what must outlive an eviction once the room is quiet ([`Room::flush_at`]): kept
    /// frames not yet stored, and members whose attachment (or row) fell behind.
    fn flush(&mut self, effects: &mut Vec<Effect>, now_ms: u64) {
        if now_ms < self.last_event_ms + FLUSH_DELAY_MS {
            return;
        }
        self.flush_counts(effects);
        let cutoff = u64::MAX;
        for (member, live) in self.members.iter().zip(self.live.iter_mut()) {
            if live.dirty_since.is_some() {
                live.dirty_since = None;
                effects.push(match member.away {
                    None => Effect::Persist {
                        member: member.clone(),
                    },
                    Some(_) => Effect::Store(Write::Away {
                        peer: member.peer_id.as_str().to_owned(),
                        room: self.id.as_str().to_owned(),
                        member: serde_json::to_string(member).unwrap_or_default(),
                    }),
                });
            }
            let frames = live.outbox.flush(cutoff);
            if !frames.is_empty() {
                effects.push(Effect::Store(Write::KeepMany {
                    peer: member.peer_id.as_str().to_owned(),
                    frames,
                }));
            }
        }
    }

    /// Marks the member at `index` as differing from its attachment since `now_ms`.
    fn touch(&mut self, index: usize, now_ms: u64) {
        let live = &mut self.live[index];
        if live.dirty_since.is_none() {
            live.dirty_since = Some(now_ms);
        }
    }

    /// Sends `frame` to the member at `index` with its next `seq`, keeping it for replay when
    /// it is a kept kind. An away member is sent nothing: the frame is kept, durably at once.
    fn deliver(
        &mut self,
        effects: &mut Vec<Effect>,
        index: usize,
        frame: ServerFrame,
        now_ms: u64,
    ) {
        let keep = frame.is_kept();
        let text = frame.into_text();
        self.deliver_text(effects, index, text, keep, now_ms);
    }

    fn deliver_text(
        &mut self,
        effects: &mut Vec<Effect>,
        index: usize,
        text: String,
        keep: bool,
        now_ms: u64,
    ) {
        let capacity = self.limits.presence.resume_buffer_frames;
        let member = &mut self.members[index];
        let seq = member.cursor.next_seq();
        let text = with_seq(text, seq);
        let away = member.away.is_some();
        let peer = &member.peer_id;
        if keep && capacity == 0 {
            // Nothing is kept: a resume can only report it as lost.
            member.cursor.lose(seq);
        }
        if keep && capacity > 0 {
            if away {
                effects.push(Effect::Store(Write::Keep {
                    peer: peer.as_str().to_owned(),
                    seq,
                    text: text.clone(),
                }));
            }
            let overflow = self.live[index].outbox.keep(
                seq,
                text.clone(),
                now_ms,
                away,
                capacity,
                &mut member.cursor,
            );
            if let Some(OutboxWrite::DropThrough(through)) = overflow {
                effects.push(Effect::Store(Write::DropKept {
                    peer: peer.as_str().to_owned(),
                    through,
                }));
                if away {
                    // The lost range is in the row only: stored with the overflow.
                    effects.push(Effect::Store(Write::Away {
                        peer: peer.as_str().to_owned(),
                        room: self.id.as_str().to_owned(),
                        member: serde_json::to_string(&*member).unwrap_or_default(),
                    }));
                }
            }
        }
        if away {
            return;
        }
        let to = self.members[index].peer_id.clone();
        self.touch(index, now_ms);
        effects.push(Effect::Deliver { to, text });
    }

    /// Sends `frame` to every member but `except`, each with its own `seq`.
    fn broadcast(
        &mut self,
        effects: &mut Vec<Effect>,
        except: &PeerId,
        frame: &ServerFrame,
        now_ms: u64,
    ) {
        let keep = frame.is_kept();
        let text = frame.to_text();
        for index in 0..self.members.len() {
            if &self.members[index].peer_id != except {
                self.deliver_text(effects, index, text.clone(), keep, now_ms);
            }
        }
    }

    /// `warning token_expiring` to the member at `index` if its deadline is within the warning
    /// window and it was not warned yet.
    fn warn_if_expiring(&mut self, effects: &mut Vec<Effect>, index: usize, now_ms: u64) {
        let member = &self.members[index];
        let Some(deadline) = member.expires_ms else {
            return;
        };
        if member.warned
            || deadline.saturating_sub(self.limits.presence.token_expiry_warning_ms) > now_ms
        {
            return;
        }
        self.members[index].warned = true;
        self.touch(index, now_ms);
        let frame = ServerFrame::Warning {
            code: WarningCode::TokenExpiring,
            message: format!(
                "your token expires in {} s; send `refresh` with a fresh one to stay",
                deadline.saturating_sub(now_ms).div_ceil(1000)
            ),
            dropped: None,
            retry_after_ms: None,
            from: None,
            to: None,
            expires_at: Some(deadline),
        };
        self.deliver(effects, index, frame, now_ms);
    }

    /// A rate notice to the member at `index`: `error rate_limited` (no `seq`) or
    /// `warning throttled` (sequenced).
    fn notice(&mut self, effects: &mut Vec<Effect>, index: usize, notice: Notice, now_ms: u64) {
        let frame = notice_frame(notice);
        if frame.is_sequenced() {
            self.deliver(effects, index, frame, now_ms);
        } else {
            effects.push(Effect::Send {
                to: vec![self.members[index].peer_id.clone()],
                frame,
            });
        }
    }

    /// The identities' pending durable writes, as effects.
    fn storage_writes(&mut self) -> Vec<Effect> {
        self.identities
            .take_writes()
            .into_iter()
            .map(Effect::Store)
            .collect()
    }

    fn limiter(&mut self, peer: &PeerId) -> Option<&mut ConnectionLimiter> {
        let index = self.index(peer.as_str())?;
        self.live[index].limiter.as_mut()
    }

    fn check_room(&self, room_id: Option<&str>) -> Result<(), Refusal> {
        match room_id {
            Some(id) if id != self.id.as_str() => Err(Refusal::new(
                ErrorCode::RoomMismatch,
                format!(
                    "this connection is in room `{}`, not `{}`",
                    self.id.as_str(),
                    short(id)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `joined` for the member at `index`, with fresh ICE servers (whose expiry it records).
    fn joined_frame(&mut self, index: usize, resumed: bool, now_ms: u64) -> ServerFrame {
        let (servers, expires) = ice_servers(&self.ice, &self.members[index].user, now_ms);
        self.members[index].ice_expires_ms = expires;
        let peer = &self.members[index].peer_id;
        let me = self.member(peer);
        let my_seq = me.map_or(u64::MAX, |m| m.seq);
        ServerFrame::Joined {
            room_id: self.id.clone(),
            peer_id: peer.clone(),
            peers: self
                .members
                .iter()
                .filter(|m| &m.peer_id != peer)
                .map(|m| PeerInfo {
                    peer_id: m.peer_id.clone(),
                    metadata: m.metadata.clone(),
                    status: self.status(m),
                    polite: my_seq < m.seq,
                })
                .collect(),
            resumed,
            resume_token: me.map(Member::resume_token).unwrap_or_default(),
            ice_servers: servers,
            ice_servers_expire_at: expires,
        }
    }

    /// `ice_servers` with fresh credentials to every connected member whose credentials are
    /// due for renewal at `now_ms`.
    fn renew_ice(&mut self, effects: &mut Vec<Effect>, now_ms: u64) {
        for index in 0..self.members.len() {
            let member = &self.members[index];
            let due = member
                .ice_expires_ms
                .and_then(|expires| refresh_at(&self.ice, expires))
                .is_some_and(|at| at <= now_ms);
            if member.away.is_some() || !due {
                continue;
            }
            let (servers, expires) = ice_servers(&self.ice, &member.user, now_ms);
            self.members[index].ice_expires_ms = expires;
            effects.push(Effect::Persist {
                member: self.members[index].clone(),
            });
            let frame = ServerFrame::IceServers {
                ice_servers: servers,
                ice_servers_expire_at: expires,
            };
            self.deliver(effects, index, frame, now_ms);
        }
    }

    fn refuse(&self, sender: &PeerId, refusal: Refusal) -> Effect {
        Effect::Send {
            to: vec![sender.clone()],
            frame: refusal.into_frame(),
        }
    }
}

/// The frame that tells a peer of a drop.
fn notice_frame(notice: Notice) -> ServerFrame {
    match notice {
        Notice::RateLimited { retry_after_ms } => Refusal::new(
            ErrorCode::RateLimited,
            format!("too many frames; this one was dropped, retry in {retry_after_ms} ms"),
        )
        .retry_after(Some(retry_after_ms))
        .into_frame(),
        Notice::Throttled {
            dropped,
            retry_after_ms,
        } => ServerFrame::Warning {
            code: WarningCode::Throttled,
            message: format!("{dropped} candidate(s) dropped: over the candidate rate limit"),
            dropped: Some(dropped),
            retry_after_ms: Some(retry_after_ms),
            from: None,
            to: None,
            expires_at: None,
        },
    }
}

fn refusal_message(refusal: &crate::rate::AdmitRefusal, room: &RoomId) -> String {
    use crate::rate::AdmitRefusal;
    match refusal {
        AdmitRefusal::Banned { retry_after_ms } => format!(
            "this identity is banned from room `{}` for rate-limit abuse; retry in {} s",
            room.as_str(),
            retry_after_ms.div_ceil(1000)
        ),
        AdmitRefusal::ConnectRate { retry_after_ms } => format!(
            "too many connections to room `{}` from this identity; retry in {} s",
            room.as_str(),
            retry_after_ms.div_ceil(1000)
        ),
        AdmitRefusal::ConnectionLimit => format!(
            "this identity already has the most connections allowed in room `{}`",
            room.as_str()
        ),
    }
}

fn check_sender(sender: &PeerId, claimed: Option<&str>, field: &str) -> Result<(), Refusal> {
    match claimed {
        Some(claimed) if claimed != sender.as_str() => Err(Refusal::new(
            ErrorCode::ForbiddenSender,
            format!("`{field}` must be your own peer id"),
        )),
        _ => Ok(()),
    }
}

/// Echoes client-chosen text in messages without letting it grow them.
fn short(s: &str) -> &str {
    s.char_indices().nth(64).map_or(s, |(i, _)| &s[..i])
}

fn reason_str(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Leave => "leave",
        LeaveReason::Disconnect => "disconnect",
        LeaveReason::Timeout => "timeout",
    }
}

fn relay_event(kind: &str) -> &'static str {
    match kind {
        "offer" => "relay.offer",
        "answer" => "relay.answer",
        _ => "relay.candidate",
    }
}

/// What a drop of a frame of `class` is reported as (`drops` detail).
fn drop_reason(class: FrameClass) -> &'static str {
    match class {
        FrameClass::Candidate => "throttled",
        _ => "rate_limited",
    }
}
