//! The store's notion of time: nanoseconds since the store started, from quanta.
//!
//! quanta reads the TSC, which is cheap enough for every GET. It can disagree by a
//! little between cores (quanta #111), so differences saturate at zero instead of
//! wrapping; a deadline seen a few nanoseconds early or late is harmless. Tests build
//! the store on `quanta::Clock::mock()` and move time by hand.

use quanta::{Clock, Instant};

#[derive(Clone, Debug)]
pub struct StoreClock {
    clock: Clock,
    epoch: Instant,
}

impl StoreClock {
    pub fn new(clock: Clock) -> Self {
        let epoch = clock.now();
        Self { clock, epoch }
    }

    /// Nanoseconds since the store started.
    pub fn now(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }
}
