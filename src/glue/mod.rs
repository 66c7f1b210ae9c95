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

/// Logs one structured line.
fn log(level: &str, event: &str, fields: serde_json::Value) {
    worker::console_log!("{}", crate::log::line(level, event, fields));
}
