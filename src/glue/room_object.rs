//! The room Durable Object: one per room id, sockets accepted with the hibernation API.
//!
//! Why it looks like this:
//! - Each socket is tagged with its peer id (first tag), so a targeted send is one
//!   `get_websockets_with_tag` look-up, and carries its [`Attachment`], so that after the
//!   runtime evicts an idle object the constructor rebuilds the exact same [`CoreRoom`] from
//!   `get_websockets()`. The in-memory room is only a cache of what the sockets hold; every change
//!   to a member is written back to its attachment ([`Effect::Persist`]).
//! - Sockets that are not OPEN (closing, closed) are never counted or sent to.
//! - `{"type":"ping"}` is answered by the runtime's auto-response, which does not wake the object.
//! - No handler awaits between reading the room and applying the core's effects, so events never
//!   interleave inside a decision.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use super::entry::with_protocol;
use super::{json_response, log, now_ms};
use crate::config::{room_limits, ConfigError};
use crate::edge::{error_body, ForwardedIdentity, IDENTITY_HEADER};
use crate::error::ErrorCode;
use crate::id::{IdSource, UlidSource};
use crate::protocol::{PeerId, RoomId, PING_TEXT, PONG_TEXT};
use crate::room::{Admission, Effect, Member, Room as CoreRoom, RoomLimits};

/// `WebSocket.OPEN`.
const OPEN: u16 = 1;

/// What each socket carries across hibernation.
#[derive(Debug, Serialize, Deserialize)]
struct Attachment {
    room: String,
    member: Member,
}

#[durable_object]
pub struct Room {
    state: State,
    limits: std::result::Result<RoomLimits, ConfigError>,
    /// Rebuilt from the sockets in the constructor; `None` until the room id is known.
    room: RefCell<Option<CoreRoom>>,
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        console_error_panic_hook::set_once();
        let limits = room_limits(|name| env.var(name).ok().map(|v| v.to_string()));
        if let Ok(pair) =
            worker::worker_sys::WebSocketRequestResponsePair::new(PING_TEXT, PONG_TEXT)
        {
            state.set_websocket_auto_response(&pair);
        }
        let this = Room {
            state,
            limits,
            room: RefCell::new(None),
        };
        let name = this.state.id().name();
        let rebuilt = this.rebuild(name.as_deref());
        let peers = rebuilt.as_ref().map_or(0, |r| r.members().len());
        log(
            "info",
            "room_wake",
            json!({ "room": rebuilt.as_ref().map(|r| r.id().as_str().to_owned()).or(name), "peers": peers }),
        );
        *this.room.borrow_mut() = rebuilt;
        this
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let identity = req
            .headers()
            .get(IDENTITY_HEADER)?
            .and_then(|h| serde_json::from_str::<ForwardedIdentity>(&h).ok());
        let (Some(identity), Ok(limits)) = (identity, self.limits.as_ref()) else {
            let message = match &self.limits {
                Err(e) => format!("server misconfigured: {e}"),
                Ok(_) => "the room is reached only through the edge Worker".to_owned(),
            };
            log("error", "room_error", json!({ "message": message }));
            return json_response(500, error_body(ErrorCode::Internal, &message));
        };
        let Some(room_id) = RoomId::parse(&identity.room) else {
            return json_response(500, error_body(ErrorCode::Internal, "bad room id"));
        };
        let pair = WebSocketPair::new()?;
        let admission = {
            let mut slot = self.room.borrow_mut();
            let room = slot.get_or_insert_with(|| CoreRoom::rebuild(room_id.clone(), *limits, []));
            room.admit(identity.user, &mut ids())
        };
        match admission {
            Admission::Accepted { member, effects } => {
                let (peer, user) = (member.peer_id.clone(), member.user.clone());
                self.state
                    .accept_websocket_with_tags(&pair.server, &[peer.as_str()]);
                let attached = pair.server.serialize_attachment(Attachment {
                    room: room_id.as_str().to_owned(),
                    member,
                });
                if let Err(e) = attached {
                    // The cache already counts the peer: forget it and rebuild from the sockets.
                    *self.room.borrow_mut() = self.rebuild(Some(room_id.as_str()));
                    return Err(e);
                }
                log(
                    "info",
                    "peer_joined",
                    json!({ "room": room_id.as_str(), "peer": peer.as_str(), "user": user }),
                );
                self.apply(effects, None);
            }
            Admission::Refused {
                frame,
                code,
                reason,
            } => {
                log(
                    "info",
                    "peer_refused",
                    json!({ "room": room_id.as_str(), "code": code }),
                );
                // Not a hibernatable accept: this socket never becomes a member.
                pair.server.accept()?;
                pair.server.send_with_str(frame.to_text())?;
                pair.server.close(Some(code), Some(reason))?;
            }
        }
        with_protocol(
            Response::from_websocket(pair.client)?,
            identity.protocol.as_deref(),
        )
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let Some(peer) = self.peer_of(&ws) else {
            return Ok(());
        };
        let effects = match self.room.borrow_mut().as_mut() {
            Some(room) => match &message {
                WebSocketIncomingMessage::String(text) => room.on_text(&peer, text, &mut ids()),
                WebSocketIncomingMessage::Binary(_) => room.on_binary(&peer),
            },
            None => Vec::new(),
        };
        self.apply(effects, Some((&peer, &ws)));
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _clean: bool,
    ) -> Result<()> {
        self.closed(&ws, u16::try_from(code).unwrap_or(1006));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        // 1006: abnormal closure; answered with 1000 by the core's close mapping.
        self.closed(&ws, 1006);
        Ok(())
    }
}

impl Room {
    /// Rebuilds the room from its open sockets' attachments.
    fn rebuild(&self, name: Option<&str>) -> Option<CoreRoom> {
        let limits = *self.limits.as_ref().ok()?;
        let mut room_id = name.and_then(RoomId::parse);
        let mut members = Vec::new();
        for ws in self.state.get_websockets() {
            if !is_open(&ws) {
                continue;
            }
            if let Ok(Some(attachment)) = ws.deserialize_attachment::<Attachment>() {
                room_id = room_id.or_else(|| RoomId::parse(&attachment.room));
                members.push(attachment.member);
            }
        }
        Some(CoreRoom::rebuild(room_id?, limits, members))
    }

    fn closed(&self, ws: &WebSocket, code: u16) {
        let Some(peer) = self.peer_of(ws) else {
            return;
        };
        let effects = match self.room.borrow_mut().as_mut() {
            Some(room) => {
                let was_member = room.member(&peer).is_some();
                let effects = room.on_close(&peer, code);
                if was_member {
                    log(
                        "info",
                        "peer_left",
                        json!({ "room": room.id().as_str(), "peer": peer.as_str(), "code": code }),
                    );
                }
                effects
            }
            None => Vec::new(),
        };
        self.apply(effects, Some((&peer, ws)));
    }

    fn peer_of(&self, ws: &WebSocket) -> Option<PeerId> {
        self.state
            .get_tags(ws)
            .into_iter()
            .next()
            .map(PeerId::from_server)
    }

    /// Carries out the core's effects. `current` is the socket of the event being handled, which
    /// a tag look-up may no longer return once it is closing.
    fn apply(&self, effects: Vec<Effect>, current: Option<(&PeerId, &WebSocket)>) {
        let sockets = |peer: &PeerId| -> Vec<WebSocket> {
            match current {
                Some((p, ws)) if p == peer => vec![ws.clone()],
                _ => self.state.get_websockets_with_tag(peer.as_str()),
            }
        };
        for effect in effects {
            match effect {
                Effect::Send { to, frame } => {
                    let text = frame.to_text();
                    for ws in to.iter().flat_map(sockets).filter(is_open) {
                        // A send fails only on a socket that closed meanwhile; its close event
                        // takes care of it.
                        let _ = ws.send_with_str(&text);
                    }
                }
                Effect::Close { peer, code, reason } => {
                    for ws in sockets(&peer) {
                        // Throws when the socket is already closed (the runtime may have answered
                        // the close itself): nothing is left to do then.
                        let _ = ws.close(Some(code), Some(reason));
                    }
                }
                Effect::Persist { member } => {
                    let room = self
                        .room
                        .borrow()
                        .as_ref()
                        .map(|r| r.id().as_str().to_owned())
                        .unwrap_or_default();
                    for ws in sockets(&member.peer_id).into_iter().filter(is_open) {
                        let _ = ws.serialize_attachment(Attachment {
                            room: room.clone(),
                            member: member.clone(),
                        });
                    }
                }
            }
        }
    }
}

fn is_open(ws: &WebSocket) -> bool {
    AsRef::<worker::web_sys::WebSocket>::as_ref(ws).ready_state() == OPEN
}

/// Ids from the runtime's clock and `crypto.getRandomValues`.
fn ids() -> impl IdSource {
    UlidSource {
        clock_ms: now_ms,
        random: || {
            let mut bytes = [0u8; 10];
            // getrandom's `js` backend is crypto.getRandomValues. Ids must be unguessable, so a
            // failure aborts the event rather than issuing a predictable id.
            getrandom::getrandom(&mut bytes).expect("crypto.getRandomValues");
            bytes
        },
    }
}
