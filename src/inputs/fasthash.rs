//! A fast, non-cryptographic hasher for the plan's in-memory maps.
//!
//! The standard library's SipHash resists collision attacks from untrusted
//! keys; the plan's keys are the project's own paths, digests and node IDs,
//! read from the project tree and rpytest's own store, so a multiply-fold
//! hash over machine words is enough and several times cheaper per key. It
//! only chooses buckets: equality is still checked on the keys, so a
//! collision costs time, never a wrong answer.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Word-at-a-time hasher: each word is mixed into the state by an exclusive
/// or and a folded multiplication by an odd constant.
#[derive(Clone, Copy)]
pub struct WordHasher {
    state: u64,
}

impl Default for WordHasher {
    /// A non-zero start, so that leading zero words still change the state.
    fn default() -> Self {
        WordHasher {
            state: 0x243f_6a88_85a3_08d3,
        }
    }
}

/// An odd constant with well-spread bits (2^64 divided by the golden ratio).
const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl WordHasher {
    /// A full 64×64→128-bit product folded back to 64 bits: every input bit
    /// reaches every output bit, where a plain multiplication only carries
    /// low bits upwards.
    #[inline]
    fn mix(&mut self, word: u64) {
        let p = u128::from(self.state ^ word) * u128::from(K);
        self.state = (p as u64) ^ ((p >> 64) as u64);
    }
}

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart within one write.
            self.mix(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

pub type FastBuild = BuildHasherDefault<WordHasher>;
pub type FastMap<K, V> = HashMap<K, V, FastBuild>;
pub type FastSet<T> = HashSet<T, FastBuild>;

/// An empty map with room for `n` entries.
pub fn map_with_capacity<K, V>(n: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(n, FastBuild::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn equal_keys_hash_equal_and_near_keys_apart() {
        let b = FastBuild::default();
        let paths: Vec<String> = (0..20_000)
            .map(|i| format!("tests/d{}/test_f{i}.py", i % 10))
            .collect();
        let hashes: std::collections::HashSet<u64> = paths.iter().map(|p| b.hash_one(p)).collect();
        assert_eq!(hashes.len(), paths.len(), "distinct paths collide");
        assert_eq!(b.hash_one("a/b.py"), b.hash_one(String::from("a/b.py")));
        assert_ne!(b.hash_one("a"), b.hash_one("a\0"));
        assert_ne!(b.hash_one(""), b.hash_one("\0\0\0\0\0\0\0\0"));
        assert_ne!(b.hash_one(("ab", "c")), b.hash_one(("a", "bc")));
    }

    #[test]
    fn a_map_finds_what_it_holds() {
        let mut m: FastMap<String, usize> = map_with_capacity(4);
        for i in 0..1000 {
            m.insert(format!("k{i}"), i);
        }
        for i in 0..1000 {
            assert_eq!(m.get(&format!("k{i}")), Some(&i));
        }
        assert!(!m.contains_key("k1000"));
    }
}
