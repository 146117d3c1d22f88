//! Who may start a handshake: connections not yet authenticated are
//! bounded over all (`max_unauthenticated`) and per address
//! (`max_unauthenticated_per_address`), so one address trickling
//! connections cannot take every handshake slot from the others. An
//! address that owes a failure delay waits it out holding only its own
//! share, never a slot of the shared pool.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// See the module docs.
#[derive(Debug)]
pub struct Admission {
    pool: Arc<Semaphore>,
    pool_size: usize,
    share: usize,
    by_address: Arc<Mutex<BTreeMap<IpAddr, usize>>>,
}

/// A connection of `ip` counted in its address's share until dropped.
#[derive(Debug)]
pub struct Share {
    ip: IpAddr,
    by_address: Arc<Mutex<BTreeMap<IpAddr, usize>>>,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// A handshake may go ahead: its address's share and a slot of the pool.
#[derive(Debug)]
pub struct Handshaking {
    _share: Share,
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(pool_size: usize, share: usize) -> Self {
        Admission {
            pool: Arc::new(Semaphore::new(pool_size)),
            pool_size,
            share: share.clamp(1, pool_size.max(1)),
            by_address: Arc::default(),
        }
    }

    /// Counts a new connection from `ip` in its address's share; `Err` with
    /// the share when the address already has that many.
    pub fn share_of(&self, ip: IpAddr) -> Result<Share, usize> {
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= self.share {
            return Err(self.share);
        }
        *n += 1;
        Ok(Share {
            ip,
            by_address: self.by_address.clone(),
        })
    }

    /// A slot of the shared pool for a connection holding its `share`;
    /// `Err` with the pool's size when every slot is taken.
    pub fn handshake(&self, share: Share) -> Result<Handshaking, usize> {
        match self.pool.clone().try_acquire_owned() {
            Ok(slot) => Ok(Handshaking {
                _share: share,
                _slot: slot,
            }),
            Err(_) => Err(self.pool_size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_address_gets_its_share_and_the_others_still_get_in() {
        let a = Admission::new(8, 3);
        let held: Vec<Handshaking> = (0..3)
            .map(|_| a.handshake(a.share_of(ip(1)).unwrap()).unwrap())
            .collect();
        assert_eq!(a.share_of(ip(1)).unwrap_err(), 3);
        let other = a.handshake(a.share_of(ip(2)).unwrap());
        assert!(other.is_ok());
        drop(held);
        assert!(
            a.share_of(ip(1)).is_ok(),
            "a finished handshake frees its share"
        );
    }

    #[test]
    fn the_pool_bounds_all_addresses_together() {
        let a = Admission::new(2, 2);
        let _one = a.handshake(a.share_of(ip(1)).unwrap()).unwrap();
        let _two = a.handshake(a.share_of(ip(2)).unwrap()).unwrap();
        assert_eq!(a.handshake(a.share_of(ip(3)).unwrap()).unwrap_err(), 2);
        // The refused connection's share was given back with it.
        assert!(a.by_address.lock().unwrap().get(&ip(3)).is_none());
    }

    #[test]
    fn a_share_alone_takes_no_slot_of_the_pool() {
        let a = Admission::new(1, 1);
        let waiting = a.share_of(ip(1)).unwrap();
        let _in = a.handshake(a.share_of(ip(2)).unwrap()).unwrap();
        drop(waiting);
    }
}
