//! Token verification and room authorization: pure functions of the token, the keys, the
//! configured issuer/audience and the current time.
//!
//! Invariants:
//! - A token is accepted only if its header's `alg` is one a configured key uses, its signature
//!   verifies with that key, and its time claims hold within [`LEEWAY_SECONDS`]. `alg: none`,
//!   an algorithm no key uses, and a bad signature are refused alike, as [`AuthError::Invalid`].
//! - The room logic never sees a token: it gets an [`Identity`] (and the room only a salted hash of
//!   its `sub`). New key kinds (ES256, EdDSA, a JWKS) are new [`VerifyingKey`] variants; nothing
//!   past this module changes.

use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, UntrustedToken, ValidationError};
use serde::Deserialize;

use crate::error::ErrorCode;
use crate::protocol::RoomId;

/// Clock-skew leeway applied to `exp`, `nbf` and `iat`, in seconds (protocol v1: 60 s).
pub const LEEWAY_SECONDS: i64 = 60;
/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash's size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// A key that can verify tokens.
#[derive(Clone)]
pub enum VerifyingKey {
    /// A shared HMAC-SHA256 secret (`JWT_SECRET`).
    Hs256 { kid: Option<String>, key: Hs256Key },
}

impl VerifyingKey {
    /// An HS256 key from a secret of at least [`MIN_HS256_SECRET_BYTES`] bytes.
    pub fn hs256(secret: &[u8]) -> Option<VerifyingKey> {
        (secret.len() >= MIN_HS256_SECRET_BYTES).then(|| VerifyingKey::Hs256 {
            kid: None,
            key: Hs256Key::new(secret),
        })
    }

    fn alg(&self) -> &'static str {
        match self {
            VerifyingKey::Hs256 { .. } => "HS256",
        }
    }

    fn kid(&self) -> Option<&str> {
        match self {
            VerifyingKey::Hs256 { kid, .. } => kid.as_deref(),
        }
    }

    fn verify(&self, token: &UntrustedToken<'_>) -> Result<Claims<TokenClaims>, ValidationError> {
        match self {
            VerifyingKey::Hs256 { key, .. } => Hs256
                .validator::<TokenClaims>(key)
                .validate(token)
                .map(|t| t.into_parts().1),
        }
    }
}

/// Who may sign tokens and what they must say.
#[derive(Clone)]
pub struct Verifier {
    pub keys: Vec<VerifyingKey>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required member of `aud`, when set.
    pub audience: Option<String>,
}

/// A verified token's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub sub: String,
    /// The `rooms` claim; `None` when the token has none (it may then join no room).
    pub rooms: Option<Vec<String>>,
    /// When a connection on this token ends: `exp` plus the leeway, in ms since the epoch.
    pub expires_ms: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No token in any of the three placements.
    Missing,
    /// Not a JWT, `alg: none`, an algorithm no key uses, a bad signature, or claims of the wrong
    /// JSON type (`exp` not a number, `rooms` not a list of strings, …).
    Invalid,
    /// The claims are not what a token must carry (`sub`, `exp`, their types).
    BadClaims(&'static str),
    /// `exp` is past, beyond the leeway.
    Expired,
    /// `nbf` is ahead, beyond the leeway.
    NotYetValid,
    /// `iat` is ahead, beyond the leeway.
    IssuedInFuture,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not include the configured audience.
    WrongAudience,
    /// A valid token without a `rooms` claim.
    NoRooms,
    /// A valid token whose `rooms` claim does not cover this room.
    RoomNotAllowed,
}

impl AuthError {
    /// `unauthorized` for a token that proves nothing; `forbidden` for a valid one that may not
    /// enter the room.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::NoRooms | AuthError::RoomNotAllowed => ErrorCode::Forbidden,
            _ => ErrorCode::Unauthorized,
        }
    }

    /// What the client is told. It names the rule, never the token's contents.
    pub fn message(&self) -> &'static str {
        match self {
            AuthError::Missing => "a token is required: Authorization: Bearer, Sec-WebSocket-Protocol bearer.<jwt>, or ?token=",
            AuthError::Invalid => "the token is malformed, uses an algorithm this server does not accept, has a bad signature, or has claims of the wrong type",
            AuthError::BadClaims(why) => why,
            AuthError::Expired => "the token has expired",
            AuthError::NotYetValid => "the token is not valid yet (nbf)",
            AuthError::IssuedInFuture => "the token's iat is in the future",
            AuthError::WrongIssuer => "the token's issuer (iss) is not accepted",
            AuthError::WrongAudience => "the token's audience (aud) does not include this service",
            AuthError::NoRooms => "the token has no rooms claim, so it may join no room",
            AuthError::RoomNotAllowed => "the token's rooms claim does not include this room",
        }
    }
}

#[derive(Debug, Deserialize)]
struct TokenClaims {
    sub: Option<serde_json::Value>,
    iss: Option<String>,
    aud: Option<Audience>,
    rooms: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(aud) => aud == wanted,
            Audience::Many(auds) => auds.iter().any(|a| a == wanted),
        }
    }
}

impl Verifier {
    /// Verifies `token` at `now_ms` (Unix milliseconds).
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Identity, AuthError> {
        let untrusted = UntrustedToken::new(token).map_err(|_| AuthError::Invalid)?;
        let kid = untrusted.header().key_id.as_deref();
        let claims = self
            .keys
            .iter()
            .filter(|k| k.alg() == untrusted.algorithm() && (k.kid().is_none() || k.kid() == kid))
            // jwt-compact parses the claims before it checks the signature, so a claims error
            // says nothing about who made the token: it is refused like a bad signature.
            .find_map(|k| k.verify(&untrusted).ok())
            .ok_or(AuthError::Invalid)?;
        self.check_claims(claims, now_ms)
    }

    fn check_claims(
        &self,
        claims: Claims<TokenClaims>,
        now_ms: u64,
    ) -> Result<Identity, AuthError> {
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let exp = claims
            .expiration
            .ok_or(AuthError::BadClaims("the token has no exp claim"))?;
        if exp.timestamp() + LEEWAY_SECONDS < now {
            return Err(AuthError::Expired);
        }
        if claims
            .not_before
            .is_some_and(|nbf| nbf.timestamp() - LEEWAY_SECONDS > now)
        {
            return Err(AuthError::NotYetValid);
        }
        if claims
            .issued_at
            .is_some_and(|iat| iat.timestamp() - LEEWAY_SECONDS > now)
        {
            return Err(AuthError::IssuedInFuture);
        }
        let custom = claims.custom;
        if let Some(issuer) = &self.issuer {
            if custom.iss.as_deref() != Some(issuer.as_str()) {
                return Err(AuthError::WrongIssuer);
            }
        }
        if let Some(audience) = &self.audience {
            if !custom
                .aud
                .as_ref()
                .is_some_and(|aud| aud.contains(audience))
            {
                return Err(AuthError::WrongAudience);
            }
        }
        let sub = match custom.sub {
            Some(serde_json::Value::String(sub)) if !sub.is_empty() => sub,
            Some(_) => {
                return Err(AuthError::BadClaims(
                    "the token's sub must be a non-empty string",
                ))
            }
            None => return Err(AuthError::BadClaims("the token has no sub claim")),
        };
        let expires_ms = u64::try_from(exp.timestamp().saturating_add(LEEWAY_SECONDS))
            .unwrap_or(0)
            .saturating_mul(1000);
        Ok(Identity {
            sub,
            rooms: custom.rooms,
            expires_ms,
        })
    }
}

impl Identity {
    /// Whether the `rooms` claim covers `room`: an exact id, or a pattern ending in `*` that
    /// matches every id starting with what precedes it (`"*"` alone matches every room).
    pub fn may_enter(&self, room: &RoomId) -> Result<(), AuthError> {
        let rooms = self.rooms.as_ref().ok_or(AuthError::NoRooms)?;
        let allowed = rooms.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => room.as_str().starts_with(prefix),
            None => pattern == room.as_str(),
        });
        if allowed {
            Ok(())
        } else {
            Err(AuthError::RoomNotAllowed)
        }
    }
}
