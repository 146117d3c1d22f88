//! What a process holds, read from `/proc`: resident memory and open file
//! descriptors, sampled over time, and whether they stayed flat.

use std::time::Duration;

/// One reading of one process.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Since the sampling started.
    pub at: Duration,
    /// Which process: `master-0`, `w1-3`, ...
    pub name: String,
    pub pid: u32,
    /// `VmRSS`, in KiB.
    pub rss_kib: u64,
    /// Entries of `/proc/PID/fd`.
    pub fds: usize,
}

impl Sample {
    /// The JSON line printed for it.
    pub fn json(&self) -> String {
        format!(
            "{{\"bench\":\"soak\",\"case\":\"sample\",\"t_s\":{:.1},\"process\":\"{}\",\"pid\":{},\"rss_kib\":{},\"fds\":{}}}",
            self.at.as_secs_f64(),
            self.name,
            self.pid,
            self.rss_kib,
            self.fds
        )
    }
}

/// Reads `pid`'s resident memory (KiB) and open descriptors; `None` if it is gone.
pub fn read(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// A process's growth between the readings just after warm-up and the last
/// ones: `(rss ratio, fd ratio)`, comparing the mean of the first `n` and of
/// the last `n` samples taken at or after `warm_up` (`None`: too few).
pub fn growth(samples: &[&Sample], warm_up: Duration, n: usize) -> Option<(f64, f64)> {
    let after: Vec<&&Sample> = samples.iter().filter(|s| s.at >= warm_up).collect();
    if after.len() < 2 * n {
        return None;
    }
    let mean = |xs: &[&&Sample], f: fn(&Sample) -> f64| {
        xs.iter().map(|s| f(s)).sum::<f64>() / xs.len() as f64
    };
    let (first, last) = (&after[..n], &after[after.len() - n..]);
    let rss = |s: &Sample| s.rss_kib as f64;
    let fds = |s: &Sample| s.fds as f64;
    Some((
        mean(last, rss) / mean(first, rss),
        mean(last, fds) / mean(first, fds),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_descriptors() {
        let (rss, fds) = read(std::process::id()).unwrap();
        assert!(rss > 100, "{rss} KiB");
        assert!(fds >= 3, "{fds} fds");
    }

    #[test]
    fn growth_compares_the_ends_after_warm_up() {
        let s = |t: u64, rss: u64, fds: usize| Sample {
            at: Duration::from_secs(t),
            name: "m".into(),
            pid: 1,
            rss_kib: rss,
            fds,
        };
        let samples = [s(0, 10, 1), s(10, 100, 10), s(20, 100, 10), s(30, 150, 20)];
        let refs: Vec<&Sample> = samples.iter().collect();
        let (rss, fds) = growth(&refs, Duration::from_secs(5), 1).unwrap();
        assert_eq!((rss, fds), (1.5, 2.0));
        assert!(growth(&refs, Duration::from_secs(25), 1).is_none());
    }
}
