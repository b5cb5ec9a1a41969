//! Validated numbers: each type checks its range while it is parsed, so a bad value is refused
//! with the file, key, line and column it came from, and code that holds one never re-checks it.
//!
//! ```
//! use vortex::units::{Probability, Seconds};
//! assert_eq!(Seconds::new(2.5).unwrap().duration().as_millis(), 2500);
//! assert!(Seconds::new(-1.0).unwrap_err().contains("got -1"));
//! assert!(Probability::new(1.5).is_err());
//! ```
//!
//! Other crates declare their own validated numbers with [`bounded_f64!`](crate::bounded_f64) and
//! [`bounded_int!`](crate::bounded_int), so every message has the same shape.

use std::time::Duration;

/// The longest duration any config or scenario key may hold: one day. Slots last 45 s; a larger
/// value is a typo, and far below it `Duration` arithmetic can never overflow.
pub const MAX_SECONDS: f64 = 86_400.0;

/// The most retries a stage may be given: more would let one stage eat a whole slot.
pub const MAX_RETRIES: u32 = 5;

/// The most observations the adaptive predictor keeps per stage.
pub const MAX_HISTORY: u32 = 10_000;

/// Declares a validated `f64` newtype with `new`, `get`, `Serialize` and `Deserialize`.
///
/// `$ok` says which values are allowed and `$what` how to describe them in an error
/// (`expected $what, got VALUE`).
#[macro_export]
macro_rules! bounded_f64 {
    ($(#[$doc:meta])* $vis:vis $ty:ident, $ok:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
        $vis struct $ty(f64);

        impl $ty {
            /// Checks and wraps a value; the error says what is allowed and what was given.
            pub fn new(value: f64) -> Result<Self, String> {
                let ok: fn(f64) -> bool = $ok;
                if ok(value) {
                    Ok($ty(value))
                } else {
                    Err(format!("expected {}, got {}", $what, $crate::units::fmt_f64(value)))
                }
            }

            /// The plain number.
            pub fn get(self) -> f64 {
                self.0
            }
        }

        impl $crate::__serde::Serialize for $ty {
            fn serialize<S: $crate::__serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_f64(self.0)
            }
        }

        impl<'de> $crate::__serde::Deserialize<'de> for $ty {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = <f64 as $crate::__serde::Deserialize>::deserialize(d)?;
                $ty::new(value).map_err($crate::__serde::de::Error::custom)
            }
        }
    };
}

/// Declares a validated integer newtype (inclusive range) with `new`, `get`, `Serialize` and
/// `Deserialize`. Negative and oversized numbers are refused by the range, not by a type error.
#[macro_export]
macro_rules! bounded_int {
    ($(#[$doc:meta])* $vis:vis $ty:ident: $int:ty, $lo:expr, $hi:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis struct $ty($int);

        impl $ty {
            /// The smallest allowed value.
            pub const MIN: $int = $lo;
            /// The largest allowed value.
            pub const MAX: $int = $hi;

            /// Checks and wraps a value; the error says what is allowed and what was given.
            pub fn new(value: i128) -> Result<Self, String> {
                match <$int>::try_from(value) {
                    Ok(n) if ($lo..=$hi).contains(&n) => Ok($ty(n)),
                    _ => Err(format!("expected {} from {} to {}, got {}", $what, $lo, $hi, value)),
                }
            }

            /// The plain number.
            pub fn get(self) -> $int {
                self.0
            }
        }

        impl $crate::__serde::Serialize for $ty {
            fn serialize<S: $crate::__serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::__serde::Serialize::serialize(&self.0, s)
            }
        }

        impl<'de> $crate::__serde::Deserialize<'de> for $ty {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = <i128 as $crate::__serde::Deserialize>::deserialize(d)?;
                $ty::new(value).map_err($crate::__serde::de::Error::custom)
            }
        }
    };
}

bounded_f64!(
    /// A duration in seconds: positive, finite, at most [`MAX_SECONDS`].
    pub Seconds,
    |v| v > 0.0 && v <= MAX_SECONDS,
    format!("a number of seconds above 0 and at most {MAX_SECONDS}")
);

bounded_f64!(
    /// A duration in seconds that may be zero (a safety margin): finite, at most [`MAX_SECONDS`].
    pub SecondsOrZero,
    |v| (0.0..=MAX_SECONDS).contains(&v),
    format!("a number of seconds from 0 to {MAX_SECONDS}")
);

bounded_f64!(
    /// A probability in [0, 1].
    pub Probability,
    |v| (0.0..=1.0).contains(&v),
    "a probability from 0 to 1"
);

bounded_f64!(
    /// A quantile in (0, 1].
    pub Quantile,
    |v| v > 0.0 && v <= 1.0,
    "a quantile above 0 and at most 1"
);

bounded_int!(
    /// Retries of one stage after its first attempt, at most [`MAX_RETRIES`].
    pub RetryCount: u32, 0, MAX_RETRIES, "a retry count"
);

bounded_int!(
    /// How many observations the adaptive predictor keeps per stage, at most [`MAX_HISTORY`].
    pub HistoryLen: u32, 1, MAX_HISTORY, "a history length"
);

impl Seconds {
    /// The value as a duration (never overflows: the value is at most [`MAX_SECONDS`]).
    pub fn duration(self) -> Duration {
        Duration::from_secs_f64(self.0)
    }

    /// A constant known to be valid; panics at compile time otherwise.
    pub const fn of(value: f64) -> Seconds {
        assert!(value > 0.0 && value <= MAX_SECONDS, "Seconds::of out of range");
        Seconds(value)
    }
}

impl SecondsOrZero {
    /// The value as a duration.
    pub fn duration(self) -> Duration {
        Duration::from_secs_f64(self.0)
    }

    /// A constant known to be valid; panics at compile time otherwise.
    pub const fn of(value: f64) -> SecondsOrZero {
        assert!(value >= 0.0 && value <= MAX_SECONDS, "SecondsOrZero::of out of range");
        SecondsOrZero(value)
    }
}

impl Probability {
    /// Zero: never.
    pub const ZERO: Probability = Probability(0.0);
}

impl Default for Probability {
    fn default() -> Self {
        Probability::ZERO
    }
}

impl Quantile {
    /// A constant known to be valid; panics at compile time otherwise.
    pub const fn of(value: f64) -> Quantile {
        assert!(value > 0.0 && value <= 1.0, "Quantile::of out of range");
        Quantile(value)
    }
}

impl RetryCount {
    /// A constant known to be valid; panics at compile time otherwise.
    pub const fn of(value: u32) -> RetryCount {
        assert!(value <= MAX_RETRIES, "RetryCount::of out of range");
        RetryCount(value)
    }
}

impl HistoryLen {
    /// A constant known to be valid; panics at compile time otherwise.
    pub const fn of(value: u32) -> HistoryLen {
        assert!(value >= 1 && value <= MAX_HISTORY, "HistoryLen::of out of range");
        HistoryLen(value)
    }
}

/// A number as YAML writes it (`.nan`, `.inf`), so an error quotes what the user typed.
pub fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        ".nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { ".inf" } else { "-.inf" }.into()
    } else if v != 0.0 && !(1e-6..1e15).contains(&v.abs()) {
        format!("{v:e}") // 1e300, not three hundred digits
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_enforced_with_the_value_in_the_message() {
        assert!(Seconds::new(0.0).is_err());
        assert!(Seconds::new(MAX_SECONDS).is_ok());
        assert_eq!(Seconds::new(1e19).unwrap_err(), "expected a number of seconds above 0 and at most 86400, got 1e19");
        assert_eq!(
            Seconds::new(f64::NAN).unwrap_err(),
            "expected a number of seconds above 0 and at most 86400, got .nan"
        );
        assert!(SecondsOrZero::new(0.0).is_ok());
        assert!(SecondsOrZero::new(-0.5).is_err());
        assert_eq!(RetryCount::new(6).unwrap_err(), "expected a retry count from 0 to 5, got 6");
        assert_eq!(RetryCount::new(-1).unwrap_err(), "expected a retry count from 0 to 5, got -1");
        assert!(HistoryLen::new(0).is_err());
        assert!(Quantile::new(0.0).is_err() && Quantile::new(1.0).is_ok());
    }
}
