//! Calls (protocol v1.1 §6): the state machine as a table of (state, event) → (frames, state)
//! covering every pair for a 1:1 call, illegal ones included; then group calls; then the room
//! around it (status, storage, eviction, departures, relayed `callId`).

mod common;

use common::{Harness, LIMITS};
use edgesignal::call::{CallLimits, Calls, Initiate, Media, Outcome, RejectReason};
use edgesignal::protocol::{PeerId, ServerFrame};
use serde_json::{json, Value};

const RING: u64 = 30_000;
const MAX: u64 = 3_600_000;
const T0: u64 = 1_000_000;

fn peer(name: &str) -> PeerId {
    PeerId::from_server(name.to_owned())
}

/// What a frame says, compactly: `type` or `type:reason`.
fn describe(frame: &ServerFrame) -> String {
    let value: Value = serde_json::from_str(&frame.to_text()).unwrap();
    let kind = value["type"].as_str().unwrap().to_owned();
    match value.get("reason").and_then(Value::as_str) {
        Some(reason) => format!("{kind}:{reason}"),
        None => kind,
    }
}

/// The frames of an outcome as `peer>type[:reason]`, in order.
fn frames(outcome: &Outcome) -> Vec<String> {
    outcome
        .frames
        .iter()
        .map(|(to, frame)| format!("{}>{}", to.as_str(), describe(frame)))
        .collect()
}

/// The calls as `caller->invitees|participants`, for comparing states.
fn state(calls: &Calls) -> String {
    let mut parts: Vec<String> = calls
        .calls()
        .iter()
        .map(|c| {
            let ringing: Vec<&str> = c.ringing.iter().map(|i| i.peer.as_str()).collect();
            let participants: Vec<&str> = c.participants.iter().map(PeerId::as_str).collect();
            format!("[{}|ringing {}]", participants.join(","), ringing.join(","))
        })
        .collect();
    parts.sort();
    if parts.is_empty() {
        "idle".into()
    } else {
        parts.join(" ")
    }
}

struct Table {
    calls: Calls,
    now: u64,
    next: u32,
}

impl Table {
    fn new() -> Table {
        Table {
            calls: Calls::new(CallLimits {
                ring_timeout_ms: RING,
                max_duration_ms: MAX,
            }),
            now: T0,
            next: 0,
        }
    }

    fn id(&self) -> String {
        self.calls
            .calls()
            .first()
            .map_or("X".into(), |c| c.id.clone())
    }

    fn initiate(
        &mut self,
        from: &str,
        to: &[&str],
        call_id: Option<&str>,
    ) -> Result<Outcome, String> {
        let to: Vec<PeerId> = to.iter().map(|p| peer(p)).collect();
        self.next += 1;
        let members = ["A", "B", "C", "D"];
        let is_member = |p: &PeerId| members.contains(&p.as_str());
        self.calls
            .initiate(
                Initiate {
                    from: &peer(from),
                    to: &to,
                    media: Media::default(),
                    call_id,
                },
                format!("call{}", self.next),
                &is_member,
                self.now,
            )
            .map_err(|r| r.code.as_str().to_owned())
    }

    /// Runs event `e` (see the table) and answers `Ok(frames)` or `Err(code)`.
    fn event(&mut self, e: &str) -> Result<Vec<String>, String> {
        let id = self.id();
        let out = match e {
            "initiate A>B" => self.initiate("A", &["B"], None),
            "initiate B>A" => self.initiate("B", &["A"], None),
            "initiate C>A" => self.initiate("C", &["A"], None),
            "answer B" => self
                .calls
                .answer(&peer("B"), &id, self.now)
                .map_err(|r| r.code.as_str().into()),
            "answer A" => self
                .calls
                .answer(&peer("A"), &id, self.now)
                .map_err(|r| r.code.as_str().into()),
            "answer C" => self
                .calls
                .answer(&peer("C"), &id, self.now)
                .map_err(|r| r.code.as_str().into()),
            "reject B" => self
                .calls
                .reject(&peer("B"), &id, RejectReason::Declined)
                .map_err(|r| r.code.as_str().into()),
            "reject A" => self
                .calls
                .reject(&peer("A"), &id, RejectReason::Declined)
                .map_err(|r| r.code.as_str().into()),
            "hangup A" => self
                .calls
                .hangup(&peer("A"), &id)
                .map_err(|r| r.code.as_str().into()),
            "hangup B" => self
                .calls
                .hangup(&peer("B"), &id)
                .map_err(|r| r.code.as_str().into()),
            "hangup C" => self
                .calls
                .hangup(&peer("C"), &id)
                .map_err(|r| r.code.as_str().into()),
            "answer unknown" => self
                .calls
                .answer(&peer("B"), "nope", self.now)
                .map_err(|r| r.code.as_str().into()),
            "ring timeout" => {
                self.now += RING;
                Ok(self.calls.on_due(self.now))
            }
            "max duration" => {
                self.now += MAX;
                Ok(self.calls.on_due(self.now))
            }
            "depart A" => Ok(self.calls.depart(&peer("A"))),
            "depart B" => Ok(self.calls.depart(&peer("B"))),
            other => panic!("event {other}"),
        };
        out.map(|o| frames(&o))
    }
}

fn setup(state: &str) -> Table {
    let mut t = Table::new();
    match state {
        "idle" => {}
        "ringing" => {
            t.initiate("A", &["B"], None).unwrap();
        }
        "active" => {
            t.initiate("A", &["B"], None).unwrap();
            let id = t.id();
            t.calls.answer(&peer("B"), &id, t.now).unwrap();
        }
        other => panic!("state {other}"),
    }
    t
}

const RINGING: &str = "[A|ringing B]";
const ACTIVE: &str = "[A,B|ringing ]";

#[test]
fn every_state_event_pair_of_a_one_to_one_call() {
    // (state, event, Ok(frames) | Err(code), state after)
    type Row = (
        &'static str,
        &'static str,
        Result<&'static [&'static str], &'static str>,
        &'static str,
    );
    let table: &[Row] = &[
        (
            "idle",
            "initiate A>B",
            Ok(&["A>call_ringing", "B>call_incoming"]),
            RINGING,
        ),
        (
            "idle",
            "initiate B>A",
            Ok(&["B>call_ringing", "A>call_incoming"]),
            "[B|ringing A]",
        ),
        (
            "idle",
            "initiate C>A",
            Ok(&["C>call_ringing", "A>call_incoming"]),
            "[C|ringing A]",
        ),
        ("idle", "answer B", Err("call_not_found"), "idle"),
        ("idle", "answer A", Err("call_not_found"), "idle"),
        ("idle", "answer C", Err("call_not_found"), "idle"),
        ("idle", "reject B", Err("call_not_found"), "idle"),
        ("idle", "reject A", Err("call_not_found"), "idle"),
        ("idle", "hangup A", Err("call_not_found"), "idle"),
        ("idle", "hangup B", Err("call_not_found"), "idle"),
        ("idle", "hangup C", Err("call_not_found"), "idle"),
        ("idle", "answer unknown", Err("call_not_found"), "idle"),
        ("idle", "ring timeout", Ok(&[]), "idle"),
        ("idle", "max duration", Ok(&[]), "idle"),
        ("idle", "depart A", Ok(&[]), "idle"),
        ("idle", "depart B", Ok(&[]), "idle"),
        ("ringing", "initiate A>B", Err("invalid_state"), RINGING),
        ("ringing", "initiate B>A", Err("invalid_state"), RINGING),
        (
            "ringing",
            "initiate C>A",
            Ok(&[
                "C>call_ringing",
                "C>call_rejected:busy",
                "C>call_ended:busy",
            ]),
            RINGING,
        ),
        (
            "ringing",
            "answer B",
            Ok(&["A>call_accepted", "B>call_accepted"]),
            ACTIVE,
        ),
        ("ringing", "answer A", Err("invalid_state"), RINGING),
        ("ringing", "answer C", Err("invalid_state"), RINGING),
        (
            "ringing",
            "reject B",
            Ok(&["A>call_rejected:declined", "A>call_ended:rejected"]),
            "idle",
        ),
        ("ringing", "reject A", Err("invalid_state"), RINGING),
        (
            "ringing",
            "hangup A",
            Ok(&["B>call_ended:cancelled"]),
            "idle",
        ),
        (
            "ringing",
            "hangup B",
            Ok(&["A>call_rejected:declined", "A>call_ended:rejected"]),
            "idle",
        ),
        ("ringing", "hangup C", Err("invalid_state"), RINGING),
        ("ringing", "answer unknown", Err("call_not_found"), RINGING),
        (
            "ringing",
            "ring timeout",
            Ok(&[
                "B>call_ended:no_answer",
                "A>call_rejected:no_answer",
                "A>call_ended:no_answer",
            ]),
            "idle",
        ),
        (
            "ringing",
            "max duration",
            Ok(&[
                "B>call_ended:no_answer",
                "A>call_rejected:no_answer",
                "A>call_ended:no_answer",
            ]),
            "idle",
        ),
        (
            "ringing",
            "depart A",
            Ok(&["B>call_ended:cancelled"]),
            "idle",
        ),
        (
            "ringing",
            "depart B",
            Ok(&["A>call_rejected:no_answer", "A>call_ended:no_answer"]),
            "idle",
        ),
        ("active", "initiate A>B", Err("invalid_state"), ACTIVE),
        ("active", "initiate B>A", Err("invalid_state"), ACTIVE),
        (
            "active",
            "initiate C>A",
            Ok(&[
                "C>call_ringing",
                "C>call_rejected:busy",
                "C>call_ended:busy",
            ]),
            ACTIVE,
        ),
        ("active", "answer B", Err("invalid_state"), ACTIVE),
        ("active", "answer A", Err("invalid_state"), ACTIVE),
        ("active", "answer C", Err("invalid_state"), ACTIVE),
        ("active", "reject B", Err("invalid_state"), ACTIVE),
        ("active", "reject A", Err("invalid_state"), ACTIVE),
        ("active", "hangup A", Ok(&["B>call_ended:hangup"]), "idle"),
        ("active", "hangup B", Ok(&["A>call_ended:hangup"]), "idle"),
        ("active", "hangup C", Err("invalid_state"), ACTIVE),
        ("active", "answer unknown", Err("call_not_found"), ACTIVE),
        ("active", "ring timeout", Ok(&[]), ACTIVE),
        (
            "active",
            "max duration",
            Ok(&["A>call_ended:max_duration", "B>call_ended:max_duration"]),
            "idle",
        ),
        (
            "active",
            "depart A",
            Ok(&["B>call_ended:disconnect"]),
            "idle",
        ),
        (
            "active",
            "depart B",
            Ok(&["A>call_ended:disconnect"]),
            "idle",
        ),
    ];
    // Every pair is in the table.
    let states = ["idle", "ringing", "active"];
    let events = [
        "initiate A>B",
        "initiate B>A",
        "initiate C>A",
        "answer B",
        "answer A",
        "answer C",
        "reject B",
        "reject A",
        "hangup A",
        "hangup B",
        "hangup C",
        "answer unknown",
        "ring timeout",
        "max duration",
        "depart A",
        "depart B",
    ];
    assert_eq!(table.len(), states.len() * events.len());
    for s in states {
        for e in events {
            assert!(
                table.iter().any(|(ts, te, ..)| *ts == s && *te == e),
                "missing {s} × {e}"
            );
        }
    }
    for (s, e, expected, after) in table {
        let mut t = setup(s);
        let before = state(&t.calls);
        let got = t.event(e);
        let expected: Result<Vec<String>, String> = expected
            .map(|frames| frames.iter().map(|f| (*f).to_owned()).collect())
            .map_err(str::to_owned);
        assert_eq!(got, expected, "{s} × {e}");
        assert_eq!(state(&t.calls), *after, "{s} × {e}: state after");
        if got.is_err() {
            assert_eq!(
                state(&t.calls),
                before,
                "{s} × {e}: a refusal changes nothing"
            );
        }
    }
}

#[test]
fn a_group_call_grows_and_shrinks_and_the_earlier_participant_offers() {
    let mut t = Table::new();
    let ringing = t.initiate("A", &["B", "C"], None).unwrap();
    assert_eq!(
        frames(&ringing),
        ["A>call_ringing", "B>call_incoming", "C>call_incoming"]
    );
    let id = t.id();
    let accepted = t.calls.answer(&peer("B"), &id, t.now).unwrap();
    assert_eq!(frames(&accepted), ["A>call_accepted", "B>call_accepted"]);
    let accepted = t.calls.answer(&peer("C"), &id, t.now).unwrap();
    assert_eq!(
        frames(&accepted),
        ["A>call_accepted", "B>call_accepted", "C>call_accepted"]
    );
    // Join order: who offers to whom (the earlier participant offers).
    match &accepted.frames[2].1 {
        ServerFrame::CallAccepted { participants, .. } => {
            assert_eq!(
                participants.iter().map(PeerId::as_str).collect::<Vec<_>>(),
                ["A", "B", "C"]
            );
        }
        other => panic!("{other:?}"),
    }
    // A participant invites D into the running call.
    let more = t.initiate("B", &["D"], Some(&id)).unwrap();
    assert_eq!(frames(&more), ["B>call_ringing", "D>call_incoming"]);
    // An invitee cannot invite; nobody can invite a participant twice.
    assert_eq!(
        t.initiate("D", &["A"], Some(&id)).err().as_deref(),
        Some("invalid_state")
    );
    assert_eq!(
        t.initiate("A", &["C"], Some(&id)).err().as_deref(),
        Some("invalid_state")
    );
    // D's ring times out while the others talk: only the participants hear it.
    t.now += RING;
    let due = t.calls.on_due(t.now);
    assert_eq!(
        frames(&due),
        [
            "D>call_ended:no_answer",
            "A>call_rejected:no_answer",
            "B>call_rejected:no_answer",
            "C>call_rejected:no_answer"
        ]
    );
    // C leaves: call_left to the two that remain; then B: A is alone, the call ends.
    let left = t.calls.hangup(&peer("C"), &id).unwrap();
    assert_eq!(frames(&left), ["A>call_left:hangup", "B>call_left:hangup"]);
    let left = t.calls.depart(&peer("B"));
    assert_eq!(frames(&left), ["A>call_ended:disconnect"]);
    assert_eq!(state(&t.calls), "idle");
}

#[test]
fn the_caller_hears_the_last_reason_when_nobody_comes() {
    let mut t = Table::new();
    t.initiate("A", &["B", "C"], None).unwrap();
    let id = t.id();
    let declined = t
        .calls
        .reject(&peer("B"), &id, RejectReason::Declined)
        .unwrap();
    assert_eq!(
        frames(&declined),
        ["A>call_rejected:declined"],
        "C still rings"
    );
    t.now += RING;
    let due = t.calls.on_due(t.now);
    assert_eq!(
        frames(&due),
        [
            "C>call_ended:no_answer",
            "A>call_rejected:no_answer",
            "A>call_ended:no_answer"
        ]
    );
}

#[test]
fn busy_invitees_are_answered_at_once_and_the_rest_ring() {
    let mut t = Table::new();
    t.initiate("A", &["B"], None).unwrap();
    let out = t.initiate("C", &["A", "D"], None).unwrap();
    assert_eq!(
        frames(&out),
        ["C>call_ringing", "D>call_incoming", "C>call_rejected:busy"]
    );
    match &out.frames[0].1 {
        ServerFrame::CallRinging { to, .. } => assert_eq!(to, &[peer("D")]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refusals_name_the_rule() {
    let mut t = Table::new();
    assert_eq!(
        t.initiate("A", &["A"], None).err().as_deref(),
        Some("invalid_state")
    );
    assert_eq!(
        t.initiate("A", &["Z"], None).err().as_deref(),
        Some("target_not_found")
    );
    assert_eq!(
        t.initiate("A", &[], None).err().as_deref(),
        Some("bad_request")
    );
    assert_eq!(
        t.initiate("A", &["B"], Some("nope")).err().as_deref(),
        Some("call_not_found")
    );
    assert_eq!(state(&t.calls), "idle");
}

#[test]
fn the_max_duration_counts_from_the_first_accept() {
    let mut t = Table::new();
    t.initiate("A", &["B"], None).unwrap();
    let id = t.id();
    t.now += RING - 1;
    t.calls.answer(&peer("B"), &id, t.now).unwrap();
    assert_eq!(t.calls.next_deadline(), Some(t.now + MAX));
    let deadlines: Vec<u64> = t.calls.deadlines().map(|(at, _)| at).collect();
    assert_eq!(deadlines, [t.now + MAX]);
    t.now += MAX - 1;
    assert!(t.calls.on_due(t.now).frames.is_empty());
    t.now += 1;
    assert_eq!(
        frames(&t.calls.on_due(t.now)),
        ["A>call_ended:max_duration", "B>call_ended:max_duration"]
    );
}

// ---------------------------------------------------------------------------------------------
// The room around the calls

fn room_of_three() -> (Harness, PeerId, PeerId, PeerId) {
    let mut h = Harness::with_limits("lobby", LIMITS);
    let a = h.join("alice");
    let b = h.join("bob");
    let c = h.join("carol");
    for p in [&a, &b, &c] {
        h.take(p);
    }
    (h, a, b, c)
}

fn call_id_of(frames: &[Value]) -> String {
    frames
        .iter()
        .find_map(|f| f["callId"].as_str())
        .expect("a frame with callId")
        .to_owned()
}

fn types(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            match (
                f["type"].as_str(),
                f["status"].as_str(),
                f["reason"].as_str(),
            ) {
                (Some("peer_updated"), Some(status), _) => format!("peer_updated:{status}"),
                (Some(t), _, Some(reason)) => format!("{t}:{reason}"),
                (Some(t), ..) => t.to_owned(),
                _ => panic!("{f}"),
            }
        })
        .collect()
}

#[test]
fn in_a_room_a_call_rings_connects_and_ends_with_status_announced() {
    let (mut h, a, b, c) = room_of_three();
    h.json(
        &a,
        json!({"type":"call_initiate","to":[b.as_str()],"media":{"video":false}}),
    );
    let to_a = h.take(&a);
    let id = call_id_of(&to_a);
    assert_eq!(types(&to_a), ["call_ringing", "peer_updated:in_call"]);
    let to_b = h.take(&b);
    assert_eq!(types(&to_b), ["call_incoming", "peer_updated:in_call"]);
    assert_eq!(to_b[0]["media"], json!({"audio":true,"video":false}));
    assert_eq!(to_b[0]["from"], a.as_str());
    // Carol sees both become in_call.
    assert_eq!(
        types(&h.take(&c)),
        ["peer_updated:in_call", "peer_updated:in_call"]
    );
    h.json(&b, json!({"type":"call_answer","callId":id}));
    assert_eq!(types(&h.take(&a)), ["call_accepted"]);
    assert_eq!(types(&h.take(&b)), ["call_accepted"]);
    assert!(
        h.take(&c).is_empty(),
        "already in_call: nothing new for Carol"
    );
    // Offers carry the callId through untouched.
    h.json(
        &a,
        json!({"type":"offer","to":b.as_str(),"sdp":"v=0","callId":id}),
    );
    let relayed = h.take(&b);
    assert_eq!(relayed[0]["inner"]["callId"], id.as_str());
    h.json(&a, json!({"type":"call_hangup","callId":id}));
    // B hears A become available (its own status change goes to the others).
    assert_eq!(
        types(&h.take(&b)),
        ["call_ended:hangup", "peer_updated:available"]
    );
    assert_eq!(
        types(&h.take(&c)),
        ["peer_updated:available", "peer_updated:available"]
    );
    assert!(
        h.durable.calls.is_empty(),
        "an ended call is dropped from storage"
    );
}

#[test]
fn a_ring_timeout_fires_from_storage_after_an_eviction() {
    let (mut h, a, b, _) = room_of_three();
    h.json(&a, json!({"type":"call_initiate","to":[b.as_str()]}));
    let id = call_id_of(&h.take(&a));
    h.take(&b);
    assert_eq!(
        h.durable.calls.len(),
        1,
        "the ringing call is stored at once"
    );
    h.evict();
    assert_eq!(h.room.calls().calls().len(), 1);
    assert_eq!(h.room.next_deadline().map(|at| at > h.now), Some(true));
    h.advance(RING);
    h.alarm(&[]);
    let to_b = h.take(&b);
    assert_eq!(to_b[0]["type"], "call_ended");
    assert_eq!(to_b[0]["reason"], "no_answer");
    assert_eq!(to_b[0]["callId"], id.as_str());
    let to_a: Vec<String> = types(&h.take(&a))
        .into_iter()
        .filter(|t| t.starts_with("call_"))
        .collect();
    assert_eq!(to_a, ["call_rejected:no_answer", "call_ended:no_answer"]);
    assert!(h.durable.calls.is_empty());
}

#[test]
fn leaving_the_room_hangs_up_and_an_away_participant_stays_in_the_call() {
    let (mut h, a, b, _) = room_of_three();
    h.json(&a, json!({"type":"call_initiate","to":[b.as_str()]}));
    let id = call_id_of(&h.take(&a));
    h.json(&b, json!({"type":"call_answer","callId":id}));
    h.take(&a);
    h.take(&b);
    // B's socket dies: away, still in the call (no call frame for A).
    h.close(&b, 1006);
    let to_a = types(&h.take(&a));
    assert!(to_a.iter().all(|t| !t.starts_with("call_")), "{to_a:?}");
    assert!(h.room.calls().in_call(&b));
    // Its grace ends: it counts as hung up (disconnect).
    h.advance(LIMITS.presence.resume_grace_ms);
    h.alarm(&[]);
    let to_a = types(&h.take(&a));
    assert!(
        to_a.contains(&"call_ended:disconnect".to_owned()),
        "{to_a:?}"
    );
    assert!(!h.room.calls().in_call(&a));
}

#[test]
fn call_frames_are_refused_with_the_documented_codes_and_change_nothing() {
    let (mut h, a, b, c) = room_of_three();
    for (frame, code) in [
        (
            json!({"type":"call_answer","callId":"nope","correlationId":"1"}),
            "call_not_found",
        ),
        (
            json!({"type":"call_hangup","callId":"nope","correlationId":"1"}),
            "call_not_found",
        ),
        (
            json!({"type":"call_initiate","to":[a.as_str()],"correlationId":"1"}),
            "invalid_state",
        ),
        (
            json!({"type":"call_initiate","to":["01NOTAMEMBER"],"correlationId":"1"}),
            "target_not_found",
        ),
        (
            json!({"type":"call_initiate","to":[],"correlationId":"1"}),
            "bad_request",
        ),
        (
            json!({"type":"call_initiate","to":b.as_str(),"correlationId":"1"}),
            "bad_request",
        ),
        (
            json!({"type":"call_initiate","to":[b.as_str()],"media":{"audio":"yes"},"correlationId":"1"}),
            "bad_request",
        ),
        (
            json!({"type":"call_reject","callId":"x","reason":"rude","correlationId":"1"}),
            "bad_request",
        ),
        (
            json!({"type":"call_answer","correlationId":"1"}),
            "bad_request",
        ),
    ] {
        h.json(&a, frame.clone());
        let got = h.take(&a);
        assert_eq!(got.len(), 1, "{frame}: {got:?}");
        assert_eq!(got[0]["type"], "error", "{frame}");
        assert_eq!(got[0]["code"], code, "{frame}");
        assert_eq!(got[0]["correlationId"], "1", "{frame}");
    }
    assert!(h.take(&b).is_empty() && h.take(&c).is_empty());
    assert!(h.room.calls().calls().is_empty());
}
