//! Worker vars: defaults, ranges, and refusing what does not parse.

use edgesignal::config::{room_limits, ConfigError};
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
            max_frame_bytes: 65536
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
