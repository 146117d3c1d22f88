//! Lease timing (see `scheduler/lease.rs`): heartbeats and result bytes
//! extend a lease, silence expires it.

use super::*;
// `lease` below is the scheduler's module, not this one.
use crate::master::scheduler::lease;

#[test]
fn heartbeats_extend_leases_and_silence_expires_them() {
    let t0 = Instant::now();
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(t0);
    // A heartbeat at 8 s pushes the deadline to 18 s.
    assert!(
        s.heartbeat(w, &[lr(t, 1)], t0 + Duration::from_secs(8))
            .is_empty()
    );
    assert!(s.expire(t0 + Duration::from_secs(17)).is_empty());
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(18)));
    let expired = s.expire(t0 + Duration::from_secs(18));
    assert_eq!(
        expired,
        vec![lease::Expired {
            task: t,
            worker: w,
            attempt: 1,
            failed: false,
            timed_out: false,
        }]
    );
    assert_eq!(s.info(t).unwrap().state, TaskState::Queued);
    assert!(s.leases_of(w).is_empty());
    // The worker comes back and names the dead lease: it is told to drop it.
    assert_eq!(
        s.heartbeat(w, &[lr(t, 1)], t0 + Duration::from_secs(19)),
        vec![lr(t, 1)]
    );
    // The expired attempt still counts toward the limit.
    match s.info(t).unwrap().attempts {
        1 => {}
        n => panic!("attempts {n}"),
    }
}

/// Result bytes arriving extend the lease they belong to, like a heartbeat;
/// another attempt's are no sign of life for it.
#[test]
fn progress_on_a_lease_extends_it() {
    let t0 = Instant::now();
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(t0);
    s.started(w, t, 1, t0);
    s.touch(w, t, 2, t0 + TIMEOUT / 2);
    s.touch(w, t, 1, t0 + TIMEOUT / 2);
    assert!(s.expire(t0 + TIMEOUT).is_empty(), "extended");
    assert_eq!(s.expire(t0 + TIMEOUT / 2 + TIMEOUT).len(), 1, "until then");
}
