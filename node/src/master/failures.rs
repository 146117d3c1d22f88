//! Slowing down addresses whose handshakes keep failing: a failure counter
//! per address (IPv4 address, or IPv6 /64) and an exponential delay before
//! the master answers that address's next connection. A successful
//! handshake clears the address; records expire, and at most
//! `max_addresses` are kept (the stalest is forgotten first), so memory is
//! bounded whatever the number of addresses.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::Mutex,
    time::{Duration, Instant},
};

/// How failed handshakes slow an address down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureDelays {
    /// Failures an address may have before it is slowed down at all.
    pub free: u32,
    /// The first delay; it doubles with every further failure.
    pub base: Duration,
    /// The longest delay (keep it well under a peer's handshake timeout, so
    /// a good peer behind the same address still gets in). Zero turns
    /// delays off.
    pub max: Duration,
    /// An address's record is forgotten this long after its last failure.
    pub forget_after: Duration,
    /// Most addresses remembered at once.
    pub max_addresses: usize,
}

impl Default for FailureDelays {
    /// 3 free failures, then 100 ms doubling up to 2 s; forgotten after 10
    /// minutes; 4096 addresses.
    fn default() -> Self {
        FailureDelays {
            free: 3,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            forget_after: Duration::from_secs(600),
            max_addresses: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// The failure records of one master.
#[derive(Debug)]
pub struct Failures {
    config: FailureDelays,
    records: Mutex<HashMap<IpAddr, Record>>,
}

/// The address a record is kept under: IPv4 as is, IPv6 by its /64 (one
/// host usually has a whole /64), IPv4-mapped IPv6 as IPv4.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

impl Failures {
    pub fn new(config: FailureDelays) -> Self {
        Failures {
            config,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long to wait before answering a new connection from `ip`.
    pub fn delay(&self, ip: IpAddr, now: Instant) -> Duration {
        let failures = match self.lock().get(&bucket(ip)) {
            Some(r) if now.saturating_duration_since(r.last) < self.config.forget_after => {
                r.failures
            }
            _ => return Duration::ZERO,
        };
        let over = failures.saturating_sub(self.config.free);
        if over == 0 {
            return Duration::ZERO;
        }
        self.config
            .base
            .saturating_mul(1u32 << (over - 1).min(20))
            .min(self.config.max)
    }

    /// Records a failed handshake from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let key = bucket(ip);
        let mut records = self.lock();
        if !records.contains_key(&key) && records.len() >= self.config.max_addresses {
            let forget_after = self.config.forget_after;
            records.retain(|_, r| now.saturating_duration_since(r.last) < forget_after);
            if records.len() >= self.config.max_addresses
                && let Some(stalest) = records.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| *k)
            {
                records.remove(&stalest);
            }
        }
        let record = records.entry(key).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.saturating_duration_since(record.last) >= self.config.forget_after {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last = now;
    }

    /// A handshake from `ip` succeeded: it owes nothing any more.
    pub fn succeeded(&self, ip: IpAddr) {
        self.lock().remove(&bucket(ip));
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// 10.0.0.0 + i.
    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000u32 + i))
    }

    #[test]
    fn delays_start_after_the_free_failures_and_double_up_to_the_cap() {
        let f = Failures::new(FailureDelays::default());
        let now = Instant::now();
        let a = ip("192.0.2.1");
        let mut delays = Vec::new();
        for _ in 0..9 {
            f.failed(a, now);
            delays.push(f.delay(a, now).as_millis());
        }
        assert_eq!(delays, [0, 0, 0, 100, 200, 400, 800, 1600, 2000]);
        // Other addresses are not affected; success clears the address.
        assert_eq!(f.delay(ip("192.0.2.2"), now), Duration::ZERO);
        f.succeeded(a);
        assert_eq!(f.delay(a, now), Duration::ZERO);
    }

    #[test]
    fn records_expire() {
        let config = FailureDelays {
            free: 0,
            ..FailureDelays::default()
        };
        let f = Failures::new(config);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        f.failed(a, now);
        assert_eq!(f.delay(a, now), config.base);
        let later = now + config.forget_after;
        assert_eq!(f.delay(a, later), Duration::ZERO);
        f.failed(a, later);
        assert_eq!(f.delay(a, later), config.base, "the count started over");
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let f = Failures::new(FailureDelays {
            free: 0,
            ..FailureDelays::default()
        });
        let now = Instant::now();
        f.failed(ip("2001:db8:1:2::1"), now);
        assert!(!f.delay(ip("2001:db8:1:2::ffff"), now).is_zero());
        assert!(f.delay(ip("2001:db8:1:3::1"), now).is_zero());
        f.failed(ip("::ffff:192.0.2.7"), now);
        assert!(!f.delay(ip("192.0.2.7"), now).is_zero());
    }

    #[test]
    fn memory_is_bounded_and_the_stalest_address_goes_first() {
        let f = Failures::new(FailureDelays {
            free: 0,
            max_addresses: 100,
            ..FailureDelays::default()
        });
        let start = Instant::now();
        for i in 0..1000u32 {
            let a = v4(i);
            f.failed(a, start + Duration::from_millis(u64::from(i)));
            assert!(f.len() <= 100);
        }
        let now = start + Duration::from_secs(1);
        assert!(f.delay(v4(999), now) > Duration::ZERO);
        assert!(f.delay(v4(0), now).is_zero());
    }
}
