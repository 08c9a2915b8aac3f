//! Helpers shared by queues and streams.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Checks a name against the package's rule (`minipaas._check_name`), so that mistakes surface before a
/// round trip and every name is safe inside a quoted LISTEN channel.
pub(crate) fn check_name(kind: &'static str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if first_ok && rest_ok && name.len() <= 48 {
        Ok(())
    } else {
        Err(Error::InvalidName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// A duration in seconds, for `$n::float8 * interval '1 second'` in SQL.
pub(crate) fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// A count for SQL `integer` arguments.
pub(crate) fn sql_count(what: &str, n: usize, max: usize) -> Result<i32> {
    if n == 0 || n > max {
        return Err(Error::InvalidArgument(format!(
            "{what} must be between 1 and {max}, got {n}"
        )));
    }
    i32::try_from(n).map_err(|_| Error::InvalidArgument(format!("{what} is too large: {n}")))
}

pub(crate) fn encode<T: Serialize>(payload: &T) -> Result<serde_json::Value> {
    serde_json::to_value(payload).map_err(Error::Encode)
}

pub(crate) fn decode<T: DeserializeOwned>(
    value: serde_json::Value,
    what: impl FnOnce() -> String,
) -> Result<T> {
    serde_json::from_value(value).map_err(|source| Error::Decode {
        what: what(),
        type_name: std::any::type_name::<T>(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_package_rule() {
        for good in ["q", "my_queue", "orders.dead", "a:b-c", &"x".repeat(48)] {
            assert!(check_name("queue", good).is_ok(), "{good}");
        }
        for bad in ["", "_x", "it's", "\"q\"", "a b", &"x".repeat(49), "é"] {
            assert!(check_name("queue", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_are_bounded() {
        assert_eq!(sql_count("batch", 5, 10).ok(), Some(5));
        assert!(sql_count("batch", 0, 10).is_err());
        assert!(sql_count("batch", 11, 10).is_err());
    }
}
