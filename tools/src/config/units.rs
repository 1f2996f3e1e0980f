//! Values with units in the configuration file: sizes (`"1GiB"`, or a plain integer of bytes),
//! durations (`"30s"`, `"500ms"`, `"2m"`, `"1h"`) and octal permission modes (`"0644"`).
//!
//! API: `ByteSize`, `parse_duration` / `duration` (for serde), `Mode`; each reads from TOML and
//! displays back in the form it is written. Pure values; used from any thread.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::size::parse_bytes;

/// A size in bytes, written `"64MiB"` or as an integer of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"64MiB\" or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_bytes(s).map(ByteSize).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n).map(ByteSize).map_err(|_| E::custom(format!("a size cannot be negative ({n})")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// Parses `"500ms"`, `"30s"`, `"2m"`, `"1h"` (a whole number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("'{text}' is not a duration (e.g. 500ms, 30s, 2m, 1h)"))?;
    let ms_per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "" => return Err(format!("'{text}': give a unit (ms, s, m or h)")),
        _ => return Err(format!("'{text}': unknown unit (use ms, s, m or h)")),
    };
    n.checked_mul(ms_per_unit).map(Duration::from_millis).ok_or_else(|| format!("'{text}' is too long"))
}

/// Formats a duration the way `parse_duration` reads it.
pub fn display_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".to_string(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1_000) => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}

/// `#[serde(deserialize_with = "units::duration")]` for a `Duration` field.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(de::Error::custom)
}

/// A permission mode, written as an octal string (`"0644"`, `"755"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode(pub u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an octal mode as a string, such as \"0644\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Mode, E> {
                parse_mode(s).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let ok = !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if ok && mode <= 0o7777 => Ok(Mode(mode)),
        _ => Err(format!("'{text}' is not an octal mode (e.g. \"0644\", at most \"7777\")")),
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["30", "s", "1.5s", "-1s", "3d", "", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for text in ["500ms", "30s", "2m", "1h", "0s", "1500ms"] {
            assert_eq!(display_duration(parse_duration(text).expect("valid")), text);
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Ok(Mode(0o644)));
        assert_eq!(parse_mode("755"), Ok(Mode(0o755)));
        assert_eq!(parse_mode("0o1777"), Ok(Mode(0o1777)));
        for bad in ["", "0899", "17777", "rwx", "-644", "+644", "07777777"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
        assert_eq!(Mode(0o644).to_string(), "0644");
    }

    #[test]
    fn sizes_display() {
        assert_eq!(ByteSize(1 << 30).to_string(), "1GiB");
        assert_eq!(ByteSize(3 << 20).to_string(), "3MiB");
        assert_eq!(ByteSize(4097).to_string(), "4097");
        assert_eq!(ByteSize(0).to_string(), "0");
    }
}
