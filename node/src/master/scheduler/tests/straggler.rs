//! Backup attempts for stragglers (see `scheduler/straggler.rs`).

use super::*;

/// Five tasks of the same size that took 100 ms each, on `w`.
pub(super) fn history(s: &mut Scheduler, w: WorkerId, now: Instant) {
    for i in 0..5 {
        let t = s.submit(format!("h{i}"), 1000);
        let out = s.dispatch(now);
        assert_eq!(out.len(), 1);
        s.started(w, t, 1, now);
        s.complete(w, t, 1, 1, 0, now + Duration::from_millis(100));
        s.worker_ready(w, 1);
    }
}

/// A one-thread worker with [`history`], running a task of the same size
/// (attempt 1) since `t0`: the worker and the task.
fn straggling(s: &mut Scheduler, t0: Instant) -> (WorkerId, TaskId) {
    let slow = join(s, 1, 1, 1);
    history(s, slow, t0);
    let t = s.submit("big".into(), 1000);
    s.dispatch(t0);
    s.started(slow, t, 1, t0);
    (slow, t)
}

#[test]
fn a_straggler_runs_factor_times_the_p90_of_its_size_once_that_is_over_the_floor() {
    let t0 = Instant::now();
    let mut s = sched();
    let w = join(&mut s, 1, 1, 1);
    for i in 0..5 {
        let t = s.submit(format!("h{i}"), 1000);
        assert_eq!(s.dispatch(t0).len(), 1);
        s.started(w, t, 1, t0);
        s.complete(w, t, 1, 1, 0, t0 + Duration::from_millis(500));
        s.worker_ready(w, 1);
    }
    assert_eq!(
        s.straggler_after(1000),
        Some(Duration::from_secs(2)),
        "4 times the p90 of 500 ms, above the 1 s floor"
    );
    assert_eq!(
        s.straggler_after(100_000),
        None,
        "a size class with no history has no straggler bound"
    );
}

#[test]
fn a_task_gets_one_backup_however_long_its_backup_runs() {
    let t0 = Instant::now();
    let mut s = sched();
    let (_, t) = straggling(&mut s, t0);
    let fast = join(&mut s, 2, 1, 1);
    let at = t0 + Duration::from_secs(1);
    assert_eq!(s.backups(at).len(), 1);
    s.started(fast, t, 2, at);
    // The backup straggles too, and a third worker is idle: no third attempt.
    join(&mut s, 3, 1, 1);
    assert!(
        s.backups(at + Duration::from_secs(5)).is_empty(),
        "a task with a backup gets no other"
    );
    assert_eq!(s.lease_of(t).unwrap().worker, fast);
}

#[test]
fn a_suspect_gets_no_backup() {
    let t0 = Instant::now();
    let mut s = sched();
    let slow = join(&mut s, 1, 1, 1);
    history(&mut s, slow, t0);
    // A worker dies running `a` alone, with `c` prefetched: `a` is now a
    // suspect (evidence against it), `c` is not.
    let a = s.submit("a".into(), 1000);
    let c = s.submit("c".into(), 1000);
    let dying = join(&mut s, 2, 1, 2);
    assert_eq!(s.dispatch(t0).len(), 2);
    s.started(dying, a, 1, t0);
    s.worker_lost(dying, "connection closed", t0);
    assert_eq!(s.row(a).unwrap().strikes, 1);
    // It runs again, isolated, and runs long; an idle worker is there.
    let w = join(&mut s, 3, 1, 2);
    s.dispatch(t0);
    assert!(s.lease_of(a).unwrap().isolated);
    assert_eq!(s.lease_of(a).unwrap().worker, w);
    s.started(w, a, 2, t0);
    assert!(!s.lease_of(c).unwrap().started);
    join(&mut s, 4, 1, 1);
    let backups = s.backups(t0 + Duration::from_secs(5));
    assert!(
        backups.iter().all(|b| b.assignment.task != a),
        "a suspect must not run twice at once: {backups:?}"
    );
}

#[test]
fn a_straggler_gets_a_backup_on_an_idle_worker_and_the_first_result_wins() {
    let t0 = Instant::now();
    let mut s = sched();
    let slow = join(&mut s, 1, 1, 1);
    history(&mut s, slow, t0);
    assert_eq!(
        s.straggler_after(1000),
        Some(Duration::from_secs(1)),
        "the floor"
    );
    let t = s.submit("big".into(), 1000);
    s.dispatch(t0);
    s.started(slow, t, 1, t0);
    let fast = join(&mut s, 2, 1, 1);
    assert!(
        s.backups(t0 + Duration::from_millis(900)).is_empty(),
        "not yet"
    );
    let at = t0 + Duration::from_secs(1);
    let b = s.backups(at);
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].straggler, b[0].straggling_attempt, b[0].worker),
        (slow, 1, fast)
    );
    assert_eq!(b[0].assignment.attempt, 2);
    assert!(s.backups(at).is_empty(), "one backup per task");
    // One live lease, the backup's; the straggler's heartbeats are not dropped.
    assert_eq!(s.lease_of(t).unwrap().worker, fast);
    assert!(s.heartbeat(slow, &[lr(t, 1)], at).is_empty());
    assert_eq!(s.info(t).unwrap().state, TaskState::Running);
    // The backup wins; the straggler is told to drop it.
    s.started(fast, t, 2, at);
    assert_eq!(
        s.complete(fast, t, 2, 1, 0, at),
        (Outcome::Accepted, vec![(slow, 1)])
    );
    assert_eq!(s.complete(slow, t, 1, 1, 0, at).0, Outcome::Stale);
    assert_eq!(s.heartbeat(slow, &[lr(t, 1)], at), vec![lr(t, 1)]);
}

#[test]
fn the_straggler_may_still_win_and_its_death_costs_nothing() {
    let t0 = Instant::now();
    let mut s = sched();
    let slow = join(&mut s, 1, 2, 1);
    history(&mut s, slow, t0);
    let t = s.submit("big".into(), 1000);
    let u = s.submit("big2".into(), 1000);
    s.worker_ready(slow, 1);
    s.dispatch(t0);
    s.started(slow, t, 1, t0);
    s.started(slow, u, 1, t0);
    let fast = join(&mut s, 2, 2, 2);
    let at = t0 + Duration::from_secs(2);
    assert_eq!(s.backups(at).len(), 1, "fast has a task waiting now");
    s.started(fast, t, 2, at);
    assert_eq!(s.backups(at).len(), 1, "and a thread free for the other");
    // The straggler's result comes first: the backup is dropped.
    assert_eq!(
        s.complete(slow, t, 1, 1, 0, at),
        (Outcome::Accepted, vec![(fast, 2)])
    );
    // The straggler of u dies: u's backup runs on, nothing counted.
    s.worker_lost(slow, "killed", at);
    let r = s.row(u).unwrap();
    assert_eq!((r.lost, r.strikes), (0, 0));
    assert_eq!(s.lease_of(u).unwrap().worker, fast);
}

#[test]
fn no_backup_while_work_is_queued_or_when_disabled() {
    let t0 = Instant::now();
    let mut s = sched();
    straggling(&mut s, t0);
    s.submit("queued".into(), 1000);
    let at = t0 + Duration::from_secs(5);
    assert!(s.backups(at).is_empty(), "the queue comes first");
    let mut off = Scheduler::new(SchedulerConfig {
        backup: crate::master::scheduler::straggler::BackupConfig {
            enabled: false,
            ..Default::default()
        },
        ..SchedulerConfig::default()
    });
    let w = join(&mut off, 1, 1, 1);
    history(&mut off, w, t0);
    let t = off.submit("big".into(), 1000);
    off.dispatch(t0);
    off.started(w, t, 1, t0);
    join(&mut off, 2, 1, 1);
    assert!(off.backups(at).is_empty());
}

#[test]
fn the_percentile_needs_samples_of_the_same_size_class() {
    let mut d = crate::master::scheduler::straggler::Durations::default();
    for ms in [10, 20, 30, 40] {
        d.record(1000, Duration::from_millis(ms));
    }
    assert_eq!(d.p90(1000), None, "four samples are not enough");
    d.record(1000, Duration::from_millis(500));
    assert_eq!(d.p90(1000), Some(Duration::from_millis(500)));
    assert_eq!(d.p90(600), Some(Duration::from_millis(500)), "same class");
    assert_eq!(d.p90(4096), None, "another class");
    for _ in 0..crate::master::scheduler::straggler::SAMPLES {
        d.record(1000, Duration::from_millis(7));
    }
    assert_eq!(
        d.p90(1000),
        Some(Duration::from_millis(7)),
        "old samples age out"
    );
}

#[test]
fn the_straggler_runs_on_when_its_backup_is_lost_and_stops_when_cancelled() {
    let t0 = Instant::now();
    let mut s = sched();
    let (slow, t) = straggling(&mut s, t0);
    let fast = join(&mut s, 2, 1, 1);
    let at = t0 + Duration::from_secs(2);
    assert_eq!(s.backups(at).len(), 1);
    s.worker_lost(fast, "connection closed", at);
    assert_eq!(s.info(t).unwrap().state, TaskState::Queued);
    assert!(
        s.heartbeat(slow, &[lr(t, 1)], at).is_empty(),
        "the straggling attempt may still win: not dropped"
    );
    assert_eq!(s.complete(slow, t, 1, 1, 0, at).0, Outcome::Accepted);

    let u = s.submit("big2".into(), 1000);
    s.worker_ready(slow, 1);
    s.dispatch(at);
    s.started(slow, u, 1, at);
    let fast = join(&mut s, 3, 1, 1);
    let later = at + Duration::from_secs(2);
    assert_eq!(s.backups(later).len(), 1);
    assert_eq!(s.lease_of(u).unwrap().worker, fast);
    s.cancel(u);
    assert_eq!(
        s.heartbeat(slow, &[lr(u, 1)], later),
        vec![lr(u, 1)],
        "cancelled: the straggling attempt is dropped too"
    );
}

#[test]
fn once_the_stragglers_worker_dies_its_backup_may_get_a_backup_of_its_own() {
    let t0 = Instant::now();
    let mut s = sched();
    let (slow, t) = straggling(&mut s, t0);
    let backup = join(&mut s, 2, 1, 1);
    let at = t0 + Duration::from_secs(1);
    assert_eq!(s.backups(at).len(), 1);
    s.started(backup, t, 2, at);
    // The straggling attempt's worker dies: the backup is the task's one
    // attempt now, and it straggles in turn.
    s.worker_lost(slow, "connection closed", at);
    let third = join(&mut s, 3, 1, 1);
    let b = s.backups(at + Duration::from_secs(2));
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(
        (b[0].straggler, b[0].straggling_attempt, b[0].worker),
        (backup, 2, third)
    );
}

#[test]
fn an_older_result_from_the_stragglers_worker_stops_both_newer_attempts() {
    let t0 = Instant::now();
    let mut s = sched();
    let slow = join(&mut s, 1, 1, 1);
    history(&mut s, slow, t0);
    let t = s.submit("big".into(), 1000);
    assert_eq!(s.dispatch(t0).len(), 1);
    // Attempt 1's lease expires; the worker shows life and gets the task
    // back as attempt 2, which straggles: attempt 3 is its backup.
    let t1 = t0 + TIMEOUT + Duration::from_secs(1);
    s.expire(t1);
    s.worker_seen(slow);
    s.worker_ready(slow, 1);
    let again = s.dispatch(t1);
    assert_eq!((again[0].0, again[0].1.attempt), (slow, 2));
    s.started(slow, t, 2, t1);
    let fast = join(&mut s, 2, 1, 1);
    let at = t1 + Duration::from_secs(1);
    let b = s.backups(at);
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].worker, b[0].assignment.attempt), (fast, 3));
    // Attempt 1's result arrives first and wins: the backup and the
    // straggling attempt, on the reporter's own worker, both stop.
    let (outcome, mut drops) = s.complete(slow, t, 1, 1, 0, at);
    assert_eq!(outcome, Outcome::Accepted);
    drops.sort();
    assert_eq!(drops, vec![(slow, 2), (fast, 3)]);
}
