//! What lets a seed fix a whole run in a process shared with other runs:
//! one simulation at a time, tokio's task ids started at one remainder.

/// The simulations of this binary run one at a time (see [`align_task_ids`]).
pub(crate) static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// When a host crashes, tokio drops its tasks shard by shard, and puts a
/// task in a shard by its id, which comes from one counter for the whole
/// process: the order its connections close in (which reset or FIN goes
/// out first, and so every later delay drawn) follows the ids. Every run
/// starts its ids at the same remainder, and no other thread makes tasks
/// while it runs, so the order is the seed's, whatever ran before.
pub(crate) fn align_task_ids() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    loop {
        let id: u64 = rt.spawn(async {}).id().to_string().parse().unwrap();
        if id % 64 == 63 {
            break;
        }
    }
}
