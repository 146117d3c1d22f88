//! Worker membership (see `scheduler/workers.rs`): a worker's id, its
//! capped credits, draining, and losing a worker while an image ran alone.

use super::*;

#[test]
fn a_worker_id_reads_as_in_the_logs() {
    assert_eq!(WorkerId(3).to_string(), "w3");
}

#[test]
fn an_image_that_kills_its_worker_alone_fails_after_max_attempts() {
    let now = Instant::now();
    let mut s = sched();
    let t = s.submit("poison".into(), 1);
    for round in 1..=3u64 {
        let w = join(&mut s, round, 1, 1);
        let out = s.dispatch(now);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.attempt, round as u32);
        s.started(w, t, round as u32, now);
        let failed = s.worker_lost(w, "connection closed", now);
        if round < 3 {
            assert!(failed.is_empty());
            assert_eq!(s.info(t).unwrap().state, TaskState::Queued);
        } else {
            assert_eq!(failed, vec![t]);
        }
    }
    match s.info(t).unwrap().state {
        TaskState::Failed {
            kind: FailureKind::Crashes,
            reason,
        } => {
            assert!(
                reason.starts_with("failed for its content: 3 attempts ended with evidence against this image alone"),
                "{reason}"
            );
            assert!(
                reason.contains("attempt 1 on node-1: connection closed, while it was the only image running there"),
                "{reason}"
            );
            assert!(reason.contains("attempt 3 on node-3"), "{reason}");
        }
        other => panic!("expected Crashes, got {other:?}"),
    }
}

#[test]
fn a_draining_worker_gets_nothing_and_its_unstarted_tasks_go_back() {
    let now = Instant::now();
    let mut s = sched();
    let a = s.submit("a".into(), 1);
    let b = s.submit("b".into(), 1);
    let w = join(&mut s, 1, 1, 2);
    s.dispatch(now);
    s.started(w, a, 1, Instant::now());
    s.worker_draining(w);
    assert!(s.released(w, b, 1));
    assert!(!s.worker_ready(WorkerId(9), 1));
    s.worker_ready(w, 5);
    assert!(s.dispatch(now).is_empty(), "draining: nothing more");
    assert_eq!(s.info(b).unwrap().state, TaskState::Queued);
    assert_eq!(s.info(b).unwrap().attempts, 1);
    let other = join(&mut s, 2, 1, 1);
    assert_eq!(
        s.dispatch(now)[0],
        (
            other,
            Assignment {
                task: b,
                attempt: 2,
                name: "b".into(),
                input_len: 1,
                checksum: 0,
            }
        )
    );
}

#[test]
fn credits_are_capped() {
    let mut s = sched();
    join(&mut s, 1, 1, u32::MAX);
    for i in 0..20 {
        s.submit(format!("{i}"), 1);
    }
    assert_eq!(s.dispatch(Instant::now()).len(), 8);
}
