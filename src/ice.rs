//! ICE servers for the clients (protocol v1.1 §5): STUN urls, and TURN with static or ephemeral
//! (TURN REST, coturn `use-auth-secret`) credentials. Pure: time comes in as an argument.
//!
//! Invariants:
//! - The list is an `RTCIceServer[]` ready for `new RTCPeerConnection({iceServers})`: one STUN
//!   entry with every `STUN_SERVERS` url, one TURN entry with every `TURN_SERVER` url.
//! - With `TURN_SECRET`, credentials are ephemeral: `username = "<unix expiry s>:<user>"` (the
//!   salted hash of `sub`, never the plain `sub`), `credential = base64(HMAC-SHA1(secret,
//!   username))`, valid for `TURN_TTL_S`; `iceServersExpireAt` says when (ms). A connected peer
//!   gets fresh ones ([`refresh_at`]) a tenth of the TTL before they expire.
//! - Without ephemeral credentials there is no expiry and nothing to refresh.

use base64ct::{Base64, Encoding};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

/// Default `STUN_SERVERS`.
pub const DEFAULT_STUN: &str = "stun:stun.cloudflare.com:3478";
/// Default `TURN_TTL_S`: a day.
pub const DEFAULT_TURN_TTL_S: u64 = 86_400;

/// TURN credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TurnCredentials {
    /// No TURN entry credentials (a TURN url without them is still listed).
    #[default]
    None,
    /// `TURN_USERNAME` / `TURN_CREDENTIAL`.
    Static {
        username: String,
        credential: String,
    },
    /// `TURN_SECRET`, `TURN_TTL_S`.
    Rest { secret: String, ttl_s: u64 },
}

/// Where clients find STUN and TURN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceConfig {
    pub stun: Vec<String>,
    pub turn: Vec<String>,
    pub credentials: TurnCredentials,
}

impl Default for IceConfig {
    fn default() -> Self {
        IceConfig {
            stun: vec![DEFAULT_STUN.to_owned()],
            turn: Vec::new(),
            credentials: TurnCredentials::None,
        }
    }
}

/// One `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The servers for `user` (the salted hash of `sub`) at `now_ms`, and when their credentials
/// expire (ms; none for static or no credentials).
pub fn ice_servers(config: &IceConfig, user: &str, now_ms: u64) -> (Vec<IceServer>, Option<u64>) {
    let mut servers = Vec::new();
    if !config.stun.is_empty() {
        servers.push(IceServer {
            urls: config.stun.clone(),
            username: None,
            credential: None,
        });
    }
    let mut expires = None;
    if !config.turn.is_empty() {
        let (username, credential) = match &config.credentials {
            TurnCredentials::None => (None, None),
            TurnCredentials::Static {
                username,
                credential,
            } => (Some(username.clone()), Some(credential.clone())),
            TurnCredentials::Rest { secret, ttl_s } => {
                let expiry_s = now_ms / 1000 + ttl_s;
                expires = Some(expiry_s * 1000);
                let username = format!("{expiry_s}:{user}");
                let credential = turn_rest_credential(secret, &username);
                (Some(username), Some(credential))
            }
        };
        servers.push(IceServer {
            urls: config.turn.clone(),
            username,
            credential,
        });
    }
    (servers, expires)
}

/// `base64(HMAC-SHA1(secret, username))`: the TURN REST password coturn's `use-auth-secret`
/// checks.
pub fn turn_rest_credential(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    Base64::encode_string(&mac.finalize().into_bytes())
}

/// When a peer holding credentials that expire at `expires_ms` gets fresh ones: a tenth of the
/// TTL before (at least a second before).
pub fn refresh_at(config: &IceConfig, expires_ms: u64) -> Option<u64> {
    match config.credentials {
        TurnCredentials::Rest { ttl_s, .. } if !config.turn.is_empty() => {
            Some(expires_ms.saturating_sub((ttl_s * 100).max(1000)))
        }
        _ => None,
    }
}
