//! Structured logs: one JSON object per line, so `wrangler tail` and log pipelines can filter by
//! `event`. A user's `sub` is never logged; [`user_hash`] stands in for it. Tokens and query
//! strings are never logged.

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

/// A stable, salted pseudonym for `sub`: the first 16 hex digits of HMAC-SHA256(salt, sub).
/// Without the salt it cannot be reversed or linked to the `sub`.
pub fn user_hash(salt: &[u8], sub: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes keys of any length");
    mac.update(sub.as_bytes());
    mac.finalize().into_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A log line: `{"level":…,"event":…, …fields}`.
pub fn line(level: &str, event: &str, fields: Value) -> String {
    let mut object = Map::new();
    object.insert("level".into(), json!(level));
    object.insert("event".into(), json!(event));
    if let Value::Object(fields) = fields {
        object.extend(fields);
    }
    Value::Object(object).to_string()
}
