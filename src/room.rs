//! The room: membership and targeted relay, as a value driven by events.
//!
//! Invariants:
//! - A [`Room`] holds only what its members' sockets hold (each [`Member`] is a socket's
//!   attachment), so the Durable Object can rebuild it after hibernation with [`Room::rebuild`]
//!   and carry on exactly where it was. Any change to a member comes out as
//!   [`Effect::Persist`], so the attachment never falls behind.
//! - Nothing crosses rooms: a relay's addressee must be a member of this room.
//! - Existing members hear `peer_joined` in the same event that admits the newcomer, before
//!   the newcomer can send anything; frames from one sender to one addressee leave in order.
//! - Every frame is charged to its connection's and the room's rate limits ([`crate::rate`])
//!   before it is decoded; a dropped frame changes nothing but the limiter and the sender's
//!   strikes. What must outlive an eviction (strikes, bans, connect buckets) comes out as
//!   [`Effect::Store`]; a relayed frame stores nothing.
//! - The room never reads a clock or a random source, and does no I/O: it returns [`Effect`]s.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{
    close, close_code_for, ending_close_code, reciprocal_close_code, ErrorCode, WarningCode,
};
use crate::id::IdSource;
use crate::protocol::{
    decode, encode_relay, ClientFrame, LeaveReason, Metadata, PeerId, PeerInfo, Refusal, RoomId,
    ServerFrame, Signal,
};
use crate::rate::{
    sniff_class, ConnectionLimiter, FrameClass, Identities, Notice, RateLimits, StrikeOutcome,
    TokenBucket, Verdict,
};
use crate::storage::Write;

/// Limits a room enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimits {
    /// `MAX_PEERS_PER_ROOM`.
    pub max_peers: usize,
    /// `MAX_FRAME_BYTES`: text frames over it are refused unparsed.
    pub max_frame_bytes: usize,
    /// `RATE_*`, `MAX_CONNECTIONS_PER_USER`.
    pub rate: RateLimits,
}

/// One member: what its socket's attachment stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub peer_id: PeerId,
    /// Admission order within the room: larger joined later.
    pub seq: u64,
    /// Salted hash of the token's `sub`; the plain `sub` never reaches the room.
    pub user: String,
    pub metadata: Metadata,
    /// The connection's rate limiter, stored only when losing it to an eviction would reset a
    /// limit that has not refilled by itself ([`ConnectionLimiter::needs_persisting`]; never
    /// with the default limits). The live limiter is the room's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limiter: Option<ConnectionLimiter>,
}

/// What the glue must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send `frame` to each of `to` (serialize once).
    Send { to: Vec<PeerId>, frame: ServerFrame },
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
}

/// The outcome of an upgrade that reached the room.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Accept the socket (hibernatable, tagged with the peer id, `member` as attachment), then
    /// apply `effects`.
    Accepted {
        member: Member,
        effects: Vec<Effect>,
    },
    /// Accept the socket only to send `frame` and close it with `code`; it never becomes a member
    /// and no member hears of it.
    Refused {
        frame: ServerFrame,
        code: u16,
        reason: &'static str,
    },
}

/// A room's live membership.
#[derive(Debug, Clone)]
pub struct Room {
    id: RoomId,
    limits: RoomLimits,
    /// Sorted by `seq`: oldest first.
    members: Vec<Member>,
    /// Each member's live rate limiter (a handful: a scan beats hashing, in time and in code).
    limiters: Vec<(PeerId, ConnectionLimiter)>,
    /// All frames of the room together (`RATE_ROOM_PER_S`); in memory, it refills within 1 s.
    room_bucket: TokenBucket,
    /// Strikes, bans and connect buckets per identity: durable ([`crate::storage`]).
    identities: Identities,
}

impl Room {
    /// Rebuilds a room from its open sockets' attachments (any order).
    pub fn rebuild(
        id: RoomId,
        limits: RoomLimits,
        members: impl IntoIterator<Item = Member>,
    ) -> Room {
        let mut members: Vec<Member> = members.into_iter().collect();
        members.sort_by(|a, b| a.seq.cmp(&b.seq).then_with(|| a.peer_id.cmp(&b.peer_id)));
        let limiters = members
            .iter()
            .map(|m| {
                let limiter = m
                    .limiter
                    .clone()
                    .unwrap_or_else(|| ConnectionLimiter::new(&limits.rate));
                (m.peer_id.clone(), limiter)
            })
            .collect();
        Room {
            id,
            room_bucket: limits.rate.room_bucket(),
            limits,
            members,
            limiters,
            identities: Identities::default(),
        }
    }

    /// The same room with the identities read from durable storage.
    pub fn with_identities(mut self, identities: Identities) -> Room {
        self.identities = identities;
        self
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

    /// Members, oldest first.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, peer: &PeerId) -> Option<&Member> {
        self.members.iter().find(|m| &m.peer_id == peer)
    }

    /// A new connection with a verified identity (`user` is the salted hash of its `sub`) at
    /// `now_ms`. Refused when the room is full, or when the identity is banned, has
    /// `MAX_CONNECTIONS_PER_USER` connections open or is over its connect rate: a refused
    /// upgrade spends nothing and stores nothing.
    pub fn admit(&mut self, user: String, now_ms: u64, ids: &mut dyn IdSource) -> Admission {
        if self.members.len() >= self.limits.max_peers {
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
        let open = self.members.iter().filter(|m| m.user == user).count();
        if let Err(refusal) = self
            .identities
            .admit_check(&user, now_ms, &self.limits.rate, open)
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
        let seq = self.members.last().map_or(1, |m| m.seq + 1);
        let member = Member {
            peer_id: ids.next_peer_id(),
            seq,
            user,
            metadata: Metadata::new(),
            limiter: None,
        };
        let mut effects = self.storage_writes();
        let others = self.others(&member.peer_id);
        effects.push(Effect::Send {
            to: vec![member.peer_id.clone()],
            frame: self.joined_frame(&member.peer_id),
        });
        if !others.is_empty() {
            effects.push(Effect::Send {
                to: others,
                frame: ServerFrame::PeerJoined {
                    room_id: self.id.clone(),
                    peer_id: member.peer_id.clone(),
                    metadata: member.metadata.clone(),
                },
            });
        }
        self.limiters.push((
            member.peer_id.clone(),
            ConnectionLimiter::new(&self.limits.rate),
        ));
        self.members.push(member.clone());
        Admission::Accepted { member, effects }
    }

    /// A text frame from `sender` at `now_ms`.
    pub fn on_text(
        &mut self,
        sender: &PeerId,
        text: &str,
        now_ms: u64,
        ids: &mut dyn IdSource,
    ) -> Vec<Effect> {
        if self.member(sender).is_none() {
            // A socket that already left (or was never admitted): its late frames are dropped.
            return Vec::new();
        }
        // Charged before anything is parsed: a flood costs a scan for `"type"`, not a decode.
        // An oversized frame is not even scanned.
        let sniffed = if text.len() > self.limits.max_frame_bytes {
            FrameClass::Other
        } else {
            sniff_class(text)
        };
        let mut effects = match self.charge(sender, sniffed, now_ms) {
            Ok(effects) => effects,
            Err(dropped) => return dropped,
        };
        let envelope = match decode(text, self.limits.max_frame_bytes) {
            Ok(envelope) => envelope,
            Err(refusal) => {
                effects.push(self.refuse(sender, refusal));
                return effects;
            }
        };
        let decoded = match &envelope.frame {
            ClientFrame::Signal(Signal {
                payload: crate::protocol::Payload::Candidate { .. },
                ..
            }) => FrameClass::Candidate,
            _ => FrameClass::Other,
        };
        if decoded != sniffed {
            // A frame whose `type` the sniffer misread (it answers `Other` when unsure) pays
            // its real class instead, so it cannot spend two budgets.
            let rate = self.limits.rate;
            let verdict = self.limiter(sender).map_or(Verdict::Pass, |l| {
                l.reclassify(sniffed, decoded, now_ms, &rate)
            });
            if let Verdict::Drop { notice } = verdict {
                effects.extend(self.dropped(sender, notice, now_ms));
                return effects;
            }
        }
        if effects.is_empty() {
            // The usual case: nothing owed before the frame's own effects.
            return self.handle(sender, envelope, ids);
        }
        effects.extend(self.handle(sender, envelope, ids));
        effects
    }

    fn handle(
        &mut self,
        sender: &PeerId,
        envelope: crate::protocol::Envelope<'_>,
        ids: &mut dyn IdSource,
    ) -> Vec<Effect> {
        let correlation_id = envelope.correlation_id;
        let result = match envelope.frame {
            ClientFrame::Join {
                room_id,
                metadata,
                peer_id,
            } => self.join(sender, &room_id, metadata, peer_id.as_deref()),
            ClientFrame::Leave { room_id } => self.leave(sender, &room_id),
            ClientFrame::Signal(signal) => {
                self.relay(sender, &signal, correlation_id.as_deref(), ids)
            }
            ClientFrame::Ping => Ok(vec![Effect::Send {
                to: vec![sender.clone()],
                frame: ServerFrame::Pong,
            }]),
        };
        result.unwrap_or_else(|mut refusal| {
            refusal.correlation_id = correlation_id.map(Cow::into_owned);
            vec![self.refuse(sender, refusal)]
        })
    }

    /// A binary frame from `sender` at `now_ms`: the protocol is text only. Charged like any
    /// other frame, so a binary flood cannot turn into a flood of errors.
    pub fn on_binary(&mut self, sender: &PeerId, now_ms: u64) -> Vec<Effect> {
        if self.member(sender).is_none() {
            return Vec::new();
        }
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
        let Some(limiter) = self
            .limiters
            .iter_mut()
            .find_map(|(p, l)| (p == sender).then_some(l))
        else {
            return Ok(Vec::new());
        };
        match limiter.check(class, now_ms, &rate, &mut self.room_bucket) {
            Verdict::Drop { notice } => return Err(self.dropped(sender, notice, now_ms)),
            Verdict::Pass => {}
        }
        let mut effects = Vec::new();
        if let Some(notice) = limiter.flush_throttled(now_ms) {
            effects.push(notice_effect(sender, notice));
        }
        if limiter.needs_persisting(now_ms, &rate) {
            let snapshot = limiter.clone();
            if let Some(member) = self.members.iter_mut().find(|m| &m.peer_id == sender) {
                member.limiter = Some(snapshot);
                effects.push(Effect::Persist {
                    member: member.clone(),
                });
            }
        }
        Ok(effects)
    }

    /// A frame of `sender`'s was dropped for rate: its notice (if the cadence allows one), a
    /// strike for its identity, and at the strike limit the ban: `error rate_limited` and close
    /// 4429, handled like a disconnect.
    fn dropped(&mut self, sender: &PeerId, notice: Option<Notice>, now_ms: u64) -> Vec<Effect> {
        let Some(user) = self.member(sender).map(|m| m.user.clone()) else {
            return Vec::new();
        };
        let outcome = self.identities.on_drop(&user, now_ms, &self.limits.rate);
        let mut effects = self.storage_writes();
        if let StrikeOutcome::Ban { until_ms } = outcome {
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
            effects.extend(self.remove(sender, LeaveReason::Disconnect));
            effects.push(Effect::Close {
                peer: sender.clone(),
                code: ending_close_code(ErrorCode::RateLimited).unwrap_or(close::RATE_LIMIT_ABUSE),
                reason: "rate limit abuse",
            });
            return effects;
        }
        if let Some(notice) = notice {
            effects.push(notice_effect(sender, notice));
        }
        effects
    }

    /// `peer`'s connection closed (its close frame carried `code`) or failed. The server always
    /// answers a close; members hear `peer_left` unless the peer had already left.
    pub fn on_close(&mut self, peer: &PeerId, code: u16) -> Vec<Effect> {
        let mut effects = self.remove(peer, LeaveReason::Disconnect);
        effects.push(Effect::Close {
            peer: peer.clone(),
            code: reciprocal_close_code(code),
            reason: "",
        });
        effects
    }

    fn join(
        &mut self,
        sender: &PeerId,
        room_id: &str,
        metadata: Option<Metadata>,
        claimed: Option<&str>,
    ) -> Result<Vec<Effect>, Refusal> {
        self.check_room(Some(room_id))?;
        check_sender(sender, claimed, "peerId")?;
        let mut effects = Vec::with_capacity(3);
        if let Some(metadata) = metadata {
            let member = self
                .members
                .iter_mut()
                .find(|m| &m.peer_id == sender)
                .ok_or_else(|| Refusal::new(ErrorCode::Internal, "sender is not a member"))?;
            if member.metadata != metadata {
                member.metadata = metadata;
                let member = member.clone();
                let others = self.others(sender);
                effects.push(Effect::Persist {
                    member: member.clone(),
                });
                if !others.is_empty() {
                    effects.push(Effect::Send {
                        to: others,
                        frame: ServerFrame::PeerUpdated {
                            room_id: self.id.clone(),
                            peer_id: member.peer_id,
                            metadata: member.metadata,
                        },
                    });
                }
            }
        }
        effects.push(Effect::Send {
            to: vec![sender.clone()],
            frame: self.joined_frame(sender),
        });
        Ok(effects)
    }

    fn leave(&mut self, sender: &PeerId, room_id: &str) -> Result<Vec<Effect>, Refusal> {
        self.check_room(Some(room_id))?;
        let mut effects = self.remove(sender, LeaveReason::Leave);
        effects.push(Effect::Close {
            peer: sender.clone(),
            code: close::NORMAL,
            reason: "leave",
        });
        Ok(effects)
    }

    fn relay(
        &mut self,
        sender: &PeerId,
        signal: &Signal<'_>,
        correlation_id: Option<&str>,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Effect>, Refusal> {
        check_sender(sender, signal.from.as_deref(), "from")?;
        self.check_room(signal.room_id.as_deref())?;
        if signal.to == sender.as_str() {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "`to` is your own peer id; relay to another peer",
            ));
        }
        let to = self
            .members
            .iter()
            .find(|m| m.peer_id.as_str() == signal.to)
            .map(|m| m.peer_id.clone())
            .ok_or_else(|| {
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
        let frame = encode_relay(&signal.payload, &self.id, sender, &to, correlation_id);
        Ok(vec![Effect::Send {
            to: vec![to],
            frame,
        }])
    }

    fn remove(&mut self, peer: &PeerId, reason: LeaveReason) -> Vec<Effect> {
        let Some(index) = self.members.iter().position(|m| &m.peer_id == peer) else {
            return Vec::new();
        };
        self.members.remove(index);
        self.limiters.retain(|(p, _)| p != peer);
        let others = self.others(peer);
        if others.is_empty() {
            return Vec::new();
        }
        vec![Effect::Send {
            to: others,
            frame: ServerFrame::PeerLeft {
                room_id: self.id.clone(),
                peer_id: peer.clone(),
                reason,
            },
        }]
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
        self.limiters
            .iter_mut()
            .find_map(|(p, l)| (p == peer).then_some(l))
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

    fn joined_frame(&self, peer: &PeerId) -> ServerFrame {
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
                })
                .collect(),
        }
    }

    fn others(&self, peer: &PeerId) -> Vec<PeerId> {
        self.members
            .iter()
            .filter(|m| &m.peer_id != peer)
            .map(|m| m.peer_id.clone())
            .collect()
    }

    fn refuse(&self, sender: &PeerId, refusal: Refusal) -> Effect {
        Effect::Send {
            to: vec![sender.clone()],
            frame: refusal.into_frame(),
        }
    }
}

/// The frame that tells `peer` of a drop.
fn notice_effect(peer: &PeerId, notice: Notice) -> Effect {
    let frame = match notice {
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
        },
    };
    Effect::Send {
        to: vec![peer.clone()],
        frame,
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
