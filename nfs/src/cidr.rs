//! Client address ranges of an export: `10.0.0.0/8`, `::1/128`, or a bare address (one host).
//!
//! API: `Cidr::from_str`, `Cidr::contains(IpAddr)`. Pure values; used from any thread.
//! An IPv4-mapped IPv6 client (`::ffff:10.1.2.3`, what a dual-stack socket reports) matches the
//! IPv4 ranges, since it is the same host.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network: an address whose bits below the prefix are zero, and the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `addr` is in this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => u32::from(a) & mask_v4(self.prefix_len) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(a)) => u128::from(a) & mask_v6(self.prefix_len) == u128::from(net),
            _ => false,
        }
    }
}

fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0)
}

fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix_len)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr_text, len_text) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("'{text}' is not an address range (e.g. 10.0.0.0/8, ::1/128, 192.168.1.7)"))?;
        let bits_max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len_text {
            None => bits_max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= bits_max && !l.starts_with('+') => n,
                _ => return Err(format!("'{text}': the prefix length must be 0 to {bits_max}")),
            },
        };
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix_len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix_len))),
        };
        if network != addr {
            return Err(format!("'{text}' has host bits set; did you mean {network}/{prefix_len}?"));
        }
        Ok(Cidr { network, prefix_len })
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid")
    }

    #[test]
    fn parses_and_matches_v4() {
        let c: Cidr = "10.0.0.0/8".parse().expect("valid");
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("::1")));
        assert_eq!(c.to_string(), "10.0.0.0/8");
        let all: Cidr = "0.0.0.0/0".parse().expect("valid");
        assert!(all.contains(ip("203.0.113.9")));
        let host: Cidr = "192.168.1.7".parse().expect("valid");
        assert_eq!(host.prefix_len(), 32);
        assert!(host.contains(ip("192.168.1.7")));
        assert!(!host.contains(ip("192.168.1.8")));
    }

    #[test]
    fn parses_and_matches_v6() {
        let c: Cidr = "fd00::/8".parse().expect("valid");
        assert!(c.contains(ip("fd12:3456::1")));
        assert!(!c.contains(ip("fe80::1")));
        assert!(!c.contains(ip("10.0.0.1")));
        let lo: Cidr = "::1/128".parse().expect("valid");
        assert!(lo.contains(ip("::1")));
        let all: Cidr = "::/0".parse().expect("valid");
        assert!(all.contains(ip("2001:db8::1")));
        assert!(!all.contains(ip("127.0.0.1")));
    }

    #[test]
    fn mapped_v4_matches_v4_ranges() {
        let c: Cidr = "127.0.0.0/8".parse().expect("valid");
        assert!(c.contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn rejects_bad_ranges() {
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "host/8", "10.0.0.0/+8", "", "10.0.0.0/8/1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} parsed");
        }
        let err = "10.0.0.1/8".parse::<Cidr>().expect_err("must fail");
        assert!(err.contains("did you mean 10.0.0.0/8"), "{err}");
    }
}
