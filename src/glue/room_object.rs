//! The room Durable Object: one per room id, sockets accepted with the hibernation API.
//!
//! Why it looks like this:
//! - Each socket is tagged with its peer id (first tag) and carries its [`Attachment`], so that
//!   after the runtime evicts an idle object the constructor rebuilds the exact same
//!   [`CoreRoom`] from `get_websockets()`. The in-memory room is only a cache of what the sockets
//!   hold; every change to a member is written back to its attachment ([`Effect::Persist`]).
//! - The hot path (a relayed frame) crosses into JavaScript as little as it can: the sender is
//!   found by comparing socket handles against [`Sockets`], an in-memory index of the members'
//!   sockets rebuilt with the room (no tag look-up, no string copies), the addressee's socket
//!   comes from the same index, and the frame is sent without a ready-state check (a send to a
//!   socket that closed meanwhile fails and is ignored; its close event follows). See
//!   docs/performance.md for what each crossing costs.
//! - Sockets that are not OPEN when the room is rebuilt are never counted; a socket leaves the
//!   index when the server closes it or its close event arrives, so nothing is sent to it after.
//! - `{"type":"ping"}` is answered by the runtime's auto-response, which does not wake the object.
//! - No handler awaits at all (they are exported synchronously, by hand, below), so events never
//!   interleave inside a decision.
//! - Durable state (strikes, bans, connect buckets, away members, kept frames) is read once per
//!   wake and written only as the core's [`Effect::Store`], through [`crate::storage`]'s
//!   statements.
//! - One alarm: after every event the core's next deadline is compared with the alarm already
//!   pending ([`crate::schedule::Alarm`]); `setAlarm` runs only when it must move earlier. The
//!   alarm handler reads each socket's last auto-answered ping
//!   (`getWebSocketAutoResponseTimestamp`) for the heartbeat sweep.
//! - A socket replaced by a resume is closed 4409 and leaves the index; its late close event
//!   carries its old connection number (from its attachment), which the core ignores.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Result, SqlStorageValue, State, WebSocket, WebSocketPair};

use super::{json_response, log, now_ms};
use crate::config::{ice_config, room_limits, ConfigError, EdgeConfig};
use crate::edge::{error_body, refresh_grant, ForwardedIdentity, IDENTITY_HEADER};
use crate::error::{close, ErrorCode};
use crate::id::{ulid, CountingUlids, IdSource};
use crate::protocol::{PeerId, RoomId, PING_TEXT, PONG_TEXT};
use crate::rate::Identities;
use crate::room::{Admission, Arrival, Effect, Member, Room as CoreRoom, RoomLimits};
use crate::schedule::Alarm;
use crate::storage::{
    load_rows, AwayRow, CallRow, KeptRow, RoomRow, Row, SqlValue, Write, EXISTS, LOAD, LOAD_AWAY,
    LOAD_CALLS, LOAD_KEPT, ROOM_OF_AWAY, SCHEMA, TABLES,
};

#[wasm_bindgen(wasm_bindgen = ::worker::wasm_bindgen)]
extern "C" {
    /// `state.getWebSocketAutoResponseTimestamp(ws)`: when the runtime last answered this
    /// socket's ping without waking the object (a `Date`), or `null`. Not in worker-sys.
    type RawState;
    #[wasm_bindgen(method, js_name = getWebSocketAutoResponseTimestamp)]
    fn get_websocket_auto_response_timestamp(
        this: &RawState,
        ws: &worker::web_sys::WebSocket,
    ) -> JsValue;

    /// The raw `state.storage`, for `setAlarm(time, {allowUnconfirmed: true})`.
    type RawStorage;
    #[wasm_bindgen(method, catch, js_name = setAlarm)]
    fn set_alarm(
        this: &RawStorage,
        at_ms: f64,
        options: &JsValue,
    ) -> std::result::Result<JsValue, JsValue>;
}

#[wasm_bindgen(wasm_bindgen = ::worker::wasm_bindgen)]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &worker::js_sys::Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// `WebSocket.OPEN`.
const OPEN: u16 = 1;

/// The one row of [`EXISTS`].
#[derive(Deserialize)]
struct TableCount {
    n: u32,
}

/// What each socket carries across hibernation.
#[derive(Debug, Serialize, Deserialize)]
struct Attachment {
    room: String,
    member: Member,
}

/// Exported by hand rather than with `#[durable_object]` so that the WebSocket handlers are
/// plain synchronous calls: none of them awaits anything, and the macro's async exports cost a
/// future, a promise and a microtask per frame (see docs/performance.md).
#[wasm_bindgen(wasm_bindgen = ::worker::wasm_bindgen)]
pub struct Room {
    /// Shared with the rare handler that must await (a `refresh` frame's token check).
    inner: Rc<Inner>,
}

struct Inner {
    state: State,
    env: Env,
    /// The raw state, for what workers-rs does not wrap.
    raw_state: worker::worker_sys::DurableObjectState,
    limits: std::result::Result<RoomLimits, ConfigError>,
    /// STUN and TURN (`STUN_SERVERS`, `TURN_*`).
    ice: std::result::Result<crate::ice::IceConfig, ConfigError>,
    /// The edge's settings, for `refresh` tokens: the isolate's, taken on the first refresh
    /// (most rooms never see one).
    edge: std::cell::OnceCell<std::rc::Rc<std::result::Result<EdgeConfig, ConfigError>>>,
    /// The one alarm, as far as this wake knows it.
    alarm: std::cell::Cell<Alarm>,
    /// The in-memory timer for the flush deadline ([`CoreRoom::flush_deadline`]): planned like
    /// the alarm, its pending `setTimeout` id, and the callback (made once, with a weak
    /// reference back, so the object and its callback do not keep each other alive).
    flush_timer: std::cell::Cell<Alarm>,
    flush_timer_id: RefCell<Option<JsValue>>,
    flush_callback: RefCell<Option<worker::wasm_bindgen::closure::Closure<dyn FnMut()>>>,
    /// Rebuilt from the sockets in the constructor; `None` until the room id is known.
    room: RefCell<Option<CoreRoom>>,
    /// The members' open sockets, rebuilt with `room`.
    sockets: RefCell<Sockets>,
    /// Server-made `correlationId`s: seeded once per wake, so a relay draws no randomness.
    correlation_ids: RefCell<CountingUlids>,
    /// Whether the storage schema is known to exist in this wake.
    schema_ready: std::cell::Cell<bool>,
    /// `refresh` tokens the core asked to check ([`Effect::CheckRefresh`]), taken after each
    /// event.
    refresh_checks: RefCell<Vec<RefreshCheck>>,
}

struct RefreshCheck {
    peer: PeerId,
    token: String,
    correlation_id: Option<String>,
}

/// Members' sockets by peer id. A room holds a handful of peers, so a linear scan beats
/// hashing; comparing socket handles is one cheap `===` in JavaScript each.
#[derive(Default)]
struct Sockets(Vec<(PeerId, WebSocket)>);

impl Sockets {
    fn get(&self, peer: &PeerId) -> Option<&WebSocket> {
        self.0.iter().find(|(p, _)| p == peer).map(|(_, ws)| ws)
    }

    /// The peer whose socket `ws` is.
    fn peer_of(&self, ws: &WebSocket) -> Option<&PeerId> {
        let handle = js_handle(ws);
        self.0
            .iter()
            .find(|(_, other)| js_handle(other) == handle)
            .map(|(p, _)| p)
    }

    fn iter(&self) -> impl Iterator<Item = &(PeerId, WebSocket)> {
        self.0.iter()
    }

    fn insert(&mut self, peer: PeerId, ws: WebSocket) {
        self.remove(&peer);
        self.0.push((peer, ws));
    }

    /// Removes `ws` (by handle), if it is in the index.
    fn remove_socket(&mut self, ws: &WebSocket) {
        let handle = js_handle(ws);
        self.0.retain(|(_, other)| js_handle(other) != handle);
    }

    fn remove(&mut self, peer: &PeerId) {
        self.0.retain(|(p, _)| p != peer);
    }
}

thread_local! {
    /// The rooms' limits and ICE settings, parsed once per isolate ([`super::per_env`]).
    static ROOM_SETTINGS: super::EnvCache<(
        std::result::Result<RoomLimits, ConfigError>,
        std::result::Result<crate::ice::IceConfig, ConfigError>,
    )> = const { std::cell::RefCell::new(None) };
}

impl Inner {
    /// Constructs the object: reads its limits, sets the ping auto-response, and rebuilds the
    /// room from its sockets and storage (after an eviction, or empty for a new room).
    fn new(raw_state: worker::worker_sys::DurableObjectState, env: Env) -> Self {
        console_error_panic_hook::set_once();
        let state = State::from(worker::wasm_bindgen::JsCast::unchecked_into::<
            worker::worker_sys::DurableObjectState,
        >(JsValue::from(raw_state.clone())));
        let settings = super::per_env(&ROOM_SETTINGS, &env, |env| {
            let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
            (room_limits(var), ice_config(var))
        });
        let (limits, ice) = (*settings).clone();
        if let Ok(limits) = &limits {
            super::set_log_level(limits.log_level);
        }
        if let Ok(pair) =
            worker::worker_sys::WebSocketRequestResponsePair::new(PING_TEXT, PONG_TEXT)
        {
            state.set_websocket_auto_response(&pair);
        }
        let this = Inner {
            state,
            env,
            raw_state,
            limits,
            ice,
            edge: std::cell::OnceCell::new(),
            alarm: std::cell::Cell::new(Alarm::default()),
            flush_timer: std::cell::Cell::new(Alarm::default()),
            flush_timer_id: RefCell::new(None),
            flush_callback: RefCell::new(None),
            room: RefCell::new(None),
            sockets: RefCell::new(Sockets::default()),
            correlation_ids: RefCell::new(CountingUlids::new(random_bytes())),
            schema_ready: std::cell::Cell::new(false),
            refresh_checks: RefCell::new(Vec::new()),
        };
        let name = this.state.id().name();
        this.rebuild(name.as_deref());
        let room = this.room.borrow();
        log(
            "info",
            "room_wake",
            json!({
                "room": room.as_ref().map(|r| r.id().as_str().to_owned()).or(name),
                "peers": room.as_ref().map_or(0, |r| r.members().len()),
            }),
        );
        drop(room);
        this
    }

    /// An upgrade forwarded by the entry Worker, with its identity header (if any).
    fn upgrade(&self, identity: Option<String>) -> Result<worker::web_sys::Response> {
        let identity = identity.and_then(|h| serde_json::from_str::<ForwardedIdentity>(&h).ok());
        let (Some(identity), Ok(limits)) = (identity, self.limits.as_ref()) else {
            let message = match &self.limits {
                Err(e) => format!("server misconfigured: {e}"),
                Ok(_) => "the room is reached only through the edge Worker".to_owned(),
            };
            log("error", "room_error", json!({ "message": message }));
            return json_response(500, error_body(ErrorCode::Internal, &message)).map(Into::into);
        };
        let Some(room_id) = RoomId::parse(&identity.room) else {
            return json_response(500, error_body(ErrorCode::Internal, "bad room id"))
                .map(Into::into);
        };
        let pair = WebSocketPair::new()?;
        let admission = {
            let mut slot = self.room.borrow_mut();
            let room =
                slot.get_or_insert_with(|| self.load_room(room_id.clone(), *limits, Vec::new()));
            let now = now_ms();
            let arrival = Arrival {
                user: identity.user,
                expires_ms: identity.expires_ms,
                resume: identity.resume,
                trace: identity.trace,
            };
            room.admit(arrival, now, &mut self.ids(now))
        };
        match admission {
            Admission::Accepted {
                member,
                effects,
                resumed,
            } => {
                let peer = member.peer_id.clone();
                if resumed {
                    // The new socket takes the peer's place; the old one, if still open, is
                    // told why. Its close event then finds an older connection number.
                    let old = self.sockets.borrow().get(&peer).cloned();
                    self.sockets.borrow_mut().remove(&peer);
                    if let Some(old) = old {
                        let _ =
                            old.close(Some(close::REPLACED), Some("replaced by a resumed session"));
                    }
                }
                self.state
                    .accept_websocket_with_tags(&pair.server, &[peer.as_str()]);
                let attached = attach(
                    &pair.server,
                    &Attachment {
                        room: room_id.as_str().to_owned(),
                        member,
                    },
                );
                if let Err(e) = attached {
                    // The cache already counts the peer: forget it and rebuild from the sockets.
                    self.rebuild(Some(room_id.as_str()));
                    return Err(e);
                }
                self.sockets
                    .borrow_mut()
                    .insert(peer.clone(), pair.server.clone());
                let rows_written = self.apply(effects, None);
                self.plan_alarm();
                if rows_written > 0 {
                    log(
                        "debug",
                        "storage_write",
                        json!({ "room": room_id.as_str(), "rowsWritten": rows_written }),
                    );
                }
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
        super::websocket_response(&pair.client, identity.protocol.as_deref())
    }
}

#[wasm_bindgen(
    wasm_bindgen = ::worker::wasm_bindgen,
    wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
    js_sys = ::worker::js_sys
)]
impl Room {
    #[wasm_bindgen(constructor)]
    pub fn js_new(state: worker::worker_sys::DurableObjectState, env: Env) -> Room {
        let inner = Rc::new(Inner::new(state, env));
        let weak = Rc::downgrade(&inner);
        *inner.flush_callback.borrow_mut() =
            Some(worker::wasm_bindgen::closure::Closure::new(move || {
                if let Some(inner) = weak.upgrade() {
                    inner.flush_timer_event();
                }
            }));
        // The constructor's rebuild may already have something to flush (nothing, usually).
        inner.plan_alarm();
        Room { inner }
    }

    /// The room's one alarm: everything due (heartbeat sweep, grace ends, token deadlines, the
    /// flush), then the next alarm.
    #[wasm_bindgen(js_name = alarm)]
    pub fn js_alarm(&self) {
        self.inner.alarm_event();
    }

    /// Synchronous, and on the raw request: nothing here awaits, and converting to workers-rs'
    /// `Request` would read `request.cf`, which the runtime rebuilds on every access.
    #[wasm_bindgen(js_name = fetch)]
    pub fn js_fetch(
        &self,
        req: worker::web_sys::Request,
    ) -> std::result::Result<worker::web_sys::Response, JsValue> {
        self.inner.fetch_event(req)
    }

    /// Synchronous for every frame but a `refresh`, whose token check may fetch keys or call
    /// WebCrypto: then it answers a promise the runtime waits for.
    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn js_websocket_message(
        &self,
        ws: worker::web_sys::WebSocket,
        message: JsValue,
    ) -> JsValue {
        self.inner.message_event(ws, message);
        let checks = std::mem::take(&mut *self.inner.refresh_checks.borrow_mut());
        if checks.is_empty() {
            return JsValue::UNDEFINED;
        }
        let inner = self.inner.clone();
        worker::wasm_bindgen_futures::future_to_promise(async move {
            for check in checks {
                inner.check_refresh(check).await;
            }
            Ok(JsValue::UNDEFINED)
        })
        .into()
    }

    #[wasm_bindgen(js_name = webSocketClose)]
    pub fn js_websocket_close(
        &self,
        ws: worker::web_sys::WebSocket,
        code: u32,
        _reason: JsValue,
        _clean: JsValue,
    ) {
        self.inner
            .closed(&ws.into(), u16::try_from(code).unwrap_or(1006));
    }

    #[wasm_bindgen(js_name = webSocketError)]
    pub fn js_websocket_error(&self, ws: worker::web_sys::WebSocket, _error: JsValue) {
        // 1006: abnormal closure; answered with 1000 by the core's close mapping.
        self.inner.closed(&ws.into(), 1006);
    }
}

impl Inner {
    /// The room's one alarm: everything due (heartbeat sweep, grace ends, token deadlines, the
    /// flush), then the next alarm.
    fn alarm_event(&self) {
        let mut alarm = self.alarm.get();
        alarm.fired();
        self.alarm.set(alarm);
        self.due_event("room_alarm");
    }

    /// The flush timer fired: the same as an alarm (whatever is due, then the next plans).
    fn flush_timer_event(&self) {
        let mut timer = self.flush_timer.get();
        timer.fired();
        self.flush_timer.set(timer);
        *self.flush_timer_id.borrow_mut() = None;
        self.due_event("room_flush_timer");
    }

    /// Everything due now (heartbeat sweep, grace ends, token deadlines, calls, ICE renewals,
    /// the flush), then the next alarm and flush timer.
    fn due_event(&self, event: &str) {
        let now = now_ms();
        let pings: Vec<(PeerId, u64)> = self
            .sockets
            .borrow()
            .iter()
            .filter_map(|(peer, ws)| {
                let raw: &RawState = worker::wasm_bindgen::JsCast::unchecked_ref(&self.raw_state);
                let at = raw.get_websocket_auto_response_timestamp(ws.as_ref());
                if at.is_null() || at.is_undefined() {
                    return None;
                }
                let at = worker::js_sys::Date::from(at).get_time();
                (at.is_finite() && at > 0.0).then(|| (peer.clone(), at as u64))
            })
            .collect();
        let effects = match self.room.borrow_mut().as_mut() {
            Some(room) => room.on_alarm(now, &pings),
            None => Vec::new(),
        };
        let count = effects.len();
        let rows_written = self.apply(effects, None);
        // An alarm that found nothing to do (a busy room's flush deadline, a sweep of healthy
        // sockets) is routine: debug. One that acted or wrote is worth an info line.
        log(
            if count == 0 && rows_written == 0 {
                "debug"
            } else {
                "info"
            },
            event,
            json!({ "effects": count, "rowsWritten": rows_written }),
        );
        self.plan_alarm();
    }

    /// Synchronous, and on the raw request: nothing here awaits, and converting to workers-rs'
    /// `Request` would read `request.cf`, which the runtime rebuilds on every access.
    fn fetch_event(
        &self,
        req: worker::web_sys::Request,
    ) -> std::result::Result<worker::web_sys::Response, JsValue> {
        let identity = req.headers().get(IDENTITY_HEADER)?;
        self.upgrade(identity).map_err(JsValue::from)
    }

    fn message_event(&self, ws: worker::web_sys::WebSocket, message: JsValue) {
        let ws = WebSocket::from(ws);
        // Only the peer's current socket speaks for it: one that a resume replaced is ignored.
        let Some(peer) = self.sockets.borrow().peer_of(&ws).cloned() else {
            return;
        };
        let text = message.as_string();
        let effects = match self.room.borrow_mut().as_mut() {
            Some(room) => match &text {
                // One clock read per event: the runtime's clock does not move within it anyway.
                Some(text) => {
                    let now = now_ms();
                    room.on_text(&peer, text, now, &mut self.ids(now))
                }
                None => room.on_binary(&peer, now_ms()),
            },
            None => Vec::new(),
        };
        let rows_written = self.apply(effects, Some((&peer, &ws)));
        self.plan_alarm();
        if rows_written > 0 {
            // Abuse (a new strike second, a ban), frames kept for an away peer, and acks of
            // frames already stored write while a frame is handled.
            log(
                "info",
                "storage_write",
                json!({ "peer": peer.as_str(), "rowsWritten": rows_written }),
            );
        }
    }

    /// Checks a `refresh` frame's token as the edge checks an upgrade's, then hands the answer
    /// to the core. No borrow is held across the await: other frames may be handled meanwhile.
    async fn check_refresh(&self, check: RefreshCheck) {
        let room_id = self.room.borrow().as_ref().map(|r| r.id().clone());
        let edge = self
            .edge
            .get_or_init(|| super::entry::cached_config(&self.env));
        let (Some(room_id), Ok(edge)) = (room_id, edge.as_ref().as_ref()) else {
            return;
        };
        let checked = super::trust::authorize(&self.env, edge, &check.token, &room_id)
            .await
            .map(|identity| refresh_grant(edge, &identity))
            .map_err(|e| e.message().to_owned());
        let now = now_ms();
        let effects = match self.room.borrow_mut().as_mut() {
            Some(room) => room.on_refresh_checked(&check.peer, checked, check.correlation_id, now),
            None => Vec::new(),
        };
        self.apply(effects, None);
        self.plan_alarm();
    }
}

impl Inner {
    /// Rebuilds the room and the socket index from the open sockets' attachments.
    fn rebuild(&self, name: Option<&str>) {
        let mut room_id = name.and_then(RoomId::parse);
        let mut members = Vec::new();
        let mut sockets = Sockets::default();
        for ws in self.state.get_websockets() {
            if !is_open(&ws) {
                continue;
            }
            if let Some(attachment) = attachment_of(&ws) {
                room_id = room_id.or_else(|| RoomId::parse(&attachment.room));
                sockets.insert(attachment.member.peer_id.clone(), ws);
                members.push(attachment.member);
            }
        }
        let room_id = room_id.or_else(|| {
            // No name and no socket: a room whose members are all away, woken by its alarm.
            self.state
                .storage()
                .sql()
                .exec(ROOM_OF_AWAY, None)
                .and_then(|cursor| cursor.to_array::<RoomRow>())
                .ok()
                .and_then(|rows| rows.into_iter().next())
                .and_then(|row| RoomId::parse(&row.room))
        });
        let room = match (room_id, self.limits.as_ref()) {
            (Some(id), Ok(limits)) => Some(self.load_room(id, *limits, members)),
            _ => None,
        };
        *self.room.borrow_mut() = room;
        *self.sockets.borrow_mut() = sockets;
    }

    /// Ids for the core: fresh randomness for peer ids (they must be unguessable), the counting
    /// generator for correlation ids (they need only be unique).
    fn ids(&self, now_ms: u64) -> RoomIds<'_> {
        RoomIds {
            correlation_ids: &self.correlation_ids,
            now_ms,
        }
    }

    fn closed(&self, ws: &WebSocket, code: u16) {
        // The current socket of a peer is in the index; any other (replaced by a resume, or
        // closed by the server already) says which connection it was in its attachment.
        let current = self.sockets.borrow().peer_of(ws).cloned();
        let (peer, conn) = match current {
            Some(peer) => (peer, None),
            None => match attachment_of(ws) {
                Some(attachment) => (attachment.member.peer_id, Some(attachment.member.conn)),
                None => match self.peer_of(ws) {
                    Some(peer) => (peer, None),
                    None => return,
                },
            },
        };
        let effects = match self.room.borrow_mut().as_mut() {
            // The core logs the departure (`room.away` or `room.leave`).
            Some(room) => room.on_close(&peer, conn, code, now_ms()),
            None => Vec::new(),
        };
        self.apply(effects, Some((&peer, ws)));
        self.plan_alarm();
    }

    /// Sets the runtime's alarm when the room's next deadline is earlier than the one pending.
    /// `allowUnconfirmed`: outgoing frames do not wait for the alarm's write (losing it to a
    /// crash loses nothing a crash would not lose anyway).
    fn plan_alarm(&self) {
        self.plan_flush_timer();
        let next = self.deadline(CoreRoom::next_alarm_deadline);
        let mut alarm = self.alarm.get();
        if let Some(at) = alarm.plan(next) {
            let storage: RawStorage = match self.raw_state.storage() {
                Ok(storage) => worker::wasm_bindgen::JsCast::unchecked_into(storage),
                Err(_) => return,
            };
            let options = worker::js_sys::Object::new();
            let _ = worker::js_sys::Reflect::set(
                &options,
                &JsValue::from_str("allowUnconfirmed"),
                &JsValue::TRUE,
            );
            if let Err(e) = storage.set_alarm(at as f64, &options) {
                log(
                    "error",
                    "alarm_error",
                    json!({ "message": format!("{e:?}") }),
                );
                alarm = Alarm::default();
            }
        }
        self.alarm.set(alarm);
    }

    /// One of the room's deadlines, if the room is loaded.
    fn deadline(&self, which: fn(&CoreRoom) -> Option<u64>) -> Option<u64> {
        self.room.borrow().as_ref().and_then(which)
    }

    /// Sets the in-memory flush timer when the flush is due earlier than the one pending. A
    /// timer, not the alarm: the flush only has to come before an eviction, which needs 10 s
    /// without an event, and a timer lives exactly as long as the memory it protects.
    fn plan_flush_timer(&self) {
        let next = self.deadline(CoreRoom::flush_deadline);
        let mut timer = self.flush_timer.get();
        if let Some(at) = timer.plan(next) {
            let callback = self.flush_callback.borrow();
            if let Some(callback) = callback.as_ref() {
                if let Some(old) = self.flush_timer_id.borrow_mut().take() {
                    clear_timeout(&old);
                }
                let delay = at.saturating_sub(now_ms()) as f64;
                let id = set_timeout(
                    worker::wasm_bindgen::JsCast::unchecked_ref(callback.as_ref()),
                    delay,
                );
                *self.flush_timer_id.borrow_mut() = Some(id);
            } else {
                // Not constructed yet (the constructor's own rebuild): planned again from js_new.
                timer = Alarm::default();
            }
        }
        self.flush_timer.set(timer);
    }

    /// The peer id of `ws`: from the index, else (a socket that already left it) its first tag.
    fn peer_of(&self, ws: &WebSocket) -> Option<PeerId> {
        if let Some(peer) = self.sockets.borrow().peer_of(ws) {
            return Some(peer.clone());
        }
        self.state
            .get_tags(ws)
            .into_iter()
            .next()
            .map(PeerId::from_server)
    }

    /// Carries out the core's effects and answers the storage rows they wrote. `current` is the
    /// socket of the event being handled, which may have left the index already (a peer that
    /// left, then closed).
    fn apply(&self, effects: Vec<Effect>, current: Option<(&PeerId, &WebSocket)>) -> usize {
        let mut rows_written = 0;
        // A close aimed at the event's peer goes to the event's socket: after a resume, the
        // close event of the replaced socket must not close the peer's new one.
        let socket = |sockets: &Sockets, peer: &PeerId| -> Option<WebSocket> {
            match current {
                Some((p, ws)) if p == peer => Some(ws.clone()),
                _ => sockets.get(peer).cloned(),
            }
        };
        for effect in effects {
            match effect {
                Effect::Deliver { to, text } => {
                    if let Some(ws) = self.sockets.borrow().get(&to) {
                        // A send fails only on a socket that closed meanwhile.
                        let _ = ws.send_with_str(&text);
                    }
                }
                Effect::Send { to, frame } => {
                    let text = frame.into_text();
                    let sockets = self.sockets.borrow();
                    for ws in to.iter().filter_map(|peer| sockets.get(peer)) {
                        // A send fails only on a socket that closed meanwhile; its close event
                        // takes care of it.
                        let _ = ws.send_with_str(&text);
                    }
                }
                Effect::Store(write) => rows_written += self.store(&write),
                Effect::Close { peer, code, reason } => {
                    // A close the server decided (not a reply to the client's, not `leave`).
                    if !reason.is_empty() && code != crate::error::close::NORMAL {
                        log(
                            "info",
                            "peer_closed",
                            json!({ "peer": peer.as_str(), "code": code, "reason": reason }),
                        );
                    }
                    let ws = socket(&self.sockets.borrow(), &peer);
                    if let Some(ws) = &ws {
                        // Only that socket leaves the index, never a newer one of the peer.
                        self.sockets.borrow_mut().remove_socket(ws);
                    }
                    if let Some(ws) = ws {
                        // Throws when the socket is already closed (the runtime may have answered
                        // the close itself): nothing is left to do then.
                        let _ = ws.close(Some(code), Some(reason));
                    }
                }
                Effect::CheckRefresh {
                    peer,
                    token,
                    correlation_id,
                } => self.refresh_checks.borrow_mut().push(RefreshCheck {
                    peer,
                    token,
                    correlation_id,
                }),
                Effect::Log(line) => super::write_line(&line),
                Effect::Metric(point) => super::write_point(&self.env, &point),
                Effect::Persist { member } => {
                    let room = self
                        .room
                        .borrow()
                        .as_ref()
                        .map(|r| r.id().as_str().to_owned())
                        .unwrap_or_default();
                    if let Some(ws) = self.sockets.borrow().get(&member.peer_id) {
                        let _ = attach(ws, &Attachment { room, member });
                    }
                }
            }
        }
        rows_written
    }

    /// The room from its connected `members` (the sockets' attachments) and what storage
    /// holds: away members, kept frames, identities. Read once per wake, so no frame ever
    /// reads storage. A room that never stored anything has no tables, and its wake costs one
    /// query.
    /// STUN and TURN. A misconfiguration is refused at the edge (its settings include these),
    /// so no upgrade reaches a room with one; the default is only a fallback.
    fn ice_config(&self) -> crate::ice::IceConfig {
        self.ice.clone().unwrap_or_default()
    }

    fn load_room(&self, id: RoomId, limits: RoomLimits, members: Vec<Member>) -> CoreRoom {
        let sql = self.state.storage().sql();
        let tables = sql
            .exec(EXISTS, None)
            .and_then(|cursor| cursor.one::<TableCount>())
            .map_or(0, |count| count.n);
        if tables == 0 {
            return CoreRoom::rebuild(id, limits, members).with_ice(self.ice_config());
        }
        if tables < TABLES {
            // Made by an older version: add what is missing now, before anything is read.
            self.schema_ready.set(false);
            self.ensure_schema();
        }
        self.schema_ready.set(true);
        let read = |statement: &str| sql.exec(statement, None);
        let failed = |e: worker::Error| {
            log(
                "error",
                "storage_error",
                json!({ "message": e.to_string() }),
            );
        };
        let away: Vec<Member> = read(LOAD_AWAY)
            .and_then(|cursor| cursor.to_array::<AwayRow>())
            .map_err(failed)
            .unwrap_or_default()
            .into_iter()
            .filter(|row| !members.iter().any(|m| m.peer_id.as_str() == row.peer))
            .filter_map(|row| serde_json::from_str::<Member>(&row.member).ok())
            .collect();
        let kept: Vec<(String, u64, String)> = read(LOAD_KEPT)
            .and_then(|cursor| cursor.to_array::<KeptRow>())
            .map_err(failed)
            .unwrap_or_default()
            .into_iter()
            .map(|row| (row.peer, u64::try_from(row.seq).unwrap_or(0), row.text))
            .collect();
        let calls: Vec<crate::call::Call> = read(LOAD_CALLS)
            .and_then(|cursor| cursor.to_array::<CallRow>())
            .map_err(failed)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| serde_json::from_str(&row.call).ok())
            .collect();
        let mut room = CoreRoom::rebuild(id, limits, members.into_iter().chain(away))
            .with_ice(self.ice_config())
            .with_kept(kept)
            .with_calls(calls)
            .with_identities(self.load_identities());
        let cleanup = room.take_cleanup();
        if !cleanup.is_empty() {
            let rows: usize = cleanup.iter().map(|write| self.store(write)).sum();
            log(
                "info",
                "storage_write",
                json!({ "rowsWritten": rows, "orphans": cleanup.len() }),
            );
        }
        room
    }

    /// Reads the stored identities and prunes the rows that hold nothing any more.
    fn load_identities(&self) -> Identities {
        let sql = self.state.storage().sql();
        let rows = sql
            .exec(LOAD, None)
            .and_then(|cursor| cursor.to_array::<Row>())
            .unwrap_or_else(|e| {
                log(
                    "error",
                    "storage_error",
                    json!({ "message": e.to_string() }),
                );
                Vec::new()
            });
        let mut identities = load_rows(rows);
        let now = now_ms();
        if identities.prune(now) > 0 {
            let pruned = self.store(&Write::Prune { now_ms: now });
            log(
                "info",
                "storage_write",
                json!({ "rowsWritten": pruned, "pruned": true }),
            );
        }
        identities
    }

    /// Creates the schema once per wake, before the first write.
    fn ensure_schema(&self) {
        if self.schema_ready.replace(true) {
            return;
        }
        for statement in SCHEMA {
            if let Err(e) = self.state.storage().sql().exec(statement, None) {
                log(
                    "error",
                    "storage_error",
                    json!({ "message": e.to_string() }),
                );
            }
        }
    }

    /// Runs one write; answers the rows it wrote. A failed write is logged: the limit it
    /// records then holds in memory until the object is evicted.
    fn store(&self, write: &Write) -> usize {
        self.ensure_schema();
        let (statement, values) = write.statement();
        let bindings = values
            .into_iter()
            .map(|v| match v {
                SqlValue::Text(t) => SqlStorageValue::from(t),
                SqlValue::Integer(i) => SqlStorageValue::from(i),
                SqlValue::Null => SqlStorageValue::Null,
            })
            .collect();
        match self.state.storage().sql().exec(statement, Some(bindings)) {
            Ok(cursor) => cursor.rows_written(),
            Err(e) => {
                log(
                    "error",
                    "storage_error",
                    json!({ "message": e.to_string() }),
                );
                0
            }
        }
    }
}

/// Stores `attachment` as one JSON string: a single string crosses into JavaScript, where
/// `serialize_attachment` of the struct would build a JS object field by field.
fn attach(ws: &WebSocket, attachment: &Attachment) -> Result<()> {
    let json =
        serde_json::to_string(attachment).map_err(|e| worker::Error::RustError(e.to_string()))?;
    ws.serialize_attachment(json)
}

/// The socket's [`Attachment`], if it has one that parses.
fn attachment_of(ws: &WebSocket) -> Option<Attachment> {
    let json = ws.deserialize_attachment::<String>().ok()??;
    serde_json::from_str(&json).ok()
}

fn js_handle(ws: &WebSocket) -> &JsValue {
    AsRef::<worker::web_sys::WebSocket>::as_ref(ws).as_ref()
}

fn is_open(ws: &WebSocket) -> bool {
    AsRef::<worker::web_sys::WebSocket>::as_ref(ws).ready_state() == OPEN
}

/// The core's [`IdSource`] in the Worker.
struct RoomIds<'a> {
    correlation_ids: &'a RefCell<CountingUlids>,
    /// The event's time (the runtime's clock stands still within an event).
    now_ms: u64,
}

impl IdSource for RoomIds<'_> {
    fn next_id(&mut self) -> String {
        self.correlation_ids.borrow_mut().next_at(self.now_ms)
    }

    fn next_peer_id(&mut self) -> PeerId {
        PeerId::from_server(ulid(self.now_ms, random_bytes()))
    }

    /// 160 random bits, as 32 Crockford base32 characters.
    fn next_secret(&mut self) -> String {
        let (a, b) = (random_bytes(), random_bytes());
        let mut secret = ulid(0, a)[10..].to_owned();
        secret.push_str(&ulid(0, b)[10..]);
        secret
    }
}

/// 80 bits from `crypto.getRandomValues` ([`super::random_fill`]).
fn random_bytes() -> [u8; 10] {
    let mut bytes = [0u8; 10];
    super::random_fill(&mut bytes);
    bytes
}
