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
//! - The room never reads a clock or a random source, and does no I/O: it returns [`Effect`]s.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{close, close_code_for, reciprocal_close_code, ErrorCode};
use crate::id::IdSource;
use crate::protocol::{
    decode, encode_relay, ClientFrame, LeaveReason, Metadata, PeerId, PeerInfo, Refusal, RoomId,
    ServerFrame, Signal,
};

/// Limits a room enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimits {
    /// `MAX_PEERS_PER_ROOM`.
    pub max_peers: usize,
    /// `MAX_FRAME_BYTES`: text frames over it are refused unparsed.
    pub max_frame_bytes: usize,
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
        Room {
            id,
            limits,
            members,
        }
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

    /// A new connection with a verified identity (`user` is the salted hash of its `sub`).
    pub fn admit(&mut self, user: String, ids: &mut dyn IdSource) -> Admission {
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
        let seq = self.members.last().map_or(1, |m| m.seq + 1);
        let member = Member {
            peer_id: ids.next_peer_id(),
            seq,
            user,
            metadata: Metadata::new(),
        };
        let mut effects = Vec::with_capacity(2);
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
        self.members.push(member.clone());
        Admission::Accepted { member, effects }
    }

    /// A text frame from `sender`.
    pub fn on_text(&mut self, sender: &PeerId, text: &str, ids: &mut dyn IdSource) -> Vec<Effect> {
        if self.member(sender).is_none() {
            // A socket that already left (or was never admitted): its late frames are dropped.
            return Vec::new();
        }
        let envelope = match decode(text, self.limits.max_frame_bytes) {
            Ok(envelope) => envelope,
            Err(refusal) => return vec![self.refuse(sender, refusal)],
        };
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

    /// A binary frame from `sender`: the protocol is text only.
    pub fn on_binary(&mut self, sender: &PeerId) -> Vec<Effect> {
        if self.member(sender).is_none() {
            return Vec::new();
        }
        vec![self.refuse(
            sender,
            Refusal::new(
                ErrorCode::BadRequest,
                "binary frames are not supported; send JSON text",
            ),
        )]
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
