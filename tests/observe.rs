//! Logs and metrics as effects of the core (docs/observability.md): the exact events and data
//! points of a scripted session, what per-frame traffic costs, and what never appears.

mod common;

use common::{Harness, LIMITS};
use edgesignal::edge::trace_id;
use edgesignal::observe::{Level, Metric};
use edgesignal::room::{Arrival, RoomLimits};
use serde_json::json;

fn events(h: &Harness, from: usize) -> Vec<String> {
    h.logs[from..]
        .iter()
        .map(|l| match l.fields.get("outcome").and_then(|o| o.as_str()) {
            Some(outcome) => format!("{}:{outcome}", l.event),
            None => l.event.to_owned(),
        })
        .collect()
}

fn points(h: &Harness, from: usize) -> Vec<String> {
    h.metrics[from..]
        .iter()
        .map(|p| {
            if p.detail.is_empty() {
                format!("{}={}", p.metric.as_str(), p.value)
            } else {
                format!("{}[{}]={}", p.metric.as_str(), p.detail, p.value)
            }
        })
        .collect()
}

#[test]
fn a_scripted_session_emits_the_documented_events_and_points() {
    let mut h = Harness::with_limits("lobby", LIMITS);
    let a = h
        .try_arrive(Arrival {
            trace: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            ..Arrival::new("hash-a")
        })
        .unwrap()
        .0;
    let b = h.join("hash-b");
    assert_eq!(events(&h, 0), ["room.join", "room.join"]);
    assert_eq!(
        h.logs[0].fields["trace"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(h.logs[0].fields["user"], "hash-a");
    assert_eq!(
        points(&h, 0),
        [
            "connections=1",
            "room_members=1",
            "connections=2",
            "room_members=2"
        ]
    );
    // Negotiation: offer, answer, candidates; relay lines are debug, with correlation ids.
    let (l, m) = (h.logs.len(), h.metrics.len());
    h.advance(5);
    h.json(&b, json!({"type":"offer","to":a,"sdp":"v=0 SECRET-SDP"}));
    h.advance(40);
    h.json(
        &a,
        json!({"type":"answer","to":b,"sdp":"v=0 SECRET-ANSWER"}),
    );
    for _ in 0..3 {
        h.json(
            &a,
            json!({"type":"candidate","to":b,"candidate":{"candidate":"candidate:SECRET-CAND"}}),
        );
    }
    assert_eq!(
        events(&h, l),
        [
            "relay.offer",
            "relay.answer",
            "relay.candidate",
            "relay.candidate",
            "relay.candidate"
        ]
    );
    assert!(h.logs[l..].iter().all(|line| line.level == Level::Debug));
    assert!(h.logs[l].fields["correlationId"].is_string());
    assert_eq!(
        points(&h, m),
        ["negotiation_ms=40"],
        "one point for the pair, none per frame"
    );
    // An ack: the latency of the newest frame it covers, one point.
    h.advance(15);
    let last = *h.seqs[&a].last().unwrap();
    let m = h.metrics.len();
    h.json(&a, json!({"type":"ack","seq":last}));
    // A's newest frame is B's offer, relayed 55 ms before this ack.
    assert_eq!(points(&h, m), ["relay_latency_ms=55"]);
    // A call: started, accepted (with its setup time), hangup.
    let (l, m) = (h.logs.len(), h.metrics.len());
    h.json(&a, json!({"type":"call_initiate","to":[b]}));
    let call_id = h
        .take(&b)
        .iter()
        .find_map(|f| f["callId"].as_str().map(str::to_owned))
        .unwrap();
    h.advance(120);
    h.json(&b, json!({"type":"call_answer","callId":call_id}));
    h.json(&a, json!({"type":"call_hangup","callId":call_id}));
    assert_eq!(
        events(&h, l),
        [
            "call.event:started",
            "call.event:accepted",
            "call.event:left:hangup",
            "call.event:ended:hangup"
        ]
    );
    assert_eq!(
        points(&h, m),
        [
            "calls[started]=1",
            "calls[accepted]=1",
            "call_setup_ms=120",
            "calls[left:hangup]=1",
            "calls[ended:hangup]=1"
        ]
    );
    // Away, resume, leave: lines and gauges; the departure's duration.
    let (l, m) = (h.logs.len(), h.metrics.len());
    let token = h.token_of(&b);
    h.close(&b, 1006);
    h.resume("hash-b", &token);
    h.advance(1000);
    h.json(&b, json!({"type":"leave","roomId":"lobby"}));
    assert_eq!(events(&h, l), ["room.away", "room.resume", "room.leave"]);
    assert_eq!(h.logs[l].fields["reason"], "disconnect");
    assert_eq!(h.logs[l + 2].fields["reason"], "leave");
    let durations: Vec<_> = h.metrics[m..]
        .iter()
        .filter(|p| p.metric == Metric::ConnectionDurationMs)
        .map(|p| (p.value, p.detail.clone(), p.user.clone()))
        .collect();
    assert_eq!(
        durations,
        [(1180.0, "leave".to_owned(), "hash-b".to_owned())]
    );
    // The counts of client frames go out once the room is quiet, one point per type.
    let m = h.metrics.len();
    h.advance(edgesignal::presence::FLUSH_DELAY_MS);
    h.alarm(&[]);
    let mut counts = points(&h, m);
    counts.sort();
    assert_eq!(
        counts,
        [
            "messages[ack]=1",
            "messages[answer]=1",
            "messages[call_answer]=1",
            "messages[call_hangup]=1",
            "messages[call_initiate]=1",
            "messages[candidate]=3",
            "messages[leave]=1",
            "messages[offer]=1"
        ]
    );
    // Nothing the clients sent as payload, and no token, appears anywhere.
    for line in &h.logs {
        let text = line.to_text();
        for secret in ["SECRET-SDP", "SECRET-ANSWER", "SECRET-CAND", &token] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

#[test]
fn a_flood_costs_one_point_per_reason_and_user_not_one_per_frame() {
    let mut h = Harness::with_limits("lobby", LIMITS);
    let a = h.join("flooder");
    let b = h.join("victim");
    let (l, m) = (h.logs.len(), h.metrics.len());
    for _ in 0..300 {
        h.json(&a, json!({"type":"candidate","to":b,"candidate":{}}));
    }
    let info_lines = h.logs[l..]
        .iter()
        .filter(|x| x.level >= Level::Info)
        .count();
    assert_eq!(info_lines, 0, "per-frame events are debug");
    assert!(
        h.metrics[m..].is_empty(),
        "drops are counted, not written per frame"
    );
    h.advance(edgesignal::presence::FLUSH_DELAY_MS);
    h.alarm(&[]);
    let drops: Vec<_> = h.metrics[m..]
        .iter()
        .filter(|p| p.metric == Metric::Drops)
        .map(|p| (p.detail.clone(), p.user.clone(), p.value))
        .collect();
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(
        (drops[0].0.as_str(), drops[0].1.as_str()),
        ("throttled", "flooder")
    );
    assert_eq!(drops[0].2 as u64, 300 - LIMITS.rate.candidate_burst);
}

#[test]
fn debug_lines_are_not_even_built_above_debug() {
    let limits = RoomLimits {
        log_level: Level::Info,
        ..LIMITS
    };
    let mut h = Harness::with_limits("lobby", limits);
    let a = h.join("a");
    let b = h.join("b");
    let l = h.logs.len();
    h.json(&a, json!({"type":"candidate","to":b,"candidate":{}}));
    assert_eq!(h.logs.len(), l, "a relayed frame at info costs no line");
}

#[test]
fn trace_ids_come_from_a_valid_traceparent_only() {
    assert_eq!(
        trace_id(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ))
        .as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    for bad in [
        "",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "not a traceparent",
    ] {
        assert_eq!(trace_id(Some(bad)), None, "{bad}");
    }
    assert_eq!(trace_id(None), None);
}
