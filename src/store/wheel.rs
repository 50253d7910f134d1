//! The partition's TTL index: a hierarchical timer wheel after Caffeine and moka.
//!
//! Each level is a ring of buckets of one power-of-two span of nanoseconds; an entry
//! sits in the coarsest-but-one level whose range covers its remaining time, and drops
//! a level each time its bucket comes round ("cascading"), so schedule, reschedule and
//! deschedule are O(1) and `advance` touches only the buckets time has passed.
//!
//! Moka's levels are about 1 s, 1 min, 1 h and 1 d plus an overflow bucket. We put a
//! ~17 ms level in front of them: with 1 s buckets an entry could outlive its deadline
//! by a whole second before the wheel noticed, and RustKV promises reclamation within
//! one tick (default 100 ms) plus the wheel's granularity. The extra level costs one
//! more cascade per entry, which is O(1).
//!
//! Entries are named by `u32` ids (the LRU slab's indexes) and linked by index, never
//! by pointer: moka's pointer-linked wheel had use-after-free bugs (moka #565). The
//! wheel is a pure structure: it never reads a clock, `advance(now)` is told the time.

use super::lru::NIL;

/// Buckets per level: fine (~17 ms), ~1 s, ~1 min, ~1 h, ~1.6 d, overflow.
const BUCKETS: [u64; LEVELS] = [64, 64, 64, 32, 4, 1];
/// log2 of each level's bucket span in nanoseconds: 2^24 ns = 16.8 ms, 2^30 ns = 1.07 s,
/// 2^36 ns = 68.7 s, 2^42 ns = 73.3 min, 2^47 ns = 1.63 d, 2^49 ns = 6.5 d.
const SHIFTS: [u32; LEVELS] = [24, 30, 36, 42, 47, 49];
const LEVELS: usize = 6;
/// Index of each level's first bucket in the flat `heads` array.
const OFFSETS: [usize; LEVELS] = [0, 64, 128, 192, 224, 228];
const TOTAL_BUCKETS: usize = 229;

/// The span of one bucket of `level`, in nanoseconds (exposed for tests and docs).
pub const fn span(level: usize) -> u64 {
    1 << SHIFTS[level]
}

#[derive(Clone, Copy, Debug)]
struct TimerNode {
    deadline: u64,
    prev: u32,
    next: u32,
    /// Flat bucket index, or `NIL` when not scheduled.
    bucket: u32,
}

const UNSCHEDULED: TimerNode = TimerNode {
    deadline: 0,
    prev: NIL,
    next: NIL,
    bucket: NIL,
};

/// A hierarchical timer wheel over `u32` ids, with time in nanoseconds.
#[derive(Debug)]
pub struct TimerWheel {
    heads: Vec<u32>,
    /// Indexed by id; grows to the largest id scheduled.
    nodes: Vec<TimerNode>,
    /// The time of the last `advance`.
    time: u64,
    len: usize,
}

impl TimerWheel {
    pub fn new(now: u64) -> Self {
        Self {
            heads: vec![NIL; TOTAL_BUCKETS],
            nodes: Vec::new(),
            time: now,
            len: 0,
        }
    }

    /// Number of scheduled ids.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `id` to expire at `deadline`, replacing any earlier schedule.
    pub fn schedule(&mut self, id: u32, deadline: u64) {
        self.deschedule(id);
        let index = id as usize;
        if index >= self.nodes.len() {
            self.nodes.resize(index + 1, UNSCHEDULED);
        }
        self.nodes[index].deadline = deadline;
        self.link(id);
        self.len += 1;
    }

    /// Same as `schedule`; named for call sites that move an existing timer.
    pub fn reschedule(&mut self, id: u32, deadline: u64) {
        self.schedule(id, deadline);
    }

    /// Removes `id`'s timer, if it has one.
    pub fn deschedule(&mut self, id: u32) {
        if self.bucket_of(id).is_some() {
            self.unlink(id);
            self.len -= 1;
        }
    }

    /// The deadline `id` is scheduled for, if any.
    pub fn deadline(&self, id: u32) -> Option<u64> {
        self.bucket_of(id).map(|_| self.nodes[id as usize].deadline)
    }

    #[cfg(test)]
    /// The level `id` currently sits in (0 = finest, 5 = overflow), if scheduled.
    pub fn level(&self, id: u32) -> Option<usize> {
        let bucket = self.bucket_of(id)? as usize;
        OFFSETS.iter().rposition(|&offset| offset <= bucket)
    }

    /// Moves time forward to `now` and appends every id whose deadline is `<= now`
    /// and whose bucket time has passed to `expired` (they are descheduled). Entries
    /// in buckets passed but not yet due cascade to a finer level.
    pub fn advance(&mut self, now: u64, expired: &mut Vec<u32>) {
        let previous = self.time;
        if now <= previous {
            return;
        }
        self.time = now;
        for (level, shift) in SHIFTS.into_iter().enumerate() {
            let previous_ticks = previous >> shift;
            let current_ticks = now >> shift;
            if current_ticks <= previous_ticks {
                break;
            }
            self.expire_level(
                level,
                previous_ticks,
                current_ticks - previous_ticks,
                expired,
            );
        }
    }

    /// Visits the buckets from `previous_ticks` to `previous_ticks + delta` (the
    /// current one included, as Caffeine does), at most once each.
    fn expire_level(
        &mut self,
        level: usize,
        previous_ticks: u64,
        delta: u64,
        expired: &mut Vec<u32>,
    ) {
        let count = BUCKETS[level];
        let steps = (delta + 1).min(count);
        for step in 0..steps {
            let bucket = OFFSETS[level] + ((previous_ticks + step) & (count - 1)) as usize;
            // Detach the whole bucket first so re-linked ids land in a fresh list.
            let mut cursor = std::mem::replace(&mut self.heads[bucket], NIL);
            while cursor != NIL {
                let node = &mut self.nodes[cursor as usize];
                let next = node.next;
                node.bucket = NIL;
                if node.deadline <= self.time {
                    self.len -= 1;
                    expired.push(cursor);
                } else {
                    self.link(cursor);
                }
                cursor = next;
            }
        }
    }

    fn bucket_of(&self, id: u32) -> Option<u32> {
        let bucket = self.nodes.get(id as usize)?.bucket;
        (bucket != NIL).then_some(bucket)
    }

    /// The bucket for `deadline`: the finest level whose ring still reaches it.
    fn find_bucket(&self, deadline: u64) -> usize {
        // A deadline already past goes in the current bucket, which the next advance visits.
        let deadline = deadline.max(self.time);
        let remaining = deadline - self.time;
        for level in 0..LEVELS - 1 {
            if remaining < span(level) * BUCKETS[level] {
                let ticks = deadline >> SHIFTS[level];
                return OFFSETS[level] + (ticks & (BUCKETS[level] - 1)) as usize;
            }
        }
        OFFSETS[LEVELS - 1]
    }

    fn link(&mut self, id: u32) {
        let bucket = self.find_bucket(self.nodes[id as usize].deadline);
        let old_head = self.heads[bucket];
        let node = &mut self.nodes[id as usize];
        node.bucket = bucket as u32;
        node.prev = NIL;
        node.next = old_head;
        if old_head != NIL {
            self.nodes[old_head as usize].prev = id;
        }
        self.heads[bucket] = id;
    }

    fn unlink(&mut self, id: u32) {
        let TimerNode {
            prev, next, bucket, ..
        } = self.nodes[id as usize];
        if prev == NIL {
            self.heads[bucket as usize] = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        self.nodes[id as usize].bucket = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: u64 = 1_000_000_000_000; // an arbitrary, unaligned-ish origin

    fn advance(wheel: &mut TimerWheel, now: u64) -> Vec<u32> {
        let mut expired = Vec::new();
        wheel.advance(now, &mut expired);
        expired.sort_unstable();
        expired
    }

    /// The range each level's ring covers, at its boundaries (moka's table style).
    #[test]
    fn level_is_chosen_by_remaining_time() {
        let ring = |level: usize| span(level) * BUCKETS[level];
        let cases = [
            (0, 0),
            (1, 0),
            (ring(0) - 1, 0),
            (ring(0), 1),
            (ring(1) - 1, 1),
            (ring(1), 2),
            (ring(2) - 1, 2),
            (ring(2), 3),
            (ring(3) - 1, 3),
            (ring(3), 4),
            (ring(4) - 1, 4),
            (ring(4), 5),
            (10 * 365 * 86_400 * 1_000_000_000, 5),
        ];
        for (id, (delay, level)) in cases.into_iter().enumerate() {
            let mut wheel = TimerWheel::new(START);
            wheel.schedule(id as u32, START + delay);
            assert_eq!(wheel.level(id as u32), Some(level), "delay {delay} ns");
        }
    }

    #[test]
    fn spans_are_about_17ms_1s_1min_1h_1d() {
        let approx_secs = |level| span(level) as f64 / 1e9;
        assert!((0.016..0.017).contains(&approx_secs(0)));
        assert!((1.0..1.1).contains(&approx_secs(1)));
        assert!((60.0..70.0).contains(&approx_secs(2)));
        assert!((3600.0..4500.0).contains(&approx_secs(3)));
        assert!((86_400.0..150_000.0).contains(&approx_secs(4)));
    }

    #[test]
    fn nothing_expires_before_its_deadline_and_everything_soon_after() {
        for delay in [
            1,
            span(0) - 1,
            span(0),
            span(1) + 7,
            span(2) * 3,
            span(3) + 1,
            span(4) * 5,
        ] {
            let mut wheel = TimerWheel::new(START);
            wheel.schedule(7, START + delay);
            assert!(
                advance(&mut wheel, START + delay - 1).is_empty(),
                "early at {delay}"
            );
            // Due now, but its finest bucket has not been passed yet, or just has.
            let mut got = advance(&mut wheel, START + delay);
            got.extend(advance(&mut wheel, START + delay + span(0)));
            assert_eq!(got, [7], "late at {delay}");
            assert!(wheel.is_empty());
        }
    }

    #[test]
    fn stepwise_advance_cascades_through_levels() {
        let mut wheel = TimerWheel::new(START);
        let delay = span(3) * 2 + span(1) * 3 + 12345;
        wheel.schedule(1, START + delay);
        let step = span(0) * 5;
        let mut now = START;
        let mut expired_at = None;
        while now < START + delay + 2 * span(0) {
            now += step;
            if !advance(&mut wheel, now).is_empty() {
                expired_at = Some(now);
                break;
            }
        }
        let expired_at = expired_at.expect("never expired");
        assert!(expired_at >= START + delay);
        assert!(expired_at <= START + delay + step + span(0));
    }

    #[test]
    fn deschedule_and_reschedule() {
        let mut wheel = TimerWheel::new(START);
        wheel.schedule(1, START + 10);
        wheel.schedule(2, START + 10);
        wheel.schedule(3, START + span(2));
        wheel.deschedule(2);
        wheel.deschedule(2); // twice is harmless
        wheel.reschedule(3, START + 20);
        wheel.reschedule(1, START + span(1) * 2);
        assert_eq!(wheel.len(), 2);
        assert_eq!(wheel.deadline(3), Some(START + 20));
        assert_eq!(advance(&mut wheel, START + span(0) * 2), [3]);
        assert_eq!(advance(&mut wheel, START + span(1) * 3), [1]);
        assert!(wheel.is_empty());
        assert_eq!(wheel.deadline(1), None);
    }

    #[test]
    fn large_jump_expires_everything_due() {
        let mut wheel = TimerWheel::new(START);
        for id in 0..1000u32 {
            wheel.schedule(id, START + u64::from(id) * span(1) / 3);
        }
        let expired = advance(&mut wheel, START + 400 * span(1));
        assert_eq!(expired, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn past_deadline_expires_on_next_bucket_change() {
        let mut wheel = TimerWheel::new(START);
        wheel.schedule(4, START - 5);
        assert_eq!(advance(&mut wheel, START + span(0)), [4]);
    }
}
