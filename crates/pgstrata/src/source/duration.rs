//! Durations in PostgreSQL's syntax, parsed once when a manifest or a flag is read.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration as PostgreSQL writes it (`250ms`, `5s`, `2min`, `1h`, `1d`; a bare integer is milliseconds; `0`
/// turns a timeout off). It keeps the text as written — sent to the server in `SET` statements and shown in
/// messages — and its value, so nothing parses it again.
///
/// ```
/// let d: pgstrata::PgDuration = "2min".parse()?;
/// assert_eq!(d.duration(), std::time::Duration::from_secs(120));
/// assert_eq!(d.to_string(), "2min");
/// assert!("5 parsecs".parse::<pgstrata::PgDuration>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PgDuration {
    text: String,
    value: Duration,
}

impl PgDuration {
    /// `N s`, written `Ns`.
    pub fn from_secs(secs: u64) -> PgDuration {
        PgDuration {
            text: format!("{secs}s"),
            value: Duration::from_secs(secs),
        }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value.
    pub fn duration(&self) -> Duration {
        self.value
    }

    /// True for `0`: no timeout.
    pub fn is_off(&self) -> bool {
        self.value.is_zero()
    }
}

impl FromStr for PgDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<PgDuration, String> {
        let t = s.trim();
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(digits_end);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration (examples: 500ms, 5s, 2min, 0)"))?;
        let factor: u64 = match unit.trim() {
            "" | "ms" => 1,
            "s" => 1_000,
            "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{s}` (use ms, s, min, h or d)"
                ));
            }
        };
        let ms = n
            .checked_mul(factor)
            .ok_or_else(|| format!("duration `{s}` is too large"))?;
        Ok(PgDuration {
            text: s.to_string(),
            value: Duration::from_millis(ms),
        })
    }
}

impl fmt::Display for PgDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for PgDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Result<u128, String> {
        s.parse::<PgDuration>().map(|d| d.duration().as_millis())
    }

    #[test]
    fn durations() {
        assert_eq!(ms("5s"), Ok(5000));
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("2min"), Ok(120_000));
        assert_eq!(ms("0"), Ok(0));
        assert!(ms("5 parsecs").is_err());
        assert!(ms("").is_err());
        assert!(ms("99999999999999999999d").is_err());
        assert_eq!(PgDuration::from_secs(2), "2s".parse().unwrap());
    }
}
