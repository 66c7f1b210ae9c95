//! Configuration: Worker vars and secrets, parsed and checked once per isolate or object.
//!
//! Every setting has a default except `JWT_SECRET`. A value that does not parse is an error,
//! never silently replaced by the default: a typo in `wrangler.toml` must not quietly change a
//! limit.

use crate::auth::{Verifier, VerifyingKey, MIN_HS256_SECRET_BYTES};
use crate::call::CallLimits;
use crate::ice::{IceConfig, TurnCredentials, DEFAULT_STUN, DEFAULT_TURN_TTL_S};
use crate::keys::KeySet;
use crate::observe::Level;
use crate::origin::AllowedOrigins;
use crate::policy::{PolicyConfig, PolicyMode};
use crate::presence::PresenceLimits;
use crate::rate::RateLimits;
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

/// Largest rate or burst accepted (`RATE_*_PER_S`, `RATE_*_BURST`, `RATE_CONNECT_PER_MIN`): a
/// billion, so a benchmark can switch a limit off in effect; the bucket arithmetic saturates,
/// so no value can overflow it. Fits a 32-bit `usize` (wasm32).
pub const MAX_RATE: usize = 1_000_000_000;
/// Largest `RATE_ABUSE_STRIKES` accepted. Above 60 (the seconds in a minute) it can never be
/// reached, which switches bans off.
pub const MAX_ABUSE_STRIKES: usize = 1_000_000_000;
/// Largest `RATE_BAN_S` accepted: one year. `0` is accepted: close 4429, then no refusal.
pub const MAX_BAN_S: usize = 365 * 24 * 3600;
/// Largest `MAX_CONNECTIONS_PER_USER` accepted (the room's peer cap bounds it anyway).
pub const MAX_CONNECTIONS_PER_USER_CEILING: usize = 1_000_000;

/// A setting that is missing or does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// None of `JWT_SECRET`, `JWT_PUBLIC_KEYS` and `JWKS_URL` is set: no token could ever verify.
    MissingSecret,
    /// `JWT_SECRET` is shorter than [`MIN_HS256_SECRET_BYTES`].
    ShortSecret,
    /// Without `JWT_SECRET`, `LOG_SALT` must be set: user ids are hashed with it.
    MissingSalt,
    /// A var is set to something out of its range.
    Invalid {
        name: &'static str,
        expected: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::MissingSecret => write!(
                f,
                "no token can be verified: set JWT_SECRET, JWT_PUBLIC_KEYS or JWKS_URL"
            ),
            ConfigError::MissingSalt => write!(
                f,
                "LOG_SALT must be set when JWT_SECRET is not (user ids are hashed with it)"
            ),
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
    /// `JWKS_URL`: where public keys are fetched from ([`crate::jwks`]).
    pub jwks_url: Option<String>,
    /// The backend room policy, when `POLICY_URL` is set or a `POLICY` binding exists.
    pub policy: Option<PolicyConfig>,
    /// `ALLOWED_ORIGINS` (empty: any).
    pub origins: AllowedOrigins,
    /// STUN and TURN, for `GET /ice-servers`.
    pub ice: IceConfig,
    /// `LOG_LEVEL`.
    pub log_level: Level,
    /// Key for hashing `sub` before it reaches the room or a log (`LOG_SALT`, else `JWT_SECRET`).
    pub log_salt: Vec<u8>,
}

/// Reads the entry Worker's settings through `var` (a Worker var or secret by name), without a
/// `POLICY` service binding.
pub fn edge_config(var: impl Fn(&str) -> Option<String>) -> Result<EdgeConfig, ConfigError> {
    edge_config_with(var, false)
}

/// Reads the entry Worker's settings through `var`; `policy_binding` says whether the Worker has
/// a service binding named `POLICY`.
pub fn edge_config_with(
    var: impl Fn(&str) -> Option<String>,
    policy_binding: bool,
) -> Result<EdgeConfig, ConfigError> {
    let secret = non_empty(var("JWT_SECRET"));
    let mut keys = Vec::new();
    if let Some(secret) = &secret {
        keys.push(VerifyingKey::hs256(secret.as_bytes()).ok_or(ConfigError::ShortSecret)?);
    }
    if let Some(jwks) = non_empty(var("JWT_PUBLIC_KEYS")) {
        keys.extend(pinned_keys(&jwks)?);
    }
    let jwks_url = non_empty(var("JWKS_URL"))
        .map(|url| checked_url("JWKS_URL", url))
        .transpose()?;
    if keys.is_empty() && jwks_url.is_none() {
        return Err(ConfigError::MissingSecret);
    }
    let log_salt = non_empty(var("LOG_SALT"))
        .or(secret)
        .ok_or(ConfigError::MissingSalt)?;
    let policy_url = non_empty(var("POLICY_URL"))
        .map(|url| checked_url("POLICY_URL", url))
        .transpose()?;
    let mode = match non_empty(var("ROOM_POLICY")).as_deref().map(str::trim) {
        None | Some("claim") => PolicyMode::WithoutRoomsClaim,
        Some("always") => PolicyMode::Always,
        Some(other) => {
            return Err(ConfigError::Invalid {
                name: "ROOM_POLICY",
                expected: format!("`claim` or `always`, not `{other}`"),
            })
        }
    };
    let policy = match (policy_url, policy_binding) {
        (None, false) if mode == PolicyMode::Always => {
            return Err(ConfigError::Invalid {
                name: "ROOM_POLICY",
                expected: "`claim` unless POLICY_URL or a POLICY binding is configured".into(),
            })
        }
        (None, false) => None,
        (url, binding) => Some(PolicyConfig {
            mode,
            url: url.unwrap_or_else(|| "https://policy/".to_owned()),
            token: non_empty(var("POLICY_TOKEN")),
            binding,
        }),
    };
    let origins =
        AllowedOrigins::parse(&var("ALLOWED_ORIGINS").unwrap_or_default()).map_err(|why| {
            ConfigError::Invalid {
                name: "ALLOWED_ORIGINS",
                expected: format!("a comma-separated list of origins or patterns: {why}"),
            }
        })?;
    Ok(EdgeConfig {
        verifier: Verifier {
            keys,
            fetches_keys: jwks_url.is_some(),
            issuer: non_empty(var("JWT_ISSUER")),
            audience: non_empty(var("JWT_AUDIENCE")),
        },
        jwks_url,
        policy,
        origins,
        ice: ice_config(&var)?,
        log_level: log_level(&var)?,
        log_salt: log_salt.into_bytes(),
    })
}

/// The keys of `JWT_PUBLIC_KEYS`: every key in it must load (a key the operator pinned and this
/// service silently ignored would be a trap).
fn pinned_keys(jwks: &str) -> Result<Vec<VerifyingKey>, ConfigError> {
    let invalid = |expected: String| ConfigError::Invalid {
        name: "JWT_PUBLIC_KEYS",
        expected,
    };
    let set = KeySet::from_jwks(jwks).map_err(|why| invalid(format!("a JWKS document: {why}")))?;
    if let Some(skipped) = set.skipped.first() {
        return Err(invalid(format!(
            "a JWKS of usable verifying keys, but {skipped}"
        )));
    }
    if set.keys.is_empty() {
        return Err(invalid("a JWKS with at least one key".into()));
    }
    Ok(set.keys.into_iter().map(VerifyingKey::Public).collect())
}

/// An `https://` URL, or `http://` to loopback (local development and tests).
fn checked_url(name: &'static str, url: String) -> Result<String, ConfigError> {
    let url = url.trim().to_owned();
    let host = |rest: &str| -> String {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.starts_with('[') {
            host.split(']').next().unwrap_or("").to_owned() + "]"
        } else {
            host.split(':').next().unwrap_or("").to_ascii_lowercase()
        }
    };
    let ok = if let Some(rest) = url.strip_prefix("https://") {
        !host(rest).is_empty()
    } else if let Some(rest) = url.strip_prefix("http://") {
        matches!(host(rest).as_str(), "localhost" | "127.0.0.1" | "[::1]")
    } else {
        false
    };
    if ok {
        Ok(url)
    } else {
        Err(ConfigError::Invalid {
            name,
            expected: format!(
                "an https:// URL (http:// only to localhost), not `{}`",
                url.chars().take(80).collect::<String>()
            ),
        })
    }
}

/// Reads the room's limits (rate limits included) through `var`.
pub fn room_limits(var: impl Fn(&str) -> Option<String>) -> Result<RoomLimits, ConfigError> {
    Ok(RoomLimits {
        rate: rate_limits(&var)?,
        presence: presence_limits(&var)?,
        calls: call_limits(&var)?,
        log_level: log_level(&var)?,
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

/// Reads the abuse limits through `var` (protocol v1.1 §1). Every rate, burst, strike count
/// and connection cap is at least 1 (0 would refuse everything, forever); `RATE_BAN_S` may be 0.
pub fn rate_limits(var: impl Fn(&str) -> Option<String>) -> Result<RateLimits, ConfigError> {
    let d = RateLimits::DEFAULT;
    let rate = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
        let default = usize::try_from(default).unwrap_or(MAX_RATE);
        bounded(var(name), name, 1, MAX_RATE, default).map(|n| n as u64)
    };
    Ok(RateLimits {
        msg_per_s: rate("RATE_MSG_PER_S", d.msg_per_s)?,
        msg_burst: rate("RATE_MSG_BURST", d.msg_burst)?,
        candidate_per_s: rate("RATE_CANDIDATE_PER_S", d.candidate_per_s)?,
        candidate_burst: rate("RATE_CANDIDATE_BURST", d.candidate_burst)?,
        room_per_s: rate("RATE_ROOM_PER_S", d.room_per_s)?,
        connect_per_min: rate("RATE_CONNECT_PER_MIN", d.connect_per_min)?,
        abuse_strikes: bounded(
            var("RATE_ABUSE_STRIKES"),
            "RATE_ABUSE_STRIKES",
            1,
            MAX_ABUSE_STRIKES,
            d.abuse_strikes,
        )?,
        ban_ms: bounded(
            var("RATE_BAN_S"),
            "RATE_BAN_S",
            0,
            MAX_BAN_S,
            (d.ban_ms / 1000) as usize,
        )? as u64
            * 1000,
        max_connections_per_user: bounded(
            var("MAX_CONNECTIONS_PER_USER"),
            "MAX_CONNECTIONS_PER_USER",
            1,
            MAX_CONNECTIONS_PER_USER_CEILING,
            d.max_connections_per_user,
        )?,
    })
}

/// Reads heartbeat, resume and token-lifetime settings through `var` (protocol v1.1 §1).
/// `HEARTBEAT_TIMEOUT_MS` is 0 (off) or at least 1000; `RESUME_GRACE_MS` 0 (v1) up to an hour;
/// `RESUME_BUFFER_FRAMES` up to 4096 (0 keeps nothing).
pub fn presence_limits(
    var: impl Fn(&str) -> Option<String>,
) -> Result<PresenceLimits, ConfigError> {
    let d = PresenceLimits::DEFAULT;
    let ms = |name: &'static str, min: usize, max: usize, default: u64| {
        bounded(var(name), name, min, max, default as usize).map(|n| n as u64)
    };
    let heartbeat_timeout_ms = ms(
        "HEARTBEAT_TIMEOUT_MS",
        0,
        MAX_HEARTBEAT_TIMEOUT_MS,
        d.heartbeat_timeout_ms,
    )?;
    if heartbeat_timeout_ms != 0 && heartbeat_timeout_ms < MIN_HEARTBEAT_TIMEOUT_MS {
        return Err(ConfigError::Invalid {
            name: "HEARTBEAT_TIMEOUT_MS",
            expected: format!(
                "0 (off) or an integer from {MIN_HEARTBEAT_TIMEOUT_MS} to {MAX_HEARTBEAT_TIMEOUT_MS}, not `{heartbeat_timeout_ms}`"
            ),
        });
    }
    Ok(PresenceLimits {
        heartbeat_timeout_ms,
        resume_grace_ms: ms("RESUME_GRACE_MS", 0, MAX_RESUME_GRACE_MS, d.resume_grace_ms)?,
        resume_buffer_frames: bounded(
            var("RESUME_BUFFER_FRAMES"),
            "RESUME_BUFFER_FRAMES",
            0,
            MAX_RESUME_BUFFER_FRAMES,
            d.resume_buffer_frames,
        )?,
        token_expiry_warning_ms: ms(
            "TOKEN_EXPIRY_WARNING_MS",
            0,
            MAX_TOKEN_EXPIRY_WARNING_MS,
            d.token_expiry_warning_ms,
        )?,
    })
}

/// Reads `LOG_LEVEL` (`debug`, `info`, `warn`, `error`; default `info`).
pub fn log_level(var: impl Fn(&str) -> Option<String>) -> Result<Level, ConfigError> {
    match non_empty(var("LOG_LEVEL")) {
        None => Ok(Level::Info),
        Some(text) => Level::parse(&text).ok_or_else(|| ConfigError::Invalid {
            name: "LOG_LEVEL",
            expected: format!(
                "debug, info, warn or error, not `{}`",
                text.chars().take(20).collect::<String>()
            ),
        }),
    }
}

/// Reads `CALL_RING_TIMEOUT_MS` (1 s to 10 min) and `MAX_CALL_DURATION_MS` (1 s to 7 days)
/// through `var` (protocol v1.1 §1).
pub fn call_limits(var: impl Fn(&str) -> Option<String>) -> Result<CallLimits, ConfigError> {
    let d = CallLimits::DEFAULT;
    Ok(CallLimits {
        ring_timeout_ms: bounded(
            var("CALL_RING_TIMEOUT_MS"),
            "CALL_RING_TIMEOUT_MS",
            1_000,
            600_000,
            d.ring_timeout_ms as usize,
        )? as u64,
        max_duration_ms: bounded(
            var("MAX_CALL_DURATION_MS"),
            "MAX_CALL_DURATION_MS",
            1_000,
            7 * 86_400_000,
            d.max_duration_ms as usize,
        )? as u64,
    })
}

/// Reads `STUN_SERVERS`, `TURN_SERVER`, `TURN_USERNAME`/`TURN_CREDENTIAL`, `TURN_SECRET` and
/// `TURN_TTL_S` through `var` (protocol v1.1 §1, §5). `STUN_SERVERS` unset is Cloudflare's STUN;
/// set but empty is none. A TURN url needs credentials: `TURN_SECRET` (wins) or both static ones.
pub fn ice_config(var: impl Fn(&str) -> Option<String>) -> Result<IceConfig, ConfigError> {
    let urls = |name: &'static str, schemes: &[&str]| -> Result<Vec<String>, ConfigError> {
        let list: Vec<String> = var(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        match list
            .iter()
            .find(|u| !schemes.iter().any(|s| u.starts_with(s)))
        {
            Some(bad) => Err(ConfigError::Invalid {
                name,
                expected: format!(
                    "comma-separated {} URLs, not `{}`",
                    schemes.join("/"),
                    bad.chars().take(80).collect::<String>()
                ),
            }),
            None => Ok(list),
        }
    };
    let stun = match var("STUN_SERVERS") {
        None => vec![DEFAULT_STUN.to_owned()],
        Some(_) => urls("STUN_SERVERS", &["stun:", "stuns:"])?,
    };
    let turn = urls("TURN_SERVER", &["turn:", "turns:"])?;
    let ttl_s = bounded(
        var("TURN_TTL_S"),
        "TURN_TTL_S",
        60,
        7 * 86_400,
        DEFAULT_TURN_TTL_S as usize,
    )? as u64;
    let credentials = match (
        non_empty(var("TURN_SECRET")),
        non_empty(var("TURN_USERNAME")),
        non_empty(var("TURN_CREDENTIAL")),
    ) {
        (Some(secret), _, _) => TurnCredentials::Rest { secret, ttl_s },
        (None, Some(username), Some(credential)) => TurnCredentials::Static {
            username,
            credential,
        },
        (None, None, None) => TurnCredentials::None,
        _ => {
            return Err(ConfigError::Invalid {
                name: "TURN_USERNAME",
                expected: "set together with TURN_CREDENTIAL".into(),
            })
        }
    };
    if !turn.is_empty() && credentials == TurnCredentials::None {
        return Err(ConfigError::Invalid {
            name: "TURN_SERVER",
            expected: "set with TURN_SECRET, or with TURN_USERNAME and TURN_CREDENTIAL".into(),
        });
    }
    Ok(IceConfig {
        stun,
        turn,
        credentials,
    })
}

/// Shortest heartbeat timeout (a client pings every third of it).
pub const MIN_HEARTBEAT_TIMEOUT_MS: u64 = 1_000;
pub const MAX_HEARTBEAT_TIMEOUT_MS: usize = 3_600_000;
pub const MAX_RESUME_GRACE_MS: usize = 3_600_000;
pub const MAX_RESUME_BUFFER_FRAMES: usize = 4_096;
pub const MAX_TOKEN_EXPIRY_WARNING_MS: usize = 86_400_000;

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
