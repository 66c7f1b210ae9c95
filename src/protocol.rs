//! Protocol v1 frames: decoding what clients send and the frames the server sends.
//!
//! Invariants:
//! - Decoding parses a frame's text exactly once and moves the relayed payloads (`sdp`,
//!   `candidate`) out of the parsed value: the server never inspects them. A `candidate` object
//!   is re-serialized as the same JSON value (its keys in sorted order).
//! - A frame over the size limit is refused before it is parsed, so that error never carries a
//!   `correlationId`; every other refusal echoes the frame's `correlationId` when it had a valid one.
//! - Field names on the wire are camelCase, type names snake_case (`#[serde(tag = "type")]`), so
//!   browsers can switch on `msg.type`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ErrorCode;

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

/// What a signal carries, relayed as is (it serializes as the `type` and payload field of
/// `relay.inner`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    /// The SDP text of an offer.
    Offer { sdp: String },
    /// The SDP text of an answer.
    Answer { sdp: String },
    /// An `RTCIceCandidateInit` object, or `null` for end-of-candidates.
    Candidate { candidate: Value },
}

/// A targeted `offer`, `answer` or `candidate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub to: String,
    pub payload: Payload,
    pub room_id: Option<String>,
    pub from: Option<String>,
}

/// A decoded client → server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// Client → server: (re)announce presence; idempotent.
    Join {
        room_id: String,
        metadata: Option<Metadata>,
        peer_id: Option<String>,
    },
    /// Client → server: leave the room; the server closes with 1000.
    Leave { room_id: String },
    /// Client → server → one peer: offer, answer or candidate.
    Signal(Signal),
    /// Client → server: a `ping` that was not byte-exact, so the runtime's auto-response missed it.
    Ping,
}

/// A client frame with the `correlationId` it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub frame: ClientFrame,
    pub correlation_id: Option<String>,
}

/// Why a frame was refused: what the `error` frame says.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub correlation_id: Option<String>,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            correlation_id: None,
        }
    }

    /// The `error` frame a client sees.
    pub fn into_frame(self) -> ServerFrame {
        ServerFrame::Error {
            code: self.code,
            message: self.message,
            correlation_id: self.correlation_id,
        }
    }
}

/// Decodes one text frame. `max_bytes` is the configured frame size limit (UTF-8 bytes).
pub fn decode(text: &str, max_bytes: usize) -> Result<Envelope, Refusal> {
    if text.len() > max_bytes {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("frame is {} bytes; the limit is {max_bytes}", text.len()),
        ));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Refusal::new(ErrorCode::BadRequest, format!("invalid JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            "a frame must be a JSON object",
        ));
    };
    let correlation_id = take_correlation_id(&mut fields)?;
    let with_id = |mut r: Refusal| {
        r.correlation_id.clone_from(&correlation_id);
        r
    };
    let frame = decode_fields(fields).map_err(with_id)?;
    Ok(Envelope {
        frame,
        correlation_id,
    })
}

fn take_correlation_id(fields: &mut Map<String, Value>) -> Result<Option<String>, Refusal> {
    match fields.remove("correlationId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_CORRELATION_ID_BYTES => {
            Ok(Some(id))
        }
        Some(_) => Err(Refusal::new(
            ErrorCode::BadRequest,
            format!(
                "field `correlationId` must be a non-empty string of at most {MAX_CORRELATION_ID_BYTES} bytes"
            ),
        )),
    }
}

fn decode_fields(mut fields: Map<String, Value>) -> Result<ClientFrame, Refusal> {
    let kind = match fields.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(mistyped("type", "a string")),
        None => return Err(missing("type")),
    };
    let f = &mut fields;
    match kind.as_str() {
        "join" => {
            let metadata = match f.remove("metadata") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(check_metadata(m)?),
                Some(_) => return Err(mistyped("metadata", "a JSON object")),
            };
            Ok(ClientFrame::Join {
                room_id: required_string(f, "roomId")?,
                metadata,
                peer_id: optional_string(f, "peerId")?,
            })
        }
        "leave" => Ok(ClientFrame::Leave {
            room_id: required_string(f, "roomId")?,
        }),
        "offer" | "answer" | "candidate" => {
            let payload = match kind.as_str() {
                "offer" => Payload::Offer {
                    sdp: required_string(f, "sdp")?,
                },
                "answer" => Payload::Answer {
                    sdp: required_string(f, "sdp")?,
                },
                _ => Payload::Candidate {
                    candidate: candidate(f)?,
                },
            };
            Ok(ClientFrame::Signal(Signal {
                to: required_string(f, "to")?,
                payload,
                room_id: optional_string(f, "roomId")?,
                from: optional_string(f, "from")?,
            }))
        }
        "ping" => Ok(ClientFrame::Ping),
        other => Err(Refusal::new(
            ErrorCode::UnknownType,
            format!("unknown frame type `{}`", truncate(other, 64)),
        )),
    }
}

fn check_metadata(metadata: Metadata) -> Result<Metadata, Refusal> {
    // Serializing a parsed `Map` cannot fail: it holds only JSON values.
    let size = serde_json::to_string(&metadata).map_or(usize::MAX, |s| s.len());
    if size > MAX_METADATA_BYTES {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("metadata is {size} bytes serialized; the limit is {MAX_METADATA_BYTES}"),
        ));
    }
    Ok(metadata)
}

fn candidate(f: &mut Map<String, Value>) -> Result<Value, Refusal> {
    match f.remove("candidate") {
        Some(v @ (Value::Object(_) | Value::Null)) => Ok(v),
        Some(_) => Err(mistyped(
            "candidate",
            "an RTCIceCandidateInit object or null",
        )),
        None => Err(missing("candidate")),
    }
}

fn required_string(f: &mut Map<String, Value>, name: &str) -> Result<String, Refusal> {
    optional_string(f, name)?.ok_or_else(|| missing(name))
}

fn optional_string(f: &mut Map<String, Value>, name: &str) -> Result<Option<String>, Refusal> {
    match f.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(mistyped(name, "a string")),
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

/// One peer as others see it in `joined.peers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub peer_id: PeerId,
    pub metadata: Metadata,
}

/// Why a peer left, as `peer_left.reason` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// It sent `leave`.
    Leave,
    /// Its connection closed without a `leave`.
    Disconnect,
}

/// The relayed message inside a `relay` frame; `from` is stamped by the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayInner {
    #[serde(flatten)]
    pub payload: Payload,
    pub room_id: RoomId,
    pub from: PeerId,
    pub to: PeerId,
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
    },
    /// To every other peer when one arrives.
    PeerJoined {
        room_id: RoomId,
        peer_id: PeerId,
        metadata: Metadata,
    },
    /// To every other peer when one changes its metadata.
    PeerUpdated {
        room_id: RoomId,
        peer_id: PeerId,
        metadata: Metadata,
    },
    /// To every other peer when one is gone.
    PeerLeft {
        room_id: RoomId,
        peer_id: PeerId,
        reason: LeaveReason,
    },
    /// To the addressee of an offer, answer or candidate.
    Relay {
        inner: RelayInner,
        correlation_id: String,
    },
    /// To the sender of a refused frame (or a refused upgrade).
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
    },
    /// To the sender of a `ping` that the runtime's auto-response did not catch.
    Pong,
}

impl ServerFrame {
    /// The text frame on the wire.
    pub fn to_text(&self) -> String {
        // Every field is a string, a number or a parsed JSON value: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"encoding failed"}"#.to_owned()
        })
    }
}

/// The exact text the runtime answers without waking the room (`setWebSocketAutoResponse`).
pub const PING_TEXT: &str = r#"{"type":"ping"}"#;
/// The runtime's answer to [`PING_TEXT`].
pub const PONG_TEXT: &str = r#"{"type":"pong"}"#;
