//! Blame, isolation, silence and the bounds (see `scheduler/blame.rs`).

use super::*;

/// A scheduler whose started attempts time out after `task_timeout`.
fn with_task_timeout(task_timeout: Duration) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        task_timeout,
        lease_timeout: TIMEOUT,
        ..SchedulerConfig::default()
    })
}

fn failed_kind(s: &Scheduler, t: TaskId) -> Option<FailureKind> {
    match s.info(t).unwrap().state {
        TaskState::Failed { kind, .. } => Some(kind),
        _ => None,
    }
}

/// Issue 13, scenario 2 in the scheduler: one worker of one thread with
/// prefetch, a poison image first in line that kills it whenever it runs.
/// Only the poison fails; the images prefetched beside it never do.
#[test]
fn a_poison_image_takes_none_of_its_prefetched_neighbours_with_it() {
    let now = Instant::now();
    let mut s = sched();
    let poison = s.submit("a0-poison".into(), 1);
    let innocent: Vec<TaskId> = (0..5).map(|i| s.submit(format!("p{i}"), 1)).collect();
    let mut deaths = 0;
    for round in 0..20u64 {
        // The supervisor restarts the worker: 1 thread + 3 prefetch.
        let w = join(&mut s, round, 1, 4);
        let out = s.dispatch(now);
        let Some((_, first)) = out.first().cloned() else {
            break;
        };
        // It runs the first task it got; the rest wait prefetched.
        s.started(w, first.task, first.attempt, now);
        if first.task == poison {
            deaths += 1;
            s.worker_lost(w, "connection closed", now);
            continue;
        }
        s.complete(w, first.task, first.attempt, 1, 0, now);
        // The worker finishes everything it holds that is not the poison.
        for (_, a) in out.into_iter().skip(1) {
            if a.task == poison {
                s.started(w, a.task, a.attempt, now);
                deaths += 1;
                s.worker_lost(w, "connection closed", now);
                break;
            }
            s.started(w, a.task, a.attempt, now);
            s.complete(w, a.task, a.attempt, 1, 0, now);
        }
    }
    for t in &innocent {
        assert_eq!(s.info(*t).unwrap().state, TaskState::Done, "task {t}");
    }
    assert_eq!(failed_kind(&s, poison), Some(FailureKind::Crashes));
    assert_eq!(deaths, 3, "found after exactly --max-attempts deaths");
}

#[test]
fn prefetched_tasks_of_a_dead_worker_go_back_to_the_front_with_no_strike() {
    let now = Instant::now();
    let mut s = sched();
    let a = s.submit("a".into(), 1);
    let b = s.submit("b".into(), 1);
    let c = s.submit("c".into(), 1);
    let w = join(&mut s, 1, 1, 2);
    s.dispatch(now);
    s.started(w, a, 1, now);
    s.worker_lost(w, "connection reset", now);
    let rows = (s.row(a).unwrap(), s.row(b).unwrap());
    assert_eq!((rows.0.strikes, rows.0.evidence), (1, 1), "a ran alone");
    assert_eq!((rows.1.strikes, rows.1.evidence), (0, 0), "b only waited");
    assert!(
        rows.1.history[0].contains("before it started"),
        "{:?}",
        rows.1.history
    );
    // Both back at the front, in order, before c which was never handed out.
    assert_eq!(s.queue.iter().copied().collect::<Vec<_>>(), vec![a, b, c]);
}

#[test]
fn a_death_beside_other_images_suspects_them_and_each_then_runs_alone() {
    let now = Instant::now();
    let mut s = sched();
    let a = s.submit("a".into(), 1);
    let b = s.submit("b".into(), 1);
    let wide = join(&mut s, 1, 2, 2);
    s.dispatch(now);
    s.started(wide, a, 1, now);
    s.started(wide, b, 1, now);
    s.worker_lost(wide, "connection closed", now);
    for t in [a, b] {
        let r = s.row(t).unwrap();
        assert_eq!((r.strikes, r.evidence), (1, 0), "suspected, not blamed");
        assert!(
            r.history[0].contains("beside other images"),
            "{:?}",
            r.history
        );
    }
    // A new worker of two threads gets one suspect only, isolated, and
    // nothing else while it runs.
    let ordinary = s.submit("c".into(), 1);
    let w2 = join(&mut s, 2, 2, 4);
    let out = s.dispatch(now);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1.task, a);
    assert!(s.lease_of(a).unwrap().isolated);
    assert_eq!(s.info(b).unwrap().state, TaskState::Queued);
    assert_eq!(s.info(ordinary).unwrap().state, TaskState::Queued);
    // A worker of one thread takes the other suspect (it runs alone there)
    // and the ordinary task.
    let narrow = join(&mut s, 3, 1, 2);
    let out = s.dispatch(now);
    let got: Vec<(WorkerId, TaskId)> = out.iter().map(|(w, a)| (*w, a.task)).collect();
    assert_eq!(got, vec![(narrow, b), (narrow, ordinary)]);
    // Nothing is queued now, and the wide worker has a free thread and
    // credits, but it is isolating a suspect: it is not idle, so nothing of
    // the narrow worker's is stolen for it.
    s.started(w2, a, 2, now);
    assert!(s.steal().is_empty(), "an isolating worker is not idle");
    // The isolated one dies alone: now that is evidence against it.
    s.worker_lost(w2, "connection closed", now);
    let r = s.row(a).unwrap();
    assert_eq!((r.strikes, r.evidence), (2, 1));
}

#[test]
fn a_suspect_waits_for_a_reserved_worker_to_empty_when_all_are_wide() {
    let now = Instant::now();
    let mut s = sched();
    let suspect = s.submit("s".into(), 1);
    let w1 = join(&mut s, 1, 2, 1);
    s.dispatch(now);
    s.started(w1, suspect, 1, now);
    // Two wide workers, busy with ordinary work.
    for i in 0..5 {
        s.submit(format!("f{i}"), 1);
    }
    let w2 = join(&mut s, 2, 2, 2);
    let w3 = join(&mut s, 3, 2, 3);
    assert_eq!(s.dispatch(now).len(), 5);
    assert_eq!((s.leases_of(w2).len(), s.leases_of(w3).len()), (2, 3));
    s.worker_lost(w1, "killed", now);
    assert!(s.suspect(suspect));
    assert!(s.dispatch(now).is_empty(), "nobody can run it alone yet");
    assert_eq!(s.reserved, Some(w2), "the one holding the fewest leases");
    // Another worker coming and going does not undo the reservation.
    let w4 = join(&mut s, 4, 2, 0);
    s.worker_lost(w4, "killed", now);
    assert_eq!(s.reserved, Some(w2), "still reserved");
    // New ordinary work goes around the reserved worker, even with credits.
    let o = s.submit("o".into(), 1);
    s.worker_ready(w2, 1);
    s.worker_ready(w3, 1);
    let out: Vec<(WorkerId, TaskId)> = s.dispatch(now).iter().map(|(w, a)| (*w, a.task)).collect();
    assert_eq!(out, vec![(w3, o)]);
    assert!(s.steal().is_empty(), "the queue is not empty");
    // The reserved worker empties: the suspect runs there, alone.
    for t in s.leases_of(w2) {
        let at = s.lease_of(t).unwrap().attempt;
        s.started(w2, t, at, now);
        s.complete(w2, t, at, 1, 0, now);
    }
    let out: Vec<(WorkerId, TaskId)> = s.dispatch(now).iter().map(|(w, a)| (*w, a.task)).collect();
    assert_eq!(out, vec![(w2, suspect)]);
    assert!(s.lease_of(suspect).unwrap().isolated);
    assert!(s.reserved.is_none());
}

/// Where a suspect runs alone: a worker of one thread before an empty
/// worker of several (which could run others beside it).
#[test]
fn a_suspect_goes_to_a_one_thread_worker_before_an_empty_wide_one() {
    let now = Instant::now();
    let mut s = sched();
    let t = s.submit("t".into(), 1);
    let first = join(&mut s, 1, 1, 1);
    s.dispatch(now);
    s.started(first, t, 1, now);
    s.worker_lost(first, "killed", now);
    assert!(s.suspect(t));
    let _wide = join(&mut s, 2, 2, 2);
    let one = join(&mut s, 3, 1, 1);
    let out = s.dispatch(now);
    assert_eq!((out[0].0, out[0].1.task), (one, t));
}

/// Issue 13, scenario 1 in the scheduler: a hung worker with spare credits
/// is offered nothing once its lease expired; the idle worker gets the task.
#[test]
fn a_silent_worker_gets_no_new_work_until_it_shows_life() {
    let t0 = Instant::now();
    let mut s = sched();
    let t = s.submit("photo".into(), 1);
    let big = join(&mut s, 1, 8, 8);
    let out = s.dispatch(t0);
    assert_eq!(out[0].0, big);
    s.started(big, t, 1, t0);
    let small = join(&mut s, 2, 1, 1);
    // big is SIGSTOPped: no heartbeat; the lease expires.
    let later = t0 + TIMEOUT;
    let expired = s.expire(later);
    assert_eq!(expired.len(), 1);
    assert!(s.is_silent(big));
    // Started, but silence is not evidence: no strike.
    let r = s.row(t).unwrap();
    assert_eq!((r.strikes, r.evidence, r.lost), (0, 0, 1));
    assert!(
        r.history[0].contains("while it ran (not its fault: the worker went silent)"),
        "{:?}",
        r.history
    );
    let out = s.dispatch(later);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, small, "not back to the silent worker");
    // Even with more work and all its credits, big gets nothing while silent.
    let u = s.submit("u".into(), 1);
    assert!(s.dispatch(later).is_empty());
    assert!(s.steal().is_empty(), "a silent worker is not idle");
    // big resumes and heartbeats its dead lease: told to drop it, and may
    // get work again.
    assert_eq!(s.heartbeat(big, &[lr(t, 1)], later), vec![lr(t, 1)]);
    assert!(!s.is_silent(big));
    let out = s.dispatch(later);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1.task), (big, u));
    // And the task ends done by small.
    s.started(small, t, 2, later);
    assert_eq!(s.complete(small, t, 2, 1, 0, later).0, Outcome::Accepted);
}

#[test]
fn silence_never_fails_a_task_but_a_broken_cluster_is_bounded() {
    let mut now = Instant::now();
    let mut s = Scheduler::new(SchedulerConfig {
        max_lost: 7,
        lease_timeout: TIMEOUT,
        ..SchedulerConfig::default()
    });
    let t = s.submit("a".into(), 1);
    for round in 0..7u64 {
        let w = join(&mut s, round, 1, 1);
        let out = s.dispatch(now);
        assert_eq!(out.len(), 1);
        s.started(w, t, out[0].1.attempt, now);
        now += TIMEOUT;
        let e = s.expire(now);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].failed, round == 6, "round {round}");
    }
    match s.info(t).unwrap().state {
        TaskState::Failed {
            kind: FailureKind::WorkerLost,
            reason,
        } => assert!(
            reason.starts_with(
                "gave up after 7 attempts were lost to machine faults, none pointing at this image"
            ),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_attempt_past_the_task_timeout_on_a_live_worker_is_taken_back_as_evidence() {
    let t0 = Instant::now();
    let task_timeout = Duration::from_secs(60);
    let mut s = with_task_timeout(task_timeout);
    let t = s.submit("hangs".into(), 1);
    let mut now = t0;
    for round in 1..=3u32 {
        let w = join(&mut s, round.into(), 1, 1);
        let out = s.dispatch(now);
        assert_eq!(out.len(), 1);
        s.started(w, t, round, now);
        // Heartbeats keep coming; the image never finishes.
        let end = now + task_timeout;
        while now + TIMEOUT / 2 < end {
            now += TIMEOUT / 2;
            assert!(s.heartbeat(w, &[lr(t, round)], now).is_empty());
            assert!(s.expire(now).is_empty());
        }
        assert_eq!(s.next_deadline(), Some(end));
        now = end;
        let e = s.expire(now);
        assert_eq!(e.len(), 1);
        assert!(e[0].timed_out, "the holder must be told to drop it");
        assert!(!s.is_silent(w), "its worker is alive");
        assert_eq!(e[0].failed, round == 3);
    }
    assert_eq!(failed_kind(&s, t), Some(FailureKind::TimedOut));
}

#[test]
fn blame_survives_a_restart() {
    let now = Instant::now();
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(now);
    s.started(w, t, 1, now);
    s.worker_lost(w, "closed", now);
    let row = s.row(t).unwrap();
    let mut again = sched();
    again.restore(vec![(t, row)], 2);
    assert!(again.suspect(t), "still runs alone after a restart");
    assert_eq!(again.row(t).unwrap().evidence, 1);
}

/// A worker whose pool is stuck heartbeats on while nothing finishes: its
/// timeouts must not condemn the images it was given.
#[test]
fn a_worker_that_times_out_twice_is_the_suspect_and_the_task_goes_elsewhere() {
    let t0 = Instant::now();
    let task_timeout = Duration::from_secs(60);
    let mut s = with_task_timeout(task_timeout);
    let t = s.submit("photo".into(), 1);
    let stuck = join(&mut s, 1, 1, 4);
    let mut now = t0;
    for round in 1..=5u32 {
        let out = s.dispatch(now);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, stuck, "the only worker");
        s.started(stuck, t, round, now);
        now += task_timeout;
        s.heartbeat(stuck, &[lr(t, round)], now - Duration::from_secs(1));
        let e = s.expire(now);
        assert_eq!(e.len(), 1);
        assert!(!e[0].failed, "round {round}: the worker is to blame");
        s.worker_ready(stuck, 1);
    }
    let r = s.row(t).unwrap();
    assert_eq!(r.evidence, 1, "only the first timeout there counts");
    assert!(
        r.history[1].contains("again on this worker (the worker is suspect, not the image)"),
        "{:?}",
        r.history
    );
    // A healthy worker joins: the task goes there, not back to the stuck one.
    let healthy = join(&mut s, 2, 1, 1);
    let out = s.dispatch(now);
    assert_eq!((out[0].0, out[0].1.task), (healthy, t));
}

/// Only a timeout marks a worker as one the task timed out on: a worker
/// that went silent and came back is not suspect, so the task's first real
/// timeout there is evidence.
#[test]
fn a_silent_loss_is_not_a_timeout_on_that_worker() {
    let t0 = Instant::now();
    let task_timeout = Duration::from_secs(60);
    let mut s = with_task_timeout(task_timeout);
    let t = s.submit("photo".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    assert_eq!(s.dispatch(t0)[0].0, w);
    s.started(w, t, 1, t0);
    let mut now = t0 + TIMEOUT;
    assert_eq!(s.expire(now).len(), 1, "silent");
    assert_eq!(s.heartbeat(w, &[lr(t, 1)], now), vec![lr(t, 1)]);
    s.worker_ready(w, 1);
    let out = s.dispatch(now);
    assert_eq!((out[0].0, out[0].1.attempt), (w, 2));
    s.started(w, t, 2, now);
    now += task_timeout;
    s.heartbeat(w, &[lr(t, 2)], now - Duration::from_secs(1));
    let e = s.expire(now);
    assert!(e.len() == 1 && e[0].timed_out);
    let r = s.row(t).unwrap();
    assert_eq!(
        (r.lost, r.evidence),
        (2, 1),
        "the first timeout there is evidence: {:?}",
        r.history
    );
}

/// A task failed by machine faults (or cancelled) frees its idempotency key,
/// so the same image submitted again is processed; one failed for its
/// content keeps it, so a resubmission gets that failure at once.
#[test]
fn only_a_failure_for_no_fault_of_the_image_frees_its_key() {
    let now = Instant::now();
    let mut s = Scheduler::new(SchedulerConfig {
        max_lost: 1,
        lease_timeout: TIMEOUT,
        ..SchedulerConfig::default()
    });
    let lost = s.submit("lost".into(), 1);
    let poison = s.submit("poison".into(), 1);
    let cancelled = s.submit("cancelled".into(), 1);
    let key = |s: &Scheduler, t: TaskId| s.row(t).unwrap().key;
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(now);
    s.worker_lost(w, "killed", now); // `lost`, unstarted: one machine loss, the bound
    assert_eq!(failed_kind(&s, lost), Some(FailureKind::WorkerLost));
    assert_eq!(s.task_for_key(key(&s, lost)), None);
    for round in 0..3u64 {
        let w = join(&mut s, 10 + round, 1, 1);
        let out = s.dispatch(now);
        assert_eq!(out[0].1.task, poison);
        s.started(w, poison, out[0].1.attempt, now);
        s.worker_lost(w, "crashed", now);
    }
    assert_eq!(failed_kind(&s, poison), Some(FailureKind::Crashes));
    assert_eq!(s.task_for_key(key(&s, poison)), Some(poison));
    s.cancel(cancelled);
    assert_eq!(s.task_for_key(key(&s, cancelled)), None);
    // The same after a restart.
    let rows: Vec<_> = [lost, poison, cancelled]
        .iter()
        .map(|t| (*t, s.row(*t).unwrap()))
        .collect();
    let mut again = sched();
    again.restore(rows, 10);
    assert_eq!(again.task_for_key(key(&s, lost)), None);
    assert_eq!(again.task_for_key(key(&s, poison)), Some(poison));
    assert_eq!(again.task_for_key(key(&s, cancelled)), None);
}

/// Runs `t` alone on a fresh one-thread worker from `at` and has the
/// worker die `after` into the run; returns when it died.
fn dies_alone(s: &mut Scheduler, worker: u64, t: TaskId, at: Instant, after: Duration) -> Instant {
    let w = join(s, worker, 1, 1);
    let out = s.dispatch(at);
    assert_eq!(out.len(), 1, "{t} handed out");
    assert_eq!(out[0].1.task, t);
    s.started(w, t, out[0].1.attempt, at);
    s.worker_lost(w, "connection closed", at + after);
    at + after
}

/// A storm: workers die every ten seconds or so of running, whatever they
/// run. Three deaths alone at random points of long runs are what an
/// innocent image meets there, and it is not failed for them; a poison
/// that kills its worker as it starts still fails after three, storm or
/// not (`background.rs`). Seed 5591 of the simulation, in small.
#[test]
fn in_a_storm_deaths_in_long_runs_do_not_fail_an_image_but_deaths_at_once_still_do() {
    let mut s = sched();
    let mut now = Instant::now();
    let mut worker = 0;
    // Twenty innocent images, each lost once to a death alone 10 s into
    // its run, then done in 1 s: the background of deaths alone.
    for i in 0..20 {
        let t = s.submit(format!("storm{i}"), 1);
        worker += 1;
        now = dies_alone(&mut s, worker, t, now, Duration::from_secs(10));
        worker += 1;
        let w = join(&mut s, worker, 1, 1);
        let out = s.dispatch(now);
        s.started(w, t, out[0].1.attempt, now);
        now += Duration::from_secs(1);
        s.complete(w, t, out[0].1.attempt, 1, 0, now);
        s.worker_lost(w, "retired", now);
    }
    let innocent = s.submit("innocent".into(), 1);
    for _ in 0..MAX_ATTEMPTS {
        worker += 1;
        now = dies_alone(&mut s, worker, innocent, now, Duration::from_secs(5));
    }
    assert_eq!(s.info(innocent).unwrap().state, TaskState::Queued);
    // Its next run succeeds.
    worker += 1;
    let w = join(&mut s, worker, 1, 1);
    let out = s.dispatch(now);
    s.started(w, innocent, out[0].1.attempt, now);
    s.complete(w, innocent, out[0].1.attempt, 1, 0, now);
    s.worker_lost(w, "retired", now);
    assert_eq!(s.info(innocent).unwrap().state, TaskState::Done);
    let poison = s.submit("poison".into(), 1);
    for n in 1..=MAX_ATTEMPTS {
        assert_eq!(
            failed_kind(&s, poison),
            None,
            "failed after {} deaths",
            n - 1
        );
        worker += 1;
        now = dies_alone(&mut s, worker, poison, now, Duration::from_millis(20));
    }
    assert_eq!(failed_kind(&s, poison), Some(FailureKind::Crashes));
    // The same three long runs in a quiet cluster are evidence enough.
    let mut quiet = sched();
    let mut now = Instant::now();
    let image = quiet.submit("image".into(), 1);
    for w in 0..u64::from(MAX_ATTEMPTS) {
        now = dies_alone(&mut quiet, w, image, now, Duration::from_secs(5));
    }
    assert_eq!(failed_kind(&quiet, image), Some(FailureKind::Crashes));
}
