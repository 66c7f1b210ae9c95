//! Plain-wasm JWT verification with jwt-compact, for the ES256 / EdDSA / RS256 benchmark in
//! bench/verify. No wasm-bindgen: the host (bench/verify/worker.mjs) copies bytes into memory
//! obtained from `alloc` and calls `verify`.

use jwt_compact::{AlgorithmExt, UntrustedToken};
use serde_json::Value;

/// `alg` codes shared with worker.mjs.
pub const ALG_HS256: u32 = 1;
pub const ALG_ES256: u32 = 2;
pub const ALG_EDDSA: u32 = 3;
pub const ALG_RS256: u32 = 4;
/// OR-ed into `alg`: parse the key again for every verification (a cold key).
pub const FLAG_PARSE_KEY_EACH_TIME: u32 = 0x100;

/// Bitmask of compiled-in algorithms (1 << ALG_*), so the runner can check which variant it has.
#[no_mangle]
pub extern "C" fn features() -> u32 {
    let mut f = 0;
    if cfg!(feature = "hs256") {
        f |= 1 << ALG_HS256;
    }
    if cfg!(feature = "es256") {
        f |= 1 << ALG_ES256;
    }
    if cfg!(feature = "eddsa") {
        f |= 1 << ALG_EDDSA;
    }
    if cfg!(feature = "rs256") {
        f |= 1 << ALG_RS256;
    }
    f
}

/// Leaks a buffer of `len` bytes for the host to write into (the host reuses it per request).
#[no_mangle]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    let mut v: Vec<u8> = Vec::with_capacity(len.max(1));
    let p = v.as_mut_ptr();
    core::mem::forget(v);
    p
}

/// Frees a buffer from `alloc` (same `len`).
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, len: usize) {
    drop(Vec::from_raw_parts(ptr, 0, len.max(1)));
}

fn slice<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        unsafe { core::slice::from_raw_parts(ptr, len) }
    }
}

/// Validates the token `iterations` times against the key and returns how many validations
/// succeeded (0 on any parse error). Key formats: HS256 the secret; ES256 a SEC1 public key
/// (65-byte uncompressed); EdDSA the 32-byte public key; RS256 `u32be(len n) || n || e`
/// (big-endian modulus and exponent).
#[no_mangle]
pub extern "C" fn verify(
    alg: u32,
    token_ptr: *const u8,
    token_len: usize,
    key_ptr: *const u8,
    key_len: usize,
    iterations: u32,
) -> u32 {
    let token = match core::str::from_utf8(slice(token_ptr, token_len)) {
        Ok(t) => t,
        Err(_) => return 0,
    };
    let key = slice(key_ptr, key_len);
    let cold = alg & FLAG_PARSE_KEY_EACH_TIME != 0;
    match alg & 0xff {
        #[cfg(feature = "hs256")]
        ALG_HS256 => run(token, key, iterations, cold, jwt_compact::alg::Hs256, |k| {
            Some(jwt_compact::alg::Hs256Key::new(k))
        }),
        #[cfg(feature = "es256")]
        ALG_ES256 => run(token, key, iterations, cold, jwt_compact::alg::Es256, |k| {
            <VKey<jwt_compact::alg::Es256> as jwt_compact::alg::VerifyingKey<_>>::from_slice(k).ok()
        }),
        #[cfg(feature = "eddsa")]
        ALG_EDDSA => run(token, key, iterations, cold, jwt_compact::alg::Ed25519, |k| {
            <VKey<jwt_compact::alg::Ed25519> as jwt_compact::alg::VerifyingKey<_>>::from_slice(k).ok()
        }),
        #[cfg(feature = "rs256")]
        ALG_RS256 => run(token, key, iterations, cold, jwt_compact::alg::Rsa::rs256(), rsa_key),
        _ => 0,
    }
}

/// An algorithm's verifying key type (p256's `VerifyingKey`, ed25519-compact's `PublicKey`).
#[allow(dead_code)]
type VKey<A> = <A as jwt_compact::Algorithm>::VerifyingKey;

#[cfg(feature = "rs256")]
fn rsa_key(k: &[u8]) -> Option<jwt_compact::alg::RsaPublicKey> {
    if k.len() < 4 {
        return None;
    }
    let n_len = u32::from_be_bytes([k[0], k[1], k[2], k[3]]) as usize;
    let rest = &k[4..];
    if rest.len() < n_len {
        return None;
    }
    let (n, e) = rest.split_at(n_len);
    jwt_compact::alg::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e)).ok()
}

#[allow(dead_code)]
fn run<A: jwt_compact::Algorithm>(
    token: &str,
    key: &[u8],
    iterations: u32,
    cold: bool,
    alg: A,
    parse_key: impl Fn(&[u8]) -> Option<A::VerifyingKey>,
) -> u32 {
    let mut ok = 0;
    let warm = if cold { None } else { parse_key(key) };
    if !cold && warm.is_none() {
        return 0;
    }
    for _ in 0..iterations {
        // A server gets a fresh string per request, so parse the token every time.
        let untrusted = match UntrustedToken::new(token) {
            Ok(t) => t,
            Err(_) => continue,
        };
        let valid = if cold {
            match parse_key(key) {
                Some(k) => alg.validator::<Value>(&k).validate(&untrusted).is_ok(),
                None => false,
            }
        } else {
            alg.validator::<Value>(warm.as_ref().unwrap()).validate(&untrusted).is_ok()
        };
        if valid {
            ok += 1;
        }
    }
    ok
}

// getrandom 0.2 (pulled in by jwt-compact's `rsa` feature) needs a backend on
// wasm32-unknown-unknown. Verification never draws randomness; refuse if anything tries.
#[cfg(feature = "rs256")]
fn no_random(_buf: &mut [u8]) -> Result<(), getrandom::Error> {
    Err(getrandom::Error::UNSUPPORTED)
}
#[cfg(feature = "rs256")]
getrandom::register_custom_getrandom!(no_random);
