//! edgesignal: WebRTC signaling on Cloudflare Workers.
//!
//! The crate is a pure core that makes every decision and is tested natively, plus thin wasm
//! glue (`glue`, compiled only for `wasm32`) that translates between the Workers runtime and the
//! core:
//! - [`edge`]: routes a request, finds and verifies its token, decides whether the upgrade may
//!   reach the room's Durable Object;
//! - [`auth`]: JWT verification and room authorization; [`keys`]: verifying keys and JWKS
//!   documents; [`jwks`]: when fetched keys are refetched; [`policy`]: the backend room policy;
//!   [`origin`]: the browser origin allow-list;
//! - [`room`]: a room's membership and relay as an event-driven value that returns effects;
//! - [`rate`]: abuse control (buckets, strikes, bans, connect limits); [`storage`]: the room's
//!   SQLite schema and statements;
//! - [`protocol`]: the v1 frames; [`error`]: codes, statuses and close codes;
//! - [`config`]: Worker vars parsed and checked; [`id`]: ULIDs from injected time and entropy;
//!   [`log`]: structured log lines.

pub mod auth;
pub mod call;
pub mod config;
pub mod edge;
pub mod error;
pub mod ice;
pub mod id;
pub mod jwks;
pub mod keys;
pub mod log;
pub mod observe;
pub mod origin;
pub mod policy;
pub mod presence;
pub mod protocol;
pub mod rate;
pub mod room;
pub mod schedule;
pub mod storage;

#[cfg(target_arch = "wasm32")]
mod glue;
