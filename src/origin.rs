//! The browser origin allow-list (`ALLOWED_ORIGINS`): the defence against cross-site WebSocket
//! hijacking, where a page on another site opens a socket with the user's cookies or a token it
//! got hold of.
//!
//! Invariants:
//! - An empty list allows every origin. Otherwise an upgrade whose `Origin` header matches no
//!   entry is refused (`forbidden`, close 4403) before its token is looked at.
//! - A request without `Origin` is not a browser's cross-site request (browsers always send it
//!   on WebSocket handshakes): it is allowed, so servers, agents and native apps are unaffected.
//! - Entries are origins (`https://app.example.com`, `http://localhost:5173`) compared
//!   ASCII-case-insensitively, or patterns whose host starts with `*.`
//!   (`https://*.example.com`), which match any subdomain at any depth but not the domain
//!   itself, with the same scheme and port. `*` alone allows every origin. `null` (the origin
//!   of sandboxed frames and `file:` pages) matches only an entry `null`.

/// A parsed `ALLOWED_ORIGINS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Any,
    Exact(String),
    /// `scheme://*.` + `suffix` (host suffix, with the port if any).
    Subdomains {
        scheme: String,
        suffix: String,
    },
}

impl AllowedOrigins {
    /// Parses a comma-separated list; an entry that is not an origin or a pattern is an error
    /// naming it.
    pub fn parse(list: &str) -> Result<AllowedOrigins, String> {
        let mut entries = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let entry = raw.to_ascii_lowercase();
            let entry = entry.strip_suffix('/').unwrap_or(&entry).to_owned();
            if entry == "*" {
                entries.push(Entry::Any);
                continue;
            }
            if entry == "null" {
                entries.push(Entry::Exact(entry));
                continue;
            }
            let Some((scheme, host)) = entry.split_once("://") else {
                return Err(format!(
                    "`{raw}` is not an origin (scheme://host[:port]) or a pattern (scheme://*.host)"
                ));
            };
            let bad = |c: char| !(c.is_ascii_alphanumeric() || "-.:[]".contains(c));
            if let Some(suffix) = host.strip_prefix("*.") {
                if suffix.is_empty() || suffix.contains(bad) || scheme.is_empty() {
                    return Err(format!("`{raw}` is not a valid origin pattern"));
                }
                entries.push(Entry::Subdomains {
                    scheme: scheme.to_owned(),
                    suffix: format!(".{suffix}"),
                });
            } else if host.is_empty() || host.contains(bad) || scheme.is_empty() {
                return Err(format!("`{raw}` is not a valid origin"));
            } else {
                entries.push(Entry::Exact(entry));
            }
        }
        Ok(AllowedOrigins { entries })
    }

    /// Whether an upgrade with this `Origin` header (if any) may proceed.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.entries.is_empty() {
            return true;
        }
        let origin = origin.trim().to_ascii_lowercase();
        self.entries.iter().any(|entry| match entry {
            Entry::Any => true,
            Entry::Exact(exact) => *exact == origin,
            Entry::Subdomains { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|rest| rest.strip_prefix("://"))
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                .is_some_and(|label| {
                    !label.is_empty()
                        && label.split('.').all(|l| {
                            !l.is_empty()
                                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        })
                }),
        })
    }
}
