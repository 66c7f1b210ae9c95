//! Server-made ids: ULIDs (48-bit millisecond time, 80 random bits, Crockford base32).
//!
//! The core never reads a clock or a random source: the caller passes both in, through
//! [`IdSource`]. In the Worker that is `Date.now()` and `crypto.getRandomValues`; in tests a
//! counter. 80 random bits make a peer id unguessable.

use crate::protocol::PeerId;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Where fresh ids come from.
pub trait IdSource {
    /// A new id, unique and unguessable.
    fn next_id(&mut self) -> String;

    /// A new peer id.
    fn next_peer_id(&mut self) -> PeerId {
        PeerId::from_server(self.next_id())
    }
}

/// Encodes a ULID: `now_ms` (low 48 bits) followed by 80 random bits, as 26 characters.
pub fn ulid(now_ms: u64, random: [u8; 10]) -> String {
    let mut value = u128::from(now_ms & 0xFFFF_FFFF_FFFF) << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= u128::from(*byte) << (8 * (9 - i));
    }
    (0..26)
        .map(|i| CROCKFORD[((value >> (5 * (25 - i))) & 31) as usize] as char)
        .collect()
}

/// An [`IdSource`] over a clock and a random-bytes function.
pub struct UlidSource<C, R> {
    pub clock_ms: C,
    pub random: R,
}

impl<C: FnMut() -> u64, R: FnMut() -> [u8; 10]> IdSource for UlidSource<C, R> {
    fn next_id(&mut self) -> String {
        ulid((self.clock_ms)(), (self.random)())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulid_matches_the_reference_encoding() {
        // Time 0 and all-zero randomness is the all-zero ULID; all-ones is "7ZZZ…".
        assert_eq!(ulid(0, [0; 10]), "00000000000000000000000000");
        assert_eq!(
            ulid(0xFFFF_FFFF_FFFF, [0xFF; 10]),
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        );
        // 1469918176385 ms is "01ARYZ6S41" in the ULID spec's example.
        assert!(ulid(1_469_918_176_385, [0; 10]).starts_with("01ARYZ6S41"));
    }

    #[test]
    fn ulids_sort_by_time() {
        assert!(ulid(1_000, [0xFF; 10]) < ulid(1_001, [0; 10]));
    }
}
