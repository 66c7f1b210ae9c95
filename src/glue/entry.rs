//! The entry Worker: `GET /healthz` and `GET /ws/{roomId}`. Every decision is
//! [`crate::edge::decide`]'s; this file reads the request and carries the decision out.

use std::future::Future;
use std::task::{Context as TaskContext, Poll, Waker};

use serde_json::json;
use worker::wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{web_sys, Env, Result, WebSocketPair};

use super::{json_response, log};
use crate::config::{edge_config_with, ConfigError, EdgeConfig};
use crate::edge::{
    decide, error_body, url_path, url_query, url_without_query, EdgeDecision, EdgeRequest,
    EdgeStep, ForwardedIdentity, IDENTITY_HEADER,
};
use crate::error::ErrorCode;
use crate::protocol::Refusal;

/// The Worker's `fetch`, exported by hand (as the room object is) instead of with
/// `#[event(fetch)]`, whose handler is always a Rust future behind a JS promise. Most requests
/// need no waiting at all (an HS256 token, a pinned key set, a `rooms` claim): the handler's
/// future is polled once, and when it is already done its answer goes back at once, a
/// `Response` or, for an upgrade, the room's own promise passed through untouched. Only a
/// request that really waits (WebCrypto, a JWKS or policy fetch) becomes a promise.
#[wasm_bindgen(js_name = fetch)]
pub fn js_fetch(req: web_sys::Request, env: Env, _ctx: worker::worker_sys::Context) -> JsValue {
    console_error_panic_hook::set_once();
    let mut answer = Box::pin(fetch(req, env));
    match answer
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(answer) => answer,
        // Polled again by the executor, with its own waker, which every future we await
        // (wasm-bindgen's JsFuture) takes over on that poll.
        Poll::Pending => {
            worker::wasm_bindgen_futures::future_to_promise(async move { Ok(answer.await) }).into()
        }
    }
}

/// A `Response`, or a promise of one; an error is answered `500 internal`, logged.
async fn fetch(req: web_sys::Request, env: Env) -> JsValue {
    match respond(req, env).await {
        Ok(answer) => answer,
        Err(e) => {
            log("error", "edge_error", json!({ "message": e.to_string() }));
            json_response(500, error_body(ErrorCode::Internal, "internal error"))
                .map(|r| web_sys::Response::from(r).into())
                .unwrap_or(JsValue::UNDEFINED)
        }
    }
}

async fn respond(req: web_sys::Request, env: Env) -> Result<JsValue> {
    // The raw `web_sys::Request`, not workers-rs' `Request`: converting reads `request.cf`,
    // which the runtime builds into a fresh JS object on every access (about 0.1 ms a connect,
    // measured), for nothing the edge uses. And the raw URL string, not `url()`: parsing it with
    // the `url` crate would link its IDNA tables (tens of KB of wasm) for a path and a query the
    // edge reads as plain text anyway.
    let raw_url = req.url();
    let path = url_path(&raw_url);
    let headers = req.headers();
    let (authorization, protocols, upgrade, origin, traceparent) = (
        headers.get("authorization")?,
        headers.get("sec-websocket-protocol")?,
        headers.get("upgrade")?,
        headers.get("origin")?,
        headers.get("traceparent")?,
    );
    // One trace id per connection: the client's W3C traceparent, else a new one.
    let trace = crate::edge::trace_id(traceparent.as_deref()).unwrap_or_else(new_trace_id);
    let method = req.method();
    let edge_req = EdgeRequest {
        method: &method,
        path,
        query: url_query(&raw_url),
        authorization: authorization.as_deref(),
        protocols: protocols.as_deref(),
        upgrade: upgrade.as_deref(),
        origin: origin.as_deref(),
        trace: Some(&trace),
    };
    let parsed = cached_config(&env);
    let config = parsed.as_ref().as_ref();
    if let Ok(config) = config {
        super::set_log_level(config.log_level);
    }
    // Debug, as `ws.auth_success`: an admitted connection is one info line, the room's
    // `room.join` (with this trace), and a refused one is `ws.auth_failure` (or the room's
    // `peer_refused`). A log line costs the runtime about a tenth of a connect.
    if upgrade.is_some() {
        log(
            "debug",
            "ws.connect",
            json!({ "path": path, "trace": trace }),
        );
    }
    let decision = match decide(&edge_req, config) {
        EdgeStep::Decided(decision) => decision,
        EdgeStep::Authorize(authorize) => {
            // `decide` answers Authorize only with a configuration.
            let config = config.map_err(|e| worker::Error::RustError(e.to_string()))?;
            let identity = match &authorize.room {
                Some(room) => super::trust::authorize(&env, config, authorize.token, room).await,
                None => super::trust::verify(config, authorize.token).await,
            };
            authorize.finish(config, identity, super::now_ms())
        }
    };
    let response = match decision {
        EdgeDecision::Health => json_response(200, json!({ "status": "ok" }).to_string()),
        EdgeDecision::Json { body } => json_response(200, body),
        EdgeDecision::HttpError { code, message } => {
            if code == ErrorCode::Internal {
                log("error", "edge_error", json!({ "message": message }));
            }
            json_response(code.http_status(), error_body(code, &message))
        }
        EdgeDecision::RefuseUpgrade {
            code,
            message,
            close_code,
            protocol,
        } => {
            log(
                "info",
                "ws.auth_failure",
                json!({ "code": code, "path": path, "trace": trace }),
            );
            // Accepted here, in the Worker: a refused client never reaches a Durable Object.
            let pair = WebSocketPair::new()?;
            pair.server.accept()?;
            pair.server
                .send_with_str(Refusal::new(code, message).into_frame().to_text())?;
            pair.server.close(Some(close_code), Some(code.as_str()))?;
            return Ok(super::websocket_response(&pair.client, protocol)?.into());
        }
        EdgeDecision::Forward(identity) => {
            log(
                "debug",
                "ws.auth_success",
                json!({ "room": identity.room, "user": identity.user, "trace": trace }),
            );
            return forward(&env, url_without_query(&raw_url), &identity);
        }
    };
    Ok(web_sys::Response::from(response?).into())
}

thread_local! {
    static CONFIG: super::EnvCache<std::result::Result<EdgeConfig, ConfigError>> =
        const { std::cell::RefCell::new(None) };
}

/// The entry Worker's settings, parsed once per isolate ([`super::per_env`]).
pub(super) fn cached_config(
    env: &Env,
) -> std::rc::Rc<std::result::Result<EdgeConfig, ConfigError>> {
    super::per_env(&CONFIG, env, config)
}

/// The entry Worker's settings, from its vars, secrets and bindings.
fn config(env: &Env) -> std::result::Result<EdgeConfig, ConfigError> {
    let has_policy_binding =
        worker::js_sys::Reflect::has(env.as_ref(), &"POLICY".into()).unwrap_or(false);
    edge_config_with(
        |name| env.var(name).ok().map(|v| v.to_string()),
        has_policy_binding,
    )
}

/// Sends the upgrade to the room's Durable Object with the identity in [`IDENTITY_HEADER`], and
/// answers the object's own promise: the 101 and its socket pass through untouched. The client's
/// headers are not copied: its token (in `Authorization`, `Sec-WebSocket-Protocol` or the query)
/// and any forged identity header stay here. Built on the runtime's own types (`getByName`, a
/// plain `Request`): workers-rs' wrappers would copy the request and the response once more.
fn forward(env: &Env, room_url: &str, identity: &ForwardedIdentity) -> Result<JsValue> {
    let rooms: worker::worker_sys::DurableObjectNamespace =
        worker::js_sys::Reflect::get(env.as_ref(), &JsValue::from_str("ROOMS"))?.unchecked_into();
    let stub = rooms.get_by_name(&identity.room)?;
    let headers = web_sys::Headers::new()?;
    headers.set("upgrade", "websocket")?;
    headers.set(
        IDENTITY_HEADER,
        &serde_json::to_string(identity).map_err(|e| worker::Error::RustError(e.to_string()))?,
    )?;
    let init = web_sys::RequestInit::new();
    init.set_method("GET");
    init.set_headers(&headers);
    let request = web_sys::Request::new_with_str_and_init(room_url, &init)?;
    Ok(stub.fetch_with_request(&request)?.into())
}

/// A new W3C trace id: 16 random bytes as 32 lower-case hex digits.
fn new_trace_id() -> String {
    let mut bytes = [0u8; 16];
    super::random_fill(&mut bytes);
    let mut id = String::with_capacity(32);
    for b in bytes {
        id.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        id.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    id
}
