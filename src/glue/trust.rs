//! Verifying a token and authorizing a room with the runtime's help: fetched keys (`JWKS_URL`,
//! kept per isolate and in the Cache API), WebCrypto for public-key signatures, and the room
//! policy (`POLICY_URL` or the `POLICY` binding, decisions in the Cache API). Every decision is the
//! core's ([`crate::auth`], [`crate::jwks`], [`crate::policy`]); this file only does the I/O it
//! asks for. Used by the entry Worker for upgrades and by the room for `refresh` frames.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;
use worker::js_sys::{self, Array, Object, Promise, Reflect, Uint8Array, JSON};
use worker::wasm_bindgen::{self, prelude::*, JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::Env;

use super::{log, now_ms};
use crate::auth::{AuthError, FetchedKeys, Identity, KeySet, SignatureCheck, Step};
use crate::config::EdgeConfig;
use crate::jwks::{JwksCache, FETCH_TIMEOUT_MS, STALE_LIMIT_MS};
use crate::keys::{Alg, PublicKey};
use crate::log::user_hash;
use crate::policy::{self, Decision, DecisionCache, RoomCheck};
use crate::protocol::RoomId;

/// Imported WebCrypto keys kept per isolate: importing costs more than verifying.
const MAX_IMPORTED_KEYS: usize = 64;

thread_local! {
    static JWKS: RefCell<JwksCache> = RefCell::new(JwksCache::default());
    static DECISIONS: RefCell<DecisionCache> = RefCell::new(DecisionCache::default());
    /// (the key's minimal JWK, the imported `CryptoKey`): a handful, so a scan.
    static IMPORTED: RefCell<Vec<(String, JsValue)>> = const { RefCell::new(Vec::new()) };
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey, catch)]
    fn subtle_import_key(
        format: &str,
        key: &JsValue,
        algorithm: &JsValue,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = verify, catch)]
    fn subtle_verify(
        algorithm: &JsValue,
        key: &JsValue,
        signature: &Uint8Array,
        data: &Uint8Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = fetch, catch)]
    fn global_fetch(url: &str, init: &Object) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_namespace = AbortSignal, js_name = timeout)]
    fn abort_signal_timeout(ms: f64) -> JsValue;

    #[wasm_bindgen(js_namespace = ["caches", "default"], js_name = match, catch)]
    fn cache_match(key: &str) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_namespace = ["caches", "default"], js_name = put, catch)]
    fn cache_put_raw(key: &str, response: &worker::web_sys::Response) -> Result<Promise, JsValue>;
}

/// Verifies `token` and authorizes `room` for it, as an upgrade to that room is checked.
pub async fn authorize(
    env: &Env,
    config: &EdgeConfig,
    token: &str,
    room: &RoomId,
) -> Result<Identity, AuthError> {
    let identity = verify(config, token).await?;
    match policy::check_room(&identity, room, config.policy.as_ref()) {
        RoomCheck::Done(result) => result.map(|()| identity),
        RoomCheck::AskPolicy => {
            let decision = ask_policy(env, config, &identity.sub, room).await;
            policy::after_policy(decision).map(|()| identity)
        }
    }
}

/// Verifies `token` alone (`GET /ice-servers`: no room to authorize).
pub async fn verify(config: &EdgeConfig, token: &str) -> Result<Identity, AuthError> {
    let verifier = &config.verifier;
    let now = now_ms();
    // A fresh set is used as is; a stale or missing one is (re)loaded only if the token needs it.
    let mut held: Option<Rc<KeySet>> = match config.jwks_url {
        Some(_) => JWKS.with(|c| {
            let cache = c.borrow();
            cache.is_fresh(now).then(|| cache.usable(now)).flatten()
        }),
        None => None,
    };
    let (mut refetched, mut unavailable) = (false, false);
    // At most: load, refetch for an unknown kid, verify.
    for _ in 0..3 {
        let fetched = match (&held, refetched, unavailable) {
            (_, _, true) => FetchedKeys::Unavailable,
            (Some(set), false, _) => FetchedKeys::Loaded(set),
            (Some(set), true, _) => FetchedKeys::Final(set),
            (None, _, _) => FetchedKeys::NotLoaded,
        };
        match verifier.start(token, now, fetched) {
            Step::Done(result) => return result,
            Step::CheckSignature(check) => {
                let valid = check_signature(&check).await;
                return verifier.signature_checked(token, now, valid);
            }
            Step::FetchKeys { unknown_kid } => {
                let Some(url) = &config.jwks_url else {
                    return Err(AuthError::Invalid);
                };
                let fetched_now = load_keys(url, unknown_kid).await;
                held = JWKS.with(|c| c.borrow().usable(now_ms()));
                // A set fetched from the provider a moment ago is as new as a refetch would be:
                // a kid it lacks does not cost a second fetch.
                refetched |= unknown_kid || fetched_now;
                unavailable = held.is_none();
            }
        }
    }
    Err(AuthError::Invalid)
}

/// Brings the isolate's key set up to date as [`JwksCache`] says: from the Cache API if another
/// isolate fetched it, else from the provider. Answers whether a set came from the provider now.
async fn load_keys(url: &str, unknown_kid: bool) -> bool {
    let cache_key = format!(
        "https://jwks.edgesignal.invalid/{}",
        user_hash(b"jwks", url)
    );
    if !unknown_kid {
        if let Some((body, [fetched_ms, fresh_until_ms])) =
            cache_get(&cache_key, ["x-fetched-ms", "x-fresh-until-ms"]).await
        {
            JWKS.with(|c| c.borrow_mut().restore(&body, fetched_ms, fresh_until_ms));
            if JWKS.with(|c| c.borrow().is_fresh(now_ms())) {
                return false;
            }
        }
    }
    let now = now_ms();
    if !JWKS.with(|c| c.borrow_mut().should_fetch(now, unknown_kid)) {
        return false;
    }
    let answer = fetch_text(
        None,
        url,
        "GET",
        &[("accept", "application/json")],
        None,
        FETCH_TIMEOUT_MS,
    )
    .await;
    let now = now_ms();
    match answer {
        Ok((200, cache_control, body)) => {
            let fetched =
                JWKS.with(|c| c.borrow_mut().fetched(now, &body, cache_control.as_deref()));
            match fetched {
                Ok(fetched) => {
                    log(
                        "info",
                        "jwks_fetched",
                        json!({
                            "keys": fetched.keys.keys.len(),
                            "skipped": fetched.keys.skipped.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                            "freshMs": fetched.fresh_until_ms - fetched.fetched_ms,
                            "unknownKid": unknown_kid,
                        }),
                    );
                    let headers = [
                        ("x-fetched-ms", fetched.fetched_ms),
                        ("x-fresh-until-ms", fetched.fresh_until_ms),
                    ];
                    // Kept as long as it may serve as the last good set.
                    cache_put(&cache_key, &body, STALE_LIMIT_MS / 1000, &headers).await;
                    true
                }
                Err(why) => {
                    log("warn", "jwks_fetch_failed", json!({ "why": why }));
                    false
                }
            }
        }
        Ok((status, _, _)) => {
            JWKS.with(|c| c.borrow_mut().failed(now));
            log("warn", "jwks_fetch_failed", json!({ "status": status }));
            false
        }
        Err(why) => {
            JWKS.with(|c| c.borrow_mut().failed(now));
            log("warn", "jwks_fetch_failed", json!({ "why": why }));
            false
        }
    }
}

/// A stored copy from the Cache API: its body and the numeric headers asked for.
async fn cache_get<const N: usize>(key: &str, names: [&str; N]) -> Option<(String, [u64; N])> {
    let found = JsFuture::from(cache_match(key).ok()?).await.ok()?;
    let response: worker::web_sys::Response = found.dyn_into().ok()?;
    let mut values = [0u64; N];
    for (value, name) in values.iter_mut().zip(names) {
        *value = response.headers().get(name).ok()??.parse().ok()?;
    }
    let body = JsFuture::from(response.text().ok()?)
        .await
        .ok()?
        .as_string()?;
    Some((body, values))
}

/// Stores `body` with `headers` in the Cache API for `max_age_s`. The Cache API is a shared
/// optimization: a failure only costs another fetch.
async fn cache_put(key: &str, body: &str, max_age_s: u64, headers: &[(&str, u64)]) {
    let store = || -> Option<Promise> {
        let init = worker::web_sys::ResponseInit::new();
        let h = worker::web_sys::Headers::new().ok()?;
        h.set("cache-control", &format!("max-age={max_age_s}"))
            .ok()?;
        for (name, value) in headers {
            h.set(name, &value.to_string()).ok()?;
        }
        init.set_headers(&h);
        let response =
            worker::web_sys::Response::new_with_opt_str_and_init(Some(body), &init).ok()?;
        cache_put_raw(key, &response).ok()
    };
    if let Some(promise) = store() {
        let _ = JsFuture::from(promise).await;
    }
}

/// Checks a public-key signature with WebCrypto. Any failure (import, verify) is `false`.
async fn check_signature(check: &SignatureCheck) -> bool {
    #[cfg(feature = "wasm-verify")]
    {
        wasm_verify(check)
    }
    #[cfg(not(feature = "wasm-verify"))]
    {
        webcrypto_verify(check).await
    }
}

#[cfg_attr(feature = "wasm-verify", allow(dead_code))]
async fn webcrypto_verify(check: &SignatureCheck) -> bool {
    let Some(key) = imported_key(&check.key).await else {
        return false;
    };
    let algorithm = match check.key.alg {
        Alg::Es256 => r#"{"name":"ECDSA","hash":"SHA-256"}"#,
        Alg::EdDsa => r#"{"name":"Ed25519"}"#,
        Alg::Rs256 => r#"{"name":"RSASSA-PKCS1-v1_5"}"#,
        Alg::Hs256 => return false,
    };
    let Ok(algorithm) = JSON::parse(algorithm) else {
        return false;
    };
    let signature = Uint8Array::from(check.signature.as_slice());
    let data = Uint8Array::from(check.message.as_slice());
    match subtle_verify(&algorithm, &key, &signature, &data) {
        Ok(promise) => JsFuture::from(promise)
            .await
            .is_ok_and(|valid| valid.as_bool() == Some(true)),
        Err(_) => false,
    }
}

async fn imported_key(key: &PublicKey) -> Option<JsValue> {
    let jwk = key.jwk();
    let held = IMPORTED.with(|m| {
        let m = m.borrow();
        m.iter()
            .find(|(k, _)| *k == jwk)
            .map(|(_, key)| key.clone())
    });
    if held.is_some() {
        return held;
    }
    let algorithm = match key.alg {
        Alg::Es256 => r#"{"name":"ECDSA","namedCurve":"P-256"}"#,
        Alg::EdDsa => r#"{"name":"Ed25519"}"#,
        Alg::Rs256 => r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#,
        Alg::Hs256 => return None,
    };
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle_import_key(
        "jwk",
        &JSON::parse(&jwk).ok()?,
        &JSON::parse(algorithm).ok()?,
        false,
        &usages,
    )
    .ok()?;
    let imported = match JsFuture::from(promise).await {
        Ok(imported) => imported,
        Err(e) => {
            log(
                "warn",
                "key_import_failed",
                json!({ "kid": key.kid, "alg": key.alg.as_str(), "why": format!("{e:?}") }),
            );
            return None;
        }
    };
    IMPORTED.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MAX_IMPORTED_KEYS {
            m.clear();
        }
        m.push((jwk, imported.clone()));
    });
    Some(imported)
}

/// Asks the room policy (through its cache) whether `sub` may enter `room`: `None` when it
/// cannot be asked or does not answer in time.
async fn ask_policy(env: &Env, config: &EdgeConfig, sub: &str, room: &RoomId) -> Option<Decision> {
    let policy = config.policy.as_ref()?;
    let user = user_hash(&config.log_salt, sub);
    let key = policy::cache_key(&user, room);
    if let Some(decision) = DECISIONS.with(|d| d.borrow().get(&key, now_ms())) {
        return Some(decision);
    }
    if let Some(decision) = cached_decision(&key).await {
        return Some(decision);
    }
    let binding = if policy.binding {
        Some(Reflect::get(env.as_ref(), &JsValue::from_str("POLICY")).ok()?)
    } else {
        None
    };
    let authorization = policy.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization));
    }
    let body = policy::request_body(sub, room);
    let answer = fetch_text(
        binding.as_ref(),
        &policy.url,
        "POST",
        &headers,
        Some(&body),
        policy::TIMEOUT_MS,
    )
    .await;
    let decision = match &answer {
        Ok((status, _, body)) => policy::parse_answer(*status, body),
        Err(_) => None,
    };
    match decision {
        Some(decision) if decision.ttl_s > 0 => {
            DECISIONS.with(|d| d.borrow_mut().put(&key, decision, now_ms()));
            store_decision(&key, decision).await;
        }
        Some(_) => {}
        None => log(
            "warn",
            "policy_unavailable",
            json!({
                "user": user,
                "room": room.as_str(),
                "status": answer.as_ref().ok().map(|(status, _, _)| *status),
                "why": answer.as_ref().err(),
            }),
        ),
    }
    decision
}

async fn cached_decision(key: &str) -> Option<Decision> {
    let (body, [expires_ms]) = cache_get(key, ["x-expires-ms"]).await?;
    (now_ms() < expires_ms).then_some(Decision {
        allow: body == "allow",
        ttl_s: 0,
    })
}

async fn store_decision(key: &str, decision: Decision) {
    let expires_ms = now_ms() + decision.ttl_s * 1000;
    let body = if decision.allow { "allow" } else { "deny" };
    cache_put(key, body, decision.ttl_s, &[("x-expires-ms", expires_ms)]).await;
}

/// One HTTP exchange through `binding` (a service binding's `fetch`) or the global `fetch`,
/// aborted after `timeout_ms`: the status, `Cache-Control`, and the body.
async fn fetch_text(
    binding: Option<&JsValue>,
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout_ms: u64,
) -> Result<(u16, Option<String>, String), String> {
    let js_error = |e: JsValue| {
        e.dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .unwrap_or_else(|| "fetch failed".to_owned())
    };
    let init = Object::new();
    let header_object = Object::new();
    for (name, value) in headers {
        Reflect::set(&header_object, &(*name).into(), &(*value).into()).map_err(js_error)?;
    }
    Reflect::set(&init, &"method".into(), &method.into()).map_err(js_error)?;
    Reflect::set(&init, &"headers".into(), &header_object).map_err(js_error)?;
    if let Some(body) = body {
        Reflect::set(&init, &"body".into(), &body.into()).map_err(js_error)?;
    }
    Reflect::set(
        &init,
        &"signal".into(),
        &abort_signal_timeout(timeout_ms as f64),
    )
    .map_err(js_error)?;
    let promise = match binding {
        Some(binding) => {
            let fetch: js_sys::Function = Reflect::get(binding, &"fetch".into())
                .map_err(js_error)?
                .dyn_into()
                .map_err(js_error)?;
            fetch
                .call2(binding, &url.into(), &init)
                .map_err(js_error)?
                .dyn_into::<Promise>()
                .map_err(js_error)?
        }
        None => global_fetch(url, &init).map_err(js_error)?,
    };
    let response: worker::web_sys::Response = JsFuture::from(promise)
        .await
        .map_err(js_error)?
        .dyn_into()
        .map_err(js_error)?;
    let status = response.status();
    let cache_control = response.headers().get("cache-control").ok().flatten();
    let text = JsFuture::from(response.text().map_err(js_error)?)
        .await
        .map_err(js_error)?
        .as_string()
        .unwrap_or_default();
    Ok((status, cache_control, text))
}

/// The measured alternative to WebCrypto (feature `wasm-verify`): jwt-compact in wasm.
#[cfg(feature = "wasm-verify")]
fn wasm_verify(check: &SignatureCheck) -> bool {
    use jwt_compact::alg::{Ed25519, Es256, Rsa};
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{Algorithm, AlgorithmSignature};
    fn run<A: Algorithm>(alg: A, check: &SignatureCheck) -> Option<bool>
    where
        for<'a> A::VerifyingKey: TryFrom<&'a JsonWebKey<'a>>,
    {
        let jwk_text = check.key.jwk();
        let jwk: JsonWebKey<'_> = serde_json::from_str(&jwk_text).ok()?;
        let key = A::VerifyingKey::try_from(&jwk).ok()?;
        let signature = A::Signature::try_from_slice(&check.signature).ok()?;
        Some(alg.verify_signature(&signature, &key, &check.message))
    }
    match check.key.alg {
        Alg::Es256 => run(Es256, check),
        Alg::EdDsa => run(Ed25519, check),
        Alg::Rs256 => run(Rsa::rs256(), check),
        Alg::Hs256 => None,
    }
    .unwrap_or(false)
}
