//! Worker vars: defaults, ranges, and refusing what does not parse.

use edgesignal::config::{rate_limits, room_limits, ConfigError};
use edgesignal::rate::RateLimits;
use edgesignal::room::RoomLimits;

fn limits(vars: &[(&str, &str)]) -> Result<RoomLimits, ConfigError> {
    room_limits(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

#[test]
fn defaults_are_8_peers_and_64_kib() {
    assert_eq!(
        limits(&[]),
        Ok(RoomLimits {
            max_peers: 8,
            max_frame_bytes: 65536,
            rate: edgesignal::rate::RateLimits::DEFAULT,
            presence: edgesignal::presence::PresenceLimits::DEFAULT,
            calls: edgesignal::call::CallLimits::DEFAULT,
            log_level: edgesignal::observe::Level::Info,
        })
    );
    assert_eq!(limits(&[("MAX_PEERS_PER_ROOM", "")]).unwrap().max_peers, 8);
}

#[test]
fn values_are_parsed_and_bounded() {
    let l = limits(&[("MAX_PEERS_PER_ROOM", "2"), ("MAX_FRAME_BYTES", " 4096 ")]).unwrap();
    assert_eq!((l.max_peers, l.max_frame_bytes), (2, 4096));
    for (name, value) in [
        ("MAX_PEERS_PER_ROOM", "0"),
        ("MAX_PEERS_PER_ROOM", "eight"),
        ("MAX_PEERS_PER_ROOM", "257"),
        ("MAX_FRAME_BYTES", "100"),
        ("MAX_FRAME_BYTES", "-1"),
        ("MAX_FRAME_BYTES", "2000000"),
    ] {
        let err = limits(&[(name, value)]).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { name: n, .. } if n == name),
            "{name}={value}"
        );
        assert!(err.to_string().contains(name));
    }
}

fn rates(vars: &[(&str, &str)]) -> Result<RateLimits, ConfigError> {
    rate_limits(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

const RATE_VARS: [&str; 9] = [
    "RATE_MSG_PER_S",
    "RATE_MSG_BURST",
    "RATE_CANDIDATE_PER_S",
    "RATE_CANDIDATE_BURST",
    "RATE_ROOM_PER_S",
    "RATE_CONNECT_PER_MIN",
    "RATE_ABUSE_STRIKES",
    "RATE_BAN_S",
    "MAX_CONNECTIONS_PER_USER",
];

#[test]
fn rate_defaults_are_the_spec_defaults() {
    let limits = rates(&[]).unwrap();
    assert_eq!(limits, RateLimits::default());
    assert_eq!(
        limits,
        RateLimits {
            msg_per_s: 20,
            msg_burst: 100,
            candidate_per_s: 20,
            candidate_burst: 100,
            room_per_s: 500,
            connect_per_min: 30,
            abuse_strikes: 10,
            ban_ms: 60_000,
            max_connections_per_user: 4,
        }
    );
    let blank: Vec<(&str, &str)> = RATE_VARS.iter().map(|n| (*n, " ")).collect();
    assert_eq!(rates(&blank).unwrap(), RateLimits::default());
}

#[test]
fn rate_vars_are_parsed_and_a_benchmark_can_set_them_very_high() {
    let high: Vec<(&str, &str)> = RATE_VARS.iter().map(|n| (*n, "1000000")).collect();
    let l = rates(&high).unwrap();
    assert_eq!(
        l,
        RateLimits {
            msg_per_s: 1_000_000,
            msg_burst: 1_000_000,
            candidate_per_s: 1_000_000,
            candidate_burst: 1_000_000,
            room_per_s: 1_000_000,
            connect_per_min: 1_000_000,
            abuse_strikes: 1_000_000,
            ban_ms: 1_000_000_000,
            max_connections_per_user: 1_000_000,
        }
    );
    let l = rates(&[
        ("RATE_MSG_PER_S", "1000000000"),
        ("RATE_BAN_S", "0"),
        ("RATE_ABUSE_STRIKES", " 3 "),
    ])
    .unwrap();
    assert_eq!(
        (l.msg_per_s, l.ban_ms, l.abuse_strikes),
        (1_000_000_000, 0, 3)
    );
    assert_eq!(
        rates(&[("RATE_BAN_S", "31536000")]).unwrap().ban_ms,
        31_536_000_000
    );
}

#[test]
fn every_rate_var_refuses_what_does_not_parse_or_is_out_of_range() {
    for name in RATE_VARS {
        let too_small = if name == "RATE_BAN_S" { "-1" } else { "0" };
        let too_large = match name {
            "RATE_BAN_S" => "31536001",
            "MAX_CONNECTIONS_PER_USER" => "1000001",
            _ => "1000000001",
        };
        for value in [
            too_small,
            too_large,
            "ten",
            "1.5",
            "1e3",
            "0x10",
            "-5",
            "99999999999999999999",
        ] {
            let err = rates(&[(name, value)]).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { name: n, .. } if n == name),
                "{name}={value}: {err:?}"
            );
            assert!(err.to_string().contains(name), "{err}");
            assert!(err.to_string().contains(value.trim()), "{err}");
        }
    }
}
