//! Token verification and room authorization: pure functions of the token, the keys, the
//! configured issuer/audience and the current time.
//!
//! Invariants:
//! - A token is accepted only if its header's `alg` is exactly one this service verifies, a key
//!   of that algorithm is selected for it ([`Verifier::start`]: by `kid`, which is required when
//!   several keys could match), its signature verifies with that key, and its time claims hold
//!   within [`LEEWAY_SECONDS`]. Every refusal before the claims (`alg: none`, an unknown
//!   algorithm, no key, a bad signature, a malformed or oversized token, duplicate JSON keys, a
//!   `crit` header) is [`AuthError::Invalid`]: the client learns nothing about which rule failed.
//! - Keys are never found through the token: `jku`, `x5u`, `jwk` and `x5c` are ignored; only
//!   the configured keys (`JWT_SECRET`, `JWT_PUBLIC_KEYS`) and the keys fetched from the
//!   configured `JWKS_URL` are candidates. This service understands no JWS extension, so any
//!   `crit` header is refused (RFC 7515 §4.1.11).
//! - HS256 is verified here; public-key signatures are verified by the caller (WebCrypto in the
//!   Worker, a native library in tests) from a [`SignatureCheck`], so this module stays pure.
//! - The room logic never sees a token: it gets an [`Identity`] (and the room only a salted hash of
//!   its `sub`).

use std::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::alg::Hs256;
use jwt_compact::{AlgorithmExt, Claims, UntrustedToken};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::ErrorCode;
pub use crate::keys::{Alg, KeySet, PublicKey, SignatureCheck, VerifyingKey};
use crate::protocol::RoomId;

/// Clock-skew leeway applied to `exp`, `nbf` and `iat`, in seconds (protocol v1: 60 s).
pub const LEEWAY_SECONDS: i64 = 60;
/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash's size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Longest token accepted, in bytes: longer ones are refused before they are decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Who may sign tokens and what they must say.
#[derive(Clone)]
pub struct Verifier {
    /// The configured keys: `JWT_SECRET` and `JWT_PUBLIC_KEYS`.
    pub keys: Vec<VerifyingKey>,
    /// Whether keys are also fetched (`JWKS_URL`): then a token no configured key verifies may
    /// need them ([`Step::FetchKeys`]).
    pub fetches_keys: bool,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required member of `aud`, when set.
    pub audience: Option<String>,
}

/// The fetched keys (`JWKS_URL`) as the caller has them when it asks [`Verifier::start`].
#[derive(Debug, Clone, Copy)]
pub enum FetchedKeys<'a> {
    /// None loaded yet (or none configured).
    NotLoaded,
    /// A usable set, which may be refetched once for an unknown `kid`.
    Loaded(&'a KeySet),
    /// A set that was just refetched for an unknown `kid` (or may not be refetched yet): what
    /// it lacks, no key has.
    Final(&'a KeySet),
    /// The keys cannot be had: no usable set and the fetch failed.
    Unavailable,
}

/// What verifying a token needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The answer.
    Done(Result<Identity, AuthError>),
    /// The fetched keys are needed: load them (`unknown_kid: false`), or refetch them because the
    /// token names a `kid` the loaded set lacks (`unknown_kid: true`; at most once per 30 s, see
    /// [`crate::jwks`]). Then call [`Verifier::start`] again.
    FetchKeys { unknown_kid: bool },
    /// Check this signature, then call [`Verifier::signature_checked`].
    CheckSignature(SignatureCheck),
}

/// The header members this service reads beyond `alg`, `kid` and `cty`.
#[derive(Debug, Clone, Default, Deserialize)]
struct ExtraHeader {
    /// Present at all: refused, since no extension is understood.
    crit: Option<IgnoredAny>,
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
    /// Not a JWT, oversized, duplicate JSON keys, a `crit` header, `alg: none`, an algorithm no
    /// key uses, no key or several for it without a `kid`, a bad signature, or claims of the wrong
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
    /// The room policy (`POLICY_URL` or the `POLICY` binding) refused this `sub` the room.
    PolicyDenied,
    /// The keys (`JWKS_URL`) or the room policy could not be reached: the service, not the
    /// token, is at fault, and the client may try again later.
    Unavailable,
}

impl AuthError {
    /// `unauthorized` for a token that proves nothing; `forbidden` for a valid one that may not
    /// enter the room.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::NoRooms | AuthError::RoomNotAllowed | AuthError::PolicyDenied => {
                ErrorCode::Forbidden
            }
            AuthError::Unavailable => ErrorCode::Unavailable,
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
            AuthError::PolicyDenied => "the room policy does not allow this user in this room",
            AuthError::Unavailable => "the token cannot be checked right now (the key set or the room policy is unreachable); try again later",
        }
    }
}

#[derive(Clone, Copy)]
enum Candidate<'a> {
    Configured(&'a VerifyingKey),
    Fetched(&'a PublicKey),
}

impl Candidate<'_> {
    fn kid(&self) -> Option<&str> {
        match self {
            Candidate::Configured(key) => key.kid(),
            Candidate::Fetched(key) => key.kid.as_deref(),
        }
    }
}

enum Selected<'a> {
    One(Candidate<'a>),
    None,
    Ambiguous,
}

/// The key for a token with `kid` among `candidates` (all of the token's algorithm): the first
/// with that `kid`; else the one key without a `kid`; else, for a token without `kid`, the one
/// key there is. Several equally good keys are ambiguous: a `kid` is required then.
fn select<'a>(candidates: &[Candidate<'a>], kid: Option<&str>) -> Selected<'a> {
    if let Some(kid) = kid {
        if let Some(key) = candidates.iter().find(|k| k.kid() == Some(kid)) {
            return Selected::One(*key);
        }
    }
    let mut usable = candidates
        .iter()
        .filter(|k| kid.is_none() || k.kid().is_none());
    match (usable.next(), usable.next()) {
        (Some(key), None) => Selected::One(*key),
        (None, _) => Selected::None,
        (Some(_), Some(_)) => Selected::Ambiguous,
    }
}

/// Decodes a token's header, refusing what this service never accepts before any key is looked
/// at: oversized tokens, duplicate JSON keys in the header or the claims, and `crit`.
fn parse(token: &str) -> Result<UntrustedToken<'_, ExtraHeader>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Invalid);
    }
    let mut parts = token.split('.');
    for part in [parts.next(), parts.next()] {
        let json = part
            .and_then(|p| Base64UrlUnpadded::decode_vec(p).ok())
            .ok_or(AuthError::Invalid)?;
        if !is_object_without_duplicate_keys(&json) {
            return Err(AuthError::Invalid);
        }
    }
    let untrusted =
        UntrustedToken::<ExtraHeader>::try_from(token).map_err(|_| AuthError::Invalid)?;
    if untrusted.header().other_fields.crit.is_some() {
        return Err(AuthError::Invalid);
    }
    Ok(untrusted)
}

/// Whether `json` is one JSON object whose top-level keys are all distinct. Parsers differ on
/// which of two equal keys wins (RFC 8259 §4 leaves it open), so a token that has them means
/// different things to different readers: refused.
fn is_object_without_duplicate_keys(json: &[u8]) -> bool {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut seen: Vec<String> = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                if seen.contains(&key) {
                    return Ok(false);
                }
                seen.push(key);
                map.next_value::<IgnoredAny>()?;
            }
            Ok(true)
        }
    }
    struct Object(bool);
    impl<'de> Deserialize<'de> for Object {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Keys).map(Object)
        }
    }
    serde_json::from_slice::<Object>(json).is_ok_and(|o| o.0)
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
    /// Starts verifying `token` at `now_ms` (Unix milliseconds) with the configured keys and
    /// `fetched`. HS256 tokens are answered at once; a public-key token asks for its signature
    /// to be checked; a token that only fetched keys could verify asks for them.
    pub fn start(&self, token: &str, now_ms: u64, fetched: FetchedKeys<'_>) -> Step {
        let untrusted = match parse(token) {
            Ok(untrusted) => untrusted,
            Err(e) => return Step::Done(Err(e)),
        };
        let Some(alg) = Alg::from_header(untrusted.algorithm()) else {
            return Step::Done(Err(AuthError::Invalid));
        };
        let kid = untrusted.header().key_id.as_deref();
        let fetched_set = match fetched {
            FetchedKeys::Loaded(set) | FetchedKeys::Final(set) => Some(set),
            FetchedKeys::NotLoaded | FetchedKeys::Unavailable => None,
        };
        let configured = self.keys.iter().filter(|k| k.alg() == alg);
        let fetched_keys = fetched_set
            .into_iter()
            .flat_map(|set| set.keys.iter())
            .filter(|k| k.alg == alg);
        let candidates: Vec<Candidate<'_>> = configured
            .map(Candidate::Configured)
            .chain(fetched_keys.map(Candidate::Fetched))
            .collect();
        let key = match select(&candidates, kid) {
            Selected::One(key) => key,
            Selected::Ambiguous => return Step::Done(Err(AuthError::Invalid)),
            Selected::None => {
                let could_be_fetched = self.fetches_keys && alg != Alg::Hs256;
                return match fetched {
                    _ if !could_be_fetched => Step::Done(Err(AuthError::Invalid)),
                    FetchedKeys::NotLoaded => Step::FetchKeys { unknown_kid: false },
                    FetchedKeys::Loaded(_) if kid.is_some() => {
                        Step::FetchKeys { unknown_kid: true }
                    }
                    FetchedKeys::Unavailable => Step::Done(Err(AuthError::Unavailable)),
                    FetchedKeys::Loaded(_) | FetchedKeys::Final(_) => {
                        Step::Done(Err(AuthError::Invalid))
                    }
                };
            }
        };
        match key {
            Candidate::Configured(VerifyingKey::Hs256 { key, .. }) => {
                let verified = Hs256
                    .validator::<TokenClaims>(key)
                    .validate(&untrusted)
                    .map(|t| t.into_parts().1)
                    // jwt-compact parses the claims before it checks the signature, so a claims
                    // error says nothing about who made the token: it is refused like a bad
                    // signature.
                    .map_err(|_| AuthError::Invalid);
                Step::Done(verified.and_then(|claims| self.check_claims(claims, now_ms)))
            }
            Candidate::Configured(VerifyingKey::Public(key)) | Candidate::Fetched(key) => {
                let signature = untrusted.signature_bytes();
                if !key.plausible_signature(signature) {
                    return Step::Done(Err(AuthError::Invalid));
                }
                let message = token.rsplit_once('.').map_or("", |(signed, _)| signed);
                Step::CheckSignature(SignatureCheck {
                    key: key.clone(),
                    message: message.as_bytes().to_vec(),
                    signature: signature.to_vec(),
                })
            }
        }
    }

    /// Finishes a token whose signature the caller checked after [`Step::CheckSignature`].
    pub fn signature_checked(
        &self,
        token: &str,
        now_ms: u64,
        valid: bool,
    ) -> Result<Identity, AuthError> {
        if !valid {
            return Err(AuthError::Invalid);
        }
        let claims = parse(token)?
            .deserialize_claims_unchecked::<TokenClaims>()
            .map_err(|_| AuthError::Invalid)?;
        self.check_claims(claims, now_ms)
    }

    /// Verifies `token` in one call, with `fetched` as the only fetched keys and `check` to
    /// check public-key signatures (natively, in tests and tools). A token that needs keys not
    /// in `fetched` is [`AuthError::Invalid`] (or [`AuthError::Unavailable`] without any).
    pub fn verify_with(
        &self,
        token: &str,
        now_ms: u64,
        fetched: Option<&KeySet>,
        check: &mut dyn FnMut(&SignatureCheck) -> bool,
    ) -> Result<Identity, AuthError> {
        let fetched = match fetched {
            Some(set) => FetchedKeys::Final(set),
            None if self.fetches_keys => FetchedKeys::Unavailable,
            None => FetchedKeys::NotLoaded,
        };
        match self.start(token, now_ms, fetched) {
            Step::Done(result) => result,
            Step::CheckSignature(sig) => self.signature_checked(token, now_ms, check(&sig)),
            Step::FetchKeys { .. } => Err(AuthError::Invalid),
        }
    }

    /// Verifies `token` with the configured keys where no runtime crypto is needed: HS256. A
    /// public-key token is refused. For tests and HS256-only tools.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Identity, AuthError> {
        self.verify_with(token, now_ms, None, &mut |_| false)
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
