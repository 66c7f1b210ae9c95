//! Abuse control (protocol v1.1 §2) driven by a fake clock: buckets, notices, strikes, bans,
//! the connect bucket, the connection cap, and the storage round trip.

mod common;

use edgesignal::error::ErrorCode;
use edgesignal::rate::{
    sniff_class, sniff_type, AdmitRefusal, ConnectionLimiter, FrameClass, Identities, Notice,
    RateLimits, StrikeOutcome, TokenBucket, Verdict, EVICTION_IDLE_MS,
};
use edgesignal::storage::{load_rows, Row, SqlValue, Write, LOAD, PRUNE, SCHEMA, UPSERT};

/// 2026-11-22T00:00:00Z: on a whole second, so strike seconds are easy to read.
const T0: u64 = 1_795_305_600_000;
const D: RateLimits = RateLimits::DEFAULT;

use FrameClass::{Candidate, Other};

fn drop_notice(verdict: Verdict) -> Option<Notice> {
    match verdict {
        Verdict::Drop { notice } => notice,
        Verdict::Pass => panic!("expected a drop, got a pass"),
    }
}

/// A limiter whose `class` bucket was emptied at `at` (with a room bucket that never limits).
fn emptied(class: FrameClass, at: u64) -> (ConnectionLimiter, TokenBucket) {
    let mut limiter = ConnectionLimiter::new(&D);
    let mut room = TokenBucket::full(1_000_000);
    for _ in 0..100 {
        assert_eq!(limiter.check(class, at, &D, &mut room), Verdict::Pass);
    }
    (limiter, room)
}

// ---- Token buckets ----------------------------------------------------------------------------

#[test]
fn a_full_bucket_gives_exactly_its_burst_at_once() {
    let mut bucket = TokenBucket::full(100);
    for _ in 0..100 {
        assert_eq!(bucket.take(T0, 20, 100), Ok(()));
    }
    assert_eq!(bucket.take(T0, 20, 100), Err(50));
    assert_eq!(bucket.tokens(T0, 20, 100), 0);
}

#[test]
fn twenty_per_second_is_one_token_every_50_ms_exactly() {
    let mut bucket = TokenBucket::full(1);
    bucket.take(T0, 20, 1).unwrap();
    for step in 1..=100u64 {
        let due = T0 + 50 * step;
        assert_eq!(bucket.take(due - 1, 20, 1), Err(1), "step {step}");
        assert_eq!(bucket.take(due, 20, 1), Ok(()), "step {step}");
    }
}

#[test]
fn fractional_refill_carries_over_so_three_per_second_is_three_per_second() {
    // 3/s is a token every 333.33 ms: due at 334, 667 and 1000 ms, never rounded away.
    let mut bucket = TokenBucket::full(10);
    for _ in 0..10 {
        bucket.take(T0, 3, 10).unwrap();
    }
    let mut granted = Vec::new();
    for t in 1..=3000 {
        if bucket.take(T0 + t, 3, 10).is_ok() {
            granted.push(t);
        }
    }
    assert_eq!(
        granted,
        [334, 667, 1000, 1334, 1667, 2000, 2334, 2667, 3000]
    );
}

#[test]
fn retry_after_is_the_wait_for_one_whole_token() {
    let mut bucket = TokenBucket::full(100);
    for _ in 0..100 {
        bucket.take(T0, 20, 100).unwrap();
    }
    assert_eq!(bucket.take(T0, 20, 100), Err(50));
    assert_eq!(bucket.take(T0 + 1, 20, 100), Err(49));
    assert_eq!(bucket.take(T0 + 49, 20, 100), Err(1));
    assert_eq!(bucket.take(T0 + 50, 20, 100), Ok(()));
    // 3/s, empty: 333.33 ms, rounded up.
    let mut slow = TokenBucket::full(1);
    slow.take(T0, 3, 1).unwrap();
    assert_eq!(slow.take(T0, 3, 1), Err(334));
}

#[test]
fn a_bucket_never_holds_more_than_its_burst() {
    let mut bucket = TokenBucket::full(100);
    bucket.take(T0, 20, 100).unwrap();
    assert_eq!(bucket.tokens(T0 + 3_600_000, 20, 100), 100);
    assert_eq!(bucket.ms_until_full(T0 + 3_600_000, 20, 100), 0);
    // A burst lowered by a new config clamps what was there.
    assert_eq!(bucket.tokens(T0, 20, 10), 10);
}

#[test]
fn ms_until_full_counts_from_empty_to_burst() {
    let (limiter, _) = emptied(Other, T0);
    let msg = limiter.bucket_of(Other);
    assert_eq!(msg.ms_until_full(T0, 20, 100), 5000);
    assert_eq!(msg.ms_until_full(T0 + 4999, 20, 100), 1);
    assert_eq!(msg.ms_until_full(T0 + 5000, 20, 100), 0);
}

#[test]
fn a_clock_going_backwards_mints_nothing_and_refill_resumes_where_it_was() {
    let mut bucket = TokenBucket::full(1);
    bucket.take(T0 + 10_000, 20, 1).unwrap();
    // Earlier than the last take: no token, and the wait includes the clock's lag.
    assert_eq!(bucket.take(T0 + 5_000, 20, 1), Err(5_050));
    assert_eq!(bucket.take(T0, 20, 1), Err(10_050));
    assert_eq!(bucket.tokens(T0, 20, 1), 0);
    assert_eq!(bucket.ms_until_full(T0, 20, 1), 10_050);
    assert_eq!(bucket.take(T0 + 10_049, 20, 1), Err(1));
    assert_eq!(bucket.take(T0 + 10_050, 20, 1), Ok(()));
    // Back to 0 after that: still nothing, no panic.
    assert!(bucket.take(0, 20, 1).is_err());
}

#[test]
fn extreme_values_saturate_instead_of_overflowing() {
    let mut huge = TokenBucket::full(u64::MAX);
    assert_eq!(huge.take(u64::MAX, u64::MAX, u64::MAX), Ok(()));
    assert_eq!(huge.take(0, u64::MAX, u64::MAX), Ok(()));
    // Behind the clock by the whole range: the wait saturates.
    assert_eq!(huge.ms_until_full(0, u64::MAX, u64::MAX), u64::MAX);
    assert_eq!(huge.take_per_minute(u64::MAX, u64::MAX, u64::MAX), Ok(()));

    // No refill or no burst: the wait is "never", not a panic or a zero.
    let mut stuck = TokenBucket::full(1);
    stuck.take(T0, 0, 1).unwrap();
    assert_eq!(stuck.take(u64::MAX, 0, 1), Err(u64::MAX));
    assert_eq!(stuck.ms_until_full(T0, 0, 1), u64::MAX);
    assert_eq!(TokenBucket::full(0).take(T0, 20, 0), Err(u64::MAX));

    // A gap of the whole u64 range with a huge rate fills the bucket, nothing more.
    let mut gap = TokenBucket::full(100);
    for _ in 0..100 {
        gap.take(0, 1_000_000_000, 100).unwrap();
    }
    assert_eq!(gap.tokens(u64::MAX, 1_000_000_000, 100), 100);

    let limits = RateLimits {
        msg_per_s: u64::MAX,
        msg_burst: u64::MAX,
        candidate_per_s: u64::MAX,
        candidate_burst: u64::MAX,
        room_per_s: u64::MAX,
        connect_per_min: u64::MAX,
        abuse_strikes: usize::MAX,
        ban_ms: u64::MAX,
        max_connections_per_user: usize::MAX,
    };
    let mut limiter = ConnectionLimiter::new(&limits);
    let mut room = limits.room_bucket();
    for now in [0, u64::MAX, 1, u64::MAX / 2] {
        assert_eq!(
            limiter.check(Candidate, now, &limits, &mut room),
            Verdict::Pass
        );
        assert_eq!(limiter.check(Other, now, &limits, &mut room), Verdict::Pass);
    }
    assert!(!limiter.needs_persisting(u64::MAX, &limits));
    let mut ids = Identities::default();
    assert_eq!(ids.admit_check("u", u64::MAX, &limits, 0), Ok(()));
    assert_eq!(
        ids.on_drop("u", u64::MAX, &limits),
        StrikeOutcome::Counted { strikes: 1 }
    );
    let one_strike = RateLimits {
        abuse_strikes: 1,
        ..limits
    };
    assert_eq!(
        ids.on_drop("v", u64::MAX - 5_000, &one_strike),
        StrikeOutcome::Ban { until_ms: u64::MAX }
    );
    assert_eq!(ids.prune(u64::MAX), 2);
}

// ---- Per-connection limiter -------------------------------------------------------------------

#[test]
fn a_message_over_its_bucket_is_dropped_with_rate_limited_and_its_retry_after() {
    let (mut limiter, mut room) = emptied(Other, T0);
    assert_eq!(
        limiter.check(Other, T0 + 10, &D, &mut room),
        Verdict::Drop {
            notice: Some(Notice::RateLimited { retry_after_ms: 40 })
        }
    );
}

#[test]
fn a_candidate_over_its_bucket_is_dropped_with_a_throttled_warning() {
    let (mut limiter, mut room) = emptied(Candidate, T0);
    assert_eq!(
        limiter.check(Candidate, T0, &D, &mut room),
        Verdict::Drop {
            notice: Some(Notice::Throttled {
                dropped: 1,
                retry_after_ms: 50
            })
        }
    );
}

/// Sends `class` frames at `t` until one is dropped; returns that drop's notice.
fn first_drop(
    limiter: &mut ConnectionLimiter,
    class: FrameClass,
    t: u64,
    room: &mut TokenBucket,
) -> Option<Notice> {
    loop {
        if let Verdict::Drop { notice } = limiter.check(class, t, &D, room) {
            return notice;
        }
    }
}

#[test]
fn one_error_per_1000_ms_then_silence_even_across_a_calendar_second() {
    let (mut limiter, mut room) = emptied(Other, T0 + 900);
    assert!(first_drop(&mut limiter, Other, T0 + 900, &mut room).is_some());
    // A new calendar second, but only 100 ms later: silent.
    assert_eq!(first_drop(&mut limiter, Other, T0 + 1000, &mut room), None);
    assert_eq!(first_drop(&mut limiter, Other, T0 + 1899, &mut room), None);
    let notice = first_drop(&mut limiter, Other, T0 + 1900, &mut room);
    assert!(
        matches!(notice, Some(Notice::RateLimited { .. })),
        "{notice:?}"
    );
    assert_eq!(first_drop(&mut limiter, Other, T0 + 1900, &mut room), None);
}

#[test]
fn silent_candidate_drops_are_summed_into_the_next_warning() {
    let (mut limiter, mut room) = emptied(Candidate, T0);
    let mut notices = Vec::new();
    let mut passed = 0;
    // 5 more at once: the first is warned about, 4 are silent.
    // At +500 ms, 20: 10 refilled tokens pass, 10 are dropped silently.
    // At +1000 ms, 11: 10 pass, the 11th brings the warning: 4 + 10 + 1.
    for (t, n) in [(T0, 5), (T0 + 500, 20), (T0 + 1000, 11)] {
        for _ in 0..n {
            match limiter.check(Candidate, t, &D, &mut room) {
                Verdict::Pass => passed += 1,
                Verdict::Drop { notice } => notices.extend(notice.map(|n| (t - T0, n))),
            }
        }
    }
    assert_eq!(passed, 20);
    assert_eq!(
        notices,
        [
            (
                0,
                Notice::Throttled {
                    dropped: 1,
                    retry_after_ms: 50
                }
            ),
            (
                1000,
                Notice::Throttled {
                    dropped: 15,
                    retry_after_ms: 50
                }
            ),
        ]
    );
}

/// A frame every 5 ms (200/s) for 4 s against 20/s with a burst of 100: frame k is at 5k ms and
/// passes while k + 1 <= 100 + k / 10, so the first drop is frame 111 at 555 ms; after that one
/// frame in ten passes. One notice per 1000 ms: at 555, 1555, 2555, 3555 ms, each (but the
/// first) reporting the 180 drops since the previous one.
#[test]
fn a_four_second_flood_gets_one_notice_per_second_with_exact_drop_counts() {
    for class in [Candidate, Other] {
        let mut limiter = ConnectionLimiter::new(&D);
        let mut room = TokenBucket::full(1_000_000);
        let mut notices = Vec::new();
        let (mut passed, mut dropped) = (0, 0);
        for k in 0..800u64 {
            match limiter.check(class, T0 + 5 * k, &D, &mut room) {
                Verdict::Pass => passed += 1,
                Verdict::Drop { notice } => {
                    dropped += 1;
                    notices.extend(notice.map(|n| (5 * k, n)));
                }
            }
        }
        // 111 pass before the first drop, then frames 120, 130, …, 790.
        assert_eq!((passed, dropped), (111 + 68, 621), "{class:?}");
        let times: Vec<u64> = notices.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [555, 1555, 2555, 3555], "{class:?}");
        for (t, notice) in notices {
            match (class, notice) {
                (
                    Candidate,
                    Notice::Throttled {
                        dropped,
                        retry_after_ms,
                    },
                ) => {
                    assert_eq!(dropped, if t == 555 { 1 } else { 180 });
                    assert!((1..=50).contains(&retry_after_ms));
                }
                (Other, Notice::RateLimited { retry_after_ms }) => {
                    assert!((1..=50).contains(&retry_after_ms));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn a_candidate_flood_never_blocks_the_offer_and_the_other_way_round() {
    let (mut limiter, mut room) = emptied(Candidate, T0);
    assert!(matches!(
        limiter.check(Candidate, T0, &D, &mut room),
        Verdict::Drop { .. }
    ));
    for _ in 0..100 {
        assert_eq!(limiter.check(Other, T0, &D, &mut room), Verdict::Pass);
    }
    assert!(matches!(
        drop_notice(limiter.check(Other, T0, &D, &mut room)),
        Some(Notice::RateLimited { .. })
    ));
    // Each kind has its own notice cadence too: the warning did not use up the error.
    assert_eq!(limiter.bucket_of(Candidate).tokens(T0, 20, 100), 0);
}

#[test]
fn the_room_bucket_limits_all_connections_together_with_rate_limited() {
    let limits = RateLimits { room_per_s: 5, ..D };
    let mut room = limits.room_bucket();
    let mut alice = ConnectionLimiter::new(&limits);
    let mut bob = ConnectionLimiter::new(&limits);
    for _ in 0..3 {
        assert_eq!(alice.check(Other, T0, &limits, &mut room), Verdict::Pass);
    }
    for _ in 0..2 {
        assert_eq!(bob.check(Candidate, T0, &limits, &mut room), Verdict::Pass);
    }
    // A candidate over the room's bucket is told `rate_limited`, not `throttled`.
    assert_eq!(
        bob.check(Candidate, T0, &limits, &mut room),
        Verdict::Drop {
            notice: Some(Notice::RateLimited {
                retry_after_ms: 200
            })
        }
    );
    // The dropped frame did not cost bob's own bucket.
    assert_eq!(bob.bucket_of(Candidate).tokens(T0, 20, 100), 98);
    // Alice's first room drop is told; it is her first error.
    assert!(matches!(
        drop_notice(alice.check(Other, T0 + 100, &limits, &mut room)),
        Some(Notice::RateLimited {
            retry_after_ms: 100
        })
    ));
    // The room's burst is its rate: after a second it is full again.
    for _ in 0..5 {
        assert_eq!(
            alice.check(Other, T0 + 1000, &limits, &mut room),
            Verdict::Pass
        );
    }
}

#[test]
fn a_frame_that_decodes_as_the_other_class_is_charged_to_that_class_alone() {
    // Sniffed as a message, decoded as a candidate: the message token comes back.
    let (mut limiter, mut room) = emptied(Candidate, T0);
    assert_eq!(limiter.check(Other, T0, &D, &mut room), Verdict::Pass);
    assert_eq!(limiter.bucket_of(Other).tokens(T0, 20, 100), 99);
    assert_eq!(
        limiter.reclassify(Other, Candidate, T0, &D),
        Verdict::Drop {
            notice: Some(Notice::Throttled {
                dropped: 1,
                retry_after_ms: 50
            })
        }
    );
    assert_eq!(limiter.bucket_of(Other).tokens(T0, 20, 100), 100);
    // The other way round, with room in the message bucket: passes, one token from it.
    let mut fresh = ConnectionLimiter::new(&D);
    assert_eq!(fresh.check(Candidate, T0, &D, &mut room), Verdict::Pass);
    assert_eq!(fresh.reclassify(Candidate, Other, T0, &D), Verdict::Pass);
    assert_eq!(fresh.bucket_of(Candidate).tokens(T0, 20, 100), 100);
    assert_eq!(fresh.bucket_of(Other).tokens(T0, 20, 100), 99);
    // Agreeing classes: nothing changes.
    let before = fresh.clone();
    assert_eq!(fresh.reclassify(Other, Other, T0, &D), Verdict::Pass);
    assert_eq!(fresh, before);
}

#[test]
fn a_clock_jumping_back_more_than_a_second_does_not_silence_notices() {
    let (mut limiter, mut room) = emptied(Other, T0 + 10_000);
    assert!(drop_notice(limiter.check(Other, T0 + 10_000, &D, &mut room)).is_some());
    assert_eq!(
        drop_notice(limiter.check(Other, T0 + 9_500, &D, &mut room)),
        None
    );
    assert!(drop_notice(limiter.check(Other, T0, &D, &mut room)).is_some());
}

#[test]
fn default_limits_never_need_persisting() {
    let mut limiter = ConnectionLimiter::new(&D);
    let mut room = TokenBucket::full(u64::MAX);
    for t in (0..20_000).step_by(1) {
        let now = T0 + t;
        for class in [Candidate, Other] {
            let _ = limiter.check(class, now, &D, &mut room);
            let _ = limiter.check(class, now, &D, &mut room);
        }
        assert!(!limiter.needs_persisting(now, &D), "at {t}");
    }
}

#[test]
fn a_slow_refill_after_a_burst_needs_persisting_until_it_is_nearly_full() {
    let limits = RateLimits {
        msg_per_s: 1,
        msg_burst: 100,
        ..D
    };
    let mut limiter = ConnectionLimiter::new(&limits);
    let mut room = TokenBucket::full(1_000_000);
    assert!(!limiter.needs_persisting(T0, &limits));
    for _ in 0..100 {
        limiter.check(Other, T0, &limits, &mut room);
    }
    assert!(limiter.needs_persisting(T0, &limits));
    // Full again 100 s after emptying: from 90 s on, within the eviction idle time.
    assert_eq!(
        limiter.bucket_of(Other).ms_until_full(T0 + 90_000, 1, 100),
        EVICTION_IDLE_MS
    );
    assert!(limiter.needs_persisting(T0 + 89_999, &limits));
    assert!(!limiter.needs_persisting(T0 + 90_000, &limits));
}

#[test]
fn a_limiter_rides_in_an_attachment_as_compact_camel_case_json() {
    let fresh = ConnectionLimiter::new(&D);
    let json = serde_json::to_string(&fresh).unwrap();
    assert_eq!(
        json,
        r#"{"msg":{"level":6000000,"atMs":0},"candidate":{"level":6000000,"atMs":0}}"#
    );
    let (mut limiter, mut room) = emptied(Candidate, T0);
    for _ in 0..3 {
        limiter.check(Candidate, T0, &D, &mut room);
    }
    let json = serde_json::to_string(&limiter).unwrap();
    assert!(
        json.contains(r#""lastWarningMs":"#) && json.contains(r#""dropped":2"#),
        "{json}"
    );
    let back: ConnectionLimiter = serde_json::from_str(&json).unwrap();
    assert_eq!(back, limiter);
}

// ---- Sniffing ---------------------------------------------------------------------------------

#[test]
fn sniffing_finds_the_top_level_type_through_whitespace() {
    assert_eq!(sniff_class(r#"{"type":"candidate","to":"x"}"#), Candidate);
    assert_eq!(
        sniff_class("{\n\t\"to\": \"x\" ,\r\n  \"type\"\t :\n \"candidate\" }"),
        Candidate
    );
    assert_eq!(sniff_class(r#"{"to":"x","type":"offer"}"#), Other);
    assert_eq!(sniff_type(r#"{"type":"ack","seq":3}"#), Some("ack"));
    assert_eq!(sniff_type(r#"{"seq":3,"type" : "ack"}"#), Some("ack"));
}

#[test]
fn sniffing_ignores_type_inside_strings_and_nested_objects() {
    // The word in a string value, with and without escaped quotes around it.
    assert_eq!(sniff_class(r#"{"to":"type","type":"offer"}"#), Other);
    assert_eq!(
        sniff_class(r#"{"to":"type","type":"candidate"}"#),
        Candidate
    );
    assert_eq!(
        sniff_class(r#"{"note":"\"type\":\"candidate\"","type":"offer"}"#),
        Other
    );
    // A key that ends in an escaped quote followed by `type`.
    assert_eq!(
        sniff_class(r#"{"x\"type":"candidate","type":"offer"}"#),
        Other
    );
    // A nested object's type.
    assert_eq!(
        sniff_class(r#"{"candidate":{"type":"candidate"},"type":"offer"}"#),
        Other
    );
    assert_eq!(
        sniff_type(r#"{"a":[{"type":"x"}],"type":"leave"}"#),
        Some("leave")
    );
    // A backslash before the closing quote of an earlier value.
    assert_eq!(sniff_class(r#"{"a":"\\","type":"candidate"}"#), Candidate);
}

#[test]
fn sniffing_falls_back_to_other_when_it_cannot_tell() {
    for text in [
        r#"{"to":"a"}"#,
        r#"{"type":"candidates"}"#,
        r#"{"type":"candid\u0061te"}"#,
        r#"{"typ\u0065":"candidate"}"#,
        r#"{"type":1}"#,
        r#"{"type":"#,
        r#"{"type":"candidate"#,
        r#"["type","candidate"]"#,
        "candidate",
        "",
        "\"",
        "{\"\\",
    ] {
        assert_eq!(sniff_class(text), Other, "{text}");
    }
    assert_eq!(sniff_type(r#"{"to":"a"}"#), None);
    assert_eq!(sniff_type(r#"{"type":"candid\u0061te"}"#), None);
    assert_eq!(FrameClass::of_type("candidate"), Candidate);
    assert_eq!(FrameClass::of_type("offer"), Other);
}

// ---- Strikes and bans -------------------------------------------------------------------------

fn drop_at(ids: &mut Identities, user: &str, t: u64) -> StrikeOutcome {
    ids.on_drop(user, t, &D)
}

#[test]
fn drops_in_one_second_are_one_strike() {
    let mut ids = Identities::default();
    assert_eq!(
        drop_at(&mut ids, "u", T0),
        StrikeOutcome::Counted { strikes: 1 }
    );
    assert_eq!(ids.take_writes().len(), 1);
    for t in [T0 + 1, T0 + 500, T0 + 999] {
        assert_eq!(drop_at(&mut ids, "u", t), StrikeOutcome::AlreadyCounted);
    }
    assert!(ids.take_writes().is_empty());
    assert_eq!(
        drop_at(&mut ids, "u", T0 + 1000),
        StrikeOutcome::Counted { strikes: 2 }
    );
    assert_eq!(ids.take_writes().len(), 1);
}

#[test]
fn ten_strike_seconds_spread_over_61_seconds_do_not_ban_but_a_sliding_minute_does() {
    let mut ids = Identities::default();
    for (i, s) in [0, 7, 14, 21, 28, 35, 42, 49, 56].into_iter().enumerate() {
        assert_eq!(
            drop_at(&mut ids, "u", T0 + s * 1000),
            StrikeOutcome::Counted { strikes: i + 1 }
        );
    }
    // The tenth second is 60 s after the first, which no longer counts.
    assert_eq!(
        drop_at(&mut ids, "u", T0 + 60_000),
        StrikeOutcome::Counted { strikes: 9 }
    );
    assert_eq!(ids.get("u").unwrap().strikes().count(T0 + 60_000), 9);
    // One more second, and the minute from 7 s to 61 s holds ten.
    assert_eq!(
        drop_at(&mut ids, "u", T0 + 61_500),
        StrikeOutcome::Ban {
            until_ms: T0 + 121_500
        }
    );
}

#[test]
fn the_tenth_strike_within_a_minute_bans_clears_strikes_and_writes_once() {
    let mut ids = Identities::default();
    for s in [0, 1, 2, 3, 4, 5, 6, 7, 8] {
        drop_at(&mut ids, "u", T0 + s * 1000);
    }
    ids.take_writes();
    assert_eq!(
        drop_at(&mut ids, "u", T0 + 59_999),
        StrikeOutcome::Ban {
            until_ms: T0 + 119_999
        }
    );
    let record = ids.get("u").unwrap();
    assert!(record.strikes().seconds().is_empty());
    assert_eq!(record.banned_until_ms(), Some(T0 + 119_999));
    assert!(matches!(
        ids.take_writes().as_slice(),
        [Write::Upsert { user, .. }] if user == "u"
    ));
    // Strikes start over after the ban.
    assert_eq!(
        drop_at(&mut ids, "u", T0 + 60_000),
        StrikeOutcome::Counted { strikes: 1 }
    );
}

#[test]
fn a_ban_refuses_the_identity_until_it_ends_and_only_that_identity() {
    let mut ids = Identities::default();
    let limits = RateLimits {
        abuse_strikes: 1,
        ..D
    };
    assert_eq!(
        ids.on_drop("u", T0, &limits),
        StrikeOutcome::Ban {
            until_ms: T0 + 60_000
        }
    );
    ids.take_writes();
    assert_eq!(
        ids.admit_check("u", T0 + 1, &limits, 0),
        Err(AdmitRefusal::Banned {
            retry_after_ms: 59_999
        })
    );
    assert_eq!(
        ids.admit_check("u", T0 + 59_999, &limits, 0),
        Err(AdmitRefusal::Banned { retry_after_ms: 1 })
    );
    assert!(ids.take_writes().is_empty(), "a refusal writes nothing");
    assert_eq!(ids.admit_check("other", T0 + 1, &limits, 0), Ok(()));
    assert_eq!(ids.admit_check("u", T0 + 60_000, &limits, 0), Ok(()));
}

#[test]
fn strikes_with_a_clock_going_backwards_count_distinct_seconds() {
    let mut ids = Identities::default();
    assert_eq!(
        drop_at(&mut ids, "u", T0 + 100_000),
        StrikeOutcome::Counted { strikes: 1 }
    );
    assert_eq!(
        drop_at(&mut ids, "u", T0 + 90_000),
        StrikeOutcome::Counted { strikes: 2 }
    );
    assert_eq!(
        drop_at(&mut ids, "u", T0 + 100_500),
        StrikeOutcome::AlreadyCounted
    );
    assert_eq!(
        ids.get("u").unwrap().strikes().seconds(),
        [T0 / 1000 + 90, T0 / 1000 + 100]
    );
}

#[test]
fn a_zero_ban_closes_but_refuses_nothing_afterwards() {
    let limits = RateLimits {
        abuse_strikes: 1,
        ban_ms: 0,
        ..D
    };
    let mut ids = Identities::default();
    assert_eq!(
        ids.on_drop("u", T0, &limits),
        StrikeOutcome::Ban { until_ms: T0 }
    );
    assert_eq!(ids.admit_check("u", T0, &limits, 0), Ok(()));
}

// ---- Admission --------------------------------------------------------------------------------

#[test]
fn thirty_connects_a_minute_with_a_burst_of_thirty_then_one_every_two_seconds() {
    let mut ids = Identities::default();
    for i in 0..30 {
        assert_eq!(ids.admit_check("u", T0, &D, 0), Ok(()), "connect {i}");
    }
    // The first five connects leave a bucket that is full again within 10 s (0.5 tokens/s),
    // before the object could be evicted: nothing to store. From the sixth on, one write each.
    assert_eq!(
        ids.take_writes().len(),
        25,
        "one write per admitted connect that leaves more than 10 s of refill"
    );
    assert_eq!(
        ids.admit_check("u", T0, &D, 0),
        Err(AdmitRefusal::ConnectRate {
            retry_after_ms: 2000
        })
    );
    assert_eq!(
        ids.admit_check("u", T0 + 1500, &D, 0),
        Err(AdmitRefusal::ConnectRate {
            retry_after_ms: 500
        })
    );
    assert!(ids.take_writes().is_empty());
    assert_eq!(ids.admit_check("u", T0 + 2000, &D, 0), Ok(()));
    assert!(ids.admit_check("u", T0 + 2000, &D, 0).is_err());
    // Another identity has its own bucket.
    assert_eq!(ids.admit_check("v", T0, &D, 0), Ok(()));
    // A minute after it was emptied (at 2 s) the bucket is full again: 30 more.
    for _ in 0..30 {
        assert_eq!(ids.admit_check("u", T0 + 62_000, &D, 0), Ok(()));
    }
    assert!(ids.admit_check("u", T0 + 62_000, &D, 0).is_err());
}

#[test]
fn the_connection_cap_refuses_the_fifth_open_connection() {
    let mut ids = Identities::default();
    assert_eq!(ids.admit_check("u", T0, &D, 3), Ok(()));
    assert_eq!(
        ids.admit_check("u", T0, &D, 4),
        Err(AdmitRefusal::ConnectionLimit)
    );
    assert_eq!(
        ids.admit_check("u", T0, &D, 40),
        Err(AdmitRefusal::ConnectionLimit)
    );
}

#[test]
fn a_refused_upgrade_spends_no_connect_token_and_writes_nothing() {
    let mut ids = Identities::default();
    ids.admit_check("u", T0, &D, 0).unwrap();
    ids.take_writes();
    let before = ids.get("u").unwrap().clone();
    for _ in 0..100 {
        assert_eq!(
            ids.admit_check("u", T0, &D, 4),
            Err(AdmitRefusal::ConnectionLimit)
        );
    }
    assert_eq!(ids.get("u"), Some(&before));
    assert!(ids.take_writes().is_empty());
    // An unknown identity refused at the cap gets no record at all.
    assert_eq!(
        ids.admit_check("new", T0, &D, 4),
        Err(AdmitRefusal::ConnectionLimit)
    );
    assert!(ids.get("new").is_none());
}

#[test]
fn admission_checks_the_ban_then_the_cap_then_the_connect_rate() {
    let limits = RateLimits {
        connect_per_min: 1,
        abuse_strikes: 1,
        ..D
    };
    let mut ids = Identities::default();
    ids.admit_check("u", T0, &limits, 0).unwrap();
    // Bucket empty and at the cap: the cap is told (waiting alone would not help).
    assert_eq!(
        ids.admit_check("u", T0, &limits, 4),
        Err(AdmitRefusal::ConnectionLimit)
    );
    assert!(matches!(
        ids.admit_check("u", T0, &limits, 0),
        Err(AdmitRefusal::ConnectRate { .. })
    ));
    // Banned as well: the ban is told.
    ids.on_drop("u", T0, &limits);
    assert_eq!(
        ids.admit_check("u", T0, &limits, 4),
        Err(AdmitRefusal::Banned {
            retry_after_ms: 60_000
        })
    );
}

#[test]
fn admission_refusals_map_to_their_codes_and_close_codes() {
    let banned = AdmitRefusal::Banned { retry_after_ms: 5 };
    let rate = AdmitRefusal::ConnectRate { retry_after_ms: 7 };
    let cap = AdmitRefusal::ConnectionLimit;
    assert_eq!(
        [banned.code(), rate.code(), cap.code()],
        [
            ErrorCode::RateLimited,
            ErrorCode::RateLimited,
            ErrorCode::ConnectionLimit
        ]
    );
    assert_eq!(
        [banned.close_code(), rate.close_code(), cap.close_code()],
        [4429, 4429, 1013]
    );
    assert_eq!(
        [
            banned.retry_after_ms(),
            rate.retry_after_ms(),
            cap.retry_after_ms()
        ],
        [Some(5), Some(7), None]
    );
    assert_eq!(cap.code().as_str(), "connection_limit");
}

// ---- Pruning and storage ----------------------------------------------------------------------

#[test]
fn prune_forgets_records_once_they_hold_nothing() {
    let mut ids = Identities::default();
    // One connect token spent: full again 2 s later.
    ids.admit_check("connect", T0, &D, 0).unwrap();
    // A strike at second 0: counts until second 59 included.
    ids.on_drop("strike", T0 + 500, &D);
    // A ban: until 90 s after it started.
    ids.on_drop(
        "ban",
        T0,
        &RateLimits {
            abuse_strikes: 1,
            ban_ms: 90_000,
            ..D
        },
    );
    ids.take_writes();
    assert_eq!(ids.prune(T0 + 1999), 0);
    assert!(
        ids.take_writes().is_empty(),
        "nothing pruned, nothing written"
    );
    assert_eq!(ids.prune(T0 + 2000), 1);
    assert!(ids.get("connect").is_none());
    assert_eq!(ids.take_writes(), [Write::Prune { now_ms: T0 + 2000 }]);
    assert_eq!(ids.prune(T0 + 59_999), 0);
    assert_eq!(ids.prune(T0 + 60_000), 1);
    assert!(ids.get("strike").is_none());
    assert_eq!(ids.prune(T0 + 89_999), 0);
    assert_eq!(ids.prune(T0 + 90_000), 1);
    assert!(ids.is_empty());
}

/// Applies the queued writes and checks that a reload holds every live record that would
/// still hold something after an eviction (which needs 10 s without events); the others may
/// be missing, which reads the same.
fn sync(ids: &mut Identities, table: &mut common::Table, now: u64) {
    table.apply(ids.take_writes());
    let loaded = table.load();
    for (user, record) in ids.iter() {
        if record.quiet_at_ms() > now + edgesignal::rate::EVICTION_IDLE_MS {
            assert_eq!(loaded.get(user), Some(record), "{user}");
        }
    }
}

#[test]
fn storage_round_trip_reloads_exactly_what_is_in_memory() {
    let mut ids = Identities::default();
    let mut table = common::Table::default();
    let limits = RateLimits {
        abuse_strikes: 3,
        ..D
    };
    ids.admit_check("a", T0, &limits, 0).unwrap();
    ids.admit_check("a", T0 + 10, &limits, 1).unwrap();
    ids.admit_check("b", T0 + 20, &limits, 0).unwrap();
    sync(&mut ids, &mut table, T0 + 20);
    assert!(
        table.0.is_empty(),
        "two connects refill within 10 s: nothing stored"
    );
    for t in [T0 + 1000, T0 + 1500, T0 + 2000] {
        ids.on_drop("a", t, &limits);
    }
    ids.on_drop("c", T0 + 2000, &limits);
    sync(&mut ids, &mut table, T0 + 2000);
    // The third strike second bans "a".
    assert!(matches!(
        ids.on_drop("a", T0 + 3000, &limits),
        StrikeOutcome::Ban { .. }
    ));
    sync(&mut ids, &mut table, T0 + 3000);
    assert_eq!(table.0["a"].strikes, "");
    assert_eq!(table.0["c"].strikes, (T0 / 1000 + 2).to_string());
    ids.prune(T0 + 62_000);
    table.apply(vec![edgesignal::storage::Write::Prune {
        now_ms: T0 + 62_000,
    }]);
    sync(&mut ids, &mut table, T0 + 62_000);
    assert_eq!(table.0.keys().collect::<Vec<_>>(), ["a"]);
    // And behaviour after a reload is the same: still banned.
    let mut reloaded = table.load();
    assert!(matches!(
        reloaded.admit_check("a", T0 + 62_000, &limits, 0),
        Err(AdmitRefusal::Banned { .. })
    ));
}

#[test]
fn a_passed_frame_and_a_repeated_strike_second_write_nothing() {
    let mut ids = Identities::default();
    let mut limiter = ConnectionLimiter::new(&D);
    let mut room = D.room_bucket();
    for t in 0..50 {
        assert_eq!(limiter.check(Other, T0 + t, &D, &mut room), Verdict::Pass);
    }
    assert!(ids.take_writes().is_empty());
    ids.on_drop("u", T0, &D);
    assert_eq!(ids.take_writes().len(), 1);
    ids.on_drop("u", T0 + 999, &D);
    assert!(ids.take_writes().is_empty());
}

#[test]
fn loading_tolerates_damaged_rows() {
    let ids = load_rows([Row {
        user: "u".into(),
        strikes: "12 x 11 12 -3".into(),
        banned_until_ms: Some(-5),
        connect_level: -1,
        connect_at_ms: 7,
        quiet_at_ms: 9,
    }]);
    let record = ids.get("u").unwrap();
    assert_eq!(record.strikes().seconds(), [11, 12]);
    assert_eq!(record.banned_until_ms(), Some(0));
    assert_eq!(record.quiet_at_ms(), 9);
}

#[test]
fn huge_values_are_stored_as_javascript_safe_integers() {
    let mut ids = Identities::default();
    let limits = RateLimits {
        abuse_strikes: 1,
        ban_ms: u64::MAX,
        ..D
    };
    ids.on_drop("u", T0, &limits);
    let (_, values) = ids.take_writes()[0].statement();
    assert_eq!(values[2], SqlValue::Integer((1 << 53) - 1));
}

#[test]
fn the_schema_has_an_identity_table_whose_statements_match_it() {
    assert_eq!(SCHEMA.len(), edgesignal::storage::TABLES as usize);
    assert!(SCHEMA[0].starts_with("CREATE TABLE IF NOT EXISTS identity"));
    for column in [
        "user",
        "strikes",
        "banned_until_ms",
        "connect_level",
        "connect_at_ms",
        "quiet_at_ms",
    ] {
        assert!(SCHEMA[0].contains(column) && LOAD.contains(column) && UPSERT.contains(column));
    }
    assert_eq!(UPSERT.matches('?').count(), 6);
    assert_eq!(PRUNE.matches('?').count(), 1);
}
