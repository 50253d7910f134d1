//! The store's notion of time: nanoseconds since the store started, from quanta.
//!
//! quanta reads the TSC, which is cheap enough for every GET. It can disagree by a
//! little between cores (quanta #111), so differences saturate at zero instead of
//! wrapping; a deadline seen a few nanoseconds early or late is harmless. Tests build
//! the store on `quanta::Clock::mock()` and move time by hand.

use std::time::{SystemTime, UNIX_EPOCH};

use quanta::{Clock, Instant};

#[derive(Clone, Debug)]
pub struct StoreClock {
    clock: Clock,
    epoch: Instant,
    /// Unix time in nanoseconds at `epoch`: what turns a deadline into the absolute
    /// expiry time a log records, which must mean the same after a restart.
    wall_start: u64,
}

impl StoreClock {
    /// A clock starting now, with the wall clock read once, here.
    pub fn new(clock: Clock) -> Self {
        Self::starting_at(clock, SystemTime::now())
    }

    /// A clock whose start is `wall` on the wall clock (tests pretend a restart
    /// happened later by passing a later `wall`).
    pub fn starting_at(clock: Clock, wall: SystemTime) -> Self {
        let epoch = clock.now();
        let since_unix = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let wall_start = u64::try_from(since_unix.as_nanos()).unwrap_or(u64::MAX);
        Self {
            clock,
            epoch,
            wall_start,
        }
    }

    /// The Unix time (ns) of store time `at`.
    pub fn to_wall(&self, at: u64) -> u64 {
        self.wall_start.saturating_add(at)
    }

    /// The store time of Unix time `wall` (ns), or `None` if it is before the
    /// store started.
    pub fn from_wall(&self, wall: u64) -> Option<u64> {
        wall.checked_sub(self.wall_start)
    }

    /// Nanoseconds since the store started.
    pub fn now(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }
}
