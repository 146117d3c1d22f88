//! Dispatch (see `scheduler/dispatch.rs`): queued tasks go to workers with
//! credits, oldest first, spread to the worker with most free credits.

use super::*;

#[test]
fn tasks_go_to_workers_with_credits_oldest_first() {
    let now = Instant::now();
    let mut s = sched();
    let a = s.submit("a".into(), 1);
    let b = s.submit("b".into(), 2);
    assert!(s.dispatch(now).is_empty(), "no worker yet");
    let w = join(&mut s, 1, 1, 1);
    let out = s.dispatch(now);
    assert_eq!(
        out,
        vec![(
            w,
            Assignment {
                task: a,
                attempt: 1,
                name: "a".into(),
                input_len: 1,
                checksum: 0,
            }
        )]
    );
    assert_eq!(s.info(a).unwrap().state, TaskState::Running);
    assert_eq!(s.info(a).unwrap().worker.as_deref(), Some("node-1"));
    assert_eq!(s.info(b).unwrap().state, TaskState::Queued);
    assert!(s.dispatch(now).is_empty(), "out of credits");
    assert_eq!(s.lease_of(a).unwrap().deadline, now + TIMEOUT);
}

#[test]
fn work_spreads_to_the_worker_with_most_free_credits() {
    let mut s = sched();
    for i in 0..4 {
        s.submit(format!("{i}"), 1);
    }
    join(&mut s, 1, 2, 2);
    join(&mut s, 2, 2, 2);
    let workers: Vec<u64> = s
        .dispatch(Instant::now())
        .into_iter()
        .map(|(w, _)| w.0)
        .collect();
    assert_eq!(workers, vec![1, 2, 1, 2]);
}
