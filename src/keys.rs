//! Verifying keys: the HS256 secret and public keys read from a JWKS document, each bound to the
//! one algorithm it may verify (RFC 8725 §3.1).
//!
//! Invariants:
//! - A key verifies only its own algorithm: an EC P-256 key only ES256, an Ed25519 key only
//!   EdDSA, an RSA key only RS256, the secret only HS256. A JWK's `alg`, if present, must agree
//!   with its `kty`/`crv`; nothing in a token can change which algorithm a key is used with.
//! - Only the members a verifier needs are kept (`x`, `y`, `n`, `e`); a JWK that carries private
//!   members, is not for signatures (`use`, `key_ops`), or is an RSA key under 2048 bits is not
//!   loaded. Symmetric (`oct`) keys never come from a JWKS: the shared secret is `JWT_SECRET`.
//! - Public-key signatures are checked by the runtime (WebCrypto, `crypto.subtle.verify`); this
//!   module says exactly what to check ([`SignatureCheck`]) and refuses, before any crypto,
//!   signatures of the wrong length and ES256 signatures with `r` or `s` outside `[1, n-1]`
//!   (the "psychic signature", CVE-2022-21449).

use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::alg::Hs256Key;
use serde::Deserialize;
use serde_json::Value;

/// Smallest RSA modulus accepted, in bits (RFC 8725 §3.5, NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits: larger keys only cost verification time.
pub const MAX_RSA_BITS: usize = 8192;
/// Most keys read from one JWKS document; providers publish a handful.
pub const MAX_KEYS: usize = 64;
/// Longest `kid` accepted, in bytes.
pub const MAX_KID_BYTES: usize = 256;

/// The order `n` of the P-256 group, big-endian: `r` and `s` of an ES256 signature must be in
/// `[1, n-1]`.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// A JWS algorithm this service verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// HMAC-SHA256 with `JWT_SECRET`.
    Hs256,
    /// ECDSA on P-256 with SHA-256; the signature is `r || s`, 64 bytes.
    Es256,
    /// Ed25519 (`EdDSA`, or `Ed25519` as RFC 9864 names it); 64-byte signature.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256; the signature is as long as the modulus.
    Rs256,
}

impl Alg {
    /// The algorithm a token's `alg` header names, compared exactly (`none`, `hs256` and every
    /// other spelling are no algorithm).
    pub fn from_header(alg: &str) -> Option<Alg> {
        match alg {
            "HS256" => Some(Alg::Hs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" | "Ed25519" => Some(Alg::EdDsa),
            "RS256" => Some(Alg::Rs256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
            Alg::Rs256 => "RS256",
        }
    }
}

/// A public key's material, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicMaterial {
    /// A P-256 point.
    P256 { x: Vec<u8>, y: Vec<u8> },
    /// An Ed25519 public key.
    Ed25519 { x: Vec<u8> },
    /// An RSA modulus and exponent, big-endian, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// A public key and the one algorithm it verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: Option<String>,
    pub alg: Alg,
    pub material: PublicMaterial,
}

/// A key that can verify tokens.
#[derive(Clone)]
pub enum VerifyingKey {
    /// A shared HMAC-SHA256 secret (`JWT_SECRET`); verified here, in Rust.
    Hs256 { kid: Option<String>, key: Hs256Key },
    /// A public key (`JWT_PUBLIC_KEYS` or `JWKS_URL`); verified by the runtime.
    Public(PublicKey),
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print the secret.
            VerifyingKey::Hs256 { kid, .. } => write!(f, "Hs256 {{ kid: {kid:?} }}"),
            VerifyingKey::Public(key) => key.fmt(f),
        }
    }
}

impl VerifyingKey {
    /// An HS256 key from a secret of at least [`crate::auth::MIN_HS256_SECRET_BYTES`] bytes.
    pub fn hs256(secret: &[u8]) -> Option<VerifyingKey> {
        (secret.len() >= crate::auth::MIN_HS256_SECRET_BYTES).then(|| VerifyingKey::Hs256 {
            kid: None,
            key: Hs256Key::new(secret),
        })
    }

    pub fn alg(&self) -> Alg {
        match self {
            VerifyingKey::Hs256 { .. } => Alg::Hs256,
            VerifyingKey::Public(key) => key.alg,
        }
    }

    pub fn kid(&self) -> Option<&str> {
        match self {
            VerifyingKey::Hs256 { kid, .. } => kid.as_deref(),
            VerifyingKey::Public(key) => key.kid.as_deref(),
        }
    }
}

impl PublicKey {
    /// The key as a minimal public JWK (only `kty`, `crv` and the key members), for
    /// `crypto.subtle.importKey("jwk", …)`; also a stable cache key for the imported key.
    pub fn jwk(&self) -> String {
        let b64 = |bytes: &[u8]| Base64UrlUnpadded::encode_string(bytes);
        match &self.material {
            PublicMaterial::P256 { x, y } => format!(
                r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
                b64(x),
                b64(y)
            ),
            PublicMaterial::Ed25519 { x } => {
                format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#, b64(x))
            }
            PublicMaterial::Rsa { n, e } => {
                format!(r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#, b64(n), b64(e))
            }
        }
    }

    /// The signature `signature` must be for this key, checked before any crypto: its length,
    /// and for ES256 `r` and `s` in `[1, n-1]`.
    pub fn plausible_signature(&self, signature: &[u8]) -> bool {
        match &self.material {
            PublicMaterial::P256 { .. } => {
                signature.len() == 64 && {
                    let (r, s) = signature.split_at(32);
                    in_scalar_range(r) && in_scalar_range(s)
                }
            }
            PublicMaterial::Ed25519 { .. } => {
                signature.len() == 64 && signature.iter().any(|b| *b != 0)
            }
            PublicMaterial::Rsa { n, .. } => signature.len() == n.len(),
        }
    }
}

fn in_scalar_range(big_endian: &[u8]) -> bool {
    big_endian.iter().any(|b| *b != 0) && big_endian < &P256_ORDER[..]
}

/// What the runtime must verify for a public-key token: `signature` over `message` (the token's
/// `header.payload`) with `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    pub key: PublicKey,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Why a JWK was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Not a JSON object with a string `kty`.
    Malformed(&'static str),
    /// A key type, curve or algorithm this service does not verify (e.g. P-384, PS256).
    Unsupported(String),
    /// A key it must never use (private members, an encryption key, a symmetric key, a short RSA
    /// modulus, `alg` disagreeing with `kty`).
    Refused(&'static str),
}

impl std::fmt::Display for KeyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRefusal::Malformed(why) | KeyRefusal::Refused(why) => f.write_str(why),
            KeyRefusal::Unsupported(what) => write!(f, "{what} is not supported"),
        }
    }
}

/// A key of a JWKS document that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in `keys`, from 0.
    pub index: usize,
    pub kid: Option<String>,
    pub why: KeyRefusal,
}

impl std::fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key {} (kid {kid:?}): {}", self.index, self.why),
            None => write!(f, "key {}: {}", self.index, self.why),
        }
    }
}

/// The public keys of one JWKS document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    pub keys: Vec<PublicKey>,
    /// Keys that were present but not loaded.
    pub skipped: Vec<SkippedKey>,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<Value>,
}

impl KeySet {
    /// Reads a JWKS document (`{"keys":[…]}`). A document that is not one is an error; keys in it
    /// that cannot be used are listed in `skipped`, so a provider's set with, say, an encryption
    /// key beside its signing keys still loads.
    pub fn from_jwks(text: &str) -> Result<KeySet, String> {
        let document: JwksDocument = serde_json::from_str(text)
            .map_err(|_| "not a JWKS document (a JSON object with a \"keys\" array)".to_owned())?;
        if document.keys.len() > MAX_KEYS {
            return Err(format!("more than {MAX_KEYS} keys"));
        }
        let mut set = KeySet::default();
        for (index, jwk) in document.keys.iter().enumerate() {
            match public_key(jwk) {
                Ok(key) => set.keys.push(key),
                Err(why) => set.skipped.push(SkippedKey {
                    index,
                    kid: jwk.get("kid").and_then(Value::as_str).map(str::to_owned),
                    why,
                }),
            }
        }
        Ok(set)
    }
}

/// One JWK as a public verifying key, or why not.
pub fn public_key(jwk: &Value) -> Result<PublicKey, KeyRefusal> {
    let object = jwk
        .as_object()
        .ok_or(KeyRefusal::Malformed("a JWK must be a JSON object"))?;
    let text = |name: &str| object.get(name).and_then(Value::as_str);
    let kty = text("kty").ok_or(KeyRefusal::Malformed("a JWK needs a string kty"))?;
    let kid = match object.get("kid") {
        None => None,
        Some(Value::String(kid)) if kid.len() <= MAX_KID_BYTES => Some(kid.clone()),
        Some(_) => {
            return Err(KeyRefusal::Malformed(
                "kid must be a string of at most 256 bytes",
            ))
        }
    };
    if object.get("use").is_some_and(|u| u != "sig") {
        return Err(KeyRefusal::Refused("its use is not sig"));
    }
    if let Some(ops) = object.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "verify"));
        if !verifies {
            return Err(KeyRefusal::Refused("its key_ops do not include verify"));
        }
    }
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|member| object.contains_key(*member))
    {
        return Err(KeyRefusal::Refused(
            "it has private or secret members: publish only the public key",
        ));
    }
    let alg = object.get("alg");
    let alg_is = |allowed: &[&str]| match alg {
        None => Ok(()),
        Some(Value::String(a)) if allowed.contains(&a.as_str()) => Ok(()),
        Some(Value::String(a)) => Err(KeyRefusal::Unsupported(format!("alg {a:?} for kty {kty}"))),
        Some(_) => Err(KeyRefusal::Malformed("alg must be a string")),
    };
    let bytes = |name: &'static str| -> Result<Vec<u8>, KeyRefusal> {
        let value = text(name).ok_or(KeyRefusal::Malformed("a key member is missing"))?;
        Base64UrlUnpadded::decode_vec(value)
            .map_err(|_| KeyRefusal::Malformed("a key member is not base64url"))
    };
    let (alg, material) = match kty {
        "EC" => {
            match text("crv") {
                Some("P-256") => {}
                Some(crv) => return Err(KeyRefusal::Unsupported(format!("curve {crv:?}"))),
                None => return Err(KeyRefusal::Malformed("an EC key needs a crv")),
            }
            alg_is(&["ES256"])?;
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(KeyRefusal::Malformed("a P-256 x and y are 32 bytes each"));
            }
            (Alg::Es256, PublicMaterial::P256 { x, y })
        }
        "OKP" => {
            match text("crv") {
                Some("Ed25519") => {}
                Some(crv) => return Err(KeyRefusal::Unsupported(format!("curve {crv:?}"))),
                None => return Err(KeyRefusal::Malformed("an OKP key needs a crv")),
            }
            alg_is(&["EdDSA", "Ed25519"])?;
            let x = bytes("x")?;
            if x.len() != 32 {
                return Err(KeyRefusal::Malformed("an Ed25519 x is 32 bytes"));
            }
            (Alg::EdDsa, PublicMaterial::Ed25519 { x })
        }
        "RSA" => {
            alg_is(&["RS256"])?;
            let n = strip_leading_zeros(bytes("n")?);
            let e = strip_leading_zeros(bytes("e")?);
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if bits < MIN_RSA_BITS {
                return Err(KeyRefusal::Refused("an RSA key must be at least 2048 bits"));
            }
            if bits > MAX_RSA_BITS {
                return Err(KeyRefusal::Refused("an RSA key may be at most 8192 bits"));
            }
            if e.is_empty() || e.len() > 4 || e.last().is_some_and(|b| b % 2 == 0) || e == [1] {
                return Err(KeyRefusal::Malformed(
                    "an RSA exponent must be odd, above 1 and at most 32 bits",
                ));
            }
            (Alg::Rs256, PublicMaterial::Rsa { n, e })
        }
        "oct" => {
            return Err(KeyRefusal::Refused(
                "symmetric keys are not read from a JWKS (set JWT_SECRET)",
            ))
        }
        other => return Err(KeyRefusal::Unsupported(format!("kty {other:?}"))),
    };
    Ok(PublicKey { kid, alg, material })
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}
