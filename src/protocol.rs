//! Protocol v1 frames: decoding what clients send and the frames the server sends.
//!
//! Invariants:
//! - Decoding tokenizes a frame's text exactly once and borrows from it: string fields without
//!   escapes are never copied, and the relayed payloads (`sdp`, `candidate`) stay the exact JSON
//!   text the sender wrote, spliced into the `relay` frame as is ([`encode_relay`]). The server
//!   never inspects or re-encodes them.
//! - A frame over the size limit is refused before it is parsed, so that error never carries a
//!   `correlationId`; every other refusal echoes the frame's `correlationId` when it had a valid one.
//! - Field names on the wire are camelCase, type names snake_case (`#[serde(tag = "type")]`), so
//!   browsers can switch on `msg.type`.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::error::Category;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{ErrorCode, WarningCode};

/// Public, client-chosen data about a peer: a JSON object.
pub type Metadata = Map<String, Value>;

/// Largest `metadata` object, serialized, in bytes.
pub const MAX_METADATA_BYTES: usize = 1024;
/// Longest client-chosen `correlationId`, in bytes.
pub const MAX_CORRELATION_ID_BYTES: usize = 128;
/// Longest room id, in characters (`^[A-Za-z0-9_-]{1,64}$`).
pub const MAX_ROOM_ID_LEN: usize = 64;

/// A validated room id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RoomId(String);

impl RoomId {
    /// Accepts `^[A-Za-z0-9_-]{1,64}$` and nothing else (no percent-decoding: `%` is refused).
    pub fn parse(raw: &str) -> Option<RoomId> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_ROOM_ID_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        valid.then(|| RoomId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A server-issued connection id (a ULID). Never chosen by a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PeerId(String);

impl PeerId {
    /// Wraps an id the server made (see [`crate::id`]) or read back from its own storage.
    pub fn from_server(id: String) -> PeerId {
        PeerId(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a signal carries: the sender's payload as the exact JSON text it arrived as (a JSON
/// string for `sdp`, an object or `null` for `candidate`). It is spliced into the `relay` frame
/// unchanged, never decoded or re-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The SDP text of an offer, as a JSON string literal.
    Offer { sdp: &'a str },
    /// The SDP text of an answer, as a JSON string literal.
    Answer { sdp: &'a str },
    /// An `RTCIceCandidateInit` object, or `null` for end-of-candidates, as JSON text.
    Candidate { candidate: &'a str },
}

impl Payload<'_> {
    /// The frame type that carried it (`relay.inner.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Offer { .. } => "offer",
            Payload::Answer { .. } => "answer",
            Payload::Candidate { .. } => "candidate",
        }
    }

    /// The payload field's name and its JSON text.
    fn field(&self) -> (&'static str, &str) {
        match *self {
            Payload::Offer { sdp } | Payload::Answer { sdp } => ("sdp", sdp),
            Payload::Candidate { candidate } => ("candidate", candidate),
        }
    }
}

/// A targeted `offer`, `answer` or `candidate`, borrowing from the frame's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal<'a> {
    pub to: Cow<'a, str>,
    pub payload: Payload<'a>,
    pub room_id: Option<Cow<'a, str>>,
    pub from: Option<Cow<'a, str>>,
    /// The call it belongs to (v1.1 §6), as the JSON string literal sent; relayed untouched.
    pub call_id: Option<&'a str>,
}

/// A decoded client → server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame<'a> {
    /// Client → server: (re)announce presence; idempotent.
    Join {
        room_id: Cow<'a, str>,
        metadata: Option<Metadata>,
        peer_id: Option<Cow<'a, str>>,
    },
    /// Client → server: leave the room; the server closes with 1000.
    Leave { room_id: Cow<'a, str> },
    /// Client → server → one peer: offer, answer or candidate.
    Signal(Signal<'a>),
    /// Client → server: a `ping` that was not byte-exact, so the runtime's auto-response missed it.
    Ping,
    /// Client → server: everything up to `seq` was processed (cumulative). Never rate-limited,
    /// never answered (v1.1 §3).
    Ack { seq: u64 },
    /// Client → server: a fresh token that moves the connection's expiry (v1.1 §4).
    Refresh { token: Cow<'a, str> },
    /// Client → server: start a call, or invite more peers to one you are in (v1.1 §6).
    CallInitiate {
        to: Vec<String>,
        media: Option<crate::call::Media>,
        call_id: Option<Cow<'a, str>>,
    },
    /// Client → server: accept a call that rings for you.
    CallAnswer { call_id: Cow<'a, str> },
    /// Client → server: decline a call that rings for you.
    CallReject {
        call_id: Cow<'a, str>,
        reason: crate::call::RejectReason,
    },
    /// Client → server: leave a call, or cancel one you are ringing.
    CallHangup { call_id: Cow<'a, str> },
}

impl ClientFrame<'_> {
    /// The frame's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Join { .. } => "join",
            ClientFrame::Leave { .. } => "leave",
            ClientFrame::Signal(signal) => signal.payload.kind(),
            ClientFrame::Ping => "ping",
            ClientFrame::Ack { .. } => "ack",
            ClientFrame::Refresh { .. } => "refresh",
            ClientFrame::CallInitiate { .. } => "call_initiate",
            ClientFrame::CallAnswer { .. } => "call_answer",
            ClientFrame::CallReject { .. } => "call_reject",
            ClientFrame::CallHangup { .. } => "call_hangup",
        }
    }
}

/// A client frame with the `correlationId` it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    pub frame: ClientFrame<'a>,
    pub correlation_id: Option<Cow<'a, str>>,
}

/// Why a frame was refused: what the `error` frame says.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub correlation_id: Option<String>,
    /// When trying again makes sense (rate limits): the wait in ms.
    pub retry_after_ms: Option<u64>,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            correlation_id: None,
            retry_after_ms: None,
        }
    }

    /// The same refusal with `retryAfterMs`.
    pub fn retry_after(mut self, ms: Option<u64>) -> Refusal {
        self.retry_after_ms = ms;
        self
    }

    /// The `error` frame a client sees.
    pub fn into_frame(self) -> ServerFrame {
        ServerFrame::Error {
            code: self.code,
            message: self.message,
            correlation_id: self.correlation_id,
            retry_after_ms: self.retry_after_ms,
        }
    }
}

/// The fields of a client frame that the protocol knows, each as the raw JSON text of its value
/// (a slice of the frame): the frame is tokenized once and nothing is copied. Unknown fields
/// are checked to be JSON and skipped. `null` is kept as the text `null` so that
/// `"candidate": null` (end-of-candidates) differs from a missing `candidate`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFields<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "present")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    correlation_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    to: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    sdp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    candidate: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    room_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    from: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    peer_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    seq: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    token: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    call_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    media: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    reason: Option<&'a RawValue>,
}

/// A field that is present, `null` included.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Decodes one text frame. `max_bytes` is the configured frame size limit (UTF-8 bytes).
pub fn decode(text: &str, max_bytes: usize) -> Result<Envelope<'_>, Refusal> {
    if text.len() > max_bytes {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("frame is {} bytes; the limit is {max_bytes}", text.len()),
        ));
    }
    let fields: RawFields<'_> = serde_json::from_str(text).map_err(|e| {
        let message = match e.classify() {
            Category::Data if text.trim_start().starts_with('{') => {
                // A known field twice: refused rather than letting one copy win silently.
                format!("invalid frame: {e}")
            }
            Category::Data => "a frame must be a JSON object".to_owned(),
            _ => format!("invalid JSON: {e}"),
        };
        Refusal::new(ErrorCode::BadRequest, message)
    })?;
    let correlation_id = match fields.correlation_id.map(json_text) {
        None | Some("null") => None,
        Some(raw) => Some(
            string_value(raw)
                .filter(|id| !id.is_empty() && id.len() <= MAX_CORRELATION_ID_BYTES)
                .ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::BadRequest,
                        format!(
                            "field `correlationId` must be a non-empty string of at most {MAX_CORRELATION_ID_BYTES} bytes"
                        ),
                    )
                })?,
        ),
    };
    let frame = decode_fields(&fields).map_err(|mut r| {
        r.correlation_id = correlation_id.as_deref().map(str::to_owned);
        r
    })?;
    Ok(Envelope {
        frame,
        correlation_id,
    })
}

fn decode_fields<'a>(f: &RawFields<'a>) -> Result<ClientFrame<'a>, Refusal> {
    let kind = match f.kind.map(json_text) {
        None | Some("null") => return Err(missing("type")),
        Some(raw) => string_value(raw).ok_or_else(|| mistyped("type", "a string"))?,
    };
    match &*kind {
        "join" => {
            let metadata = match f.metadata.map(json_text) {
                None | Some("null") => None,
                Some(raw) if raw.starts_with('{') => Some(check_metadata(raw)?),
                Some(_) => return Err(mistyped("metadata", "a JSON object")),
            };
            Ok(ClientFrame::Join {
                room_id: required_string(f.room_id, "roomId")?,
                metadata,
                peer_id: optional_string(f.peer_id, "peerId")?,
            })
        }
        "leave" => Ok(ClientFrame::Leave {
            room_id: required_string(f.room_id, "roomId")?,
        }),
        "offer" | "answer" | "candidate" => {
            let payload = match &*kind {
                "offer" => Payload::Offer {
                    sdp: string_text(f.sdp, "sdp")?,
                },
                "answer" => Payload::Answer {
                    sdp: string_text(f.sdp, "sdp")?,
                },
                _ => Payload::Candidate {
                    candidate: candidate_text(f.candidate)?,
                },
            };
            let call_id = match f.call_id.map(json_text) {
                None | Some("null") => None,
                Some(text) if text.starts_with('"') && text.len() <= MAX_CALL_ID_BYTES + 2 => {
                    Some(text)
                }
                Some(_) => return Err(mistyped("callId", "a string of at most 64 bytes")),
            };
            Ok(ClientFrame::Signal(Signal {
                to: required_string(f.to, "to")?,
                payload,
                room_id: optional_string(f.room_id, "roomId")?,
                from: optional_string(f.from, "from")?,
                call_id,
            }))
        }
        "ping" => Ok(ClientFrame::Ping),
        "ack" => Ok(ClientFrame::Ack {
            seq: match f.seq.map(json_text) {
                None | Some("null") => return Err(missing("seq")),
                Some(raw) => raw
                    .parse::<u64>()
                    .ok()
                    .filter(|_| raw.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| mistyped("seq", "a non-negative integer"))?,
            },
        }),
        "refresh" => Ok(ClientFrame::Refresh {
            token: required_string(f.token, "token")?,
        }),
        "call_initiate" => {
            let to = match f.to.map(json_text) {
                None | Some("null") => return Err(missing("to")),
                Some(raw) => serde_json::from_str::<Vec<String>>(raw)
                    .ok()
                    .filter(|to| !to.is_empty() && to.len() <= MAX_CALL_INVITEES)
                    .ok_or_else(|| mistyped("to", "a non-empty array of at most 256 peer ids"))?,
            };
            let media = match f.media.map(json_text) {
                None | Some("null") => None,
                Some(raw) => Some(
                    serde_json::from_str::<MediaField>(raw)
                        .map_err(|_| mistyped("media", "an object {audio?: bool, video?: bool}"))?
                        .into_media(),
                ),
            };
            Ok(ClientFrame::CallInitiate {
                to,
                media,
                call_id: optional_string(f.call_id, "callId")?,
            })
        }
        "call_answer" => Ok(ClientFrame::CallAnswer {
            call_id: required_string(f.call_id, "callId")?,
        }),
        "call_reject" => Ok(ClientFrame::CallReject {
            call_id: required_string(f.call_id, "callId")?,
            reason: match optional_string(f.reason, "reason")?.as_deref() {
                None | Some("declined") => crate::call::RejectReason::Declined,
                Some("busy") => crate::call::RejectReason::Busy,
                Some(_) => return Err(mistyped("reason", "\"declined\" or \"busy\"")),
            },
        }),
        "call_hangup" => Ok(ClientFrame::CallHangup {
            call_id: required_string(f.call_id, "callId")?,
        }),
        other => Err(Refusal::new(
            ErrorCode::UnknownType,
            format!("unknown frame type `{}`", truncate(other, 64)),
        )),
    }
}

/// Longest client-sent `callId` on a relayed frame, in bytes.
pub const MAX_CALL_ID_BYTES: usize = 64;
/// Most peers one `call_initiate` may name.
pub const MAX_CALL_INVITEES: usize = 256;

/// `media` as a client may send it: either flag may be left out (`true`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaField {
    audio: Option<bool>,
    video: Option<bool>,
}

impl MediaField {
    fn into_media(self) -> crate::call::Media {
        crate::call::Media {
            audio: self.audio.unwrap_or(true),
            video: self.video.unwrap_or(true),
        }
    }
}

/// The JSON text of a raw value, as the frame spelled it.
fn json_text(raw: &RawValue) -> &str {
    raw.get()
}

/// The value of a JSON string literal: borrowed when it has no escapes, unescaped otherwise.
/// `None` when `raw` is not a string.
fn string_value(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        // Valid JSON (the tokenizer checked it) without escapes: the text between the quotes
        // is the value.
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

fn check_metadata(raw: &str) -> Result<Metadata, Refusal> {
    let metadata: Metadata =
        serde_json::from_str(raw).map_err(|_| mistyped("metadata", "a JSON object"))?;
    // Measured re-serialized (compact), as it is stored and echoed.
    let size = serde_json::to_string(&metadata).map_or(usize::MAX, |s| s.len());
    if size > MAX_METADATA_BYTES {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("metadata is {size} bytes serialized; the limit is {MAX_METADATA_BYTES}"),
        ));
    }
    Ok(metadata)
}

/// A string field's JSON text (quotes and escapes as sent), checked to be a string.
fn string_text<'a>(raw: Option<&'a RawValue>, name: &str) -> Result<&'a str, Refusal> {
    match raw.map(json_text) {
        None | Some("null") => Err(missing(name)),
        Some(text) if text.starts_with('"') => Ok(text),
        Some(_) => Err(mistyped(name, "a string")),
    }
}

fn candidate_text(raw: Option<&RawValue>) -> Result<&str, Refusal> {
    match raw.map(json_text) {
        None => Err(missing("candidate")),
        Some(text) if text.starts_with('{') || text == "null" => Ok(text),
        Some(_) => Err(mistyped(
            "candidate",
            "an RTCIceCandidateInit object or null",
        )),
    }
}

fn required_string<'a>(raw: Option<&'a RawValue>, name: &str) -> Result<Cow<'a, str>, Refusal> {
    optional_string(raw, name)?.ok_or_else(|| missing(name))
}

fn optional_string<'a>(
    raw: Option<&'a RawValue>,
    name: &str,
) -> Result<Option<Cow<'a, str>>, Refusal> {
    match raw.map(json_text) {
        None | Some("null") => Ok(None),
        Some(text) => string_value(text)
            .map(Some)
            .ok_or_else(|| mistyped(name, "a string")),
    }
}

fn missing(name: &str) -> Refusal {
    Refusal::new(ErrorCode::BadRequest, format!("missing field `{name}`"))
}

fn mistyped(name: &str, expected: &str) -> Refusal {
    Refusal::new(
        ErrorCode::BadRequest,
        format!("field `{name}` must be {expected}"),
    )
}

fn truncate(s: &str, max_chars: usize) -> &str {
    s.char_indices().nth(max_chars).map_or(s, |(i, _)| &s[..i])
}

/// Encodes the `relay` frame for `signal`'s addressee, splicing the payload's JSON text in as
/// it arrived. Room and peer ids are `[A-Za-z0-9_-]` and need no escaping; `correlation_id`
/// is escaped only when it has to be.
pub fn encode_relay(
    payload: &Payload<'_>,
    call_id: Option<&str>,
    room_id: &RoomId,
    from: &PeerId,
    to: &PeerId,
    correlation_id: &str,
) -> ServerFrame {
    let (field, value) = payload.field();
    let mut text = String::with_capacity(value.len() + correlation_id.len() + 160);
    text.push_str(r#"{"type":"relay","inner":{"type":""#);
    text.push_str(payload.kind());
    text.push_str(r#"",""#);
    text.push_str(field);
    text.push_str(r#"":"#);
    text.push_str(value);
    if let Some(call_id) = call_id {
        // A JSON string literal, checked by the decoder.
        text.push_str(r#","callId":"#);
        text.push_str(call_id);
    }
    text.push_str(r#","roomId":""#);
    text.push_str(room_id.as_str());
    text.push_str(r#"","from":""#);
    text.push_str(from.as_str());
    text.push_str(r#"","to":""#);
    text.push_str(to.as_str());
    text.push_str(r#""},"correlationId":"#);
    push_json_string(&mut text, correlation_id);
    text.push('}');
    ServerFrame::Relay(RelayText(text))
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Serializing a `str` cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// A `relay` frame's wire text, made by [`encode_relay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayText(String);

/// One peer as others see it in `joined.peers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub peer_id: PeerId,
    pub metadata: Metadata,
    pub status: Status,
    /// Your role toward this peer (perfect negotiation): polite when you were in the room first.
    pub polite: bool,
}

/// A member's presence (v1.1 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Available,
    /// Reserved for calls (v1.1 §6).
    InCall,
    /// Its socket ended without `leave`; it may resume within the grace.
    Away,
}

/// Why a peer left, as `peer_left.reason` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// It sent `leave`, or its token expired.
    Leave,
    /// Its connection closed without a `leave`.
    Disconnect,
    /// Its socket was silent for longer than `HEARTBEAT_TIMEOUT_MS`.
    Timeout,
}

/// A server → client frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ServerFrame {
    /// To the newcomer (first frame) and to any peer that sends `join`.
    Joined {
        room_id: RoomId,
        peer_id: PeerId,
        /// The others, oldest first.
        peers: Vec<PeerInfo>,
        /// Whether this connection took an existing peer back (v1.1 §3).
        resumed: bool,
        /// Opaque; reconnect with it to resume this peer.
        resume_token: String,
        /// `RTCIceServer[]` for `new RTCPeerConnection` (v1.1 §5).
        ice_servers: Vec<crate::ice::IceServer>,
        /// When ephemeral TURN credentials in `ice_servers` expire, ms since the epoch.
        #[serde(skip_serializing_if = "Option::is_none")]
        ice_servers_expire_at: Option<u64>,
    },
    /// Fresh ICE servers before the previous credentials expire (v1.1 §5).
    IceServers {
        ice_servers: Vec<crate::ice::IceServer>,
        ice_servers_expire_at: Option<u64>,
    },
    /// To every other peer when one arrives.
    PeerJoined {
        room_id: RoomId,
        peer_id: PeerId,
        metadata: Metadata,
        status: Status,
        /// The receiver's role toward the newcomer: always true (it was there first).
        polite: bool,
    },
    /// To every other peer when one changes its metadata.
    PeerUpdated {
        room_id: RoomId,
        peer_id: PeerId,
        metadata: Metadata,
        status: Status,
    },
    /// To every other peer when one's socket ended without `leave`: it may come back.
    PeerAway {
        room_id: RoomId,
        peer_id: PeerId,
        reason: LeaveReason,
    },
    /// To every other peer when an away peer resumed.
    PeerBack { room_id: RoomId, peer_id: PeerId },
    /// To a peer whose `refresh` moved its token's deadline.
    Refreshed { expires_at: u64 },
    /// To every other peer when one is gone.
    PeerLeft {
        room_id: RoomId,
        peer_id: PeerId,
        reason: LeaveReason,
    },
    /// To the addressee of an offer, answer or candidate: `{"type":"relay","inner":{type,
    /// sdp|candidate, roomId, from, to},"correlationId"}`, encoded by [`encode_relay`].
    #[serde(skip)]
    Relay(RelayText),
    /// To the sender of a refused frame (or a refused upgrade).
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
        /// Rate limits: how long to wait before the next frame (or upgrade) can go through.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// To a client whose frames were dropped or degraded while its session goes on.
    Warning {
        code: WarningCode,
        message: String,
        /// `throttled`: candidates dropped since the previous `throttled` warning.
        #[serde(skip_serializing_if = "Option::is_none")]
        dropped: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// `replay_gap`: the first and last `seq` lost.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<u64>,
        /// `token_expiring`: the connection's deadline, ms since the epoch.
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
    },
    /// To the sender of a `ping` that the runtime's auto-response did not catch.
    Pong,
    /// To the caller (or an inviter): the invitation went out to `to` (busy invitees are
    /// answered at once with `call_rejected`).
    CallRinging { call_id: String, to: Vec<PeerId> },
    /// To an invitee.
    CallIncoming {
        call_id: String,
        from: PeerId,
        media: crate::call::Media,
        participants: Vec<PeerId>,
    },
    /// To every participant, the newcomer included, when `peer_id` accepted.
    CallAccepted {
        call_id: String,
        peer_id: PeerId,
        participants: Vec<PeerId>,
    },
    /// To the participants: an invitee will not come.
    CallRejected {
        call_id: String,
        peer_id: PeerId,
        reason: crate::call::RejectReason,
    },
    /// To the others: a participant left and at least two remain.
    CallLeft {
        call_id: String,
        peer_id: PeerId,
        reason: crate::call::LeftReason,
    },
    /// To each member whose part of the call ends.
    CallEnded {
        call_id: String,
        reason: crate::call::EndReason,
    },
}

impl ServerFrame {
    /// The text frame on the wire.
    pub fn to_text(&self) -> String {
        match self {
            ServerFrame::Relay(RelayText(text)) => text.clone(),
            // Every field is a string, a number or a parsed JSON value: serializing cannot fail.
            other => serde_json::to_string(other).unwrap_or_else(|_| {
                r#"{"type":"error","code":"internal","message":"encoding failed"}"#.to_owned()
            }),
        }
    }

    /// Whether a resume replays it: everything sequenced but `joined`, `ice_servers`, `refreshed`
    /// and warnings,
    /// which describe the connection and are answered afresh (v1.1 §3).
    pub fn is_kept(&self) -> bool {
        !matches!(
            self,
            ServerFrame::Joined { .. }
                | ServerFrame::IceServers { .. }
                | ServerFrame::Refreshed { .. }
                | ServerFrame::Warning { .. }
                | ServerFrame::Error { .. }
                | ServerFrame::Pong
        )
    }

    /// Whether it carries `seq`: every frame to a joined peer but `pong` and `error`.
    pub fn is_sequenced(&self) -> bool {
        !matches!(self, ServerFrame::Error { .. } | ServerFrame::Pong)
    }

    /// The text frame on the wire, without copying an already encoded `relay`.
    pub fn into_text(self) -> String {
        match self {
            ServerFrame::Relay(RelayText(text)) => text,
            other => other.to_text(),
        }
    }
}

/// `text` (a JSON object) with `"seq":seq` appended as its last field.
pub fn with_seq(mut text: String, seq: u64) -> String {
    if text.ends_with('}') {
        text.pop();
        if !text.ends_with('{') {
            text.push(',');
        }
        text.push_str("\"seq\":");
        text.push_str(&seq.to_string());
        text.push('}');
    }
    text
}

/// The exact text the runtime answers without waking the room (`setWebSocketAutoResponse`).
pub const PING_TEXT: &str = r#"{"type":"ping"}"#;
/// The runtime's answer to [`PING_TEXT`].
pub const PONG_TEXT: &str = r#"{"type":"pong"}"#;
