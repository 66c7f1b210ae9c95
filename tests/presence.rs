//! Protocol v1.1 §3–§4 in the pure core, with a fake clock and fake sockets: seq and ack,
//! away and resume with replay, heartbeats, roles, token lifetime, the deadline scheduler, and
//! what survives an eviction.

mod common;

use common::{Harness, LIMITS, V1};
use edgesignal::id::TokenGrant;
use edgesignal::presence::{PresenceLimits, FLUSH_DELAY_MS};
use edgesignal::protocol::PeerId;
use edgesignal::room::{Arrival, RoomLimits};
use edgesignal::schedule::{Alarm, Due};
use edgesignal::storage::Write;
use serde_json::{json, Value};

const GRACE: u64 = 30_000;
const HEARTBEAT: u64 = 60_000;

fn limits(presence: PresenceLimits) -> RoomLimits {
    RoomLimits { presence, ..LIMITS }
}

/// A and B in `lobby`, their first frames taken and acknowledged (A: joined and B's
/// peer_joined; B: joined), as a v1.1 client does.
fn pair() -> (Harness, PeerId, PeerId) {
    pair_with(LIMITS)
}

fn pair_with(limits: RoomLimits) -> (Harness, PeerId, PeerId) {
    let mut h = Harness::with_limits("lobby", limits);
    let (a, b) = (h.join("a"), h.join("b"));
    h.json(&a, json!({"type":"ack","seq":2}));
    h.json(&b, json!({"type":"ack","seq":1}));
    h.take(&a);
    h.take(&b);
    (h, a, b)
}

fn offer(h: &mut Harness, from: &PeerId, to: &PeerId, sdp: &str) {
    h.json(from, json!({"type":"offer","to":to,"sdp":sdp}));
}

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect()
}

/// Everything `peer` received since `from` (as sent, `seq` included).
fn raw_since(h: &Harness, peer: &PeerId, from: usize) -> Vec<Value> {
    h.raw.get(peer).map_or(Vec::new(), |r| r[from..].to_vec())
}

fn raw_len(h: &Harness, peer: &PeerId) -> usize {
    h.raw.get(peer).map_or(0, Vec::len)
}

#[test]
fn every_sequenced_frame_counts_up_per_peer_and_errors_and_pong_have_no_seq() {
    let mut h = Harness::new("lobby");
    let a = h.join("a");
    let b = h.join("b");
    offer(&mut h, &b, &a, "v=0");
    h.json(&a, json!({"type":"offer","to":"nobody","sdp":"x"}));
    h.text(&a, r#"{ "type": "ping" }"#);
    offer(&mut h, &b, &a, "v=1");
    let raw = raw_since(&h, &a, 0);
    let types: Vec<&str> = raw.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["joined", "peer_joined", "relay", "error", "pong", "relay"]
    );
    assert_eq!(h.seqs[&a], [1, 2, 3, 4], "1, 2, 3, … with no gaps");
    assert!(raw[3].get("seq").is_none() && raw[4].get("seq").is_none());
    assert_eq!(h.seqs[&b], [1], "per peer");
}

#[test]
fn an_abrupt_close_makes_the_peer_away_then_gone_after_the_grace() {
    let (mut h, a, b) = pair();
    h.close(&a, 1006);
    assert_eq!(
        h.one(&b),
        json!({"type":"peer_away","roomId":"lobby","peerId":a,"reason":"disconnect"})
    );
    assert_eq!(h.closed.get(&a), Some(&1000), "the close is still answered");
    // Still a member: a newcomer sees it away, and a relay to it is accepted.
    let c = h.join("c");
    assert_eq!(h.take(&c)[0]["peers"][0]["status"], "away");
    h.take(&b);
    offer(&mut h, &b, &a, "v=0");
    assert!(
        h.take(&b).is_empty(),
        "no target_not_found for an away peer"
    );
    // The grace ends at its deadline, not before.
    assert!(h
        .room
        .deadlines()
        .iter()
        .any(|d| d.due == Due::GraceEnd(a.clone()) && d.at_ms == common::NOW_MS + GRACE));
    h.now += GRACE - 1;
    h.alarm(&[]);
    assert!(h.take(&b).is_empty());
    h.now += 1;
    h.alarm(&[]);
    assert_eq!(
        h.one(&b),
        json!({"type":"peer_left","roomId":"lobby","peerId":a,"reason":"disconnect"})
    );
    assert!(h.room.member(&a).is_none());
    // What was kept for it is dropped from storage too.
    assert!(h.durable.away.is_empty(), "{:?}", h.durable.away);
    assert!(
        h.durable.kept.keys().all(|(p, _)| p != a.as_str()),
        "{:?}",
        h.durable.kept
    );
    offer(&mut h, &b, &a, "late");
    assert_eq!(h.one(&b)["code"], "target_not_found");
}

#[test]
fn with_a_grace_of_0_a_disconnect_is_peer_left_at_once() {
    let (mut h, a, b) = pair_with(V1);
    h.close(&a, 1006);
    assert_eq!(h.one(&b)["type"], "peer_left");
    assert!(h.stored.is_empty(), "v1 stores nothing");
}

#[test]
fn leave_is_gone_at_once_with_no_grace() {
    let (mut h, a, b) = pair();
    h.json(&a, json!({"type":"leave","roomId":"lobby"}));
    assert_eq!(h.one(&b)["reason"], "leave");
    h.close(&a, 1000);
    assert!(h.take(&b).is_empty(), "no peer_away after a leave");
}

#[test]
fn resume_takes_the_peer_back_and_replays_what_was_kept_in_order_with_original_seq() {
    let (mut h, a, b) = pair();
    let token = h.token_of(&a);
    h.close(&a, 1006);
    h.take(&b);
    for i in 0..3 {
        offer(&mut h, &b, &a, &format!("v={i}"));
    }
    h.json(&b, json!({"type":"candidate","to":a,"candidate":null}));
    // Each frame for an away peer is durable at once.
    assert_eq!(h.durable.kept.len(), 4);
    let before = raw_len(&h, &a);
    let (again, resumed) = h.resume("a", &token);
    assert!(resumed);
    assert_eq!(again, a, "the same peer id");
    let got = raw_since(&h, &a, before);
    assert_eq!(got[0]["type"], "joined");
    assert_eq!(got[0]["resumed"], true);
    let fresh = got[0]["resumeToken"].as_str().unwrap();
    assert_ne!(fresh, token, "a fresh resume token");
    // A had acked 1 (joined) and 2 (peer_joined): the kept frames are 3..=6; joined takes 7.
    assert_eq!(got[0]["seq"], 7);
    assert_eq!(seqs(&got[1..]), [3, 4, 5, 6]);
    let sdps: Vec<&Value> = got[1..].iter().map(|f| &f["inner"]).collect();
    assert_eq!(sdps[0]["sdp"], "v=0");
    assert_eq!(sdps[2]["sdp"], "v=2");
    assert_eq!(sdps[3]["candidate"], Value::Null);
    assert_eq!(
        h.one(&b),
        json!({"type":"peer_back","roomId":"lobby","peerId":a})
    );
    // The old token is spent; the away row is gone; kept frames stay until acked.
    assert!(h.durable.away.is_empty());
    assert_eq!(h.durable.kept.len(), 4);
    h.json(&a, json!({"type":"ack","seq":7}));
    assert!(h.durable.kept.is_empty(), "an ack drops what storage kept");
    // New frames continue the sequence.
    offer(&mut h, &b, &a, "after");
    assert_eq!(h.seqs[&a].last(), Some(&8));
}

#[test]
fn acked_frames_are_not_replayed_and_an_ack_beyond_the_last_seq_is_bad_request() {
    let (mut h, a, b) = pair();
    for i in 0..4 {
        offer(&mut h, &b, &a, &format!("v={i}"));
    }
    // A got 1 joined, 2 peer_joined, 3..=6 relays.
    h.json(&a, json!({"type":"ack","seq":4}));
    assert!(
        h.take(&a).iter().all(|f| f["type"] == "relay"),
        "acks are never answered"
    );
    h.json(&a, json!({"type":"ack","seq":99,"correlationId":"k"}));
    let err = h.one(&a);
    assert_eq!(
        (err["code"].as_str(), err["correlationId"].as_str()),
        (Some("bad_request"), Some("k"))
    );
    assert!(err["message"].as_str().unwrap().contains("99"));
    for bad in [
        json!({"type":"ack"}),
        json!({"type":"ack","seq":-1}),
        json!({"type":"ack","seq":"3"}),
        json!({"type":"ack","seq":1.5}),
    ] {
        h.json(&a, bad.clone());
        assert_eq!(h.one(&a)["code"], "bad_request", "{bad}");
    }
    let token = h.token_of(&a);
    h.close(&a, 1006);
    let before = raw_len(&h, &a);
    h.resume("a", &token);
    let got = raw_since(&h, &a, before);
    assert_eq!(
        got.len(),
        3,
        "joined, then only the relays after the ack: {got:?}"
    );
    assert_eq!(seqs(&got[1..]), [5, 6]);
    assert!(h.take(&b).iter().any(|f| f["type"] == "peer_back"));
}

#[test]
fn acks_are_never_rate_limited() {
    let (mut h, a, b) = pair();
    offer(&mut h, &b, &a, "v=0");
    h.take(&a);
    // Far beyond the message bucket (burst 100), all at the same instant.
    for _ in 0..1000 {
        h.json(&a, json!({"type":"ack","seq":3}));
    }
    assert!(h.take(&a).is_empty(), "no rate_limited, no answer at all");
    // The budget is untouched: a real frame still goes through.
    offer(&mut h, &a, &b, "v=1");
    assert_eq!(h.take(&b).len(), 1);
    // A frame that only looks like an ack pays like any other.
    for _ in 0..150 {
        h.json(&a, json!({"type":"ack","seq":99}));
    }
    assert!(h.take(&a).iter().any(|f| f["code"] == "rate_limited"));
}

#[test]
fn resume_while_the_old_socket_is_open_replaces_it_and_the_others_see_nothing() {
    let (mut h, a, b) = pair();
    offer(&mut h, &b, &a, "unacked");
    let token = h.token_of(&a);
    let (again, resumed) = h.resume("a", &token);
    assert!(resumed && again == a);
    assert_eq!(
        h.replaced,
        vec![a.clone()],
        "the old socket is closed 4409 by the glue"
    );
    assert!(
        h.take(&b).is_empty(),
        "no peer_away, no peer_left, no peer_back"
    );
    // The close event of the replaced socket changes nothing.
    let effects = h.room.on_close(&a, Some(0), 1006, h.now);
    h.apply(effects);
    assert!(h.take(&b).is_empty());
    assert!(h.room.member(&a).unwrap().away.is_none());
    // The unacked relay was replayed on the new socket.
    let frames = h.take(&a);
    assert_eq!(frames[0]["type"], "joined");
    assert_eq!(frames[1]["inner"]["sdp"], "unacked");
}

#[test]
fn any_other_resume_attempt_is_a_fresh_join_and_never_disturbs_the_owner() {
    let (mut h, a, b) = pair();
    let token = h.token_of(&a);
    let mut other = Harness::new("other");
    let x = other.join("a");
    let other_room_token = other.token_of(&x);
    for attempt in [
        token.clone(),                                              // another user's token
        format!("{}.WRONGSECRET000000000000000000000", a.as_str()), // forged secret
        "garbage".to_owned(),
        other_room_token,                // a token from another room
        format!("{}x", "a".repeat(600)), // too long
    ] {
        let user = if attempt == token { "mallory" } else { "a" };
        let arrival = Arrival {
            resume: Some(attempt.clone()),
            ..Arrival::new(user)
        };
        let (peer, resumed) = h.try_arrive(arrival).unwrap();
        assert!(!resumed, "{attempt}");
        assert_ne!(peer, a);
        assert_eq!(h.take(&peer)[0]["resumed"], false);
        assert!(h.replaced.is_empty() && !h.closed.contains_key(&a));
        assert_eq!(h.take(&a).len(), 1, "the owner sees only a peer_joined");
        h.json(&peer, json!({"type":"leave","roomId":"lobby"}));
        h.take(&a);
        h.take(&b);
    }
    // After the grace the peer is gone: its token gives a fresh join.
    h.close(&a, 1006);
    h.now += GRACE;
    h.alarm(&[]);
    let (peer, resumed) = h.resume("a", &token);
    assert!(!resumed && peer != a);
}

#[test]
fn an_overflowing_buffer_is_reported_as_a_replay_gap_right_after_joined() {
    let presence = PresenceLimits {
        resume_buffer_frames: 4,
        ..PresenceLimits::DEFAULT
    };
    let (mut h, a, b) = pair_with(limits(presence));
    h.json(&a, json!({"type":"ack","seq":2}));
    let token = h.token_of(&a);
    h.close(&a, 1006);
    for i in 0..7 {
        h.advance(100);
        offer(&mut h, &b, &a, &format!("v={i}"));
    }
    // seq 3..=9 were kept; the buffer holds the last 4 (6..=9); 3..=5 were lost.
    assert_eq!(h.durable.kept.len(), 4, "storage holds exactly the buffer");
    let before = raw_len(&h, &a);
    h.resume("a", &token);
    let got = raw_since(&h, &a, before);
    assert_eq!(got[0]["type"], "joined");
    assert_eq!(got[0]["seq"], 10);
    assert_eq!(got[1]["type"], "warning");
    assert_eq!(got[1]["code"], "replay_gap");
    assert_eq!(
        (got[1]["from"].as_u64(), got[1]["to"].as_u64()),
        (Some(3), Some(5))
    );
    assert_eq!(got[1]["seq"], 11);
    assert_eq!(seqs(&got[2..]), [6, 7, 8, 9]);
    // An ack past the gap clears it: the next resume reports none.
    h.json(&a, json!({"type":"ack","seq":11}));
    let token = h.token_of(&a);
    let before = raw_len(&h, &a);
    h.resume("a", &token);
    assert_eq!(raw_since(&h, &a, before).len(), 1);
}

#[test]
fn a_promptly_acknowledging_peer_costs_no_storage_write() {
    let (mut h, a, b) = pair();
    h.stored.clear();
    for i in 0..1000 {
        h.advance(50);
        offer(&mut h, &b, &a, &format!("v={i}"));
        let last = *h.seqs[&a].last().unwrap();
        h.advance(20);
        h.json(&a, json!({"type":"ack","seq":last}));
        if h.room.next_deadline().is_some_and(|at| at <= h.now) {
            h.alarm(&[]);
        }
    }
    h.take(&a);
    assert!(
        h.stored.is_empty(),
        "{:?}",
        &h.stored[..h.stored.len().min(3)]
    );
    assert_eq!(h.durable.rows_written, 0);
}

#[test]
fn frames_unacknowledged_for_the_flush_delay_are_made_durable() {
    let (mut h, a, b) = pair();
    h.stored.clear();
    offer(&mut h, &b, &a, "v=0");
    assert!(h.stored.is_empty(), "not at once");
    let flush = h
        .room
        .deadlines()
        .into_iter()
        .find(|d| d.due == Due::Flush)
        .unwrap();
    assert_eq!(flush.at_ms, h.now + FLUSH_DELAY_MS);
    h.now = flush.at_ms;
    h.alarm(&[]);
    let kept: Vec<_> = h.durable.kept.values().collect();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].contains(r#""sdp":"v=0""#) && kept[0].ends_with(r#","seq":3}"#));
    // The attachment was written back with the cursor, so `seq` survives an eviction.
    assert_eq!(h.attachments[&a].cursor.sent, 3);
    // Nothing else pending: the only deadline left is the heartbeat sweep.
    let dues: Vec<Due> = h.room.deadlines().into_iter().map(|d| d.due).collect();
    assert_eq!(dues, [Due::HeartbeatSweep]);
}

#[test]
fn the_room_evicted_during_the_grace_replays_every_frame_on_resume() {
    let (mut h, a, b) = pair();
    offer(&mut h, &b, &a, "before");
    let token = h.token_of(&a);
    h.advance(1000);
    h.close(&a, 1006);
    for i in 0..5 {
        offer(&mut h, &b, &a, &format!("away-{i}"));
    }
    h.take(&b);
    // Let the flush run (as the alarm would), then idle until the runtime evicts the room.
    while h.run_until_idle_or(FLUSH_DELAY_MS) {}
    h.advance(10_000);
    h.evict();
    assert!(
        h.room.member(&a).unwrap().away.is_some(),
        "the away member came back from storage"
    );
    let before = raw_len(&h, &a);
    let (again, resumed) = h.resume("a", &token);
    assert!(resumed && again == a);
    let got = raw_since(&h, &a, before);
    let sdps: Vec<&str> = got[1..]
        .iter()
        .map(|f| f["inner"]["sdp"].as_str().unwrap())
        .collect();
    assert_eq!(
        sdps,
        ["before", "away-0", "away-1", "away-2", "away-3", "away-4"]
    );
    assert_eq!(seqs(&got[1..]), [3, 4, 5, 6, 7, 8]);
    assert_eq!(got[0]["seq"], 9, "seq is never reused across the eviction");
    assert_eq!(h.one(&b)["type"], "peer_back");
}

#[test]
fn the_grace_ends_on_time_after_an_eviction() {
    let (mut h, a, b) = pair();
    h.close(&a, 1006);
    h.take(&b);
    h.advance(5_000);
    h.evict();
    assert!(
        h.room
            .deadlines()
            .iter()
            .any(|d| d.due == Due::GraceEnd(a.clone()) && d.at_ms == common::NOW_MS + GRACE),
        "the deadline is derived from storage"
    );
    h.now = common::NOW_MS + GRACE;
    h.alarm(&[]);
    assert_eq!(h.one(&b)["reason"], "disconnect");
}

#[test]
fn unacked_frames_of_a_connected_peer_survive_an_eviction_and_are_replayed_on_resume() {
    let (mut h, a, b) = pair();
    for i in 0..3 {
        offer(&mut h, &b, &a, &format!("v={i}"));
    }
    while h.run_until_idle_or(FLUSH_DELAY_MS) {}
    h.advance(10_000);
    h.evict();
    // A's old socket still looks open; it reconnects with its token.
    let token = h.token_of(&a);
    let before = raw_len(&h, &a);
    let (_, resumed) = h.resume("a", &token);
    assert!(resumed);
    assert_eq!(h.replaced, vec![a.clone()]);
    let got = raw_since(&h, &a, before);
    assert_eq!(seqs(&got[1..]), [3, 4, 5]);
    assert_eq!(got[0]["seq"], 6);
}

#[test]
fn a_silent_socket_is_closed_4408_while_a_pinging_one_stays() {
    let (mut h, a, b) = pair();
    let t0 = h.now;
    // B pings every 20 s (the runtime answers; the room only sees the timestamps at sweeps).
    let mut last_ping = t0;
    while h.now < t0 + 3 * HEARTBEAT {
        let next = h.room.next_deadline().unwrap();
        while last_ping + 20_000 <= next {
            last_ping += 20_000;
        }
        h.now = next;
        h.alarm(&[(b.clone(), last_ping)]);
        if h.closed.contains_key(&a) {
            break;
        }
    }
    assert_eq!(h.closed.get(&a), Some(&4408));
    let silent_for = h.now - t0;
    assert!(
        (HEARTBEAT..=HEARTBEAT + HEARTBEAT / 2).contains(&silent_for),
        "closed after {silent_for} ms of silence"
    );
    assert!(!h.closed.contains_key(&b));
    assert!(h
        .take(&b)
        .iter()
        .any(|f| f == &json!({"type":"peer_away","roomId":"lobby","peerId":a,"reason":"timeout"})));
    // And after the grace: peer_left with the same reason.
    h.now += GRACE;
    h.alarm(&[(b.clone(), h.now)]);
    assert_eq!(h.take(&b).last().unwrap()["reason"], "timeout");
}

#[test]
fn any_frame_counts_as_a_heartbeat() {
    let (mut h, a, b) = pair();
    for _ in 0..10 {
        h.advance(HEARTBEAT - 1000);
        h.text(&a, r#"{"type":"ping","x":1}"#);
        h.json(&b, json!({"type":"join","roomId":"lobby"}));
        if h.room.next_deadline().is_some_and(|at| at <= h.now) {
            h.alarm(&[]);
        }
    }
    assert!(h.closed.is_empty());
}

#[test]
fn an_idle_healthy_room_wakes_at_most_once_per_half_timeout() {
    // Two members that ping every HEARTBEAT_TIMEOUT_MS / 3, for an hour.
    let (mut h, a, b) = pair();
    let t0 = h.now;
    let hour = 3_600_000;
    while let Some(next) = h.room.next_deadline() {
        if next > t0 + hour {
            break;
        }
        h.now = next;
        let ping = t0 + (h.now - t0) / 20_000 * 20_000;
        h.alarm(&[(a.clone(), ping), (b.clone(), ping)]);
    }
    assert!(h.closed.is_empty());
    let per_hour = h.alarms;
    println!("# wake-ups per hour of an idle room with 2 pinging members (HEARTBEAT_TIMEOUT_MS=60000): {per_hour}");
    assert!(per_hour <= hour / (HEARTBEAT / 2), "{per_hour} wake-ups");
    assert!(per_hour >= hour / HEARTBEAT, "the sweep runs: {per_hour}");
}

#[test]
fn an_empty_room_has_no_deadline_and_heartbeats_can_be_off() {
    let (mut h, a, b) = pair_with(V1);
    assert!(h.room.next_deadline().is_some());
    h.json(&a, json!({"type":"leave","roomId":"lobby"}));
    h.json(&b, json!({"type":"leave","roomId":"lobby"}));
    assert_eq!(h.room.next_deadline(), None, "no alarm at all");
    let off = PresenceLimits {
        heartbeat_timeout_ms: 0,
        ..PresenceLimits::DEFAULT
    };
    let (mut h, _, _) = pair_with(limits(off));
    // Only the write-back of the attachments (their `seq` moved) is pending; then nothing.
    while h.run_until_idle_or(FLUSH_DELAY_MS) {}
    assert_eq!(h.room.next_deadline(), None);
}

#[test]
fn roles_the_first_member_is_polite_and_roles_do_not_change_on_resume() {
    let mut h = Harness::new("lobby");
    let a = h.join("a");
    let b = h.join("b");
    let c = h.join("c");
    assert_eq!(h.take(&a)[1]["polite"], true);
    let joined_c = &h.take(&c)[0];
    assert_eq!(joined_c["peers"][0]["polite"], false);
    assert_eq!(joined_c["peers"][1]["polite"], false);
    let joined_b = h.take(&b);
    assert_eq!(joined_b[0]["peers"][0]["polite"], false, "B toward A");
    assert_eq!(joined_b[1]["polite"], true, "B toward the later C");
    let token = h.token_of(&a);
    h.close(&a, 1006);
    h.resume("a", &token);
    let joined = &h.take(&a)[0];
    assert_eq!(
        joined["peers"],
        json!([
            {"peerId":b,"metadata":{},"status":"available","polite":true},
            {"peerId":c,"metadata":{},"status":"available","polite":true},
        ])
    );
}

fn with_deadline(h: &mut Harness, user: &str, expires_ms: u64) -> PeerId {
    let arrival = Arrival {
        expires_ms: Some(expires_ms),
        ..Arrival::new(user)
    };
    h.try_arrive(arrival).unwrap().0
}

#[test]
fn a_token_warns_before_its_deadline_and_ends_the_connection_4401_at_it() {
    let mut h = Harness::new("lobby");
    let b = h.join("b");
    let deadline = h.now + 120_000;
    let a = with_deadline(&mut h, "a", deadline);
    h.take(&a);
    h.take(&b);
    h.now = deadline - 60_000 - 1;
    h.alarm(&[]);
    assert!(h.take(&a).is_empty());
    h.now += 1;
    h.alarm(&[]);
    let warning = h.one(&a);
    assert_eq!(warning["code"], "token_expiring");
    assert_eq!(warning["expiresAt"], deadline);
    h.now = deadline;
    h.alarm(&[]);
    let raw = h.raw[&a].last().unwrap().clone();
    assert_eq!(raw["code"], "unauthorized");
    assert!(raw.get("seq").is_none());
    assert_eq!(h.closed.get(&a), Some(&4401));
    assert_eq!(
        h.one(&b),
        json!({"type":"peer_left","roomId":"lobby","peerId":a,"reason":"leave"})
    );
    assert!(h.room.member(&a).is_none(), "no grace");
}

#[test]
fn a_token_inside_the_warning_window_is_warned_right_after_joined() {
    let mut h = Harness::new("lobby");
    let deadline = h.now + 30_000;
    let a = with_deadline(&mut h, "a", deadline);
    let frames = h.take(&a);
    assert_eq!(frames[0]["type"], "joined");
    assert_eq!(
        (frames[1]["code"].as_str(), frames[1]["expiresAt"].as_u64()),
        (Some("token_expiring"), Some(deadline))
    );
}

#[test]
fn refresh_moves_the_deadline_and_a_bad_token_changes_nothing() {
    let mut h = Harness::new("lobby");
    let deadline = h.now + 100_000;
    let a = with_deadline(&mut h, "a", deadline);
    h.take(&a);
    let later = h.now + 900_000;
    h.ids.1.insert(
        "good".into(),
        TokenGrant {
            user: "a".into(),
            expires_ms: later,
        },
    );
    h.ids.1.insert(
        "bob's".into(),
        TokenGrant {
            user: "b".into(),
            expires_ms: later,
        },
    );
    for bad in ["nonsense", "bob's"] {
        h.json(
            &a,
            json!({"type":"refresh","token":bad,"correlationId":"r"}),
        );
        let err = h.one(&a);
        assert_eq!(
            (err["code"].as_str(), err["correlationId"].as_str()),
            (Some("unauthorized"), Some("r"))
        );
        assert_eq!(h.room.member(&a).unwrap().expires_ms, Some(deadline));
    }
    h.json(&a, json!({"type":"refresh"}));
    assert_eq!(h.one(&a)["code"], "bad_request");
    h.json(&a, json!({"type":"refresh","token":"good"}));
    assert_eq!(h.one(&a), json!({"type":"refreshed","expiresAt":later}));
    h.now = deadline;
    h.alarm(&[(a.clone(), h.now)]);
    assert!(h.closed.is_empty(), "the old deadline no longer applies");
    let due: Vec<Due> = h.room.deadlines().into_iter().map(|d| d.due).collect();
    assert!(due.contains(&Due::TokenWarning(a.clone())));
    assert!(h
        .room
        .deadlines()
        .iter()
        .any(|d| d.due == Due::TokenExpiry(a.clone()) && d.at_ms == later));
}

#[test]
fn the_alarm_is_set_only_when_it_must_move_earlier() {
    let mut alarm = Alarm::default();
    assert_eq!(alarm.plan(None), None);
    assert_eq!(alarm.plan(Some(100)), Some(100));
    assert_eq!(alarm.plan(Some(150)), None, "the pending alarm fires first");
    assert_eq!(alarm.plan(Some(100)), None);
    assert_eq!(alarm.plan(Some(90)), Some(90));
    alarm.fired();
    assert_eq!(alarm.pending(), None);
    assert_eq!(alarm.plan(Some(150)), Some(150));
}

#[test]
fn the_resume_token_is_bound_to_the_identity_even_with_the_right_secret() {
    let (mut h, a, _) = pair();
    let token = h.token_of(&a);
    h.close(&a, 1006);
    let arrival = Arrival {
        resume: Some(token.clone()),
        ..Arrival::new("b")
    };
    let (peer, resumed) = h.try_arrive(arrival).unwrap();
    assert!(!resumed && peer != a);
    assert!(
        h.room.member(&a).unwrap().away.is_some(),
        "the owner stays away, resumable"
    );
    let (again, resumed) = h.resume("a", &token);
    assert!(resumed && again == a);
}

#[test]
fn a_resume_is_not_refused_for_a_full_room_but_pays_the_connect_rate() {
    let full = RoomLimits {
        max_peers: 2,
        ..LIMITS
    };
    let (mut h, a, _) = pair_with(full);
    let token = h.token_of(&a);
    h.close(&a, 1006);
    assert_eq!(
        h.try_join("c").unwrap_err().1,
        1013,
        "the away member keeps its seat"
    );
    let (_, resumed) = h.resume("a", &token);
    assert!(resumed);
    assert!(h.stored.iter().any(|w| matches!(w, Write::Back { .. })));
}

#[test]
fn a_banned_identity_cannot_resume() {
    let strict = RoomLimits {
        rate: edgesignal::rate::RateLimits {
            msg_per_s: 1,
            msg_burst: 1,
            abuse_strikes: 1,
            ..edgesignal::rate::RateLimits::DEFAULT
        },
        ..LIMITS
    };
    let (mut h, a, b) = pair_with(strict);
    let token = h.token_of(&a);
    // Two frames at once: the second is dropped, the one strike bans.
    h.advance(5_000);
    offer(&mut h, &a, &b, "1");
    offer(&mut h, &a, &b, "2");
    assert_eq!(h.closed.get(&a), Some(&4429));
    let arrival = Arrival {
        resume: Some(token),
        ..Arrival::new("a")
    };
    let (frame, code) = h.try_arrive(arrival).unwrap_err();
    assert_eq!((frame["code"].as_str(), code), (Some("rate_limited"), 4429));
}

#[test]
fn a_busy_room_stores_nothing_and_a_quiet_one_stores_everything_before_it_could_be_evicted() {
    // A never acknowledges (a v1 client). While frames keep coming, nothing is written: the
    // room cannot be evicted while busy. Once it has been quiet for the flush delay, every
    // unacknowledged frame is in storage, long before the ~10 s an eviction needs.
    let (mut h, a, b) = pair();
    h.stored.clear();
    for i in 0..200 {
        h.advance(60);
        offer(&mut h, &b, &a, &format!("v={i}"));
        if h.room.next_deadline().is_some_and(|at| at <= h.now) {
            h.alarm(&[]);
        }
    }
    assert!(h.stored.is_empty(), "busy: no write");
    let quiet = h.room.next_deadline().unwrap();
    assert_eq!(quiet, h.now + FLUSH_DELAY_MS);
    h.now = quiet;
    h.alarm(&[]);
    assert_eq!(h.durable.kept.len(), 200);
    h.advance(10_000);
    h.evict();
    let token = h.token_of(&a);
    let before = raw_len(&h, &a);
    h.resume("a", &token);
    assert_eq!(
        raw_since(&h, &a, before).len(),
        201,
        "joined and all 200 frames"
    );
}

#[test]
fn heartbeats_and_token_deadlines_hold_across_an_eviction() {
    let mut h = Harness::new("lobby");
    let deadline = h.now + 200_000;
    let a = with_deadline(&mut h, "a", deadline);
    let b = h.join("b");
    h.take(&a);
    h.take(&b);
    // B speaks at +20 s (a real frame, not a ping); the flush writes its last frame time back.
    h.advance(20_000);
    h.json(&b, json!({"type":"join","roomId":"lobby"}));
    while h.run_until_idle_or(FLUSH_DELAY_MS) {}
    h.advance(10_000);
    h.evict();
    // A pings all along (the runtime answers); B is silent from +20 s.
    let t0 = common::NOW_MS;
    while !h.closed.contains_key(&b) {
        let next = h.room.next_deadline().unwrap();
        assert!(next < t0 + 200_000, "B was never closed");
        h.now = next;
        h.alarm(&[(a.clone(), h.now)]);
    }
    let silent = h.now - (t0 + 20_000);
    assert!(
        (HEARTBEAT..=HEARTBEAT + HEARTBEAT / 2).contains(&silent),
        "closed after {silent} ms of silence: B's last frame came back from its attachment"
    );
    // A's token deadline was in its attachment too: warned, then ended at the deadline.
    while !h.closed.contains_key(&a) {
        let next = h.room.next_deadline().unwrap();
        h.now = next;
        h.alarm(&[(a.clone(), h.now)]);
    }
    assert_eq!((h.now, h.closed[&a]), (deadline, 4401));
    assert!(h.raw[&a].iter().any(|f| f["code"] == "token_expiring"));
}

#[test]
fn after_a_crash_the_frames_kept_for_peers_whose_sockets_are_gone_are_dropped() {
    let (mut h, a, b) = pair();
    offer(&mut h, &b, &a, "unacked");
    while h.run_until_idle_or(FLUSH_DELAY_MS) {}
    assert_eq!(h.durable.kept.len(), 1);
    // A crash or redeploy closes every socket without a handler: no attachment comes back.
    h.attachments.clear();
    h.evict();
    assert!(h.room.members().is_empty());
    assert!(
        h.durable.kept.is_empty(),
        "orphaned rows are deleted on load"
    );
    // A's resume is a fresh join: its sequence is over, and it knows (`resumed: false`).
    let token = format!("{}.x", a.as_str());
    let (_, resumed) = h.resume("a", &token);
    assert!(!resumed);
}

/// The outbox finds the oldest frame storage lacks without scanning on every frame: frames are
/// kept in send order with times that never go down, so it is the first one not durable, also
/// when the buffer overflows, a clock steps back, frames are acked or flushed.
#[test]
fn outbox_pending_since_follows_the_oldest_unstored_frame() {
    use edgesignal::presence::{Cursor, Outbox};
    let mut outbox = Outbox::default();
    let mut cursor = Cursor::default();
    let mut keep = |outbox: &mut Outbox, seq: u64, at: u64, durable: bool| {
        outbox.keep(seq, format!("f{seq}"), at, durable, 3, &mut cursor)
    };
    assert_eq!(outbox.pending_since(), None);
    keep(&mut outbox, 1, 100, false);
    keep(&mut outbox, 2, 90, false); // the clock stepped back: held level at 100
    assert_eq!(outbox.pending_since(), Some(100));
    keep(&mut outbox, 3, 120, false);
    keep(&mut outbox, 4, 130, false); // overflow: 1 is lost, 2 (held at 100) is the oldest
    assert_eq!(outbox.pending_since(), Some(100));
    keep(&mut outbox, 5, 140, false); // 2 is lost too
    assert_eq!(outbox.pending_since(), Some(120));
    let flushed = outbox.flush(125);
    assert_eq!(flushed, vec![(3, "f3".to_owned())]);
    assert_eq!(outbox.pending_since(), Some(130));
    outbox.ack(4, &mut Cursor::default());
    assert_eq!(outbox.pending_since(), Some(140));
    keep(&mut outbox, 6, 150, true); // stored at once (an away peer): nothing new pending
    assert_eq!(outbox.pending_since(), Some(140));
    outbox.ack(5, &mut Cursor::default());
    assert_eq!(outbox.pending_since(), None);
    assert_eq!(outbox.frames().map(|k| k.seq).collect::<Vec<_>>(), vec![6]);
}

/// The flush deadline is the glue's in-memory timer's, every other deadline the alarm's: a busy
/// room does not set the runtime's alarm (a storage write and an event of its own) again every
/// `FLUSH_DELAY_MS` only to find itself still busy.
#[test]
fn the_flush_deadline_is_kept_apart_from_the_alarms() {
    let (mut h, a, b) = pair();
    offer(&mut h, &b, &a, "v=0");
    let deadlines = h.room.deadlines();
    let at = |due: Due| deadlines.iter().find(|d| d.due == due).map(|d| d.at_ms);
    assert_eq!(h.room.flush_deadline(), Some(h.now + FLUSH_DELAY_MS));
    assert_eq!(h.room.flush_deadline(), at(Due::Flush));
    assert_eq!(h.room.next_alarm_deadline(), at(Due::HeartbeatSweep));
    assert!(h.room.next_alarm_deadline() > h.room.flush_deadline());
    assert_eq!(h.room.next_deadline(), h.room.flush_deadline());
    // Busy: every frame moves the flush, never the alarm.
    let alarm = h.room.next_alarm_deadline();
    for i in 0..5 {
        h.advance(500);
        offer(&mut h, &b, &a, &format!("v={i}"));
        assert_eq!(h.room.flush_deadline(), Some(h.now + FLUSH_DELAY_MS));
        assert_eq!(h.room.next_alarm_deadline(), alarm);
    }
    // Quiet: the flush runs (as the timer would) and nothing is left for it.
    h.now += FLUSH_DELAY_MS;
    h.alarm(&[]);
    assert_eq!(h.room.flush_deadline(), None);
    assert_eq!(h.room.next_deadline(), h.room.next_alarm_deadline());
}
