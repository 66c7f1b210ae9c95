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

    /// A new resume secret: unguessable, `[A-Za-z0-9]`.
    fn next_secret(&mut self) -> String {
        self.next_id()
    }
}

/// What a verified `refresh` token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// Salted hash of the token's `sub`.
    pub user: String,
    /// The connection's new deadline: `exp` plus the leeway, ms since the epoch.
    pub expires_ms: u64,
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

/// ULIDs that need no fresh randomness per id: a random 80-bit seed, drawn once, counted up
/// by one for every id (the ULID spec's monotonic mode, kept across milliseconds). Unique and
/// time-sortable within one generator, but predictable from one sample: for server-made
/// `correlationId`s, never for peer ids.
#[derive(Debug, Clone)]
pub struct CountingUlids {
    next: u128,
}

impl CountingUlids {
    /// Starts at `seed` (80 random bits).
    pub fn new(seed: [u8; 10]) -> CountingUlids {
        let mut next = 0u128;
        for byte in seed {
            next = (next << 8) | u128::from(byte);
        }
        CountingUlids { next }
    }

    /// The next id at `now_ms`.
    pub fn next_at(&mut self, now_ms: u64) -> String {
        let random = self.next;
        // Wraps within 80 bits; 2^80 ids from one seed never happen.
        self.next = (self.next + 1) & ((1u128 << 80) - 1);
        let bytes = random.to_be_bytes();
        let mut tail = [0u8; 10];
        tail.copy_from_slice(&bytes[6..]);
        ulid(now_ms, tail)
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
    fn counting_ulids_are_distinct_and_carry_over_into_higher_bytes() {
        let mut ids = CountingUlids::new([0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF]);
        let a = ids.next_at(1_000);
        let b = ids.next_at(1_000);
        assert_eq!(a, ulid(1_000, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF]));
        assert_eq!(b, ulid(1_000, [0, 0, 0, 0, 0, 0, 0, 0, 1, 0]));
        let mut top = CountingUlids::new([0xFF; 10]);
        assert_eq!(top.next_at(5), ulid(5, [0xFF; 10]));
        assert_eq!(top.next_at(5), ulid(5, [0; 10]), "wraps within 80 bits");
    }

    #[test]
    fn ulids_sort_by_time() {
        assert!(ulid(1_000, [0xFF; 10]) < ulid(1_001, [0; 10]));
    }
}
