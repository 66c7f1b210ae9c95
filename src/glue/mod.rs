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

/// Unix time in milliseconds, from the runtime's clock (which only advances between I/O events).
fn now_ms() -> u64 {
    worker::js_sys::Date::now() as u64
}

thread_local! {
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
