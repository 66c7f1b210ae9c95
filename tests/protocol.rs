//! Protocol v1.1 against the golden fixtures in `tests/fixtures/frames.json` (the Miniflare tests
//! replay the same file against the real Worker), plus the wire shapes of server frames and the
//! error → close-code mapping.

mod common;

use common::Harness;
use edgesignal::error::{close, close_code_for, ErrorCode};
use edgesignal::protocol::{PeerId, PING_TEXT, PONG_TEXT};
use serde_json::{json, Value};

const ROOM: &str = "fixture-room";

fn fixtures() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/frames.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn substitute(value: &Value, a: &PeerId, b: &PeerId) -> Value {
    match value {
        Value::String(s) if s == "$ANY" => value.clone(),
        Value::String(s) => Value::String(
            s.replace("$ROOM", ROOM)
                .replace("$A", a.as_str())
                .replace("$B", b.as_str()),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, a, b)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, a, b)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `expected` with "$ANY" matching any non-empty string.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(e), Value::String(a)) if e == "$ANY" => !a.is_empty(),
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|av| matches(v, av)))
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| matches(e, a))
        }
        _ => expected == actual,
    }
}

fn two_peers() -> (Harness, PeerId, PeerId) {
    let mut h = Harness::new(ROOM);
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    (h, a, b)
}

#[test]
fn every_error_fixture_gets_its_error_and_the_other_peer_nothing() {
    let fixtures = fixtures();
    let cases = fixtures["errors"].as_array().unwrap();
    assert!(cases.len() >= 25);
    for case in cases {
        let (mut h, a, b) = two_peers();
        let send = substitute(&case["send"], &a, &b);
        h.text(&a, send.as_str().unwrap());
        let mut got = h.one(&a);
        assert!(
            got["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            case["name"]
        );
        got.as_object_mut().unwrap().remove("message");
        let expected = substitute(&case["expect"], &a, &b);
        assert!(
            matches(&expected, &got),
            "{}: expected {expected}, got {got}",
            case["name"]
        );
        assert!(
            h.take(&b).is_empty(),
            "{}: B must see nothing",
            case["name"]
        );
        assert!(
            h.closed.is_empty(),
            "{}: the connection stays open",
            case["name"]
        );
        assert_eq!(h.room.members().len(), 2);
    }
}

#[test]
fn every_relay_fixture_is_delivered_exactly_and_only_to_its_target() {
    let fixtures = fixtures();
    for case in fixtures["relays"].as_array().unwrap() {
        let (mut h, a, b) = two_peers();
        let send = substitute(&case["send"], &a, &b);
        h.text(&a, &send.to_string());
        h.one(&b);
        // The frame as sent, `seq` included (the fixtures give it: B's joined was 1, this is 2).
        let got = h.raw[&b].last().unwrap().clone();
        let expected = substitute(&case["deliver"], &a, &b);
        assert!(
            matches(&expected, &got),
            "{}: expected {expected}, got {got}",
            case["name"]
        );
        assert!(
            h.take(&a).is_empty(),
            "{}: the sender gets no echo",
            case["name"]
        );
    }
}

#[test]
fn server_made_correlation_ids_are_distinct() {
    let (mut h, a, b) = two_peers();
    h.json(&a, json!({"type":"candidate","to":b,"candidate":null}));
    h.json(&a, json!({"type":"candidate","to":b,"candidate":null}));
    let frames = h.take(&b);
    assert_ne!(frames[0]["correlationId"], frames[1]["correlationId"]);
}

#[test]
fn ping_and_pong_texts_are_exact() {
    assert_eq!(
        serde_json::from_str::<Value>(PING_TEXT).unwrap(),
        json!({"type":"ping"})
    );
    assert_eq!(PONG_TEXT, r#"{"type":"pong"}"#);
    let pong = edgesignal::protocol::ServerFrame::Pong.to_text();
    assert_eq!(pong, PONG_TEXT, "the core's own pong matches the runtime's");
}

#[test]
fn refusals_map_to_one_close_code_each() {
    assert_eq!(
        close_code_for(ErrorCode::Unauthorized),
        Some(close::UNAUTHORIZED)
    );
    assert_eq!(close_code_for(ErrorCode::Forbidden), Some(close::FORBIDDEN));
    assert_eq!(
        close_code_for(ErrorCode::RoomFull),
        Some(close::TRY_AGAIN_LATER)
    );
    assert_eq!(
        (
            close::UNAUTHORIZED,
            close::FORBIDDEN,
            close::TRY_AGAIN_LATER,
            close::NORMAL
        ),
        (4401, 4403, 1013, 1000)
    );
    for per_frame in [
        ErrorCode::BadRequest,
        ErrorCode::UnknownType,
        ErrorCode::TooLarge,
        ErrorCode::TargetNotFound,
        ErrorCode::ForbiddenSender,
        ErrorCode::RoomMismatch,
    ] {
        assert_eq!(
            close_code_for(per_frame),
            None,
            "{per_frame:?} keeps the connection"
        );
    }
}

#[test]
fn error_codes_have_their_wire_spelling() {
    let all = [
        (ErrorCode::BadRequest, "bad_request", 400),
        (ErrorCode::UnknownType, "unknown_type", 400),
        (ErrorCode::TooLarge, "too_large", 413),
        (ErrorCode::TargetNotFound, "target_not_found", 404),
        (ErrorCode::ForbiddenSender, "forbidden_sender", 403),
        (ErrorCode::RoomMismatch, "room_mismatch", 400),
        (ErrorCode::RoomFull, "room_full", 503),
        (ErrorCode::RateLimited, "rate_limited", 429),
        (ErrorCode::Unauthorized, "unauthorized", 401),
        (ErrorCode::Forbidden, "forbidden", 403),
        (ErrorCode::Internal, "internal", 500),
        (ErrorCode::NotFound, "not_found", 404),
        (ErrorCode::MethodNotAllowed, "method_not_allowed", 405),
        (ErrorCode::UpgradeRequired, "upgrade_required", 426),
    ];
    for (code, text, status) in all {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(text));
        assert_eq!(code.http_status(), status, "{text}");
    }
}

#[test]
fn user_hash_is_stable_salted_and_does_not_reveal_the_sub() {
    use edgesignal::log::{line, user_hash};
    let h1 = user_hash(b"salt-1", "alice@example.com");
    assert_eq!(h1, user_hash(b"salt-1", "alice@example.com"));
    assert_ne!(h1, user_hash(b"salt-2", "alice@example.com"));
    assert_eq!(h1.len(), 16);
    let l = line("info", "peer_joined", json!({"user": h1}));
    assert!(!l.contains("alice"));
    let v: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(
        (v["level"].as_str(), v["event"].as_str()),
        (Some("info"), Some("peer_joined"))
    );
}

/// The wire text of the one frame `a`'s `text` makes the room send to `b` (log lines and data
/// points aside).
fn relayed_text(h: &mut Harness, a: &PeerId, b: &PeerId, text: &str) -> String {
    let effects: Vec<_> = h
        .room
        .on_text(a, text, h.now, &mut h.ids)
        .into_iter()
        .filter(|e| {
            !matches!(
                e,
                edgesignal::room::Effect::Log(_) | edgesignal::room::Effect::Metric(_)
            )
        })
        .collect();
    match effects.as_slice() {
        [edgesignal::room::Effect::Deliver { to, text }] if to == b => text.clone(),
        other => panic!("expected one send to B, got {other:?}"),
    }
}

#[test]
fn relayed_payloads_are_the_senders_exact_json_text() {
    let (mut h, a, b) = two_peers();
    // Unsorted keys, whitespace, escapes and non-ASCII: all kept byte for byte.
    let candidate = r#"{ "sdpMid":"0",  "candidate":"candidate:1 1 udp 2122260223 192.0.2.1 5000 typ host \u00e9 \"q\"", "sdpMLineIndex":0 }"#;
    let text = format!(
        r#"{{"type":"candidate","to":"{}","candidate":{candidate}}}"#,
        b.as_str()
    );
    let relayed = relayed_text(&mut h, &a, &b, &text);
    assert!(
        relayed.contains(&format!(r#""candidate":{candidate},"#)),
        "{relayed}"
    );
    let sdp = r#""v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=\u2014 \"x\"\r\n""#;
    let text = format!(
        r#"{{"sdp":{sdp},"type":"offer","to":"{}","correlationId":"o1"}}"#,
        b.as_str()
    );
    let relayed = relayed_text(&mut h, &a, &b, &text);
    assert!(relayed.contains(&format!(r#""sdp":{sdp},"#)), "{relayed}");
    // And the frame is still one valid JSON object with the decoded values a client expects.
    let value: Value = serde_json::from_str(&relayed).unwrap();
    assert_eq!(
        value["inner"]["sdp"],
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=\u{2014} \"x\"\r\n"
    );
    assert_eq!(value["inner"]["type"], "offer");
    assert_eq!(value["inner"]["from"], a.as_str());
    assert_eq!(value["correlationId"], "o1");
}

#[test]
fn escaped_strings_are_read_as_their_values() {
    let (mut h, a, b) = two_peers();
    // `to` spelled with a \u escape still names B; a correlationId with a quote is re-escaped.
    let escaped_to: String = b
        .as_str()
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let text = format!(
        r#"{{"type":"candidate","to":"{escaped_to}","candidate":null,"correlationId":"say \"hi\"\n"}}"#
    );
    let relayed = relayed_text(&mut h, &a, &b, &text);
    let value: Value = serde_json::from_str(&relayed).unwrap();
    assert_eq!(value["correlationId"], "say \"hi\"\n");
    assert_eq!(value["inner"]["candidate"], Value::Null);
    // The 128-byte limit is on the value, not its escaped spelling.
    let long_escaped = "\\u0041".repeat(128);
    let text = format!(
        r#"{{"type":"candidate","to":"{}","candidate":null,"correlationId":"{long_escaped}"}}"#,
        b.as_str()
    );
    let relayed = relayed_text(&mut h, &a, &b, &text);
    let value: Value = serde_json::from_str(&relayed).unwrap();
    assert_eq!(value["correlationId"], "A".repeat(128));
}

#[test]
fn a_known_field_sent_twice_is_refused_not_guessed() {
    let (mut h, a, b) = two_peers();
    let c = PeerId::from_server("ID000000000000000000000099".into());
    let text = format!(
        r#"{{"type":"offer","to":"{}","to":"{}","sdp":"v=0"}}"#,
        b.as_str(),
        c.as_str()
    );
    h.text(&a, &text);
    let error = h.one(&a);
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "bad_request");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field `to`"),
        "{error}"
    );
    assert!(h.take(&b).is_empty());
    // Unknown fields may repeat: they are ignored.
    let text = format!(
        r#"{{"type":"candidate","to":"{}","candidate":null,"x":1,"x":2}}"#,
        b.as_str()
    );
    h.text(&a, &text);
    assert_eq!(h.one(&b)["type"], "relay");
}
