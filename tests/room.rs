//! Room state-machine scenarios with fake peers: what each client observes.

mod common;

use common::{CountingIds, Harness};
use edgesignal::protocol::{PeerId, RoomId};
use edgesignal::room::{Room, RoomLimits};
use serde_json::json;

#[test]
fn newcomer_gets_joined_with_the_others_oldest_first_and_others_get_peer_joined() {
    let mut h = Harness::new("lobby");
    let a = h.join("user-a");
    let token = h.token_of(&a);
    assert_eq!(
        h.one(&a),
        json!({"type":"joined","roomId":"lobby","peerId":a,"peers":[],"resumed":false,"resumeToken":token,
            // The default ICE servers: Cloudflare's STUN, no TURN, so no expiry (v1.1 §5).
            "iceServers":[{"urls":["stun:stun.cloudflare.com:3478"]}]})
    );
    let b = h.join("user-b");
    let c = h.join("user-c");
    // The member that was there first is polite toward the newcomer (v1.1 §4).
    assert_eq!(
        h.take(&a),
        vec![
            json!({"type":"peer_joined","roomId":"lobby","peerId":b,"metadata":{},"status":"available","polite":true}),
            json!({"type":"peer_joined","roomId":"lobby","peerId":c,"metadata":{},"status":"available","polite":true}),
        ]
    );
    let joined = h.take(&c).remove(0);
    assert_eq!(
        joined["peers"],
        json!([{"peerId":a,"metadata":{},"status":"available","polite":false},{"peerId":b,"metadata":{},"status":"available","polite":false}])
    );
}

#[test]
fn peer_ids_are_fresh_per_connection_even_for_the_same_user() {
    let mut h = Harness::new("lobby");
    let a1 = h.join("same-user");
    let a2 = h.join("same-user");
    assert_ne!(a1, a2);
}

#[test]
fn offer_answer_and_candidates_reach_only_the_addressee_with_from_stamped() {
    let mut h = Harness::new("call");
    let (a, b, c) = (h.join("a"), h.join("b"), h.join("c"));
    for p in [&a, &b, &c] {
        h.take(p);
    }
    h.json(&a, json!({"type":"offer","to":b,"sdp":"v=0 offer"}));
    h.json(
        &b,
        json!({"type":"answer","to":a,"sdp":"v=0 answer","correlationId":"k1"}),
    );
    let offer = h.one(&b);
    assert_eq!(
        offer["inner"],
        json!({"type":"offer","roomId":"call","from":a,"to":b,"sdp":"v=0 offer"})
    );
    assert!(offer["correlationId"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(
        h.one(&a),
        json!({"type":"relay","inner":{"type":"answer","roomId":"call","from":b,"to":a,"sdp":"v=0 answer"},"correlationId":"k1"})
    );
    assert!(h.take(&c).is_empty(), "a bystander sees nothing");
}

#[test]
fn two_hundred_candidates_arrive_in_order_after_their_offer() {
    // Trickled at the candidate rate (20/s by default): none is throttled.
    let mut h = Harness::new("call");
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    h.json(&a, json!({"type":"offer","to":b,"sdp":"v=0"}));
    for i in 0..200 {
        h.advance(50);
        h.json(&a, json!({"type":"candidate","to":b,"candidate":{"candidate":format!("c{i}"),"sdpMid":"0"}}));
    }
    h.json(&a, json!({"type":"candidate","to":b,"candidate":null}));
    let got = h.take(&b);
    assert_eq!(got.len(), 202);
    assert_eq!(got[0]["inner"]["type"], "offer");
    for (i, frame) in got[1..201].iter().enumerate() {
        assert_eq!(frame["inner"]["candidate"]["candidate"], format!("c{i}"));
    }
    assert_eq!(got[201]["inner"]["candidate"], json!(null));
}

#[test]
fn real_ice_gathering_passes_untouched_under_the_default_limits() {
    // A browser with a few interfaces and TURN servers gathers tens of candidates within
    // milliseconds: one burst of offer + 80 candidates + end-of-candidates, all at one instant,
    // and the answerer's answer + 80 candidates likewise. Nothing is dropped, nobody is warned.
    let mut h = Harness::new("call");
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    h.stored.clear(); // the two admissions' connect buckets
    for (from, to) in [(&a, &b), (&b, &a)] {
        h.json(from, json!({"type":"offer","to":to,"sdp":"v=0"}));
        for i in 0..80 {
            h.json(
                from,
                json!({"type":"candidate","to":to,"candidate":{"candidate":format!("c{i}")}}),
            );
        }
        h.json(from, json!({"type":"candidate","to":to,"candidate":null}));
    }
    for peer in [&a, &b] {
        let got = h.take(peer);
        assert_eq!(got.len(), 82);
        assert!(got.iter().all(|f| f["type"] == "relay"), "{got:?}");
    }
    assert!(h.stored.is_empty(), "no strike, nothing stored");
}

#[test]
fn second_join_answers_joined_again_without_a_second_peer_joined() {
    let mut h = Harness::new("lobby");
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    let first = h.one(&b);
    h.json(&b, json!({"type":"join","roomId":"lobby"}));
    assert_eq!(h.one(&b), first, "the same joined frame again");
    assert!(h.take(&a).is_empty(), "no duplicate peer_joined");
}

#[test]
fn join_with_new_metadata_tells_the_others_once_and_persists_it() {
    let mut h = Harness::new("lobby");
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    h.json(
        &b,
        json!({"type":"join","roomId":"lobby","peerId":b,"metadata":{"name":"Bea"}}),
    );
    assert_eq!(
        h.one(&a),
        json!({"type":"peer_updated","roomId":"lobby","peerId":b,"metadata":{"name":"Bea"},"status":"available"})
    );
    assert_eq!(h.one(&b)["type"], "joined");
    assert_eq!(h.persisted.len(), 1);
    assert_eq!(h.persisted[0].metadata["name"], "Bea");
    // The same metadata again changes nothing; a join without metadata keeps it.
    h.json(
        &b,
        json!({"type":"join","roomId":"lobby","metadata":{"name":"Bea"}}),
    );
    h.json(&b, json!({"type":"join","roomId":"lobby"}));
    assert!(h.take(&a).is_empty());
    assert_eq!(h.persisted.len(), 1);
    let c = h.join("c");
    assert_eq!(
        h.take(&c)[0]["peers"],
        json!([{"peerId":a,"metadata":{},"status":"available","polite":false},{"peerId":b,"metadata":{"name":"Bea"},"status":"available","polite":false}])
    );
}

#[test]
fn leave_tells_the_others_closes_with_1000_and_a_second_leave_is_a_no_op() {
    let mut h = Harness::new("lobby");
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    h.json(&a, json!({"type":"leave","roomId":"lobby"}));
    assert_eq!(
        h.one(&b),
        json!({"type":"peer_left","roomId":"lobby","peerId":a,"reason":"leave"})
    );
    assert_eq!(h.closed.get(&a), Some(&1000));
    assert!(h.take(&a).is_empty());
    h.closed.clear();
    h.json(&a, json!({"type":"leave","roomId":"lobby"}));
    assert!(h.take(&b).is_empty() && h.take(&a).is_empty() && h.closed.is_empty());
    // Its close handshake then completes with no second peer_left.
    h.close(&a, 1000);
    assert!(h.take(&b).is_empty());
    assert_eq!(
        h.closed.get(&a),
        Some(&1000),
        "the server still answers the close"
    );
    assert_eq!(h.room.members().len(), 1);
}

#[test]
fn with_a_grace_of_0_an_abrupt_disconnect_is_peer_left_disconnect_and_the_close_is_answered() {
    let mut h = Harness::with_limits("lobby", common::V1);
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    h.close(&a, 1006);
    assert_eq!(
        h.one(&b),
        json!({"type":"peer_left","roomId":"lobby","peerId":a,"reason":"disconnect"})
    );
    assert_eq!(
        h.closed.get(&a),
        Some(&1000),
        "1006 cannot be sent, so 1000"
    );
    h.close(&b, 4000);
    assert_eq!(
        h.closed.get(&b),
        Some(&4000),
        "an application code is echoed"
    );
}

#[test]
fn a_peer_that_left_cannot_relay_or_be_relayed_to() {
    let mut h = Harness::with_limits("lobby", common::V1);
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    h.close(&b, 1000);
    assert_eq!(h.one(&a)["type"], "peer_left");
    h.json(&a, json!({"type":"offer","to":b,"sdp":"v=0"}));
    assert_eq!(h.one(&a)["code"], "target_not_found");
    h.json(&b, json!({"type":"offer","to":a,"sdp":"v=0"}));
    assert!(
        h.take(&a).is_empty(),
        "late frames from a closed peer are dropped"
    );
}

#[test]
fn room_full_refuses_the_next_peer_with_1013_and_members_hear_nothing() {
    let limits = RoomLimits {
        max_peers: 2,
        ..common::V1
    };
    let mut h = Harness::with_limits("small", limits);
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    match h.try_join("c") {
        Err((v, code)) => {
            assert_eq!(v["type"], "error");
            assert_eq!(v["code"], "room_full");
            assert_eq!(code, 1013);
        }
        Ok(peer) => panic!("expected room_full, got {peer:?}"),
    }
    assert!(h.take(&a).is_empty() && h.take(&b).is_empty());
    // A seat frees up when someone leaves.
    h.close(&a, 1000);
    h.join("c");
}

#[test]
fn oversize_and_binary_frames_are_refused_and_the_connection_stays_usable() {
    let limits = RoomLimits {
        max_frame_bytes: 1024,
        ..common::LIMITS
    };
    let mut h = Harness::with_limits("lobby", limits);
    let (a, b) = (h.join("a"), h.join("b"));
    h.take(&a);
    h.take(&b);
    let big =
        json!({"type":"offer","to":b,"sdp":"x".repeat(2000),"correlationId":"big"}).to_string();
    h.text(&a, &big);
    let err = h.one(&a);
    assert_eq!(err["code"], "too_large");
    assert!(err.get("correlationId").is_none(), "refused before parsing");
    let effects = h.room.on_binary(&a, h.now);
    h.apply(effects);
    assert_eq!(h.one(&a)["code"], "bad_request");
    assert!(h.take(&b).is_empty());
    assert!(h.closed.is_empty());
    h.json(&a, json!({"type":"offer","to":b,"sdp":"v=0"}));
    assert_eq!(h.one(&b)["type"], "relay");
}

#[test]
fn a_ping_the_runtime_did_not_catch_gets_pong() {
    let mut h = Harness::new("lobby");
    let a = h.join("a");
    h.take(&a);
    h.text(&a, r#"{ "type": "ping" }"#);
    assert_eq!(h.one(&a), json!({"type":"pong"}));
}

#[test]
fn a_rebuilt_room_is_the_same_room() {
    // What the Durable Object does after eviction: rebuild from the sockets' attachments, which
    // come back in any order.
    let mut h = Harness::with_limits("lobby", common::V1);
    let (a, b, c) = (h.join("a"), h.join("b"), h.join("c"));
    h.json(
        &b,
        json!({"type":"join","roomId":"lobby","metadata":{"n":2}}),
    );
    h.close(&a, 1000);
    let mut members: Vec<_> = h.room.members().to_vec();
    members.reverse();
    let rebuilt = Room::rebuild(RoomId::parse("lobby").unwrap(), common::V1, members);
    assert_eq!(rebuilt.members(), h.room.members());
    h.room = rebuilt;
    for p in [&b, &c] {
        h.take(p);
    }
    h.json(&c, json!({"type":"offer","to":b,"sdp":"v=0"}));
    assert_eq!(h.one(&b)["inner"]["from"], json!(c));
    let d = h.join("d");
    assert_eq!(
        h.take(&d)[0]["peers"],
        json!([{"peerId":b,"metadata":{"n":2},"status":"available","polite":false},{"peerId":c,"metadata":{},"status":"available","polite":false}])
    );
    // Admission order continues after the rebuild.
    assert!(h.room.member(&d).unwrap().seq > h.room.member(&c).unwrap().seq);
}

#[test]
fn frames_from_a_socket_the_room_does_not_know_do_nothing() {
    let mut room = Room::rebuild(RoomId::parse("x").unwrap(), common::LIMITS, []);
    let stranger = PeerId::from_server("nobody".into());
    assert!(room
        .on_text(
            &stranger,
            r#"{"type":"offer","to":"a","sdp":""}"#,
            common::NOW_MS,
            &mut CountingIds::default()
        )
        .is_empty());
    assert!(room.on_binary(&stranger, common::NOW_MS).is_empty());
}
