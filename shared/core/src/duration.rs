//! Human and ISO 8601 durations: `4h`, `1h30m`, `90d`, `PT4H`, `P1DT2H`.
//!
//! Durations in requests and in the policy catalog are written by people, so the
//! parser is strict: it rejects empty input, unknown units, repeated units,
//! fractional values, and anything that does not fit in a `chrono::TimeDelta`.

use std::fmt;
use std::str::FromStr;

use chrono::TimeDelta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A positive, whole-second length of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(TimeDelta);

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason} (write it like `4h`, `1h30m`, `90d` or ISO 8601 `PT4H`)"
)]
pub struct DurationError {
    /// The text that was rejected.
    pub input: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

impl Span {
    /// The longest span Lapse accepts anywhere (ten years); guards against overflow.
    pub const LIMIT_SECONDS: i64 = 10 * 366 * 24 * 3600;

    /// A span of whole seconds; `None` when not positive or over [`Span::LIMIT_SECONDS`].
    pub fn from_seconds(seconds: i64) -> Option<Self> {
        (seconds > 0 && seconds <= Self::LIMIT_SECONDS).then(|| Self(TimeDelta::seconds(seconds)))
    }

    /// A span of whole hours.
    pub fn hours(hours: i64) -> Option<Self> {
        hours.checked_mul(3600).and_then(Self::from_seconds)
    }

    /// A span of whole minutes.
    pub fn minutes(minutes: i64) -> Option<Self> {
        minutes.checked_mul(60).and_then(Self::from_seconds)
    }

    /// A span of whole days.
    pub fn days(days: i64) -> Option<Self> {
        days.checked_mul(86_400).and_then(Self::from_seconds)
    }

    /// The span as a `TimeDelta`.
    pub fn delta(self) -> TimeDelta {
        self.0
    }

    /// The span in whole seconds.
    pub fn seconds(self) -> i64 {
        self.0.num_seconds()
    }
}

impl fmt::Display for Span {
    /// Shortest human form: `4h`, `1h30m`, `90d`, `45s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.seconds();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl FromStr for Span {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DurationError {
            input: input.to_owned(),
            reason,
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(fail("it is empty"));
        }
        if text.starts_with('-') {
            return Err(fail("it is negative; durations are lengths of time"));
        }
        let seconds = if let Some(iso) = text.strip_prefix('P') {
            parse_iso(iso).map_err(fail)?
        } else {
            parse_units(text, &[('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)]).map_err(fail)?
        };
        Span::from_seconds(seconds).ok_or_else(|| fail("it must be positive and at most ten years"))
    }
}

/// `<n><unit>` runs, units strictly in the given order, each at most once.
fn parse_units(text: &str, units: &[(char, i64)]) -> Result<i64, &'static str> {
    let mut total: i64 = 0;
    let mut next_unit = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = ch.to_ascii_lowercase();
        let Some(offset) = units[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(if units.iter().any(|(u, _)| *u == unit) {
                "units must appear once each, largest first"
            } else if ch == '.' || ch == ',' {
                "fractions are not supported"
            } else {
                "unknown unit"
            });
        };
        if digits.is_empty() {
            return Err("a unit has no number before it");
        }
        let value: i64 = digits.parse().map_err(|_| "number too large")?;
        let size = units[next_unit + offset].1;
        total = value
            .checked_mul(size)
            .and_then(|s| total.checked_add(s))
            .ok_or("number too large")?;
        next_unit += offset + 1;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err("a number has no unit after it");
    }
    Ok(total)
}

/// The part of an ISO 8601 duration after `P`: `[nW|nD][T[nH][nM][nS]]`.
fn parse_iso(text: &str) -> Result<i64, &'static str> {
    let (date, time) = match text.split_once('T') {
        Some((_, "")) => return Err("nothing after `T`"),
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    if date.is_empty() && time.is_none() {
        return Err("nothing after `P`");
    }
    if date.contains(['Y', 'y']) || (time.is_none() && date.contains(['M', 'm'])) {
        return Err("years and months have no fixed length; use days");
    }
    let days = if date.is_empty() {
        0
    } else {
        parse_units(date, &[('w', 7 * 86_400), ('d', 86_400)])?
    };
    let clock = match time {
        Some(time) => parse_units(time, &[('h', 3600), ('m', 60), ('s', 1)])?,
        None => 0,
    };
    days.checked_add(clock).ok_or("number too large")
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> i64 {
        text.parse::<Span>().unwrap().seconds()
    }

    #[test]
    fn human_forms() {
        assert_eq!(secs("4h"), 4 * 3600);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("90d"), 90 * 86_400);
        assert_eq!(secs("45s"), 45);
        assert_eq!(secs(" 2H "), 7200);
    }

    #[test]
    fn iso_forms() {
        assert_eq!(secs("PT4H"), 4 * 3600);
        assert_eq!(secs("PT30M"), 1800);
        assert_eq!(secs("P1DT2H"), 26 * 3600);
        assert_eq!(secs("P2W"), 14 * 86_400);
        assert_eq!(secs("PT1H30M15S"), 5415);
    }

    #[test]
    fn rejects_with_reasons() {
        for (input, reason) in [
            ("", "it is empty"),
            ("4", "a number has no unit after it"),
            ("h", "a unit has no number before it"),
            ("4x", "unknown unit"),
            ("-1h", "it is negative; durations are lengths of time"),
            (" -PT1H", "it is negative; durations are lengths of time"),
            ("1.5h", "fractions are not supported"),
            ("30m4h", "units must appear once each, largest first"),
            ("0h", "it must be positive and at most ten years"),
            ("P1Y", "years and months have no fixed length; use days"),
            ("P1M", "years and months have no fixed length; use days"),
            ("PT", "nothing after `T`"),
            ("P", "nothing after `P`"),
            ("99999999999999999999h", "number too large"),
            ("999999d", "it must be positive and at most ten years"),
        ] {
            let err = input.parse::<Span>().unwrap_err();
            assert_eq!(err.reason, reason, "input {input:?}");
            assert!(
                err.to_string().contains("PT4H"),
                "message explains the format"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["4h", "1h30m", "90d", "1d2h3m4s", "59s"] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.to_string(), text);
            assert_eq!(span.to_string().parse::<Span>().unwrap(), span);
        }
    }
}
