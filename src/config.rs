//! Configuration: Worker vars and secrets, parsed and checked once per isolate or object.
//!
//! Every setting has a default except `JWT_SECRET`. A value that does not parse is an error,
//! never silently replaced by the default: a typo in `wrangler.toml` must not quietly change a
//! limit.

use crate::auth::{Verifier, VerifyingKey, MIN_HS256_SECRET_BYTES};
use crate::room::RoomLimits;

/// Default `MAX_PEERS_PER_ROOM`.
pub const DEFAULT_MAX_PEERS: usize = 8;
/// Default `MAX_FRAME_BYTES` (64 KiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest `MAX_PEERS_PER_ROOM` accepted: a room is for a small call, not a broadcast.
pub const MAX_PEERS_CEILING: usize = 256;
/// Largest `MAX_FRAME_BYTES` accepted (1 MiB); the runtime's own limit is far larger.
pub const MAX_FRAME_BYTES_CEILING: usize = 1024 * 1024;
/// Smallest `MAX_FRAME_BYTES` accepted: room for an SDP offer of a data-channel-only call.
pub const MIN_FRAME_BYTES: usize = 1024;

/// A setting that is missing or does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `JWT_SECRET` is not set.
    MissingSecret,
    /// `JWT_SECRET` is shorter than [`MIN_HS256_SECRET_BYTES`].
    ShortSecret,
    /// A var is set to something out of its range.
    Invalid {
        name: &'static str,
        expected: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::MissingSecret => write!(f, "JWT_SECRET is not set"),
            ConfigError::ShortSecret => write!(
                f,
                "JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes"
            ),
            ConfigError::Invalid { name, expected } => write!(f, "{name} must be {expected}"),
        }
    }
}

/// What the entry Worker needs.
#[derive(Clone)]
pub struct EdgeConfig {
    pub verifier: Verifier,
    /// Key for hashing `sub` before it reaches the room or a log (`LOG_SALT`, else `JWT_SECRET`).
    pub log_salt: Vec<u8>,
}

/// Reads the entry Worker's settings through `var` (a Worker var or secret by name).
pub fn edge_config(var: impl Fn(&str) -> Option<String>) -> Result<EdgeConfig, ConfigError> {
    let secret = non_empty(var("JWT_SECRET")).ok_or(ConfigError::MissingSecret)?;
    let key = VerifyingKey::hs256(secret.as_bytes()).ok_or(ConfigError::ShortSecret)?;
    let log_salt = non_empty(var("LOG_SALT")).unwrap_or_else(|| secret.clone());
    Ok(EdgeConfig {
        verifier: Verifier {
            keys: vec![key],
            issuer: non_empty(var("JWT_ISSUER")),
            audience: non_empty(var("JWT_AUDIENCE")),
        },
        log_salt: log_salt.into_bytes(),
    })
}

/// Reads the room's limits through `var`.
pub fn room_limits(var: impl Fn(&str) -> Option<String>) -> Result<RoomLimits, ConfigError> {
    Ok(RoomLimits {
        max_peers: bounded(
            var("MAX_PEERS_PER_ROOM"),
            "MAX_PEERS_PER_ROOM",
            1,
            MAX_PEERS_CEILING,
            DEFAULT_MAX_PEERS,
        )?,
        max_frame_bytes: bounded(
            var("MAX_FRAME_BYTES"),
            "MAX_FRAME_BYTES",
            MIN_FRAME_BYTES,
            MAX_FRAME_BYTES_CEILING,
            DEFAULT_MAX_FRAME_BYTES,
        )?,
    })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn bounded(
    value: Option<String>,
    name: &'static str,
    min: usize,
    max: usize,
    default: usize,
) -> Result<usize, ConfigError> {
    let Some(value) = non_empty(value) else {
        return Ok(default);
    };
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or(ConfigError::Invalid {
            name,
            expected: format!("an integer from {min} to {max}, not `{value}`"),
        })
}
