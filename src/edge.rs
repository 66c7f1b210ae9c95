//! The entry Worker's decisions: route, find the token, verify it, authorize the room, and say
//! whether the request may reach the room's Durable Object.
//!
//! Invariants:
//! - Only [`EdgeDecision::Forward`] touches a Durable Object; every refusal is answered here.
//! - The checks run cheapest first: route, subprotocols, configuration, the origin allow-list
//!   ([`crate::origin`]), a token's presence; only then is the token verified and the room
//!   authorized ([`EdgeStep::Authorize`], which may need fetched keys, a WebCrypto signature check
//!   or the room policy, so the caller does it and answers with [`Authorize::finish`]).
//! - A refused *upgrade* is answered with a WebSocket (101, one `error` frame, close 4401/4403):
//!   browsers cannot read an HTTP body on a failed handshake. A refused plain request gets an
//!   HTTP status and a JSON body.
//! - When the client offered `signal.v1` in `Sec-WebSocket-Protocol`, every 101 answers it, so
//!   the browser does not drop the connection before it reads the error frame. The token itself
//!   is never echoed.
//! - The identity reaches the room only in [`IDENTITY_HEADER`], which this Worker always sets
//!   (so a client's own copy never passes through).

use serde::{Deserialize, Serialize};

use crate::auth::{AuthError, Identity};
use crate::config::{ConfigError, EdgeConfig};
use crate::error::{close_code_for, ErrorCode};
use crate::log::user_hash;
use crate::protocol::RoomId;

/// The subprotocol of this protocol version.
pub const SUBPROTOCOL: &str = "signal.v1";
/// Prefix of the subprotocol entry that carries a browser's token.
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";
/// Prefix of the subprotocol entry that carries a resume token.
pub const RESUME_PROTOCOL_PREFIX: &str = "resume.";
/// Internal header carrying [`ForwardedIdentity`] from the Worker to the room.
pub const IDENTITY_HEADER: &str = "x-edgesignal-identity";

/// The parts of a request the edge decides on.
#[derive(Debug, Clone, Copy, Default)]
pub struct EdgeRequest<'a> {
    pub method: &'a str,
    /// The URL path, not decoded.
    pub path: &'a str,
    /// The URL query without `?`.
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub protocols: Option<&'a str>,
    pub upgrade: Option<&'a str>,
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The connection's trace id: from the upgrade's W3C `traceparent` ([`trace_id`]), else a
    /// new one the caller made.
    pub trace: Option<&'a str>,
}

/// What the Worker tells the room about an admitted connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedIdentity {
    /// Salted hash of `sub` ([`user_hash`]).
    pub user: String,
    /// The room id, validated.
    pub room: String,
    /// The subprotocol to answer with, if the client offered it.
    pub protocol: Option<String>,
    /// The token's deadline (`exp` plus the leeway), ms since the epoch.
    #[serde(default, rename = "expiresMs", skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// The resume token offered (`?resume=` or a `resume.<token>` subprotocol entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// The connection's trace id, in every log line about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// What deciding a request needs next.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeStep<'a> {
    /// Decided without the token's verification.
    Decided(EdgeDecision),
    /// Verify the token and authorize the room ([`crate::auth`], [`crate::policy`]), then call
    /// [`Authorize::finish`].
    Authorize(Authorize<'a>),
}

/// A request whose token must be verified and whose room must be authorized.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorize<'a> {
    /// The token from the first placement that has one.
    pub token: &'a str,
    /// The room asked for; none for `GET /ice-servers` (the token alone is checked).
    pub room: Option<RoomId>,
    is_upgrade: bool,
    protocol: Option<&'static str>,
    resume: Option<&'a str>,
    trace: Option<&'a str>,
}

/// What the Worker does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeDecision {
    /// `200 {"status":"ok"}`.
    Health,
    /// An HTTP error with a JSON body; the status comes from the code.
    HttpError { code: ErrorCode, message: String },
    /// Accept the upgrade in the Worker, send one `error` frame, close with `close_code`.
    RefuseUpgrade {
        code: ErrorCode,
        message: String,
        close_code: u16,
        protocol: Option<&'static str>,
    },
    /// Forward the upgrade to the room's Durable Object.
    Forward(Box<ForwardedIdentity>),
    /// `200` with this JSON body (`GET /ice-servers`).
    Json { body: String },
}

enum Route {
    Health,
    IceServers,
    Room(RoomId),
}

/// Decides what to do with `req`, as far as it can without verifying the token.
pub fn decide<'a>(
    req: &EdgeRequest<'a>,
    config: Result<&EdgeConfig, &ConfigError>,
) -> EdgeStep<'a> {
    let route = match route(req) {
        Ok(route) => route,
        Err(refusal) => return EdgeStep::Decided(refusal),
    };
    let room = match route {
        Route::Health => return EdgeStep::Decided(EdgeDecision::Health),
        Route::IceServers => None,
        Route::Room(room) => Some(room),
    };
    let offered = match offered_protocols(req.protocols) {
        Ok(offered) => offered,
        Err(refusal) => return EdgeStep::Decided(refusal),
    };
    let is_upgrade = req.upgrade.is_some_and(|u| {
        u.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
    });
    let protocol = offered.signal_v1.then_some(SUBPROTOCOL);
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            return EdgeStep::Decided(EdgeDecision::HttpError {
                code: ErrorCode::Internal,
                message: format!("server misconfigured: {e}"),
            })
        }
    };
    let resume = offered.resume.or_else(|| {
        req.query
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("resume=")))
    });
    let authorize = Authorize {
        token: "",
        room,
        is_upgrade,
        protocol,
        resume,
        trace: req.trace,
    };
    if !config.origins.allows(req.origin) {
        let origin = shorten(req.origin.unwrap_or_default());
        return EdgeStep::Decided(authorize.refuse(
            ErrorCode::Forbidden,
            format!("origin {origin} is not allowed to connect (ALLOWED_ORIGINS)"),
        ));
    }
    // `/ice-servers` is plain HTTP: a token offered as a subprotocol is not looked at there.
    let bearer = if authorize.room.is_some() {
        offered.bearer
    } else {
        None
    };
    match find_token(req, bearer) {
        Some(token) => EdgeStep::Authorize(Authorize { token, ..authorize }),
        None => EdgeStep::Decided(authorize.finish(config, Err(AuthError::Missing), 0)),
    }
}

impl Authorize<'_> {
    /// The decision once the token was verified and the room authorized (or not), at `now_ms`.
    pub fn finish(
        self,
        config: &EdgeConfig,
        identity: Result<Identity, AuthError>,
        now_ms: u64,
    ) -> EdgeDecision {
        let identity = match identity {
            Ok(identity) => identity,
            Err(e) => return self.refuse(e.code(), e.message().to_owned()),
        };
        let Some(room) = &self.room else {
            let user = user_hash(&config.log_salt, &identity.sub);
            let (servers, expires) = crate::ice::ice_servers(&config.ice, &user, now_ms);
            let body = serde_json::json!({ "iceServers": servers, "iceServersExpireAt": expires });
            return EdgeDecision::Json {
                body: body.to_string(),
            };
        };
        if !self.is_upgrade {
            return EdgeDecision::HttpError {
                code: ErrorCode::UpgradeRequired,
                message: "this endpoint is a WebSocket: send Upgrade: websocket".into(),
            };
        }
        EdgeDecision::Forward(Box::new(ForwardedIdentity {
            user: user_hash(&config.log_salt, &identity.sub),
            room: room.as_str().to_owned(),
            protocol: self.protocol.map(str::to_owned),
            expires_ms: Some(identity.expires_ms),
            // Anything that is not a token of ours in shape is no resume attempt at all.
            resume: self
                .resume
                .filter(|token| crate::presence::parse_resume_token(token).is_some())
                .map(str::to_owned),
            trace: self.trace.map(str::to_owned),
        }))
    }

    fn refuse(&self, code: ErrorCode, message: String) -> EdgeDecision {
        match (self.is_upgrade, close_code_for(code)) {
            (true, Some(close_code)) => EdgeDecision::RefuseUpgrade {
                code,
                message,
                close_code,
                protocol: self.protocol,
            },
            _ => EdgeDecision::HttpError { code, message },
        }
    }
}

/// What a `refresh` frame's token grants once it passed the checks of an upgrade (signature,
/// claims, the room): the salted hash of its `sub` and its deadline.
pub fn refresh_grant(config: &EdgeConfig, identity: &Identity) -> crate::id::TokenGrant {
    crate::id::TokenGrant {
        user: user_hash(&config.log_salt, &identity.sub),
        expires_ms: identity.expires_ms,
    }
}

fn route(req: &EdgeRequest<'_>) -> Result<Route, EdgeDecision> {
    let not_found = || EdgeDecision::HttpError {
        code: ErrorCode::NotFound,
        message: format!("no route for {}", shorten(req.path)),
    };
    let route = if req.path == "/healthz" {
        Route::Health
    } else if req.path == "/ice-servers" {
        Route::IceServers
    } else if let Some(raw) = req.path.strip_prefix("/ws/") {
        if raw.contains('/') {
            return Err(not_found());
        }
        if req.method != "GET" {
            return Err(method_not_allowed(req.method));
        }
        let room = RoomId::parse(raw).ok_or_else(|| EdgeDecision::HttpError {
            code: ErrorCode::BadRequest,
            message: "roomId must match ^[A-Za-z0-9_-]{1,64}$".into(),
        })?;
        Route::Room(room)
    } else {
        return Err(not_found());
    };
    if req.method != "GET" {
        return Err(method_not_allowed(req.method));
    }
    Ok(route)
}

fn method_not_allowed(method: &str) -> EdgeDecision {
    EdgeDecision::HttpError {
        code: ErrorCode::MethodNotAllowed,
        message: format!("{} is not allowed here; use GET", shorten(method)),
    }
}

struct Offered<'a> {
    signal_v1: bool,
    bearer: Option<&'a str>,
    resume: Option<&'a str>,
}

fn offered_protocols(header: Option<&str>) -> Result<Offered<'_>, EdgeDecision> {
    let mut offered = Offered {
        signal_v1: false,
        bearer: None,
        resume: None,
    };
    for entry in header.unwrap_or("").split(',').map(str::trim) {
        if entry == SUBPROTOCOL {
            offered.signal_v1 = true;
        } else if let Some(token) = entry.strip_prefix(BEARER_PROTOCOL_PREFIX) {
            offered.bearer = offered.bearer.or(Some(token));
        } else if let Some(token) = entry.strip_prefix(RESUME_PROTOCOL_PREFIX) {
            offered.resume = offered.resume.or(Some(token));
        }
    }
    if offered.bearer.is_some() && !offered.signal_v1 {
        return Err(EdgeDecision::HttpError {
            code: ErrorCode::BadRequest,
            message: format!(
                "Sec-WebSocket-Protocol offers a {BEARER_PROTOCOL_PREFIX}<jwt> without {SUBPROTOCOL}"
            ),
        });
    }
    Ok(offered)
}

/// The token from the first placement that has one: `Authorization: Bearer`, then the
/// `bearer.<jwt>` subprotocol, then `?token=`.
fn find_token<'a>(req: &EdgeRequest<'a>, protocol_bearer: Option<&'a str>) -> Option<&'a str> {
    let header = req.authorization.and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let query = req
        .query
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")));
    [header, protocol_bearer, query]
        .into_iter()
        .flatten()
        .find(|token| !token.is_empty())
}

fn shorten(s: &str) -> &str {
    s.char_indices().nth(80).map_or(s, |(i, _)| &s[..i])
}

/// The path of a serialized (WHATWG) URL, as sent: not percent-decoded. `/` when it has none.
pub fn url_path(url: &str) -> &str {
    let url = url_without_query(url);
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

/// The query of a serialized URL, without `?` (and without any `#fragment`).
pub fn url_query(url: &str) -> Option<&str> {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    url.split_once('?').map(|(_, query)| query)
}

/// A serialized URL without its query and fragment: where the Worker forwards an upgrade, so
/// that the token in `?token=` never reaches the room.
pub fn url_without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if it is a
/// valid one (not all zeros, lower-case hex, version `00` or a later one of that shape).
pub fn trace_id(traceparent: Option<&str>) -> Option<String> {
    let mut parts = traceparent?.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && hex(span, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && span.bytes().any(|b| b != b'0');
    valid.then(|| trace.to_owned())
}

/// The JSON body of an HTTP error.
pub fn error_body(code: ErrorCode, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}
