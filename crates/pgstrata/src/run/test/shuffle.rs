//! The random test order. Hand-written on purpose: a seed printed today must give the same order with any future
//! build, which general-purpose RNG crates do not promise across versions. SplitMix64 (Steele, Lea and Flood,
//! 2014) drives a Fisher–Yates shuffle.

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// Shuffle `items` in an order determined by `seed` alone.
///
/// ```
/// let mut a: Vec<u32> = (0..10).collect();
/// let mut b = a.clone();
/// pgstrata::testing::shuffle(&mut a, 42);
/// pgstrata::testing::shuffle(&mut b, 42);
/// assert_eq!(a, b);
/// assert_ne!(a, (0..10).collect::<Vec<_>>());
/// ```
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// A fresh seed for a run that was not given one: small enough to type.
pub(crate) fn new_seed() -> u64 {
    use std::hash::BuildHasher;
    let entropy =
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    entropy % 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sequence_is_stable() {
        // Reference values of SplitMix64 for seed 0 (from the published algorithm).
        let mut r = SplitMix64(0);
        assert_eq!(r.next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next(), 0x6E78_9E6A_A1B9_65F4);
        let mut v: Vec<u32> = (0..5).collect();
        shuffle(&mut v, 7);
        let mut w: Vec<u32> = (0..5).collect();
        shuffle(&mut w, 7);
        assert_eq!(v, w);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3, 4]);
    }
}
