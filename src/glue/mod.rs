//! wasm glue: translates between the Workers runtime and the pure core. No decisions here.

mod entry;
mod room_object;
mod trust;

use worker::{Headers, Response, Result};

/// A JSON response with `status`.
fn json_response(status: u16, body: String) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

/// A cache of something parsed from the env: the env object it came from, and the value.
type EnvCache<T> = std::cell::RefCell<Option<(worker::wasm_bindgen::JsValue, std::rc::Rc<T>)>>;

/// `parse(env)`, once per isolate: vars, secrets and bindings are fixed for a deployed version
/// (a changed secret is a new version, in new isolates). Keyed by the env object itself (one
/// `===`), so an env that is not the one parsed is parsed afresh.
fn per_env<T: 'static>(
    cache: &'static std::thread::LocalKey<EnvCache<T>>,
    env: &worker::Env,
    parse: impl FnOnce(&worker::Env) -> T,
) -> std::rc::Rc<T> {
    let env_value: &worker::wasm_bindgen::JsValue = env.as_ref();
    cache.with(|cached| {
        if let Some((seen, value)) = &*cached.borrow() {
            if seen == env_value {
                return value.clone();
            }
        }
        let value = std::rc::Rc::new(parse(env));
        *cached.borrow_mut() = Some((env_value.clone(), value.clone()));
        value
    })
}

/// A 101 with the client's end of a WebSocket pair, built on the runtime's own types (workers-rs'
/// `Response` would be converted into one of these anyway), with our subprotocol when the client
/// offered it. The room's accepted and refused upgrades and the edge's refused ones.
pub(super) fn websocket_response(
    client: &worker::WebSocket,
    protocol: Option<&str>,
) -> worker::Result<worker::web_sys::Response> {
    let init = worker::web_sys::ResponseInit::new();
    init.set_status(101);
    worker::js_sys::Reflect::set(
        &init,
        &worker::wasm_bindgen::JsValue::from_str("webSocket"),
        client.as_ref(),
    )?;
    if let Some(protocol) = protocol {
        let headers = worker::web_sys::Headers::new()?;
        headers.set("sec-websocket-protocol", protocol)?;
        init.set_headers(&headers);
    }
    Ok(worker::web_sys::Response::new_with_opt_str_and_init(
        None, &init,
    )?)
}

/// Unix time in milliseconds, from the runtime's clock (which only advances between I/O events).
fn now_ms() -> u64 {
    worker::js_sys::Date::now() as u64
}

/// Bytes from `crypto.getRandomValues`, fetched [`RANDOM_BATCH`] at a time (one call across the
/// boundary instead of one per id; each byte is handed out once). Peer ids and resume secrets
/// must be unguessable, so a runtime without randomness aborts the event rather than issuing a
/// predictable id.
fn random_fill(out: &mut [u8]) {
    RANDOM.with(|pool| {
        let pool = &mut *pool.borrow_mut();
        for byte in out {
            if pool.used == RANDOM_BATCH {
                getrandom::getrandom(&mut pool.bytes).expect("crypto.getRandomValues");
                pool.used = 0;
            }
            *byte = pool.bytes[pool.used];
            pool.used += 1;
        }
    });
}

const RANDOM_BATCH: usize = 512;

struct RandomPool {
    bytes: [u8; RANDOM_BATCH],
    used: usize,
}

thread_local! {
    static RANDOM: std::cell::RefCell<RandomPool> = const {
        std::cell::RefCell::new(RandomPool { bytes: [0; RANDOM_BATCH], used: RANDOM_BATCH })
    };

    /// `LOG_LEVEL` of this isolate, set from the env by each entry point.
    static LOG_LEVEL: std::cell::Cell<crate::observe::Level> =
        const { std::cell::Cell::new(crate::observe::Level::Info) };
}

/// Sets this isolate's `LOG_LEVEL`, as the configuration parsed it.
fn set_log_level(level: crate::observe::Level) {
    LOG_LEVEL.with(|l| l.set(level));
}

/// Logs one structured line, if its level is enabled.
fn log(level: &str, event: &str, fields: serde_json::Value) {
    let level_of = crate::observe::Level::parse(level).unwrap_or_default();
    if level_of >= LOG_LEVEL.with(std::cell::Cell::get) {
        worker::console_log!("{}", crate::log::line(level, event, fields));
    }
}

/// Writes a line the core made, if its level is enabled.
fn write_line(line: &crate::observe::LogLine) {
    if line.level >= LOG_LEVEL.with(std::cell::Cell::get) {
        worker::console_log!("{}", line.to_text());
    }
}

/// Writes a data point to the `METRICS` Analytics Engine dataset, when it is bound (and echoes
/// it as a `debug` line `metric`).
fn write_point(env: &worker::Env, point: &crate::observe::DataPoint) {
    use worker::js_sys::{Function, Reflect, JSON};
    use worker::wasm_bindgen::{JsCast, JsValue};
    if LOG_LEVEL.with(std::cell::Cell::get) <= crate::observe::Level::Debug {
        write_line(&point.to_line());
    }
    let Ok(dataset) = Reflect::get(env.as_ref(), &JsValue::from_str("METRICS")) else {
        return;
    };
    if dataset.is_undefined() || dataset.is_null() {
        return;
    }
    let write = Reflect::get(&dataset, &JsValue::from_str("writeDataPoint"))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok());
    if let (Some(write), Ok(point)) = (write, JSON::parse(&point.to_json().to_string())) {
        // A buffered append in the runtime; a failure costs a point, never the event.
        let _ = write.call1(&dataset, &point);
    }
}
