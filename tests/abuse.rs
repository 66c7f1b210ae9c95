//! Abuse control as a client sees it (protocol v1.1 §2), with fake peers and a fake clock:
//! floods are dropped with notices that add up, strikes end in a 4429 and a ban that survives a
//! rebuild from storage, and per-identity connect limits. The arithmetic itself is tested in
//! `tests/rate.rs`.

mod common;

use common::{Harness, Table};
use edgesignal::protocol::{PeerId, RoomId};
use edgesignal::rate::RateLimits;
use edgesignal::room::{Room, RoomLimits};
use serde_json::{json, Value};

fn pair() -> (Harness, PeerId, PeerId) {
    let mut h = Harness::new("call");
    let (a, b) = (h.join("alice"), h.join("bob"));
    h.take(&a);
    h.take(&b);
    h.stored.clear();
    (h, a, b)
}

fn candidate(to: &PeerId, i: usize) -> Value {
    json!({"type":"candidate","to":to,"candidate":{"candidate":format!("candidate:{i} 1 udp 1 192.0.2.1 {i} typ host")}})
}

fn codes(frames: &[Value]) -> Vec<(String, String)> {
    frames
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap_or("").to_owned(),
                f["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_burst_of_1000_candidates_delivers_the_burst_and_the_warnings_add_up() {
    let (mut h, a, b) = pair();
    for i in 0..1000 {
        h.json(&a, candidate(&b, i));
    }
    let delivered = h.take(&b).len();
    assert_eq!(delivered, 100, "the candidate burst, no more");
    let warnings = h.take(&a);
    assert_eq!(codes(&warnings), [("warning".into(), "throttled".into())]);
    assert_eq!(warnings[0]["dropped"], 1);
    assert_eq!(warnings[0]["retryAfterMs"], 50);
    // An offer and an answer right after the flood: their own budget, relayed at once.
    h.json(&a, json!({"type":"offer","to":b,"sdp":"v=0"}));
    h.json(&b, json!({"type":"answer","to":a,"sdp":"v=0"}));
    assert_eq!(h.one(&b)["inner"]["type"], "offer");
    assert_eq!(h.one(&a)["inner"]["type"], "answer");
    // A second later the next candidate passes, and the warning owed for the silent drops
    // comes first: every dropped candidate is told, exactly once.
    h.advance(1000);
    h.json(&a, candidate(&b, 1000));
    let owed = h.one(&a);
    assert_eq!(
        (owed["type"].as_str(), owed["code"].as_str()),
        (Some("warning"), Some("throttled"))
    );
    assert_eq!(owed["dropped"], 899);
    assert_eq!(owed["retryAfterMs"], 0);
    assert_eq!(1 + 899 + delivered, 1000);
    assert_eq!(
        h.one(&b)["inner"]["candidate"]["candidate"],
        "candidate:1000 1 udp 1 192.0.2.1 1000 typ host"
    );
}

#[test]
fn a_message_flood_gets_rate_limited_with_retry_after_and_then_passes() {
    let (mut h, a, b) = pair();
    for i in 0..100 {
        h.json(&a, json!({"type":"offer","to":b,"sdp":format!("v=0 {i}")}));
    }
    assert_eq!(h.take(&b).len(), 100);
    assert!(h.take(&a).is_empty());
    h.json(
        &a,
        json!({"type":"offer","to":b,"sdp":"over","correlationId":"c-over"}),
    );
    let error = h.one(&a);
    assert_eq!(error["code"], "rate_limited");
    assert_eq!(error["retryAfterMs"], 50);
    assert!(h.take(&b).is_empty(), "the dropped frame is not relayed");
    // Within the same second: dropped silently (no amplification).
    h.json(&a, json!({"type":"offer","to":b,"sdp":"over again"}));
    assert!(h.take(&a).is_empty() && h.take(&b).is_empty());
    // After retryAfterMs the next frame goes through.
    h.advance(50);
    h.json(&a, json!({"type":"offer","to":b,"sdp":"after"}));
    assert_eq!(h.one(&b)["inner"]["sdp"], "after");
    assert!(h.take(&a).is_empty());
}

#[test]
fn binary_and_malformed_floods_cost_the_message_budget_not_an_error_each() {
    let (mut h, a, b) = pair();
    for _ in 0..150 {
        h.text(&a, "{not json");
        let effects = h.room.on_binary(&a, h.now);
        h.apply(effects);
    }
    let frames = h.take(&a);
    // 100 refusals (the burst), then one rate_limited, then silence.
    assert_eq!(
        frames.iter().filter(|f| f["code"] == "bad_request").count(),
        100
    );
    assert_eq!(
        frames
            .iter()
            .filter(|f| f["code"] == "rate_limited")
            .count(),
        1
    );
    assert_eq!(frames.len(), 101);
    assert!(h.take(&b).is_empty());
}

/// Floods `from` for `seconds` distinct seconds: one frame over the budget each second.
fn strike_seconds(h: &mut Harness, from: &PeerId, to: &PeerId, seconds: usize) {
    for _ in 0..seconds {
        for i in 0..120 {
            h.json(
                from,
                json!({"type":"offer","to":to,"sdp":format!("v=0 {i}")}),
            );
        }
        h.advance(1000);
    }
}

#[test]
fn strikes_close_with_4429_and_ban_the_identity_across_a_rebuild_until_it_expires() {
    let (mut h, a, b) = pair();
    let mut table = Table::default();
    strike_seconds(&mut h, &a, &b, 9);
    assert!(h.closed.is_empty(), "nine strikes: still connected");
    table.apply(std::mem::take(&mut h.stored));
    strike_seconds(&mut h, &a, &b, 1);
    assert_eq!(h.closed.get(&a), Some(&4429));
    let last = h.take(&a).pop().unwrap();
    assert_eq!(last["code"], "rate_limited");
    assert_eq!(last["retryAfterMs"], 60_000, "RATE_BAN_S");
    let b_frames = h.take(&b);
    assert_eq!(b_frames.last().unwrap()["type"], "peer_left");
    assert_eq!(b_frames.last().unwrap()["reason"], "disconnect");
    table.apply(std::mem::take(&mut h.stored));
    // The room object is evicted and rebuilt from its sockets and its storage.
    let members = h.room.members().to_vec();
    h.room = Room::rebuild(RoomId::parse("call").unwrap(), common::LIMITS, members)
        .with_identities(table.load());
    let (refusal, code) = h.try_join("alice").unwrap_err();
    assert_eq!(refusal["code"], "rate_limited");
    assert_eq!(code, 4429);
    assert!(refusal["retryAfterMs"].as_u64().unwrap() > 50_000);
    assert!(
        h.take(&b).is_empty(),
        "members hear nothing of a refused upgrade"
    );
    // Another identity is admitted throughout.
    let c = h.join("carol");
    assert_eq!(h.take(&b)[0]["type"], "peer_joined");
    h.take(&c);
    // RATE_BAN_S later, alice is admitted again.
    h.advance(60_000);
    assert!(h.try_join("alice").is_ok());
}

#[test]
fn nine_strikes_spread_over_more_than_a_minute_do_not_ban() {
    let (mut h, a, b) = pair();
    for _ in 0..12 {
        strike_seconds(&mut h, &a, &b, 1);
        h.advance(6_000);
    }
    assert!(h.closed.is_empty());
}

#[test]
fn connect_rate_and_connection_cap_per_identity() {
    let limits = RoomLimits {
        max_peers: 64,
        ..common::LIMITS
    };
    let mut h = Harness::with_limits("busy", limits);
    // Four connections of one identity: the fifth is refused with connection_limit and 1013.
    let mine: Vec<PeerId> = (0..4).map(|_| h.join("dave")).collect();
    let (refusal, code) = h.try_join("dave").unwrap_err();
    assert_eq!(
        (refusal["code"].as_str(), code),
        (Some("connection_limit"), 1013)
    );
    assert!(refusal.get("retryAfterMs").is_none());
    // Closed connections free their seats; 30 upgrades a minute, then rate_limited and 4429.
    for peer in &mine {
        h.close(peer, 1000);
    }
    let mut admitted = mine.len();
    loop {
        match h.try_join("dave") {
            Ok(peer) => {
                admitted += 1;
                h.close(&peer, 1000);
            }
            Err((refusal, code)) => {
                assert_eq!(
                    (refusal["code"].as_str(), code),
                    (Some("rate_limited"), 4429)
                );
                assert_eq!(refusal["retryAfterMs"], 2000, "one token per 2 s at 30/min");
                break;
            }
        }
        assert!(admitted <= 30);
    }
    assert_eq!(admitted, 30);
    h.advance(2000);
    assert!(h.try_join("dave").is_ok());
    assert!(
        h.try_join("erin").is_ok(),
        "another identity has its own budget"
    );
}

#[test]
fn limits_are_configurable() {
    let limits = RoomLimits {
        rate: RateLimits {
            candidate_per_s: 1000,
            candidate_burst: 5,
            ..RateLimits::DEFAULT
        },
        ..common::LIMITS
    };
    let mut h = Harness::with_limits("tight", limits);
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    for i in 0..10 {
        h.json(&a, candidate(&b, i));
    }
    assert_eq!(h.take(&b).len(), 5);
    h.advance(1);
    h.json(&a, candidate(&b, 10));
    assert_eq!(h.take(&b).len(), 1, "refilled at 1000/s");
}

#[test]
fn a_slow_refilling_bucket_rides_in_the_attachment_and_survives_a_rebuild() {
    // 1 candidate/s with a burst of 100: emptied, it needs 100 s to refill, longer than an
    // eviction takes, so the limiter is persisted with the member and restored by a rebuild.
    let limits = RoomLimits {
        rate: RateLimits {
            candidate_per_s: 1,
            candidate_burst: 100,
            ..RateLimits::DEFAULT
        },
        ..common::LIMITS
    };
    let mut h = Harness::with_limits("slow", limits);
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    for i in 0..100 {
        h.json(&a, candidate(&b, i));
    }
    assert_eq!(h.take(&b).len(), 100);
    let attached = h
        .persisted
        .iter()
        .rev()
        .find(|m| m.peer_id == a)
        .expect("persisted");
    assert!(
        attached.limiter.is_some(),
        "the attachment carries the limiter"
    );
    // Evicted: rebuilt from the attachments, 15 s later (15 tokens refilled, not 100).
    let mut members: Vec<_> = h.room.members().to_vec();
    for m in &mut members {
        if m.peer_id == a {
            *m = attached.clone();
        }
    }
    h.room = Room::rebuild(RoomId::parse("slow").unwrap(), limits, members);
    h.advance(15_000);
    for i in 100..130 {
        h.json(&a, candidate(&b, i));
    }
    assert_eq!(
        h.take(&b).len(),
        15,
        "the bucket came back as it was, not full"
    );
    assert_eq!(h.take(&a)[0]["code"], "throttled");
}
