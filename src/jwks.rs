//! When the keys of `JWKS_URL` are fetched, and which set is used meanwhile: a pure value the
//! Worker keeps per isolate (and mirrors in the Cache API, so a new isolate starts warm).
//!
//! Invariants:
//! - A set is *fresh* for its `Cache-Control: max-age` (or `s-maxage`), bounded to
//!   [[`MIN_FRESH_MS`], [`MAX_FRESH_MS`]]; without one (or with `no-store`/`no-cache`), for the
//!   minimum. A fresh set is used without asking the provider.
//! - A token naming a `kid` the set lacks triggers at most one refetch per
//!   [`UNKNOWN_KID_REFETCH_MS`]: unknown kids cannot be used to make the Worker hammer the
//!   provider, and a key published by a rotation is picked up within that interval. A set
//!   fetched to verify a token is already the newest for that token: a kid it lacks is refused
//!   without a second fetch (and the first load does not use up the refetch).
//! - When a fetch fails (network, status, a body that is not a JWKS), the last good set stays in
//!   use for [`STALE_LIMIT_MS`] after it was fetched; attempts are then spaced by
//!   [`RETRY_AFTER_FAILURE_MS`]. With no usable set at all, a token that needs one is
//!   `unavailable`, never accepted.

use crate::keys::KeySet;
use std::rc::Rc;

/// Shortest freshness, whatever the provider says.
pub const MIN_FRESH_MS: u64 = 60_000;
/// Longest freshness, whatever the provider says: a revoked key is dropped within the hour.
pub const MAX_FRESH_MS: u64 = 3_600_000;
/// At most one refetch for unknown `kid`s per this interval.
pub const UNKNOWN_KID_REFETCH_MS: u64 = 30_000;
/// How long the last good set is used when fetches fail.
pub const STALE_LIMIT_MS: u64 = 24 * 3_600_000;
/// After a failed fetch, no other attempt before this interval.
pub const RETRY_AFTER_FAILURE_MS: u64 = 5_000;
/// How long a fetch may take before it counts as failed.
pub const FETCH_TIMEOUT_MS: u64 = 5_000;
/// Largest JWKS document read.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// How long a set fetched with `cache_control` is fresh, in ms.
pub fn freshness_ms(cache_control: Option<&str>) -> u64 {
    let mut max_age = None;
    for directive in cache_control.unwrap_or("").split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return MIN_FRESH_MS;
        }
        let seconds = directive
            .strip_prefix("s-maxage=")
            .map(|v| (true, v))
            .or_else(|| directive.strip_prefix("max-age=").map(|v| (false, v)));
        if let Some((shared, value)) = seconds {
            if let Ok(seconds) = value.trim_matches('"').parse::<u64>() {
                // `s-maxage` wins over `max-age` for a shared cache like this one.
                if shared || max_age.is_none() {
                    max_age = Some(seconds.saturating_mul(1000));
                }
            }
        }
    }
    max_age.unwrap_or(0).clamp(MIN_FRESH_MS, MAX_FRESH_MS)
}

/// A set as it was fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub keys: Rc<KeySet>,
    pub fetched_ms: u64,
    pub fresh_until_ms: u64,
}

/// One isolate's view of the fetched keys.
#[derive(Debug, Clone, Default)]
pub struct JwksCache {
    current: Option<Fetched>,
    last_kid_refetch_ms: Option<u64>,
    last_failure_ms: Option<u64>,
}

impl JwksCache {
    /// The set to verify with at `now_ms`: the last good one, unless older than
    /// [`STALE_LIMIT_MS`].
    pub fn usable(&self, now_ms: u64) -> Option<Rc<KeySet>> {
        self.current
            .as_ref()
            .filter(|f| now_ms < f.fetched_ms.saturating_add(STALE_LIMIT_MS))
            .map(|f| f.keys.clone())
    }

    /// Whether a set is fresh at `now_ms` (no fetch needed).
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|f| now_ms < f.fresh_until_ms)
    }

    /// Whether to fetch before verifying at `now_ms`: the set is not fresh and no failure is
    /// recent. For an unknown `kid`, also when fresh, at most once per
    /// [`UNKNOWN_KID_REFETCH_MS`]; a `true` answer for an unknown kid counts as that refetch.
    pub fn should_fetch(&mut self, now_ms: u64, unknown_kid: bool) -> bool {
        let failed_recently = self
            .last_failure_ms
            .is_some_and(|t| now_ms < t.saturating_add(RETRY_AFTER_FAILURE_MS));
        if failed_recently {
            return false;
        }
        if !unknown_kid {
            return !self.is_fresh(now_ms);
        }
        let allowed = self
            .last_kid_refetch_ms
            .is_none_or(|t| now_ms >= t.saturating_add(UNKNOWN_KID_REFETCH_MS));
        if allowed {
            self.last_kid_refetch_ms = Some(now_ms);
        }
        allowed
    }

    /// A set fetched from the provider at `now_ms` with `cache_control`. Answers the set as it
    /// should be stored for other isolates, or, for a document that is not a JWKS, the reason
    /// (which counts as a failed fetch).
    pub fn fetched(
        &mut self,
        now_ms: u64,
        body: &str,
        cache_control: Option<&str>,
    ) -> Result<Fetched, String> {
        if body.len() > MAX_DOCUMENT_BYTES {
            self.failed(now_ms);
            return Err(format!("the JWKS is over {MAX_DOCUMENT_BYTES} bytes"));
        }
        match KeySet::from_jwks(body) {
            Ok(keys) => {
                let fetched = Fetched {
                    keys: Rc::new(keys),
                    fetched_ms: now_ms,
                    fresh_until_ms: now_ms.saturating_add(freshness_ms(cache_control)),
                };
                self.current = Some(fetched.clone());
                self.last_failure_ms = None;
                Ok(fetched)
            }
            Err(why) => {
                self.failed(now_ms);
                Err(why)
            }
        }
    }

    /// A set another isolate fetched (read back from the shared cache): taken if newer than the
    /// one held.
    pub fn restore(&mut self, body: &str, fetched_ms: u64, fresh_until_ms: u64) {
        if self
            .current
            .as_ref()
            .is_some_and(|f| f.fetched_ms >= fetched_ms)
        {
            return;
        }
        if let Ok(keys) = KeySet::from_jwks(body) {
            self.current = Some(Fetched {
                keys: Rc::new(keys),
                fetched_ms,
                fresh_until_ms: fresh_until_ms.min(fetched_ms.saturating_add(MAX_FRESH_MS)),
            });
        }
    }

    /// A fetch that failed at `now_ms`.
    pub fn failed(&mut self, now_ms: u64) {
        self.last_failure_ms = Some(now_ms);
    }
}
