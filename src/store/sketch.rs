//! How often each key was used lately, approximately: TinyLFU's frequency sketch.
//!
//! A count-min sketch of 4-bit counters, sixteen to a `u64`, with as many words as
//! the partition holds entries (rounded up to a power of two): 8 bytes per entry of
//! capacity, Caffeine's size. A key's frequency is the least of its four counters,
//! each in a word picked by a different hash of the key. After ten times the
//! capacity in increments every counter is halved ("aged"), so the sketch forgets
//! what was popular long ago and follows a shifting working set.
//!
//! This is Caffeine's `FrequencySketch` (Einziger, Friedman, Manes: "TinyLFU: A
//! Highly Efficient Cache Admission Policy"), counting keys by a 64-bit hash the
//! caller supplies.

/// Per-row multipliers (Caffeine's seeds, from CityHash's constants).
const SEEDS: [u64; 4] = [
    0xc3a5_c85c_97cb_3127,
    0xb492_b66f_be98_f273,
    0x9ae1_6a3b_2f90_404f,
    0xcbf2_9ce4_8422_2325,
];
/// Clears each counter's top bit after a shift: halves all sixteen at once.
const RESET_MASK: u64 = 0x7777_7777_7777_7777;
/// Each counter's low bit: the ones a halving rounds away.
const ONE_MASK: u64 = 0x1111_1111_1111_1111;
/// Increments between two halvings, per entry of capacity.
const SAMPLE_PER_ENTRY: u64 = 10;

#[derive(Debug)]
pub struct FrequencySketch {
    table: Vec<u64>,
    mask: u64,
    /// Increments since the last halving (less what the halving took back).
    size: u64,
    sample: u64,
}

impl FrequencySketch {
    /// A sketch for a partition of `capacity` entries.
    pub fn new(capacity: u64) -> Self {
        // At least 8 words, so a tiny partition still spreads its keys; at most 2^30.
        let words = capacity.clamp(8, 1 << 30).next_power_of_two();
        Self {
            table: vec![0; words as usize],
            mask: words - 1,
            size: 0,
            sample: SAMPLE_PER_ENTRY * capacity.max(1),
        }
    }

    /// The estimated number of recent uses of the key hashing to `hash` (0 to 15).
    pub fn frequency(&self, hash: u64) -> u8 {
        let start = (hash & 3) << 2;
        (0..4)
            .map(|row| {
                let word = self.table[self.index(hash, row)];
                ((word >> ((start + row as u64) << 2)) & 0xf) as u8
            })
            .min()
            .expect("four rows")
    }

    /// Counts one use of the key hashing to `hash`.
    pub fn increment(&mut self, hash: u64) {
        let start = (hash & 3) << 2;
        let mut added = false;
        for row in 0..4 {
            let index = self.index(hash, row);
            added |= self.increment_at(index, start + row as u64);
        }
        if added {
            self.size += 1;
            if self.size >= self.sample {
                self.halve();
            }
        }
    }

    fn index(&self, hash: u64, row: usize) -> usize {
        let mut mixed = hash.wrapping_add(SEEDS[row]).wrapping_mul(SEEDS[row]);
        mixed = mixed.wrapping_add(mixed >> 32);
        (mixed & self.mask) as usize
    }

    /// Adds one to counter `counter` (0..16) of word `index` unless it saturated.
    fn increment_at(&mut self, index: usize, counter: u64) -> bool {
        let offset = counter << 2;
        let full = 0xf << offset;
        if self.table[index] & full == full {
            return false;
        }
        self.table[index] += 1 << offset;
        true
    }

    /// Halves every counter: the sketch's memory fades.
    fn halve(&mut self) {
        let mut odd = 0u64;
        for word in &mut self.table {
            odd += u64::from((*word & ONE_MASK).count_ones());
            *word = (*word >> 1) & RESET_MASK;
        }
        // Halving loses the odd counters' half units: take them back from the size too.
        self.size = (self.size >> 1) - (odd >> 2).min(self.size >> 1);
    }

    /// Bytes the table takes.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.table.len() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-spread hash of a small integer, as the store's SipHash would give.
    fn hash(key: u64) -> u64 {
        let mut x = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    #[test]
    fn counts_uses_up_to_fifteen() {
        let mut sketch = FrequencySketch::new(1024);
        assert_eq!(sketch.frequency(hash(1)), 0);
        for expected in 1..=20u8 {
            sketch.increment(hash(1));
            assert_eq!(
                sketch.frequency(hash(1)),
                expected.min(15),
                "saturates at 15"
            );
        }
        assert_eq!(sketch.frequency(hash(2)), 0, "another key counts nothing");
    }

    #[test]
    fn never_underestimates_and_rarely_overestimates() {
        let mut sketch = FrequencySketch::new(512);
        // Key k used k % 8 times, 512 keys: within one sample, so nothing is halved.
        for key in 0..512u64 {
            for _ in 0..key % 8 {
                sketch.increment(hash(key));
            }
        }
        let mut over = 0;
        for key in 0..512u64 {
            let estimate = sketch.frequency(hash(key));
            assert!(u64::from(estimate) >= key % 8, "key {key} underestimated");
            over += usize::from(u64::from(estimate) > key % 8);
        }
        assert!(over < 512 / 10, "{over} of 512 keys overestimated");
    }

    #[test]
    fn halves_every_counter_after_ten_times_capacity_increments() {
        let capacity = 64;
        let mut sketch = FrequencySketch::new(capacity);
        for _ in 0..8 {
            sketch.increment(hash(7));
        }
        assert_eq!(sketch.frequency(hash(7)), 8);
        // Fill the rest of the sample with one-off keys, until the halving.
        let mut key = 1000;
        loop {
            let before = sketch.size;
            sketch.increment(hash(key));
            key += 1;
            if sketch.size < before {
                break;
            }
            assert!(key <= 1000 + 10 * capacity, "no halving within the sample");
        }
        // The one-off keys raised some of key 7's counters before the halving.
        let halved = sketch.frequency(hash(7));
        assert!(
            (4..=6).contains(&halved),
            "8 (plus noise) halved to {halved}"
        );
    }

    #[test]
    fn costs_eight_bytes_per_entry_of_capacity() {
        assert_eq!(FrequencySketch::new(1 << 20).bytes(), 8 << 20);
        assert_eq!(FrequencySketch::new(1000).bytes(), 8 * 1024);
    }
}
