//! W-TinyLFU, Caffeine's eviction policy, over the partition's slab.
//!
//! The slab threads three LRU lists (regions): a new entry enters the *window*
//! (0.4% of the partition); what the window pushes out becomes a *candidate*
//! at the front of *probation*; a hit in probation promotes an entry to
//! *protected* (70% of the rest), whose overflow drops back to probation.
//! When the partition is over its limits, a candidate must beat the *victim*
//! (probation's least recently used entry) on frequency, as the sketch counts it
//! (hits, writes and misses alike), or it goes instead. So a key used once, or a
//! scan, passes through the window without flushing the entries used often.
//! A warm candidate that loses still gets in with probability 1/128, Caffeine's
//! guard against an attacker who keeps a victim's count high with colliding keys.
//!
//! Regions are weighed in entries and in bytes (`entry::charge`), each limited to
//! its share of `capacity` and of `max_memory`, so whichever limit binds sizes
//! them. The window's share is fixed, below Caffeine's starting 1% (see
//! `WINDOW_SHARE`): Caffeine's hill climber, which moves it toward what raises
//! the hit ratio, was tried and left out (see `benches/README.md`: on the
//! bench's traces it oscillated).

use super::{super::sketch::FrequencySketch, Limits, PartitionState, Removal};
use crate::store::lru::NIL;

pub(super) const WINDOW: u8 = 0;
pub(super) const PROBATION: u8 = 1;
pub(super) const PROTECTED: u8 = 2;
/// Regions: window, probation, protected.
pub(super) const REGIONS: usize = 3;

/// A candidate this frequent that loses may still get in (Caffeine's value).
const WARM: u8 = 6;
/// Misses remembered so that the put that fills one does not count again.
const FILLS: usize = 64;

/// Entries and bytes of a region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Weight {
    entries: u64,
    bytes: u64,
}

impl Weight {
    fn of(charge: u64) -> Self {
        Self {
            entries: 1,
            bytes: charge,
        }
    }

    fn exceeds(self, max: Weight) -> bool {
        self.entries > max.entries || self.bytes > max.bytes
    }

    fn add(&mut self, other: Weight) {
        self.entries += other.entries;
        self.bytes += other.bytes;
    }

    fn sub(&mut self, other: Weight) {
        self.entries -= other.entries;
        self.bytes -= other.bytes;
    }
}

/// How a duel between a candidate and a victim ends.
enum Duel {
    /// They are the same entry, which goes.
    Same,
    /// The victim goes; `admitted` if the candidate beat it (and keeps its place).
    VictimGoes {
        admitted: bool,
    },
    CandidateGoes,
}

/// The policy's own state (the lists are the slab's).
#[derive(Debug)]
pub(super) struct TinyLfu {
    sketch: FrequencySketch,
    window: Weight,
    protected: Weight,
    window_max: Weight,
    protected_max: Weight,
    /// xorshift64 state for the warm-candidate coin.
    random: u64,
    /// Recent misses' hashes (0 = none), a ring: a read-through client's miss and
    /// the put that fills it are one use, as a loading cache counts them.
    misses: [u64; FILLS],
    next_miss: usize,
}

/// The window's share of the partition, and protected's of what the window leaves.
///
/// The window is capacity that a key reused at a distance longer than the window
/// never hits, so a loop slightly larger than the cache loses all of it: at
/// Caffeine's 1% the bench's loop read 89.5% against moka's 90.2-90.4% (moka has
/// no window). At 0.4% (20 entries of 5,000) it reads 89.8-90.0%, and the zipf,
/// scan and mixed traces move by under 0.1 pp. Smaller is not safer: 5 to 8
/// entries read 87-89% on the loop, where a sketch halving lets runs of
/// candidates win (`benches/README.md`).
const WINDOW_SHARE: f64 = 0.004;
/// Protected shields entries used twice from the duels; what it holds after the
/// working set moves on stays until new entries' promotions push it out. At
/// Caffeine's 80% the bench's shifting trace read 0.7-1.0 pp below moka (whose
/// main region is one LRU list), at 70% within 0.1 pp, for 0.3 pp less on the
/// stationary zipf traces (still 0.4-0.9 pp above moka); 0% is moka's figures.
const PROTECTED_SHARE: f64 = 0.7;

/// The window's and protected's largest weights for a window `share` of `limits`.
fn maxima(limits: Limits, share: f64) -> (Weight, Weight) {
    let part = |total: u64, share: f64| (total as f64 * share) as u64;
    let window = Weight {
        // Never empty: a new entry always has somewhere to go first.
        entries: part(limits.capacity, share).max(1),
        bytes: part(limits.max_memory, share).max(1),
    };
    let protected = Weight {
        entries: part(
            limits.capacity - window.entries.min(limits.capacity),
            PROTECTED_SHARE,
        ),
        bytes: part(
            limits.max_memory - window.bytes.min(limits.max_memory),
            PROTECTED_SHARE,
        ),
    };
    (window, protected)
}

impl TinyLfu {
    pub(super) fn new(limits: Limits) -> Self {
        let (window_max, protected_max) = maxima(limits, WINDOW_SHARE);
        Self {
            sketch: FrequencySketch::new(limits.capacity),
            window: Weight::default(),
            protected: Weight::default(),
            window_max,
            protected_max,
            random: 0x9e37_79b9_7f4a_7c15,
            misses: [0; FILLS],
            next_miss: 0,
        }
    }

    fn region(&mut self, list: u8) -> Option<&mut Weight> {
        match list {
            WINDOW => Some(&mut self.window),
            PROTECTED => Some(&mut self.protected),
            _ => None,
        }
    }

    fn coin(&mut self) -> bool {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random & 127 == 0
    }
}

impl PartitionState {
    fn tinylfu(&mut self) -> &mut TinyLfu {
        self.policy.as_deref_mut().expect("W-TinyLFU")
    }

    /// Counts the insert of `key`, unless it fills a miss counted already.
    pub(super) fn count_insert(&mut self, key: &[u8]) {
        let Some(hash) = self.shared.frequency_hash(key) else {
            return;
        };
        let policy = self.tinylfu();
        match policy.misses.iter().position(|&missed| missed == hash) {
            Some(index) => policy.misses[index] = 0,
            None => policy.sketch.increment(hash),
        }
    }

    /// Counts a miss a reader reported.
    pub(super) fn count_miss(&mut self, hash: u64) {
        if let Some(policy) = self.policy.as_deref_mut() {
            policy.sketch.increment(hash);
            policy.misses[policy.next_miss] = hash;
            policy.next_miss = (policy.next_miss + 1) % FILLS;
        }
    }

    /// A new entry of `charge` went onto `list`.
    pub(super) fn weigh_in(&mut self, list: u8, charge: u64) {
        if let Some(region) = self.policy.as_deref_mut().and_then(|p| p.region(list)) {
            region.add(Weight::of(charge));
        }
    }

    /// The entry at `slot` (of `charge`) is leaving its region.
    pub(super) fn weigh_out(&mut self, slot: u32, charge: u64) {
        let list = self.lru.list_of(slot);
        if let Some(region) = self.policy.as_deref_mut().and_then(|p| p.region(list)) {
            region.sub(Weight::of(charge));
        }
    }

    /// A client used the entry at `slot` (a hit or an overwrite): window and
    /// protected entries become their region's most recent; a probation entry is
    /// promoted to protected, whose overflow goes back to probation.
    pub(super) fn accessed(&mut self, slot: u32) {
        let Some(entry) = self.lru.get(slot) else {
            return;
        };
        let (charge, list) = (entry.charge(), self.lru.list_of(slot));
        if let Some(hash) = self.shared.frequency_hash(entry.key_bytes()) {
            self.tinylfu().sketch.increment(hash);
        }
        if list != PROBATION {
            self.touch(slot);
            return;
        }
        self.move_region(slot, PROTECTED);
        self.tinylfu().protected.add(Weight::of(charge));
        self.demote_protected();
    }

    /// Moves what overflows protected back to probation's front.
    fn demote_protected(&mut self) {
        while self
            .tinylfu()
            .protected
            .exceeds(self.tinylfu().protected_max)
        {
            let Some((eldest, entry)) = self.lru.peek_tail(PROTECTED) else {
                break;
            };
            let charge = entry.charge();
            self.tinylfu().protected.sub(Weight::of(charge));
            self.move_region(eldest, PROBATION);
        }
    }

    /// Moves what overflows the window to probation's front, then evicts until the
    /// partition is within its limits. With `admit`, a candidate from the window
    /// must beat the victim on frequency; without (a log being loaded, which has no
    /// frequencies yet), the least recent entries of probation go first, as LRU.
    pub(super) fn rebalance(&mut self, admit: bool, now: u64) {
        self.demote_protected();
        let mut candidate = NIL;
        while self.tinylfu().window.exceeds(self.tinylfu().window_max) {
            let Some((slot, entry)) = self.lru.peek_tail(WINDOW) else {
                break;
            };
            let charge = entry.charge();
            self.tinylfu().window.sub(Weight::of(charge));
            self.move_region(slot, PROBATION);
            if candidate == NIL {
                candidate = slot;
            }
        }
        self.evict_from_main(candidate, admit, now);
    }

    /// Caffeine's `evictFromMain`: candidates run from `candidate` toward
    /// probation's front (then the window's entries, oldest first), victims from
    /// probation's back (then protected's, then the window's), and the loser of
    /// each duel goes.
    fn evict_from_main(&mut self, mut candidate: u32, admit: bool, now: u64) {
        let (mut victim_list, mut victim) = (PROBATION, self.lru.tail_of(PROBATION));
        let mut window_candidates = false;
        while self.over_limits() {
            if self.lru.get(candidate).is_none() && !window_candidates {
                window_candidates = true;
                candidate = self.lru.tail_of(WINDOW);
            }
            if self.lru.get(candidate).is_none() && self.lru.get(victim).is_none() {
                match victim_list {
                    PROBATION => victim_list = PROTECTED,
                    PROTECTED => victim_list = WINDOW,
                    _ => break,
                }
                victim = self.lru.tail_of(victim_list);
                continue;
            }
            let (next_candidate, next_victim) = (
                self.lru.toward_head(candidate),
                self.lru.toward_head(victim),
            );
            match self.duel(candidate, victim, admit, now) {
                Duel::Same => {
                    self.evict_for_room(victim, now);
                    (candidate, victim) = (NIL, next_victim);
                }
                Duel::VictimGoes { admitted } => {
                    self.evict_for_room(victim, now);
                    victim = next_victim;
                    if admitted {
                        candidate = next_candidate;
                    }
                }
                Duel::CandidateGoes => {
                    self.evict_for_room(candidate, now);
                    candidate = next_candidate;
                }
            }
        }
    }

    /// Which of `candidate` and `victim` must go (either may name no entry, not
    /// both): an expired one first, then a candidate too large for the partition,
    /// then the less frequent (the candidate on a tie).
    fn duel(&mut self, candidate: u32, victim: u32, admit: bool, now: u64) -> Duel {
        let Some(v) = self.lru.get(victim) else {
            return Duel::CandidateGoes;
        };
        let Some(c) = self.lru.get(candidate) else {
            return Duel::VictimGoes { admitted: false };
        };
        if candidate == victim {
            return Duel::Same;
        }
        if v.is_expired(now) {
            return Duel::VictimGoes { admitted: false };
        }
        if c.is_expired(now) || c.charge() > self.limits.max_memory {
            return Duel::CandidateGoes;
        }
        let hashes = (
            self.shared.frequency_hash(c.key_bytes()),
            self.shared.frequency_hash(v.key_bytes()),
        );
        let (Some(c_hash), Some(v_hash)) = hashes else {
            return Duel::VictimGoes { admitted: true };
        };
        let policy = self.tinylfu();
        let (c_freq, v_freq) = (
            policy.sketch.frequency(c_hash),
            policy.sketch.frequency(v_hash),
        );
        if !admit || c_freq > v_freq || (c_freq >= WARM && policy.coin()) {
            Duel::VictimGoes { admitted: true }
        } else {
            Duel::CandidateGoes
        }
    }

    fn over_limits(&self) -> bool {
        self.lru.len() > 1
            && (self.lru.len() as u64 > self.limits.capacity
                || self.memory > self.limits.max_memory)
    }

    /// Evicts `slot` to make room, counted as expired if it already was.
    fn evict_for_room(&mut self, slot: u32, now: u64) {
        let cause = match self.lru.get(slot) {
            Some(entry) if entry.is_expired(now) => Removal::Expired,
            Some(_) if self.lru.len() as u64 > self.limits.capacity => Removal::Capacity,
            Some(_) => Removal::Memory,
            None => return,
        };
        self.evict(slot, cause);
    }

    /// Checks the region weights against the lists; panics if they drifted.
    pub(super) fn validate_regions(&self) {
        let Some(policy) = self.policy.as_deref() else {
            return;
        };
        let mut weights = [Weight::default(); REGIONS];
        for list in 0..REGIONS as u8 {
            let mut slot = self.lru.tail_of(list);
            while let Some(entry) = self.lru.get(slot) {
                weights[list as usize].add(Weight::of(entry.charge()));
                slot = self.lru.toward_head(slot);
            }
        }
        assert_eq!(
            weights[WINDOW as usize], policy.window,
            "window weight drifted"
        );
        assert_eq!(
            weights[PROTECTED as usize], policy.protected,
            "protected weight drifted"
        );
    }
}
