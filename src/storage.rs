//! The room's durable storage: the one module that owns the Durable Object's SQLite schema and
//! spells every SQL statement. Pure: it builds statements and reads rows as plain values; the
//! glue runs them (`sql.exec(statement, bindings)`), mapping [`SqlValue`] to the runtime's
//! values.
//!
//! Which state lives where, and why:
//! - **Per-connection buckets and notice cadence** ([`crate::rate::ConnectionLimiter`]): in
//!   memory, and in the socket's attachment only when
//!   [`needs_persisting`](crate::rate::ConnectionLimiter::needs_persisting) says so (never with
//!   the default limits, which refill within 5 s, before any eviction can happen). They die with
//!   the connection, so SQLite has nothing to do with them.
//! - **The room bucket**: in memory only. Its burst equals its rate, so it is full again within
//!   a second, long before the object can be evicted.
//! - **Strikes, bans and connect buckets** ([`crate::rate::Identities`]): here, because they
//!   must outlive both the connection (a reconnect must not clear them) and an eviction. Read
//!   once with [`LOAD`] when the object wakes, then kept in memory; written only when they
//!   change, one row per change ([`Write`]).
//! - **Calls** ([`crate::call::Call`]): one row per call, its whole state as JSON, written on
//!   every change (a call frame or a call deadline) and deleted when the call ends, so ring
//!   timeouts and call limits hold across eviction.
//! - Nothing is written per relayed frame: a passed frame changes no durable state.
//!
//! Layout: one `identity` row per identity, the whole record in one row, so any change is one
//! upsert of one row (Durable Object SQLite bills per row written) and the table is always
//! exactly the in-memory map: a write carries the record's full new state, never a delta, so
//! writes are idempotent and only the last one per identity matters. The strike seconds are one
//! text column (space-separated unix seconds; fewer than `RATE_ABUSE_STRIKES`, at most 60)
//! rather than a table of their own: a ban clears them in the same single-row write.
//! `quiet_at_ms` (when the row holds nothing any more) is computed in Rust when the row is
//! written, so [`PRUNE`] is one `DELETE` (no index: the table holds a row per recently active
//! identity, a handful) that agrees exactly with
//! [`Identities::prune`](crate::rate::Identities::prune).
//!
//! Integers: stored values are clamped to 2^53 − 1, since values cross into JavaScript as
//! numbers; with the configured limits every real value (times in ms, bucket levels) is far
//! below that, so only absurd saturated values (a ban "forever") are rounded, down to year
//! 287 396.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::rate::{Identities, IdentityRecord, Strikes, TokenBucket};

/// Statements that create the schema; run each, in order, before the first write of a wake.
/// Idempotent.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS identity (
    user TEXT PRIMARY KEY,
    strikes TEXT NOT NULL DEFAULT '',
    banned_until_ms INTEGER,
    connect_level INTEGER NOT NULL,
    connect_at_ms INTEGER NOT NULL,
    quiet_at_ms INTEGER NOT NULL
) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS away (
    peer TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    member TEXT NOT NULL
) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS kept (
    peer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (peer, seq)
) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS call (
    id TEXT PRIMARY KEY,
    call TEXT NOT NULL
) WITHOUT ROWID",
];

/// How many of the schema's tables exist (one row: `n`, from 0 to [`TABLES`]). Rooms that never
/// stored anything have none: the schema is created with the first write, not on every wake.
pub const EXISTS: &str = "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' \
     AND name IN ('identity', 'away', 'kept', 'call')";

/// The number of tables [`SCHEMA`] creates.
pub const TABLES: u32 = 4;

/// Reads every call (`crate::call::Call` JSON): a call's state, its ring and duration
/// deadlines included, must outlive an eviction.
pub const LOAD_CALLS: &str = "SELECT id, call FROM call";

/// Stores a call's whole new state (binds: id, call JSON). Calls change only on call frames
/// and deadlines, never per relayed frame.
pub const UPSERT_CALL: &str = "INSERT INTO call (id, call) VALUES (?, ?) \
     ON CONFLICT (id) DO UPDATE SET call = excluded.call";

/// Forgets an ended call (binds: id).
pub const DELETE_CALL: &str = "DELETE FROM call WHERE id = ?";

/// Reads every away member: the member's JSON (`crate::room::Member`) by peer id.
pub const LOAD_AWAY: &str = "SELECT peer, member FROM away";

/// The room id, from any away row (one row or none): after an eviction, a room whose members
/// are all away has no socket to name it, and the runtime may not say its name to an alarm.
pub const ROOM_OF_AWAY: &str = "SELECT room FROM away LIMIT 1";

/// Reads every kept frame: the peer, its `seq` and its wire text.
pub const LOAD_KEPT: &str = "SELECT peer, seq, text FROM kept";

/// Stores an away member (binds: peer, room id, member JSON).
pub const UPSERT_AWAY: &str = "INSERT INTO away (peer, room, member) VALUES (?, ?, ?) \
     ON CONFLICT (peer) DO UPDATE SET member = excluded.member";

/// Deletes an away member's row (binds: peer): it resumed, left or its grace ended.
pub const DELETE_AWAY: &str = "DELETE FROM away WHERE peer = ?";

/// Keeps one frame (binds: peer, seq, text). `seq` is never reused, so a conflict is the same
/// frame again and changes nothing.
pub const INSERT_KEPT: &str =
    "INSERT INTO kept (peer, seq, text) VALUES (?, ?, ?) ON CONFLICT DO NOTHING";

/// Keeps many frames of one peer in one statement (binds: peer, and a JSON array of
/// `[seq, text]` pairs), as a flush does: one call into the runtime instead of one per frame.
pub const INSERT_KEPT_MANY: &str = "INSERT INTO kept (peer, seq, text) \
    SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?) \
    WHERE true ON CONFLICT DO NOTHING";

/// Drops a peer's kept frames up to a `seq` (binds: peer, seq): acknowledged or overflowed.
pub const DELETE_KEPT_THROUGH: &str = "DELETE FROM kept WHERE peer = ? AND seq <= ?";

/// Drops all of a peer's kept frames (binds: peer): it is gone.
pub const DELETE_KEPT: &str = "DELETE FROM kept WHERE peer = ?";

/// Reads every identity row; columns match [`Row`]'s fields by name (so the glue can
/// `cursor.to_array::<Row>()`).
pub const LOAD: &str = "SELECT user, strikes, banned_until_ms, connect_level, connect_at_ms, \
     quiet_at_ms FROM identity";

/// Inserts or replaces one identity's row (binds: user, strikes, banned_until_ms,
/// connect_level, connect_at_ms, quiet_at_ms). An upsert rather than `INSERT OR REPLACE`, which
/// deletes and inserts: two rows written instead of one.
pub const UPSERT: &str = "INSERT INTO identity \
     (user, strikes, banned_until_ms, connect_level, connect_at_ms, quiet_at_ms) \
     VALUES (?, ?, ?, ?, ?, ?) \
     ON CONFLICT (user) DO UPDATE SET strikes = excluded.strikes, \
     banned_until_ms = excluded.banned_until_ms, connect_level = excluded.connect_level, \
     connect_at_ms = excluded.connect_at_ms, quiet_at_ms = excluded.quiet_at_ms";

/// Deletes every row that holds nothing at the bound time (binds: now_ms).
pub const PRUNE: &str = "DELETE FROM identity WHERE quiet_at_ms <= ?";

/// Largest integer stored: JavaScript's `Number.MAX_SAFE_INTEGER`.
pub const MAX_STORED_INTEGER: i64 = (1 << 53) - 1;

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    /// SQL `TEXT`.
    Text(String),
    /// SQL `INTEGER`, at most [`MAX_STORED_INTEGER`].
    Integer(i64),
    /// SQL `NULL`.
    Null,
}

/// One durable change, as the core emits it; the glue runs [`Write::statement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Store `record` as `user`'s row (its whole new state).
    Upsert {
        user: String,
        record: IdentityRecord,
    },
    /// Delete every row that holds nothing at `now_ms`.
    Prune { now_ms: u64 },
    /// Store an away member (its attachment's JSON, `crate::room::Member`).
    Away {
        peer: String,
        room: String,
        member: String,
    },
    /// Forget an away member's row.
    Back { peer: String },
    /// Keep one frame for `peer`.
    Keep {
        peer: String,
        seq: u64,
        text: String,
    },
    /// Keep several frames for `peer` (`(seq, text)`, in order): a flush.
    KeepMany {
        peer: String,
        frames: Vec<(u64, String)>,
    },
    /// Drop `peer`'s kept frames up to `seq`.
    DropKept { peer: String, through: u64 },
    /// Drop all of `peer`'s kept frames.
    ForgetKept { peer: String },
    /// Store a call's new state (`crate::call::Call` as JSON).
    Call { id: String, call: String },
    /// Forget an ended call.
    DropCall { id: String },
}

impl Write {
    /// The statement and its bindings.
    pub fn statement(&self) -> (&'static str, Vec<SqlValue>) {
        match self {
            Write::Upsert { user, record } => (
                UPSERT,
                vec![
                    SqlValue::Text(user.clone()),
                    SqlValue::Text(encode_strikes(record.strikes())),
                    record
                        .banned_until_ms()
                        .map_or(SqlValue::Null, |ms| SqlValue::Integer(stored(ms))),
                    SqlValue::Integer(stored(record.connect().level())),
                    SqlValue::Integer(stored(record.connect().at_ms())),
                    SqlValue::Integer(stored(record.quiet_at_ms())),
                ],
            ),
            Write::Prune { now_ms } => (PRUNE, vec![SqlValue::Integer(stored(*now_ms))]),
            Write::Away { peer, room, member } => (
                UPSERT_AWAY,
                vec![
                    SqlValue::Text(peer.clone()),
                    SqlValue::Text(room.clone()),
                    SqlValue::Text(member.clone()),
                ],
            ),
            Write::Back { peer } => (DELETE_AWAY, vec![SqlValue::Text(peer.clone())]),
            Write::Keep { peer, seq, text } => (
                INSERT_KEPT,
                vec![
                    SqlValue::Text(peer.clone()),
                    SqlValue::Integer(stored(*seq)),
                    SqlValue::Text(text.clone()),
                ],
            ),
            Write::KeepMany { peer, frames } => (
                INSERT_KEPT_MANY,
                vec![
                    SqlValue::Text(peer.clone()),
                    SqlValue::Text(
                        serde_json::to_string(
                            &frames
                                .iter()
                                .map(|(seq, text)| (stored(*seq), text))
                                .collect::<Vec<_>>(),
                        )
                        .unwrap_or_default(),
                    ),
                ],
            ),
            Write::DropKept { peer, through } => (
                DELETE_KEPT_THROUGH,
                vec![
                    SqlValue::Text(peer.clone()),
                    SqlValue::Integer(stored(*through)),
                ],
            ),
            Write::ForgetKept { peer } => (DELETE_KEPT, vec![SqlValue::Text(peer.clone())]),
            Write::Call { id, call } => (
                UPSERT_CALL,
                vec![SqlValue::Text(id.clone()), SqlValue::Text(call.clone())],
            ),
            Write::DropCall { id } => (DELETE_CALL, vec![SqlValue::Text(id.clone())]),
        }
    }
}

/// One row of [`LOAD`], as plain values.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Row {
    pub user: String,
    pub strikes: String,
    pub banned_until_ms: Option<i64>,
    pub connect_level: i64,
    pub connect_at_ms: i64,
    pub quiet_at_ms: i64,
}

/// One row of [`LOAD_AWAY`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AwayRow {
    pub peer: String,
    pub member: String,
}

/// The row of [`ROOM_OF_AWAY`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomRow {
    pub room: String,
}

/// One row of [`LOAD_CALLS`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallRow {
    pub id: String,
    pub call: String,
}

/// One row of [`LOAD_KEPT`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeptRow {
    pub peer: String,
    pub seq: i64,
    pub text: String,
}

/// The in-memory state from every row of [`LOAD`]. Tolerant: a negative integer reads as 0 and
/// a strike that does not parse is skipped, so a damaged row loosens a limit rather than
/// failing the room.
pub fn load_rows(rows: impl IntoIterator<Item = Row>) -> Identities {
    let records: BTreeMap<String, IdentityRecord> = rows
        .into_iter()
        .map(|row| {
            let strikes = Strikes::from_seconds(
                row.strikes
                    .split_ascii_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
            );
            let record = IdentityRecord::from_parts(
                strikes,
                row.banned_until_ms.map(loaded),
                TokenBucket::from_parts(loaded(row.connect_level), loaded(row.connect_at_ms)),
                loaded(row.quiet_at_ms),
            );
            (row.user, record)
        })
        .collect();
    Identities::from_records(records)
}

fn encode_strikes(strikes: &Strikes) -> String {
    strikes
        .seconds()
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn stored(value: u64) -> i64 {
    i64::try_from(value).map_or(MAX_STORED_INTEGER, |v| v.min(MAX_STORED_INTEGER))
}

fn loaded(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
