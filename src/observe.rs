//! Logs and metrics as effects of the core. Pure.
//!
//! Invariants:
//! - The core decides what is logged and measured: it returns [`LogLine`]s and [`DataPoint`]s as
//!   effects (`crate::room::Effect::Log`, `Effect::Metric`); the glue only writes them (a console
//!   line filtered by `LOG_LEVEL`, an Analytics Engine `writeDataPoint`).
//! - No line or point ever holds a token, an SDP, a candidate or a plain `sub`: users appear only
//!   as the salted hash ([`crate::log::user_hash`]), peers by their random ids.
//! - Per-frame events (each relayed offer, answer, candidate) are `debug` lines; per-frame counts
//!   are aggregated in memory and written as one point per type when the room is quiet
//!   ([`MessageCounts`]), so a busy room pays neither a line nor a point per candidate.
//! - One data point layout for every metric (docs/observability.md): `index1` = room id,
//!   `blob1` = metric, `blob2` = room id, `blob3` = detail (frame type, reason, outcome),
//!   `blob4` = user hash (or empty), `double1` = value, `double2` = how many events it stands for.

use serde::Serialize;
use serde_json::{Map, Value};

/// How much a line matters (`LOG_LEVEL`: lines below it are not written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text.trim().to_ascii_lowercase().as_str() {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" | "warning" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One structured log line: `{"level","event", …fields}`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: Level,
    pub event: &'static str,
    pub fields: Map<String, Value>,
}

impl LogLine {
    pub fn new(level: Level, event: &'static str) -> LogLine {
        LogLine {
            level,
            event,
            fields: Map::new(),
        }
    }

    /// The same line with one more field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> LogLine {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON text of the line.
    pub fn to_text(&self) -> String {
        let mut object = Map::new();
        object.insert("level".into(), Value::from(self.level.as_str()));
        object.insert("event".into(), Value::from(self.event));
        object.extend(self.fields.clone());
        Value::Object(object).to_string()
    }
}

/// What a data point measures (`blob1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Gauge: connected members of the room after a change.
    Connections,
    /// Gauge: members of the room (away ones included) after a change.
    RoomMembers,
    /// Counter: client frames by type (`blob3`), aggregated.
    Messages,
    /// Counter: frames dropped or refused for abuse, by reason (`blob3`), per user.
    Drops,
    /// Counter: call outcomes (`blob3`: `accepted`, `rejected:<reason>`, `ended:<reason>`).
    Calls,
    /// A connection's life from admission to departure, ms.
    ConnectionDurationMs,
    /// From a frame's arrival to the addressee's `ack` of its `seq`, ms (the newest frame an
    /// `ack` covers).
    RelayLatencyMs,
    /// From a pair's first `offer` to its `answer`, ms.
    NegotiationMs,
    /// From `call_initiate` to the first `call_accepted`, ms.
    CallSetupMs,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Connections => "connections",
            Metric::RoomMembers => "room_members",
            Metric::Messages => "messages",
            Metric::Drops => "drops",
            Metric::Calls => "calls",
            Metric::ConnectionDurationMs => "connection_duration_ms",
            Metric::RelayLatencyMs => "relay_latency_ms",
            Metric::NegotiationMs => "negotiation_ms",
            Metric::CallSetupMs => "call_setup_ms",
        }
    }
}

/// One Analytics Engine data point (layout in the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    pub metric: Metric,
    pub room: String,
    pub detail: String,
    pub user: String,
    pub value: f64,
    pub count: f64,
}

impl DataPoint {
    pub fn new(metric: Metric, room: &str, value: f64) -> DataPoint {
        DataPoint {
            metric,
            room: room.to_owned(),
            detail: String::new(),
            user: String::new(),
            value,
            count: 1.0,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> DataPoint {
        self.detail = detail.into();
        self
    }

    pub fn user(mut self, user: &str) -> DataPoint {
        self.user = user.to_owned();
        self
    }

    /// `writeDataPoint`'s argument: `{indexes, blobs, doubles}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "indexes": [self.room],
            "blobs": [self.metric.as_str(), self.room, self.detail, self.user],
            "doubles": [self.value, self.count],
        })
    }

    /// The debug line that echoes it (`LOG_LEVEL=debug`): what was written, readable in logs.
    pub fn to_line(&self) -> LogLine {
        LogLine::new(Level::Debug, "metric")
            .with("metric", self.metric.as_str())
            .with("room", self.room.as_str())
            .with("detail", self.detail.as_str())
            .with("user", self.user.as_str())
            .with("value", self.value)
            .with("count", self.count)
    }
}

/// Client frames counted by type since the last flush: the per-frame part of `messages`,
/// kept in memory and written as one point per type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageCounts {
    counts: Vec<(&'static str, u64)>,
}

/// A type's count is written at once when it reaches this, so a room that is never quiet still
/// reports.
pub const MESSAGE_FLUSH_COUNT: u64 = 10_000;

impl MessageCounts {
    /// Counts one frame of `kind`; answers its count when it reached [`MESSAGE_FLUSH_COUNT`]
    /// (then reset).
    pub fn count(&mut self, kind: &'static str) -> Option<u64> {
        let slot = match self.counts.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None => {
                self.counts.push((kind, 0));
                self.counts.len() - 1
            }
        };
        self.counts[slot].1 += 1;
        if self.counts[slot].1 >= MESSAGE_FLUSH_COUNT {
            let n = self.counts[slot].1;
            self.counts.remove(slot);
            return Some(n);
        }
        None
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Everything counted, and reset.
    pub fn take(&mut self) -> Vec<(&'static str, u64)> {
        std::mem::take(&mut self.counts)
    }
}
