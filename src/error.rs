//! Error codes and close codes: the one place where a refusal becomes an HTTP status, a frame
//! code or a WebSocket close code.
//!
//! Invariant: every code string a client can see is produced by [`ErrorCode::as_str`], every
//! HTTP status by [`ErrorCode::http_status`] and every close code chosen by the server by
//! [`close_code_for`], [`ending_close_code`] or [`reciprocal_close_code`]. Nothing else in the
//! crate spells them.

use serde::{Serialize, Serializer};

/// A stable, documented error code (protocol v1). Shared by HTTP error bodies and `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Invalid JSON, a non-object, a binary frame, or a missing or mistyped field.
    BadRequest,
    /// A frame `type` this protocol version does not know.
    UnknownType,
    /// A frame (or a `metadata` object) over the configured size.
    TooLarge,
    /// `to` names no open peer of this room.
    TargetNotFound,
    /// `from` or `peerId` is not the sender's own peer id.
    ForbiddenSender,
    /// `roomId` is not the room this connection joined.
    RoomMismatch,
    /// The room already holds `MAX_PEERS_PER_ROOM` peers.
    RoomFull,
    /// Too many frames (the connection stays open), too many upgrades, or a ban in force
    /// (the connection is closed 4429: see [`ending_close_code`]).
    RateLimited,
    /// The identity already holds `MAX_CONNECTIONS_PER_USER` open connections in this room
    /// (upgrade only; close 1013).
    ConnectionLimit,
    /// No valid token.
    Unauthorized,
    /// A valid token that may not enter this room, or a browser upgrade from an origin not in
    /// `ALLOWED_ORIGINS`.
    Forbidden,
    /// The token cannot be checked now: the key set (`JWKS_URL`) or the room policy could not be
    /// reached (upgrade: close 1013; HTTP 503). Try again later.
    Unavailable,
    /// The server failed; the client did nothing wrong.
    Internal,
    /// A `callId` that names no call of this room (v1.1 §6).
    CallNotFound,
    /// A call action the call's state does not allow (answering a call that does not ring for
    /// you, initiating while in another call, inviting yourself).
    InvalidState,
    /// HTTP only: no route at this path.
    NotFound,
    /// HTTP only: a known path with another method.
    MethodNotAllowed,
    /// HTTP only: an authorized request to `/ws/{roomId}` without `Upgrade: websocket`.
    UpgradeRequired,
}

impl ErrorCode {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::TargetNotFound => "target_not_found",
            ErrorCode::ForbiddenSender => "forbidden_sender",
            ErrorCode::RoomMismatch => "room_mismatch",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ConnectionLimit => "connection_limit",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::CallNotFound => "call_not_found",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::Internal => "internal",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UpgradeRequired => "upgrade_required",
        }
    }

    /// The HTTP status for a plain (non-upgrade) request refused with this code.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::UnknownType | ErrorCode::RoomMismatch => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::ForbiddenSender => 403,
            ErrorCode::NotFound | ErrorCode::TargetNotFound | ErrorCode::CallNotFound => 404,
            ErrorCode::InvalidState => 409,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::TooLarge => 413,
            ErrorCode::UpgradeRequired => 426,
            // The identity's own doing, like a rate: 429, not the room's capacity (503).
            ErrorCode::RateLimited | ErrorCode::ConnectionLimit => 429,
            ErrorCode::RoomFull | ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// A stable, documented `warning` code: something was dropped or degraded, the session goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningCode {
    /// Candidates over the connection's candidate bucket were dropped.
    Throttled,
    /// Frames kept for replay were lost to the buffer's overflow (`from`..=`to`).
    ReplayGap,
    /// The connection's token expires at `expiresAt`; send `refresh` before then.
    TokenExpiring,
}

impl WarningCode {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            WarningCode::Throttled => "throttled",
            WarningCode::ReplayGap => "replay_gap",
            WarningCode::TokenExpiring => "token_expiring",
        }
    }
}

impl Serialize for WarningCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// WebSocket close codes the server sends (RFC 6455 §7.4 plus the protocol's 4xxx range).
pub mod close {
    /// Normal closure, after `leave`.
    pub const NORMAL: u16 = 1000;
    /// Server going away (deploy, shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// Room full, connection limit, or keys/policy unreachable: try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Protocol abuse.
    pub const PROTOCOL_ABUSE: u16 = 4400;
    /// Unauthorized upgrade.
    pub const UNAUTHORIZED: u16 = 4401;
    /// Forbidden upgrade.
    pub const FORBIDDEN: u16 = 4403;
    /// Heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4408;
    /// Replaced by a resumed session.
    pub const REPLACED: u16 = 4409;
    /// Rate-limit abuse.
    pub const RATE_LIMIT_ABUSE: u16 = 4429;
}

/// The close code that ends a connection refused with `code`, or `None` when the refusal is a
/// per-frame error that leaves the connection open.
pub const fn close_code_for(code: ErrorCode) -> Option<u16> {
    match code {
        ErrorCode::Unauthorized => Some(close::UNAUTHORIZED),
        ErrorCode::Forbidden => Some(close::FORBIDDEN),
        ErrorCode::RoomFull | ErrorCode::ConnectionLimit | ErrorCode::Unavailable => {
            Some(close::TRY_AGAIN_LATER)
        }
        _ => None,
    }
}

/// The close code when a refusal with `code` ends the connection: an upgrade refused before it
/// becomes a member, or a connection closed for abuse. As [`close_code_for`], except that
/// `rate_limited`, otherwise a per-frame error that leaves the connection open, closes with
/// 4429 here (a ban in force, the connect rate, or the strike limit reached).
pub const fn ending_close_code(code: ErrorCode) -> Option<u16> {
    match code {
        ErrorCode::RateLimited => Some(close::RATE_LIMIT_ABUSE),
        _ => close_code_for(code),
    }
}

/// The code the server answers a client's close with. Codes that may not be sent on the wire
/// (1005 "no status", 1006 "abnormal", 1015 "TLS") and out-of-range values become 1000; any
/// other code the client was allowed to send is echoed, as RFC 6455 §5.5.1 suggests.
pub const fn reciprocal_close_code(received: u16) -> u16 {
    match received {
        1000..=1003 | 1007..=1014 | 3000..=4999 => received,
        _ => close::NORMAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_closes_only_when_it_ends_the_connection() {
        assert_eq!(close_code_for(ErrorCode::RateLimited), None);
        assert_eq!(ending_close_code(ErrorCode::RateLimited), Some(4429));
        assert_eq!(close_code_for(ErrorCode::ConnectionLimit), Some(1013));
        assert_eq!(ending_close_code(ErrorCode::ConnectionLimit), Some(1013));
        assert_eq!(ending_close_code(ErrorCode::RoomFull), Some(1013));
        assert_eq!(ErrorCode::ConnectionLimit.as_str(), "connection_limit");
        assert_eq!(ErrorCode::ConnectionLimit.http_status(), 429);
    }

    #[test]
    fn unsendable_close_codes_are_answered_with_normal() {
        for code in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert_eq!(reciprocal_close_code(code), 1000, "{code}");
        }
        for code in [1000, 1001, 1011, 3000, 4000, 4999] {
            assert_eq!(reciprocal_close_code(code), code);
        }
    }
}
