//! `tessera cluster`: the master's snapshot as text for people, or as one
//! JSON object for scripts. `tessera top` draws the same figures live.

use serde::Serialize;
use tessera_proto::{ClusterInfo, WorkerInfo};

/// Rates over the snapshot's throughput window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub images_per_s: f64,
    pub mb_per_s: f64,
    pub window_s: f64,
}

pub fn rates(info: &ClusterInfo) -> Rates {
    let t = &info.throughput;
    let secs = (t.window_ms as f64 / 1000.0).max(1e-3);
    Rates {
        images_per_s: t.images as f64 / secs,
        mb_per_s: t.bytes as f64 / 1e6 / secs,
        window_s: secs,
    }
}

/// `1h 2m`, `3m 4s`, `5.6 s`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{:.1} s", ms as f64 / 1000.0),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// A worker's heartbeat age for people.
pub fn heartbeat(w: &WorkerInfo) -> String {
    match w.heartbeat_age_ms {
        Some(ms) => format!("{} ago", duration(ms)),
        None => "none yet".into(),
    }
}

/// The worker table's header and rows.
pub fn worker_rows(info: &ClusterInfo) -> Vec<Vec<String>> {
    let header = [
        "WORKER",
        "ADDRESS",
        "THREADS",
        "RUNNING",
        "PREFETCHED",
        "DONE",
        "FAILED",
        "HEARTBEAT",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    rows.extend(info.workers.iter().map(|w| {
        let tags: Vec<&str> = [(w.synthetic, "synthetic"), (w.draining, "draining")]
            .into_iter()
            .filter_map(|(on, tag)| on.then_some(tag))
            .collect();
        let name = if tags.is_empty() {
            w.name.clone()
        } else {
            format!("{} ({})", w.name, tags.join(", "))
        };
        vec![
            name,
            w.addr.clone(),
            w.threads.to_string(),
            w.running.to_string(),
            w.prefetched.to_string(),
            w.done.to_string(),
            w.failed.to_string(),
            heartbeat(w),
        ]
    }));
    rows
}

/// The header lines: master, tasks, throughput.
pub fn summary_lines(info: &ClusterInfo, addr: &str) -> Vec<String> {
    let t = &info.tasks;
    let r = rates(info);
    vec![
        format!(
            "master      {} at {addr}, up {}",
            info.master_id,
            duration(info.uptime_ms)
        ),
        format!(
            "tasks       {} done, {} failed, {} cancelled, {} running, {} queued (queue depth {})",
            t.done, t.failed, t.cancelled, t.running, t.queued, t.queued
        ),
        format!(
            "throughput  {:.1} images/s, {:.1} MB/s over the last {:.0} s",
            r.images_per_s, r.mb_per_s, r.window_s
        ),
        format!("workers     {}", info.workers_total),
    ]
}

/// The whole text of `tessera cluster`.
pub fn render(info: &ClusterInfo, addr: &str) -> String {
    let mut text = summary_lines(info, addr).join("\n");
    text.push_str("\n\n");
    if info.workers.is_empty() {
        text.push_str("no workers connected; start one with `tessera-node worker`\n");
    } else {
        text.push_str(&crate::table::render(&worker_rows(info)));
        let hidden =
            info.workers_total as usize - info.workers.len().min(info.workers_total as usize);
        if hidden > 0 {
            text.push_str(&format!("… and {hidden} more workers\n"));
        }
    }
    text
}

/// `tessera cluster --json`.
#[derive(Debug, Serialize)]
struct ClusterJson<'a> {
    master: MasterJson<'a>,
    tasks: &'a tessera_proto::TaskCounts,
    queue_depth: u64,
    throughput: ThroughputJson<'a>,
    workers_total: u32,
    workers: &'a [WorkerInfo],
}

#[derive(Debug, Serialize)]
struct MasterJson<'a> {
    id: &'a str,
    addr: &'a str,
    uptime_s: f64,
}

#[derive(Debug, Serialize)]
struct ThroughputJson<'a> {
    #[serde(flatten)]
    rates: Rates,
    /// Images completed in each of the last seconds, oldest first.
    per_second: &'a [u32],
}

pub fn json(info: &ClusterInfo, addr: &str) -> String {
    let v = ClusterJson {
        master: MasterJson {
            id: &info.master_id,
            addr,
            uptime_s: info.uptime_ms as f64 / 1000.0,
        },
        tasks: &info.tasks,
        queue_depth: info.tasks.queued,
        throughput: ThroughputJson {
            rates: rates(info),
            per_second: &info.throughput.per_second,
        },
        workers_total: info.workers_total,
        workers: &info.workers,
    };
    serde_json::to_string(&v).expect("plain data serializes")
}

#[cfg(test)]
mod tests {
    use tessera_proto::{TaskCounts, Throughput};

    use super::*;

    fn info() -> ClusterInfo {
        ClusterInfo {
            master_id: "master-1-ab".into(),
            uptime_ms: 125_000,
            tasks: TaskCounts {
                queued: 3,
                running: 2,
                done: 120,
                failed: 4,
                cancelled: 5,
            },
            workers: vec![WorkerInfo {
                name: "w1".into(),
                addr: "127.0.0.1:5000".into(),
                threads: 2,
                running: 2,
                prefetched: 1,
                done: 60,
                failed: 1,
                heartbeat_age_ms: Some(400),
                draining: false,
                synthetic: false,
            }],
            workers_total: 1,
            throughput: Throughput {
                window_ms: 10_000,
                images: 25,
                bytes: 5_000_000,
                per_second: vec![2, 3],
            },
        }
    }

    #[test]
    fn the_text_names_the_master_tasks_rates_and_each_worker() {
        assert_eq!(
            render(&info(), "127.0.0.1:7878"),
            "master      master-1-ab at 127.0.0.1:7878, up 2m 5s\n\
             tasks       120 done, 4 failed, 5 cancelled, 2 running, 3 queued (queue depth 3)\n\
             throughput  2.5 images/s, 0.5 MB/s over the last 10 s\n\
             workers     1\n\
             \n\
             WORKER  ADDRESS         THREADS  RUNNING  PREFETCHED  DONE  FAILED  HEARTBEAT\n\
             w1      127.0.0.1:5000  2        2        1           60    1       0.4 s ago\n"
        );
        let mut marked = info();
        marked.workers[0].synthetic = true;
        assert!(
            render(&marked, "x").contains("\nw1 (synthetic)  "),
            "{}",
            render(&marked, "x")
        );
        marked.workers[0].draining = true;
        assert!(render(&marked, "x").contains("\nw1 (synthetic, draining)  "));
        let mut empty = info();
        empty.workers.clear();
        empty.workers_total = 0;
        assert!(render(&empty, "x").contains("start one with `tessera-node worker`"));
    }

    #[test]
    fn the_json_has_rates_and_workers() {
        let v: serde_json::Value = serde_json::from_str(&json(&info(), "127.0.0.1:7878")).unwrap();
        assert_eq!(v["master"]["id"], "master-1-ab");
        assert_eq!(v["queue_depth"], 3);
        assert_eq!(v["tasks"]["done"], 120);
        assert_eq!(v["throughput"]["images_per_s"], 2.5);
        assert_eq!(v["throughput"]["per_second"][1], 3);
        assert_eq!(v["workers"][0]["name"], "w1");
        assert_eq!(v["workers"][0]["heartbeat_age_ms"], 400);
        assert_eq!(v["workers"][0]["synthetic"], false);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(400), "0.4 s");
        assert_eq!(duration(125_000), "2m 5s");
        assert_eq!(duration(7_500_000), "2h 5m");
    }
}
