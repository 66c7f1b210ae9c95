//! ICE servers (protocol v1.1 §5): the list, TURN REST credentials, their renewal through the
//! room's scheduler (across eviction), and the settings.

mod common;

use common::{Harness, LIMITS};
use edgesignal::config::ice_config;
use edgesignal::ice::{ice_servers, refresh_at, turn_rest_credential, IceConfig, TurnCredentials};
use edgesignal::room::Room;
use serde_json::json;

#[test]
fn turn_rest_credentials_are_base64_hmac_sha1_of_the_username() {
    // RFC 2202-style known vector (HMAC-SHA1, key "key").
    assert_eq!(
        turn_rest_credential("key", "The quick brown fox jumps over the lazy dog"),
        "3nybhbi3iqa8ino29wqQcBydtNk="
    );
    let config = IceConfig {
        stun: vec!["stun:s.test:3478".into()],
        turn: vec!["turn:t.test:3478".into()],
        credentials: TurnCredentials::Rest {
            secret: "key".into(),
            ttl_s: 600,
        },
    };
    let (servers, expires) = ice_servers(&config, "0123456789abcdef", 1_000_500);
    assert_eq!(expires, Some(1_600_000));
    assert_eq!(
        serde_json::to_value(&servers).unwrap(),
        json!([
            {"urls":["stun:s.test:3478"]},
            {"urls":["turn:t.test:3478"],"username":"1600:0123456789abcdef",
             "credential": turn_rest_credential("key", "1600:0123456789abcdef")}
        ])
    );
    assert_eq!(refresh_at(&config, 1_600_000), Some(1_600_000 - 60_000));
}

#[test]
fn settings_are_checked() {
    let with = |pairs: &[(&str, &str)]| {
        ice_config(|name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    assert_eq!(with(&[]).unwrap(), IceConfig::default());
    assert!(
        with(&[("STUN_SERVERS", "")]).unwrap().stun.is_empty(),
        "set but empty: none"
    );
    assert!(with(&[("STUN_SERVERS", "http://x")]).is_err());
    assert!(
        with(&[("TURN_SERVER", "turn:t:3478")]).is_err(),
        "TURN without credentials"
    );
    assert!(with(&[("TURN_SERVER", "stun:t:3478"), ("TURN_SECRET", "s")]).is_err());
    assert!(
        with(&[("TURN_USERNAME", "u")]).is_err(),
        "a username without a credential"
    );
    let rest = with(&[
        ("TURN_SERVER", "turn:t:3478"),
        ("TURN_SECRET", "s"),
        ("TURN_USERNAME", "u"),
        ("TURN_CREDENTIAL", "c"),
    ])
    .unwrap();
    assert!(
        matches!(
            rest.credentials,
            TurnCredentials::Rest { ttl_s: 86_400, .. }
        ),
        "the secret wins"
    );
    assert!(with(&[("TURN_TTL_S", "59")]).is_err());
}

#[test]
fn connected_peers_get_fresh_credentials_before_expiry_even_after_an_eviction() {
    let config = IceConfig {
        stun: Vec::new(),
        turn: vec!["turn:t.test:3478".into()],
        credentials: TurnCredentials::Rest {
            secret: "s".into(),
            ttl_s: 100,
        },
    };
    // Heartbeats off: the 90 s of silence below must not close the socket.
    let limits = edgesignal::room::RoomLimits {
        presence: edgesignal::presence::PresenceLimits {
            heartbeat_timeout_ms: 0,
            ..LIMITS.presence
        },
        ..LIMITS
    };
    let mut h = Harness::with_limits("lobby", limits);
    h.room = Room::rebuild(h.room.id().clone(), limits, []).with_ice(config);
    let a = h.join("alice");
    let joined = h.take(&a).remove(0);
    let expires = joined["iceServersExpireAt"].as_u64().unwrap();
    assert_eq!(expires, (h.now / 1000 + 100) * 1000);
    // Evicted: the room comes back from the attachments (and the settings, from the env).
    h.evict();
    let due = h.room.deadlines();
    assert!(
        due.iter().any(|d| d.at_ms == expires - 10_000
            && d.due == edgesignal::schedule::Due::IceRefresh(a.clone())),
        "{due:?}"
    );
    h.advance(expires - 10_000 - h.now);
    h.alarm(&[]);
    let renewed: Vec<_> = h
        .take(&a)
        .into_iter()
        .filter(|f| f["type"] == "ice_servers")
        .collect();
    assert_eq!(renewed.len(), 1, "{renewed:?}");
    assert_eq!(
        renewed[0]["iceServersExpireAt"].as_u64(),
        Some((h.now / 1000 + 100) * 1000)
    );
}
