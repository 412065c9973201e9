//! Planned faults (a failed invocation, a hook before one) and invocation counts,
//! for tests of retries and failure paths.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

pub(crate) type Hook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Planned faults, for tests of retries and failure paths.
pub(crate) enum Fault {
    /// The next invocation fails with this error name, as a throttled handler would.
    Error { error_type: String, message: String },
    /// Run this before the next invocation (e.g. put a policy back behind Lapse's back).
    Before(Hook),
}

/// Faults and invocation counts per function.
#[derive(Default)]
pub struct Faults {
    pub(crate) planned: Mutex<HashMap<String, VecDeque<Fault>>>,
    pub(crate) invocations: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Faults {
    /// Fails the next invocation of `function` with `error_type`.
    pub fn fail_next(&self, function: &str, error_type: &str, message: &str) {
        lock(&self.planned)
            .entry(function.to_owned())
            .or_default()
            .push_back(Fault::Error {
                error_type: error_type.to_owned(),
                message: message.to_owned(),
            });
    }

    /// Runs `hook` before the next invocation of `function`.
    pub fn before_next<F, Fut>(&self, function: &str, hook: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Arc::new(move || Box::pin(hook()));
        lock(&self.planned)
            .entry(function.to_owned())
            .or_default()
            .push_back(Fault::Before(hook));
    }

    /// How many times `function` was invoked.
    pub fn invocations(&self, function: &str) -> usize {
        lock(&self.invocations).get(function).copied().unwrap_or(0)
    }

    pub(crate) fn take(&self, function: &str) -> Option<Fault> {
        *lock(&self.invocations)
            .entry(function.to_owned())
            .or_default() += 1;
        lock(&self.planned)
            .get_mut(function)
            .and_then(VecDeque::pop_front)
    }
}
