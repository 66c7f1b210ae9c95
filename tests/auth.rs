//! Token verification and room authorization, with tokens minted independently of the verifier.

mod common;

use common::{hs256, mint, NOW_MS, NOW_S, SECRET};
use edgesignal::auth::{AuthError, Identity, Verifier, VerifyingKey};
use edgesignal::error::ErrorCode;
use edgesignal::protocol::RoomId;
use serde_json::json;

fn verifier() -> Verifier {
    Verifier {
        keys: vec![VerifyingKey::hs256(SECRET.as_bytes()).unwrap()],
        fetches_keys: false,
        issuer: None,
        audience: None,
    }
}

fn valid() -> serde_json::Value {
    json!({"sub":"alice","exp":NOW_S + 600,"rooms":["lobby"]})
}

#[test]
fn a_valid_token_yields_the_identity() {
    let identity = verifier().verify(&hs256(valid()), NOW_MS).unwrap();
    assert_eq!(
        identity,
        Identity {
            sub: "alice".into(),
            rooms: Some(vec!["lobby".into()]),
            // `exp` plus the 60 s leeway: when a connection on this token ends (v1.1 §4).
            expires_ms: (NOW_S as u64 + 600 + 60) * 1000,
        }
    );
}

#[test]
fn expiry_honours_the_60_second_leeway() {
    let at = |exp: i64| verifier().verify(&hs256(json!({"sub":"a","exp":exp})), NOW_MS);
    assert!(at(NOW_S - 59).is_ok());
    assert_eq!(at(NOW_S - 61), Err(AuthError::Expired));
}

#[test]
fn exp_is_required() {
    let r = verifier().verify(&hs256(json!({"sub":"a"})), NOW_MS);
    assert!(matches!(r, Err(AuthError::BadClaims(_))), "{r:?}");
}

#[test]
fn sub_is_required_and_must_be_a_non_empty_string() {
    for claims in [
        json!({"exp":NOW_S + 60}),
        json!({"sub":"","exp":NOW_S + 60}),
        json!({"sub":42,"exp":NOW_S + 60}),
    ] {
        let r = verifier().verify(&hs256(claims.clone()), NOW_MS);
        assert!(matches!(r, Err(AuthError::BadClaims(_))), "{claims}: {r:?}");
        assert_eq!(r.unwrap_err().code(), ErrorCode::Unauthorized);
    }
}

#[test]
fn nbf_in_the_future_is_refused_beyond_the_leeway() {
    let at = |nbf: i64| {
        verifier().verify(
            &hs256(json!({"sub":"a","exp":NOW_S + 600,"nbf":nbf})),
            NOW_MS,
        )
    };
    assert!(at(NOW_S + 59).is_ok());
    assert_eq!(at(NOW_S + 120), Err(AuthError::NotYetValid));
}

#[test]
fn iat_in_the_future_is_refused_beyond_the_leeway() {
    let at = |iat: i64| {
        verifier().verify(
            &hs256(json!({"sub":"a","exp":NOW_S + 600,"iat":iat})),
            NOW_MS,
        )
    };
    assert!(at(NOW_S + 30).is_ok());
    assert_eq!(at(NOW_S + 3600), Err(AuthError::IssuedInFuture));
}

#[test]
fn a_bad_signature_alg_none_and_another_algorithm_are_refused_alike() {
    let good = hs256(valid());
    let (head, _sig) = good.rsplit_once('.').unwrap();
    let tampered = format!("{head}.{}", "A".repeat(43));
    let other_secret = mint(
        &json!({"alg":"HS256"}),
        &valid(),
        b"another-secret-of-at-least-32-bytes!!",
    );
    let none = mint(&json!({"alg":"none"}), &valid(), b"");
    let hs384 = mint(&json!({"alg":"HS384"}), &valid(), SECRET.as_bytes());
    let rs256_header = format!(
        "{}.{}",
        mint(&json!({"alg":"RS256"}), &valid(), b"")
            .rsplit_once('.')
            .unwrap()
            .0,
        "c2ln"
    );
    for (name, token) in [
        ("tampered", tampered),
        ("other secret", other_secret),
        ("alg none", none),
        ("HS384", hs384),
        ("RS256", rs256_header),
        ("garbage", "not-a-jwt".to_owned()),
        ("two parts", "a.b".to_owned()),
    ] {
        assert_eq!(
            verifier().verify(&token, NOW_MS),
            Err(AuthError::Invalid),
            "{name}"
        );
        assert_eq!(AuthError::Invalid.code(), ErrorCode::Unauthorized);
    }
}

#[test]
fn issuer_and_audience_are_checked_only_when_configured() {
    let v = Verifier {
        issuer: Some("https://auth.example".into()),
        audience: Some("edgesignal".into()),
        ..verifier()
    };
    let with = |extra: serde_json::Value| {
        let mut claims = valid();
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        hs256(claims)
    };
    assert!(v
        .verify(
            &with(json!({"iss":"https://auth.example","aud":"edgesignal"})),
            NOW_MS
        )
        .is_ok());
    assert!(v
        .verify(
            &with(json!({"iss":"https://auth.example","aud":["x","edgesignal"]})),
            NOW_MS
        )
        .is_ok());
    assert_eq!(
        v.verify(
            &with(json!({"iss":"https://evil.example","aud":"edgesignal"})),
            NOW_MS
        ),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(
        v.verify(&with(json!({"aud":"edgesignal"})), NOW_MS),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(
        v.verify(
            &with(json!({"iss":"https://auth.example","aud":"other"})),
            NOW_MS
        ),
        Err(AuthError::WrongAudience)
    );
    assert_eq!(
        v.verify(&with(json!({"iss":"https://auth.example"})), NOW_MS),
        Err(AuthError::WrongAudience)
    );
    // Unconfigured: any iss/aud passes.
    assert!(verifier()
        .verify(&with(json!({"iss":"whoever","aud":"whatever"})), NOW_MS)
        .is_ok());
}

#[test]
fn short_secrets_are_not_keys() {
    assert!(VerifyingKey::hs256(b"short").is_none());
    assert!(VerifyingKey::hs256(&[7; 32]).is_some());
}

fn may_enter(rooms: Option<&[&str]>, room: &str) -> Result<(), AuthError> {
    Identity {
        sub: "a".into(),
        rooms: rooms.map(|r| r.iter().map(|s| s.to_string()).collect()),
        expires_ms: 0,
    }
    .may_enter(&RoomId::parse(room).unwrap())
}

#[test]
fn rooms_claim_matches_exact_ids_and_star_prefixes() {
    let rooms: &[&str] = &["team-42-*", "lobby"];
    assert!(may_enter(Some(rooms), "lobby").is_ok());
    assert!(may_enter(Some(rooms), "team-42-standup").is_ok());
    assert!(may_enter(Some(rooms), "team-42-").is_ok());
    assert_eq!(
        may_enter(Some(rooms), "team-43"),
        Err(AuthError::RoomNotAllowed)
    );
    assert_eq!(
        may_enter(Some(rooms), "lobby2"),
        Err(AuthError::RoomNotAllowed)
    );
    assert_eq!(
        may_enter(Some(rooms), "Lobby"),
        Err(AuthError::RoomNotAllowed),
        "case matters"
    );
    assert!(may_enter(Some(&["*"]), "anything").is_ok());
    assert_eq!(
        may_enter(Some(&[]), "lobby"),
        Err(AuthError::RoomNotAllowed)
    );
    assert_eq!(may_enter(None, "lobby"), Err(AuthError::NoRooms));
    assert_eq!(AuthError::NoRooms.code(), ErrorCode::Forbidden);
    assert_eq!(AuthError::RoomNotAllowed.code(), ErrorCode::Forbidden);
}

#[test]
fn mistyped_claims_are_refused_like_a_bad_signature() {
    for claims in [
        json!({"sub":"a","exp":NOW_S + 60,"rooms":"lobby"}),
        json!({"sub":"a","exp":"tomorrow","rooms":["lobby"]}),
    ] {
        assert_eq!(
            verifier().verify(&hs256(claims.clone()), NOW_MS),
            Err(AuthError::Invalid),
            "{claims}"
        );
        // A forged token with the same claims gets the very same answer.
        let forged = mint(
            &json!({"alg":"HS256"}),
            &claims,
            b"not-the-secret-but-32-bytes-long!!",
        );
        assert_eq!(verifier().verify(&forged, NOW_MS), Err(AuthError::Invalid));
    }
}
