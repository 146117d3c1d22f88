//! The oracle: what each client must have seen, and what the master's
//! record must say, when a run ends.

use std::{collections::BTreeMap, path::Path, sync::atomic::Ordering};

use tessera_node::master::record::MemStore;
use tessera_proto::{TaskEvent, TaskId};
use tessera_tests::check_swapped;

use crate::{
    corpus::POISON,
    faults::{CALM, FAULTS_UNTIL},
    harness::SimClient,
};

/// What one client must have seen: every image it sent answered once; the
/// innocent ones done, pixel-exact, each under a task of its own; the
/// poison failed for its content; no reply it did not ask for.
pub(crate) fn check_client(client: &SimClient, in_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let strays = client.strays.load(Ordering::SeqCst);
    if strays > 0 {
        problems.push(format!("{strays} replies answered no waiting request"));
    }
    let Some(report) = client.report.lock().unwrap().take() else {
        return vec![format!(
            "the batch never finished (faults end at {}s; {}s of calm after them)",
            FAULTS_UNTIL.as_secs(),
            CALM.as_secs()
        )];
    };
    let mut answered: Vec<&Path> = report
        .outcomes
        .iter()
        .map(|o| o.input.name.as_path())
        .collect();
    answered.sort();
    let mut sent: Vec<&Path> = client.inputs.iter().map(|i| i.name.as_path()).collect();
    sent.sort();
    if answered != sent {
        problems.push(format!(
            "{} answers for {} images: not each answered exactly once",
            answered.len(),
            sent.len()
        ));
    }
    let sent_poison = sent.iter().any(|n| n.to_string_lossy().contains(POISON));
    let mut poison_failed = false;
    for (input, failure) in report.failed() {
        if input.name.to_string_lossy().contains(POISON)
            && failure.reason.starts_with("failed for its content")
        {
            poison_failed = true;
            continue;
        }
        problems.push(format!(
            "{} failed: {}",
            input.name.display(),
            failure.reason
        ));
    }
    if sent_poison && !poison_failed {
        problems.push("the poison image did not fail for its content".into());
    }
    let mut tasks: Vec<_> = report.done().map(|d| d.task).collect();
    tasks.sort();
    tasks.dedup();
    if tasks.len() != report.done().count() {
        problems.push("two images were answered with one task".into());
    }
    for done in report.done() {
        let name = done.output.file_name().unwrap();
        let input = std::fs::read(in_dir.join(name)).unwrap();
        let output = std::fs::read(&done.output).unwrap();
        if let Err(e) = check_swapped(&input, &output) {
            problems.push(format!("{}: {e}", name.to_string_lossy()));
        }
    }
    problems
}

/// What the master's record must say at the end (what survived every
/// crash): every task ended, and decided once; nothing leased after its
/// decision (the first result won, whatever came later).
pub(crate) fn check_record(record: &MemStore) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_task: BTreeMap<TaskId, Vec<TaskEvent>> = BTreeMap::new();
    for (task, e) in record.all_events() {
        by_task.entry(task).or_default().push(e.event);
    }
    for (task, events) in &by_task {
        let decisions: Vec<&TaskEvent> = events
            .iter()
            .filter(|e| matches!(e, TaskEvent::Completed { .. } | TaskEvent::Failed { .. }))
            .collect();
        match decisions.len() {
            0 => problems.push(format!("task {task} never ended: {events:?}")),
            1 => {}
            _ => problems.push(format!("task {task} decided twice: {decisions:?}")),
        }
        let decided_at = events
            .iter()
            .position(|e| matches!(e, TaskEvent::Completed { .. } | TaskEvent::Failed { .. }));
        if let Some(at) = decided_at
            && let Some(late) = events[at..]
                .iter()
                .find(|e| matches!(e, TaskEvent::Leased { .. }))
        {
            problems.push(format!("task {task} leased after its decision: {late:?}"));
        }
    }
    problems
}
