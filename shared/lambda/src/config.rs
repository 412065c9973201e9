//! Configuration from environment variables, read once in a binary's init phase.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// A missing or malformed setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A source of settings: the process environment, or a map in tests. Clones share
/// a record of the names asked for ([`Env::asked`]), so a test can tell whether a
/// function reads everything its deployment gives it.
#[derive(Debug, Clone, Default)]
pub struct Env {
    overrides: Option<HashMap<String, String>>,
    asked: Arc<Mutex<BTreeSet<&'static str>>>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            overrides: None,
            asked: Arc::default(),
        }
    }

    /// A fixed map (tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            overrides: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            asked: Arc::default(),
        }
    }

    /// Every name read so far, through this `Env` or a clone of it, present or not.
    pub fn asked(&self) -> BTreeSet<&'static str> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// A setting that may be absent. Empty counts as absent.
    pub fn optional(&self, name: &'static str) -> Option<String> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.insert(name);
        }
        let value = match &self.overrides {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// A setting that must be present.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    /// A required setting parsed into `T`.
    pub fn parsed<T>(&self, name: &'static str) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.required(name)?
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_invalid_settings_are_named() {
        let env = Env::from_pairs([("A", "x"), ("N", "12"), ("E", " ")]);
        assert_eq!(env.required("A").unwrap(), "x");
        assert_eq!(env.required("E"), Err(ConfigError::Missing("E")));
        assert_eq!(env.required("B"), Err(ConfigError::Missing("B")));
        assert_eq!(env.parsed::<u32>("N").unwrap(), 12);
        let err = env.parsed::<u32>("A").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable A is invalid")
        );
    }

    #[test]
    fn clones_share_the_names_asked() {
        let env = Env::from_pairs([("A", "x")]);
        let clone = env.clone();
        assert!(clone.optional("A").is_some());
        assert!(clone.optional("B").is_none());
        assert_eq!(env.asked().into_iter().collect::<Vec<_>>(), ["A", "B"]);
    }
}
