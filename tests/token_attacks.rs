//! The token attack corpus (tests/fixtures/token-attacks.json, made by
//! scripts/make-token-corpus.mjs), replayed through the edge's whole decision: every case in every
//! placement is refused `unauthorized` with close 4401 and never forwarded; the valid controls are
//! forwarded. Public-key signatures are checked natively (the Worker uses WebCrypto; the workerd
//! replay is miniflare/test/token-attacks.test.mjs).

mod common;

use common::{native_check, NOW_MS};
use edgesignal::config::{edge_config, EdgeConfig};
use edgesignal::edge::{decide, EdgeDecision, EdgeRequest, EdgeStep};
use edgesignal::error::ErrorCode;
use serde_json::Value;

fn corpus() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/token-attacks.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn config(corpus: &Value) -> EdgeConfig {
    let vars = corpus["config"].clone();
    edge_config(|name| vars[name].as_str().map(str::to_owned)).unwrap()
}

/// The edge's decision for an upgrade to `/ws/{room}` with `token` in `placement`, carried out
/// as the Worker does it.
fn upgrade(config: &EdgeConfig, room: &str, token: &str, placement: &str) -> EdgeDecision {
    let path = format!("/ws/{room}");
    let header = format!("Bearer {token}");
    let protocols = format!("signal.v1, bearer.{token}");
    let query = format!("token={token}");
    let mut req = EdgeRequest {
        method: "GET",
        path: &path,
        upgrade: Some("websocket"),
        ..EdgeRequest::default()
    };
    match placement {
        "header" => req.authorization = Some(&header),
        "protocol" => req.protocols = Some(&protocols),
        "query" => req.query = Some(&query),
        other => panic!("placement {other}"),
    }
    match decide(&req, Ok(config)) {
        EdgeStep::Decided(decision) => decision,
        EdgeStep::Authorize(authorize) => {
            let identity = config
                .verifier
                .verify_with(authorize.token, NOW_MS, None, &mut native_check)
                .and_then(|identity| match &authorize.room {
                    Some(room) => identity.may_enter(room).map(|()| identity),
                    None => Ok(identity),
                });
            authorize.finish(config, identity, NOW_MS)
        }
    }
}

#[test]
fn every_attack_is_refused_unauthorized_in_every_placement() {
    let corpus = corpus();
    let config = config(&corpus);
    let room = corpus["room"].as_str().unwrap();
    let cases = corpus["cases"].as_array().unwrap();
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let mut replays = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let token = case["token"].as_str().unwrap();
        assert_eq!(case["expect"], "unauthorized", "{name}");
        let placements: Vec<&str> = match case.get("placements") {
            Some(list) => list
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect(),
            None => vec!["header", "protocol", "query"],
        };
        for placement in placements {
            match upgrade(&config, room, token, placement) {
                EdgeDecision::RefuseUpgrade {
                    code, close_code, ..
                } => {
                    assert_eq!(
                        (code, close_code),
                        (ErrorCode::Unauthorized, 4401),
                        "{name} in {placement}"
                    );
                }
                other => panic!("{name} in {placement}: {other:?}"),
            }
            replays += 1;
        }
    }
    println!("{} cases, {replays} replays, all refused", cases.len());
}

#[test]
fn the_controls_pass_so_the_refusals_are_the_defects() {
    let corpus = corpus();
    let config = config(&corpus);
    let room = corpus["room"].as_str().unwrap();
    for control in corpus["controls"].as_array().unwrap() {
        let name = control["name"].as_str().unwrap();
        for placement in ["header", "protocol", "query"] {
            let decision = upgrade(&config, room, control["token"].as_str().unwrap(), placement);
            assert!(
                matches!(decision, EdgeDecision::Forward(_)),
                "{name} in {placement}: {decision:?}"
            );
        }
    }
}
