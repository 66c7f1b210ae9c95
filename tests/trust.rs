//! Tokens from an identity provider: public keys read from JWKS documents and bound to their
//! algorithm, key selection by `kid`, the refusals RFC 8725 asks for, the JWKS refetch rules,
//! the room policy and the origin allow-list. Public-key signatures are minted and checked with
//! jwt-compact's own ES256/EdDSA implementations (the Worker checks them with WebCrypto).

mod common;

use common::{hs256, native_check, NOW_MS, NOW_S, SECRET};
use edgesignal::auth::{AuthError, FetchedKeys, Step, Verifier, VerifyingKey};
use edgesignal::config::{edge_config, edge_config_with, ConfigError};
use edgesignal::jwks::{self, JwksCache};
use edgesignal::keys::{public_key, Alg, KeyRefusal, KeySet};
use edgesignal::origin::AllowedOrigins;
use edgesignal::policy::{self, Decision, PolicyConfig, PolicyMode, RoomCheck};
use edgesignal::protocol::RoomId;
use jwt_compact::alg::{Ed25519, Es256, SigningKey as _};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde_json::{json, Value};

/// A P-256 key pair from fixed bytes: (signing key, public JWK with `kid`).
fn es256_key(seed: u8, kid: &str) -> (<Es256 as jwt_compact::Algorithm>::SigningKey, Value) {
    let signing = <Es256 as jwt_compact::Algorithm>::SigningKey::from_slice(&[seed; 32]).unwrap();
    let public = signing.to_verifying_key();
    let mut jwk = serde_json::to_value(JsonWebKey::from(&public)).unwrap();
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!("ES256");
    (signing, jwk)
}

/// An Ed25519 key pair from a fixed seed: (signing key, public JWK with `kid`).
fn ed25519_key(seed: u8, kid: &str) -> (ed25519_compact::SecretKey, Value) {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([seed; 32]));
    let mut jwk = serde_json::to_value(JsonWebKey::from(&pair.pk)).unwrap();
    jwk["kid"] = json!(kid);
    (pair.sk, jwk)
}

fn claims() -> Value {
    json!({"sub":"alice","exp":NOW_S + 600,"rooms":["lobby"]})
}

fn es256_token(
    signing: &<Es256 as jwt_compact::Algorithm>::SigningKey,
    kid: Option<&str>,
    claims: Value,
) -> String {
    let header = match kid {
        Some(kid) => Header::empty().with_key_id(kid),
        None => Header::empty(),
    };
    Es256.token(&header, &Claims::new(claims), signing).unwrap()
}

fn eddsa_token(signing: &ed25519_compact::SecretKey, kid: &str, claims: Value) -> String {
    Ed25519
        .token(
            &Header::empty().with_key_id(kid),
            &Claims::new(claims),
            signing,
        )
        .unwrap()
}

fn jwks(keys: &[&Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn pinned(keys: &[&Value]) -> Verifier {
    let document = jwks(keys);
    edge_config(|name| match name {
        "JWT_SECRET" => Some(SECRET.to_owned()),
        "JWT_PUBLIC_KEYS" => Some(document.clone()),
        _ => None,
    })
    .unwrap()
    .verifier
}

fn verify(verifier: &Verifier, token: &str) -> Result<String, AuthError> {
    verifier
        .verify_with(token, NOW_MS, None, &mut native_check)
        .map(|identity| identity.sub)
}

#[test]
fn es256_and_eddsa_tokens_verify_with_pinned_keys_and_hs256_still_does() {
    let (es, es_jwk) = es256_key(7, "es");
    let (ed, ed_jwk) = ed25519_key(9, "ed");
    let v = pinned(&[&es_jwk, &ed_jwk]);
    assert_eq!(
        verify(&v, &es256_token(&es, Some("es"), claims())),
        Ok("alice".into())
    );
    assert_eq!(
        verify(&v, &eddsa_token(&ed, "ed", claims())),
        Ok("alice".into())
    );
    assert_eq!(verify(&v, &hs256(claims())), Ok("alice".into()));
}

#[test]
fn a_public_key_token_asks_for_exactly_its_signature_check() {
    let (es, es_jwk) = es256_key(7, "es");
    let v = pinned(&[&es_jwk]);
    let token = es256_token(&es, Some("es"), claims());
    match v.start(&token, NOW_MS, FetchedKeys::NotLoaded) {
        Step::CheckSignature(check) => {
            assert_eq!(check.key.alg, Alg::Es256);
            assert_eq!(check.message, token.rsplit_once('.').unwrap().0.as_bytes());
            assert_eq!(check.signature.len(), 64);
            assert!(native_check(&check));
            // A bad signature is refused by the caller's check, never by the claims.
            assert_eq!(
                v.signature_checked(&token, NOW_MS, false),
                Err(AuthError::Invalid)
            );
            assert!(v.signature_checked(&token, NOW_MS, true).is_ok());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_key_verifies_only_its_own_algorithm() {
    let (es, es_jwk) = es256_key(7, "es");
    let (ed, ed_jwk) = ed25519_key(9, "ed");
    let v = pinned(&[&es_jwk, &ed_jwk]);
    // An EdDSA token naming the ES256 key's kid: the ES256 key is never tried, and the one
    // EdDSA key has another kid.
    assert_eq!(
        verify(&v, &eddsa_token(&ed, "es", claims())),
        Err(AuthError::Invalid)
    );
    let pinned_ed_only = pinned(&[&ed_jwk]);
    assert_eq!(
        verify(&pinned_ed_only, &es256_token(&es, Some("ed"), claims())),
        Err(AuthError::Invalid)
    );
    // HS256 "signed" with the public key's JSON as the secret: the HMAC key is JWT_SECRET only.
    let confused =
        common::mint_with_secret(es_jwk.to_string().as_bytes(), claims(), json!({"kid":"es"}));
    assert_eq!(verify(&v, &confused), Err(AuthError::Invalid));
    // Without JWT_SECRET, no HS256 token verifies at all.
    let document = jwks(&[&es_jwk]);
    let no_secret = edge_config(|name| match name {
        "JWT_PUBLIC_KEYS" => Some(document.clone()),
        "LOG_SALT" => Some("salt".into()),
        _ => None,
    })
    .unwrap()
    .verifier;
    assert_eq!(verify(&no_secret, &confused), Err(AuthError::Invalid));
    assert_eq!(
        verify(&no_secret, &hs256(claims())),
        Err(AuthError::Invalid)
    );
}

#[test]
fn kid_selects_the_key_and_is_required_when_several_could_match() {
    let (a, a_jwk) = es256_key(7, "a");
    let (b, b_jwk) = es256_key(8, "b");
    let v = pinned(&[&a_jwk, &b_jwk]);
    assert_eq!(
        verify(&v, &es256_token(&a, Some("a"), claims())),
        Ok("alice".into())
    );
    assert_eq!(
        verify(&v, &es256_token(&b, Some("b"), claims())),
        Ok("alice".into())
    );
    // Signed by b, naming a: a's key is used and fails.
    assert_eq!(
        verify(&v, &es256_token(&b, Some("a"), claims())),
        Err(AuthError::Invalid)
    );
    // No kid with two ES256 keys: ambiguous, refused without trying both.
    assert_eq!(
        verify(&v, &es256_token(&a, None, claims())),
        Err(AuthError::Invalid)
    );
    // An unknown kid with no kid-less key: refused.
    assert_eq!(
        verify(&v, &es256_token(&a, Some("c"), claims())),
        Err(AuthError::Invalid)
    );
    // With one key, a token without kid is fine.
    let one = pinned(&[&a_jwk]);
    assert_eq!(
        verify(&one, &es256_token(&a, None, claims())),
        Ok("alice".into())
    );
}

#[test]
fn the_psychic_signature_and_wrong_lengths_are_refused_before_any_crypto() {
    let (es, es_jwk) = es256_key(7, "es");
    let v = pinned(&[&es_jwk]);
    let token = es256_token(&es, Some("es"), claims());
    let signed = token.rsplit_once('.').unwrap().0;
    let b64 = |bytes: &[u8]| {
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    };
    let order: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFF, 0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63,
        0x25, 0x51,
    ];
    let r_s_n = [order, order].concat();
    for signature in [
        vec![0u8; 64],
        r_s_n,
        vec![1u8; 63],
        vec![1u8; 65],
        Vec::new(),
    ] {
        let forged = format!("{signed}.{}", b64(&signature));
        let step = v.start(&forged, NOW_MS, FetchedKeys::NotLoaded);
        assert_eq!(step, Step::Done(Err(AuthError::Invalid)), "{signature:?}");
    }
}

#[test]
fn crit_duplicate_keys_and_oversized_tokens_are_refused() {
    let (es, es_jwk) = es256_key(7, "es");
    let v = pinned(&[&es_jwk]);
    let b64 =
        |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    let valid = es256_token(&es, Some("es"), claims());
    let parts: Vec<&str> = valid.split('.').collect();
    // Each with a valid ES256 signature over its own header and payload.
    let sign = |header: &str, payload: &str| -> String {
        use jwt_compact::Algorithm;
        let signed = format!("{}.{}", b64(header), b64(payload));
        let signature = Es256.sign(&es, signed.as_bytes());
        format!(
            "{signed}.{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                jwt_compact::AlgorithmSignature::as_bytes(&signature)
            )
        )
    };
    let payload = claims().to_string();
    let cases = [
        sign(r#"{"alg":"ES256","kid":"es","crit":["exp"]}"#, &payload),
        sign(r#"{"alg":"ES256","kid":"es","crit":[]}"#, &payload),
        sign(r#"{"alg":"ES256","kid":"es","alg":"ES256"}"#, &payload),
        sign(
            r#"{"alg":"ES256","kid":"es"}"#,
            &format!(
                r#"{{"sub":"alice","sub":"mallory","exp":{},"rooms":["lobby"]}}"#,
                NOW_S + 600
            ),
        ),
        sign(
            r#"{"alg":"ES256","kid":"es"}"#,
            &json!({"sub":"alice","exp":NOW_S + 600,"rooms":["lobby"],"pad":"x".repeat(9000)})
                .to_string(),
        ),
    ];
    for token in &cases {
        assert_eq!(verify(&v, token), Err(AuthError::Invalid), "{token}");
    }
    // The same construction without the defect verifies: the refusals above are the defects'.
    assert_eq!(
        verify(&v, &sign(r#"{"alg":"ES256","kid":"es"}"#, &payload)),
        Ok("alice".into())
    );
    assert_eq!(parts.len(), 3);
}

#[test]
fn alg_is_compared_exactly_and_jku_jwk_x5u_never_find_a_key() {
    let (_, es_jwk) = es256_key(7, "es");
    let (attacker, attacker_jwk) = es256_key(66, "attacker");
    let v = pinned(&[&es_jwk]);
    for alg in ["none", "None", "NONE", "es256", "ES384", "HS512", "PS256"] {
        let header = json!({"alg": alg, "kid": "es"}).to_string();
        let b64 =
            |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
        let token = format!("{}.{}.", b64(&header), b64(&claims().to_string()));
        assert_eq!(verify(&v, &token), Err(AuthError::Invalid), "{alg}");
    }
    // The attacker's key in `jwk`, its JWKS in `jku`/`x5u`: ignored, the token does not verify.
    let mut header = Header::empty()
        .with_key_id("attacker")
        .with_key_set_url("https://attacker.example/jwks.json")
        .with_certificate_url("https://attacker.example/cert.pem");
    header.token_type = Some("JWT".into());
    let token = Es256
        .token(&header, &Claims::new(claims()), &attacker)
        .unwrap();
    assert_eq!(verify(&v, &token), Err(AuthError::Invalid));
    assert!(attacker_jwk["x"].is_string());
}

#[test]
fn jwks_documents_load_only_usable_verifying_keys() {
    let (_, es_jwk) = es256_key(7, "es");
    let mut private = es_jwk.clone();
    private["d"] = json!("AAAA");
    let mut encryption = es_jwk.clone();
    encryption["use"] = json!("enc");
    let mut wrong_alg = es_jwk.clone();
    wrong_alg["alg"] = json!("RS256");
    let p384 = json!({"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA","kid":"p384"});
    let oct = json!({"kty":"oct","k":"c2VjcmV0","kid":"oct"});
    let short_rsa = json!({"kty":"RSA","n": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [0xC5u8; 128]),"e":"AQAB","kid":"rsa1024"});
    let rsa2048 = json!({"kty":"RSA","n": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [0xC5u8; 256]),"e":"AQAB","kid":"rsa2048"});
    let set = KeySet::from_jwks(&jwks(&[
        &es_jwk,
        &private,
        &encryption,
        &wrong_alg,
        &p384,
        &oct,
        &short_rsa,
        &rsa2048,
    ]))
    .unwrap();
    let kids: Vec<_> = set.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
    assert_eq!(kids, ["es", "rsa2048"]);
    assert_eq!(set.skipped.len(), 6);
    assert!(
        matches!(public_key(&short_rsa), Err(KeyRefusal::Refused(why)) if why.contains("2048"))
    );
    assert!(matches!(public_key(&oct), Err(KeyRefusal::Refused(_))));
    assert!(matches!(public_key(&p384), Err(KeyRefusal::Unsupported(_))));
    assert!(KeySet::from_jwks("[]").is_err());
    assert!(KeySet::from_jwks("{\"keys\":{}}").is_err());
}

#[test]
fn pinned_keys_must_all_load_and_some_key_must_be_configured() {
    let (_, es_jwk) = es256_key(7, "es");
    let short_rsa = json!({"kty":"RSA","n": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [0xC5u8; 128]),"e":"AQAB","kid":"rsa1024"});
    let document = jwks(&[&es_jwk, &short_rsa]);
    let err = edge_config(|name| match name {
        "JWT_PUBLIC_KEYS" => Some(document.clone()),
        "LOG_SALT" => Some("salt".into()),
        _ => None,
    })
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("rsa1024") && err.to_string().contains("2048"),
        "{err}"
    );
    assert_eq!(
        edge_config(|_| None).err(),
        Some(ConfigError::MissingSecret)
    );
    // Public keys without JWT_SECRET need a salt for user ids.
    let only_keys = jwks(&[&es_jwk]);
    let err = edge_config(|name| (name == "JWT_PUBLIC_KEYS").then(|| only_keys.clone())).err();
    assert_eq!(err, Some(ConfigError::MissingSalt));
    // JWKS_URL must be https, except to loopback.
    for (url, ok) in [
        ("https://idp.example/.well-known/jwks.json", true),
        ("http://127.0.0.1:9999/jwks", true),
        ("http://localhost/jwks", true),
        ("http://idp.example/jwks", false),
        ("http://127.0.0.1.evil.example/jwks", false),
        ("ftp://idp.example/jwks", false),
    ] {
        let config = edge_config(|name| match name {
            "JWKS_URL" => Some(url.to_owned()),
            "LOG_SALT" => Some("salt".into()),
            _ => None,
        });
        assert_eq!(config.is_ok(), ok, "{url}");
    }
}

fn fetching_verifier() -> Verifier {
    edge_config(|name| match name {
        "JWKS_URL" => Some("https://idp.example/jwks".into()),
        "JWT_SECRET" => Some(SECRET.into()),
        _ => None,
    })
    .unwrap()
    .verifier
}

#[test]
fn fetched_keys_are_asked_for_only_when_the_token_needs_them() {
    let v = fetching_verifier();
    let (es, es_jwk) = es256_key(7, "es");
    // HS256 with JWT_SECRET: no fetch.
    assert!(matches!(
        v.start(&hs256(claims()), NOW_MS, FetchedKeys::NotLoaded),
        Step::Done(Ok(_))
    ));
    let token = es256_token(&es, Some("es"), claims());
    assert_eq!(
        v.start(&token, NOW_MS, FetchedKeys::NotLoaded),
        Step::FetchKeys { unknown_kid: false }
    );
    let set = KeySet::from_jwks(&jwks(&[&es_jwk])).unwrap();
    assert!(matches!(
        v.start(&token, NOW_MS, FetchedKeys::Loaded(&set)),
        Step::CheckSignature(_)
    ));
    // A kid the loaded set lacks: one refetch; after it, refused.
    let (other, _) = es256_key(8, "rotated");
    let rotated = es256_token(&other, Some("rotated"), claims());
    assert_eq!(
        v.start(&rotated, NOW_MS, FetchedKeys::Loaded(&set)),
        Step::FetchKeys { unknown_kid: true }
    );
    assert_eq!(
        v.start(&rotated, NOW_MS, FetchedKeys::Final(&set)),
        Step::Done(Err(AuthError::Invalid))
    );
    // No set to be had: unavailable (503/1013), not unauthorized.
    assert_eq!(
        v.start(&token, NOW_MS, FetchedKeys::Unavailable),
        Step::Done(Err(AuthError::Unavailable))
    );
    assert_eq!(AuthError::Unavailable.code().as_str(), "unavailable");
}

#[test]
fn jwks_freshness_follows_cache_control_within_bounds() {
    assert_eq!(jwks::freshness_ms(None), jwks::MIN_FRESH_MS);
    assert_eq!(jwks::freshness_ms(Some("max-age=5")), 60_000);
    assert_eq!(jwks::freshness_ms(Some("public, max-age=600")), 600_000);
    assert_eq!(jwks::freshness_ms(Some("max-age=86400")), 3_600_000);
    assert_eq!(
        jwks::freshness_ms(Some("max-age=600, s-maxage=120")),
        120_000
    );
    assert_eq!(jwks::freshness_ms(Some("no-store, max-age=600")), 60_000);
    assert_eq!(jwks::freshness_ms(Some("max-age=banana")), 60_000);
}

#[test]
fn unknown_kids_refetch_at_most_every_30_s_and_failures_keep_the_last_good_set_for_a_day() {
    let (_, es_jwk) = es256_key(7, "es");
    let body = jwks(&[&es_jwk]);
    let mut cache = JwksCache::default();
    let t0 = 1_000_000;
    assert!(cache.should_fetch(t0, false), "nothing loaded");
    cache.fetched(t0, &body, Some("max-age=600")).unwrap();
    assert!(cache.is_fresh(t0 + 599_000) && !cache.is_fresh(t0 + 600_000));
    assert!(!cache.should_fetch(t0 + 1000, false), "fresh");
    assert!(cache.should_fetch(t0 + 1000, true), "first unknown kid");
    assert!(
        !cache.should_fetch(t0 + 30_999, true),
        "within 30 s of the last"
    );
    assert!(cache.should_fetch(t0 + 31_000, true));
    // Stale: refetch; it fails; the old set is still used, and no retry for 5 s.
    let stale = t0 + 600_000;
    assert!(cache.should_fetch(stale, false));
    cache.failed(stale);
    assert!(cache.usable(stale).is_some());
    assert!(!cache.should_fetch(stale + 4_999, false));
    assert!(cache.should_fetch(stale + 5_000, false));
    // A document that is not a JWKS counts as a failure and keeps the old set.
    assert!(cache.fetched(stale + 5_000, "<html>", None).is_err());
    assert_eq!(cache.usable(stale + 5_000).unwrap().keys.len(), 1);
    // The last good set ends 24 h after it was fetched.
    assert!(cache.usable(t0 + jwks::STALE_LIMIT_MS - 1).is_some());
    assert!(cache.usable(t0 + jwks::STALE_LIMIT_MS).is_none());
}

#[test]
fn another_isolates_newer_set_is_taken_from_the_shared_cache() {
    let (_, a) = es256_key(7, "a");
    let (_, b) = es256_key(8, "b");
    let mut cache = JwksCache::default();
    cache.fetched(1000, &jwks(&[&a]), None).unwrap();
    cache.restore(&jwks(&[&b]), 500, 999_999); // older: ignored
    assert_eq!(
        cache.usable(2000).unwrap().keys[0].kid.as_deref(),
        Some("a")
    );
    cache.restore(&jwks(&[&b]), 2000, 2000 + 10_000_000); // newer: taken, freshness capped at 1 h
    assert_eq!(
        cache.usable(3000).unwrap().keys[0].kid.as_deref(),
        Some("b")
    );
    assert!(!cache.is_fresh(2000 + jwks::MAX_FRESH_MS));
}

fn identity(rooms: Option<Vec<&str>>) -> edgesignal::auth::Identity {
    edgesignal::auth::Identity {
        sub: "alice".into(),
        rooms: rooms.map(|r| r.into_iter().map(str::to_owned).collect()),
        expires_ms: NOW_MS + 600_000,
    }
}

#[test]
fn the_room_policy_is_asked_for_tokens_without_rooms_or_always() {
    let lobby = RoomId::parse("lobby").unwrap();
    let claim = PolicyConfig {
        mode: PolicyMode::WithoutRoomsClaim,
        url: "https://backend.example/policy".into(),
        token: None,
        binding: false,
    };
    let always = PolicyConfig {
        mode: PolicyMode::Always,
        ..claim.clone()
    };
    let none = identity(None);
    let lobby_only = identity(Some(vec!["lobby"]));
    let other_only = identity(Some(vec!["other"]));
    assert_eq!(
        policy::check_room(&none, &lobby, None),
        RoomCheck::Done(Err(AuthError::NoRooms))
    );
    assert_eq!(
        policy::check_room(&none, &lobby, Some(&claim)),
        RoomCheck::AskPolicy
    );
    assert_eq!(
        policy::check_room(&lobby_only, &lobby, Some(&claim)),
        RoomCheck::Done(Ok(()))
    );
    assert_eq!(
        policy::check_room(&other_only, &lobby, Some(&claim)),
        RoomCheck::Done(Err(AuthError::RoomNotAllowed))
    );
    assert_eq!(
        policy::check_room(&lobby_only, &lobby, Some(&always)),
        RoomCheck::AskPolicy
    );
    assert_eq!(
        policy::check_room(&none, &lobby, Some(&always)),
        RoomCheck::AskPolicy
    );
    // With `always`, a rooms claim can still only narrow.
    assert_eq!(
        policy::check_room(&other_only, &lobby, Some(&always)),
        RoomCheck::Done(Err(AuthError::RoomNotAllowed))
    );
    assert_eq!(
        policy::after_policy(Some(Decision {
            allow: true,
            ttl_s: 60
        })),
        Ok(())
    );
    assert_eq!(
        policy::after_policy(Some(Decision {
            allow: false,
            ttl_s: 60
        })),
        Err(AuthError::PolicyDenied)
    );
    assert_eq!(policy::after_policy(None), Err(AuthError::Unavailable));
    assert_eq!(AuthError::PolicyDenied.code().as_str(), "forbidden");
}

#[test]
fn policy_answers_are_read_strictly_and_fail_closed() {
    let d = |allow, ttl_s| Some(Decision { allow, ttl_s });
    assert_eq!(policy::parse_answer(200, r#"{"allow":true}"#), d(true, 60));
    assert_eq!(
        policy::parse_answer(200, r#"{"allow":false,"ttlS":5}"#),
        d(false, 5)
    );
    assert_eq!(
        policy::parse_answer(200, r#"{"allow":true,"ttlS":999999}"#),
        d(true, 3600)
    );
    assert_eq!(
        policy::parse_answer(200, r#"{"allow":true,"ttlS":-1}"#),
        d(true, 0)
    );
    assert_eq!(
        policy::parse_answer(200, r#"{"allow":true,"ttlS":0}"#),
        d(true, 0)
    );
    for (status, body) in [
        (200, r#"{"allow":"yes"}"#),
        (200, r#"{}"#),
        (200, "allow"),
        (500, r#"{"allow":true}"#),
        (302, r#"{"allow":true}"#),
        (403, r#"{"allow":false}"#),
    ] {
        assert_eq!(policy::parse_answer(status, body), None, "{status} {body}");
    }
    let lobby = RoomId::parse("lobby").unwrap();
    assert_eq!(
        policy::request_body("alice", &lobby),
        r#"{"room":"lobby","sub":"alice"}"#
    );
    let key = policy::cache_key("0123456789abcdef", &lobby);
    assert!(!key.contains("alice") && key.starts_with("https://"));
}

#[test]
fn policy_settings_are_checked() {
    let with = |pairs: &[(&str, &str)], binding: bool| {
        edge_config_with(
            |name| {
                if name == "JWT_SECRET" {
                    return Some(SECRET.to_owned());
                }
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            },
            binding,
        )
    };
    assert!(with(&[], false).unwrap().policy.is_none());
    let p = with(
        &[
            ("POLICY_URL", "https://backend.example/may-enter"),
            ("POLICY_TOKEN", "t"),
        ],
        false,
    )
    .unwrap()
    .policy
    .unwrap();
    assert_eq!(
        (p.mode, p.binding, p.token.as_deref()),
        (PolicyMode::WithoutRoomsClaim, false, Some("t"))
    );
    let p = with(&[("ROOM_POLICY", "always")], true)
        .unwrap()
        .policy
        .unwrap();
    assert_eq!((p.mode, p.binding), (PolicyMode::Always, true));
    assert!(
        with(&[("ROOM_POLICY", "always")], false).is_err(),
        "always without a policy"
    );
    assert!(with(&[("ROOM_POLICY", "sometimes")], true).is_err());
    assert!(with(&[("POLICY_URL", "http://backend.example/")], false).is_err());
}

#[test]
fn origins_match_exactly_or_by_subdomain_pattern() {
    let allowed = AllowedOrigins::parse(
        "https://app.example.com, https://*.example.org, http://localhost:5173",
    )
    .unwrap();
    for (origin, ok) in [
        (None, true),
        (Some("https://app.example.com"), true),
        (Some("HTTPS://APP.EXAMPLE.COM"), true),
        (Some("https://evil.com"), false),
        (Some("https://app.example.com.evil.com"), false),
        (Some("http://app.example.com"), false),
        (Some("https://a.example.org"), true),
        (Some("https://a.b.example.org"), true),
        (Some("https://example.org"), false),
        (Some("https://evilexample.org"), false),
        (Some("https://a.example.org:8443"), false),
        (Some("http://localhost:5173"), true),
        (Some("http://localhost:5174"), false),
        (Some("null"), false),
    ] {
        assert_eq!(allowed.allows(origin), ok, "{origin:?}");
    }
    assert!(AllowedOrigins::parse("")
        .unwrap()
        .allows(Some("https://anything.example")));
    assert!(AllowedOrigins::parse("*")
        .unwrap()
        .allows(Some("https://anything.example")));
    assert!(AllowedOrigins::parse("null").unwrap().allows(Some("null")));
    for bad in [
        "app.example.com",
        "https://",
        "https://exa mple.com",
        "https://*.",
    ] {
        assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_hs256_key_with_the_same_kid_as_a_public_key_does_not_confuse_selection() {
    let (es, es_jwk) = es256_key(7, "shared");
    let v = pinned(&[&es_jwk]);
    let mut keys = v.keys.clone();
    keys.push(VerifyingKey::hs256(&[1u8; 32]).unwrap());
    let v = Verifier { keys, ..v };
    assert_eq!(
        verify(&v, &es256_token(&es, Some("shared"), claims())),
        Ok("alice".into())
    );
}

#[test]
fn an_isolate_keeps_policy_decisions_for_their_ttl_and_a_bounded_number() {
    use edgesignal::policy::{DecisionCache, MAX_CACHED_DECISIONS};
    let mut cache = DecisionCache::default();
    let t0 = 1_000_000;
    cache.put(
        "a",
        Decision {
            allow: true,
            ttl_s: 60,
        },
        t0,
    );
    cache.put(
        "b",
        Decision {
            allow: false,
            ttl_s: 5,
        },
        t0,
    );
    cache.put(
        "zero",
        Decision {
            allow: true,
            ttl_s: 0,
        },
        t0,
    );
    assert_eq!(cache.get("a", t0 + 59_999).map(|d| d.allow), Some(true));
    assert_eq!(cache.get("a", t0 + 60_000), None);
    assert_eq!(cache.get("b", t0 + 4_999).map(|d| d.allow), Some(false));
    assert_eq!(cache.get("b", t0 + 5_000), None);
    assert_eq!(cache.get("zero", t0), None, "ttlS 0 is not cached");
    // A new answer replaces the old one.
    cache.put(
        "a",
        Decision {
            allow: false,
            ttl_s: 60,
        },
        t0 + 1,
    );
    assert_eq!(cache.get("a", t0 + 2).map(|d| d.allow), Some(false));
    // Bounded: the oldest goes first.
    for i in 0..MAX_CACHED_DECISIONS + 10 {
        cache.put(
            &format!("k{i}"),
            Decision {
                allow: true,
                ttl_s: 60,
            },
            t0 + 10,
        );
    }
    assert!(cache.get("k0", t0 + 11).is_none());
    assert!(cache
        .get(&format!("k{}", MAX_CACHED_DECISIONS + 9), t0 + 11)
        .is_some());
}
