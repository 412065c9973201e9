//! The local stack's clock: real time plus an offset the demo and tests move
//! forward, so a grant of hours ends in a moment.

use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use lapse_core::ports::Clock;

#[derive(Debug, Default)]
pub struct LocalClock {
    offset: Mutex<TimeDelta>,
}

impl LocalClock {
    /// Moves time forward (never back).
    pub fn advance(&self, by: TimeDelta) {
        let mut offset = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        if by > TimeDelta::zero() {
            *offset += by;
        }
    }

    /// Moves time forward to at least `at`.
    pub fn advance_to(&self, at: DateTime<Utc>) {
        let now = self.now();
        if at > now {
            self.advance(at - now);
        }
    }
}

impl Clock for LocalClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }
}
