//! Real processes kept running the way a service manager keeps them: a master
//! that can be SIGKILLed and started again on its data directory (on the same
//! port or a new one), and workers restarted whenever they die, each
//! incarnation under a name of its own so a task's history says which one
//! held it.

use std::{
    path::{Path, PathBuf},
    process::ExitStatus,
    time::Duration,
};

use crate::Proc;

/// A free TCP port on loopback (free when asked: a master started on it
/// right after gets it unless another process races for it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How workers and clients find the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locate {
    /// `--master ADDR`: a fixed address, no multicast.
    Addr(String),
    /// `--cluster NAME`: the master of that cluster, found by mDNS (on
    /// loopback the master advertises its one loopback address).
    Cluster(String),
}

impl Locate {
    /// The command-line options that say it.
    pub fn args(&self) -> Vec<String> {
        match self {
            Locate::Addr(a) => vec!["--master".into(), a.clone()],
            Locate::Cluster(c) => vec!["--cluster".into(), c.clone()],
        }
    }
}

/// A `tessera-node master` process on loopback, restartable on its data
/// directory.
#[derive(Debug)]
pub struct Master {
    pub proc: Proc,
    /// The address it listens on now.
    pub addr: String,
    node: String,
    data: PathBuf,
    extra: Vec<String>,
    /// `Some(cluster)`: advertised on mDNS under that cluster; `None`: `--no-mdns`.
    cluster: Option<String>,
    /// How many times it was started again.
    pub restarts: u32,
}

impl Master {
    /// Starts a master listening on `listen` (e.g. `127.0.0.1:0`) with its
    /// data in `data` and `extra` options, and waits until it listens.
    pub async fn start(
        node: &str,
        data: &Path,
        listen: &str,
        extra: &[&str],
        cluster: Option<&str>,
    ) -> Master {
        let (proc, addr) = spawn_master_proc(node, data, listen, extra, cluster, 0).await;
        Master {
            proc,
            addr,
            node: node.into(),
            data: data.into(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            cluster: cluster.map(String::from),
            restarts: 0,
        }
    }

    /// The cluster key the master created in its data directory.
    pub fn key_file(&self) -> PathBuf {
        self.data.join(tessera_proto::KEY_FILE_NAME)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// SIGKILLs it and waits until it is gone.
    pub async fn kill(&mut self) {
        self.proc.signal("KILL");
        let _ = self.proc.child.wait().await;
    }

    /// Starts it again on its data directory, listening on `listen`; waits
    /// until it listens.
    pub async fn restart_on(&mut self, listen: &str) {
        self.restarts += 1;
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let (proc, addr) = spawn_master_proc(
            &self.node,
            &self.data,
            listen,
            &extra,
            self.cluster.as_deref(),
            self.restarts,
        )
        .await;
        self.proc = proc;
        self.addr = addr;
    }
}

async fn spawn_master_proc(
    node: &str,
    data: &Path,
    listen: &str,
    extra: &[&str],
    cluster: Option<&str>,
    incarnation: u32,
) -> (Proc, String) {
    let data_s = data.to_str().expect("utf-8 path");
    let mut args = vec!["master", "--listen", listen, "--data-dir", data_s];
    match cluster {
        Some(c) => args.extend(["--cluster", c]),
        None => args.push("--no-mdns"),
    }
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(&format!("master-{incarnation}"), node, &args);
    let addr = proc
        .wait_for_line("listening on ", Duration::from_secs(30))
        .await;
    proc.name = format!("master-{incarnation}@{addr}");
    (proc, addr)
}

/// One worker the supervisor keeps alive: its slot name and options.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub slot: String,
    pub args: Vec<String>,
}

impl WorkerSpec {
    pub fn new(slot: &str, args: &[&str]) -> WorkerSpec {
        WorkerSpec {
            slot: slot.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// A worker slot: the process now in it and how it got there.
#[derive(Debug)]
pub struct Slot {
    pub spec: WorkerSpec,
    pub proc: Proc,
    /// 0 for the first process, then one more per restart.
    pub incarnation: u32,
    /// SIGSTOPped and not yet resumed.
    pub paused: bool,
}

impl Slot {
    /// The current process's worker name: `<slot>-<incarnation>`.
    pub fn name(&self) -> String {
        worker_name(&self.spec.slot, self.incarnation)
    }
}

fn worker_name(slot: &str, incarnation: u32) -> String {
    format!("{slot}-{incarnation}")
}

/// A worker that exited (and was started again).
#[derive(Debug)]
pub struct Death {
    pub slot: usize,
    /// The name of the process that died.
    pub name: String,
    pub status: ExitStatus,
}

/// Workers restarted whenever they die, like a service manager would.
#[derive(Debug)]
pub struct Workers {
    node: String,
    key: PathBuf,
    locate: Locate,
    pub slots: Vec<Slot>,
}

impl Workers {
    /// Starts one worker per spec.
    pub fn start(node: &str, key: &Path, locate: Locate, specs: &[WorkerSpec]) -> Workers {
        let mut w = Workers {
            node: node.into(),
            key: key.into(),
            locate,
            slots: Vec::new(),
        };
        for spec in specs {
            let proc = w.spawn(spec, 0);
            w.slots.push(Slot {
                spec: spec.clone(),
                proc,
                incarnation: 0,
                paused: false,
            });
        }
        w
    }

    fn spawn(&self, spec: &WorkerSpec, incarnation: u32) -> Proc {
        let name = worker_name(&spec.slot, incarnation);
        let mut args: Vec<String> = vec!["worker".into()];
        args.extend(self.locate.args());
        args.extend([
            "--key-file".into(),
            self.key.to_str().expect("utf-8 path").into(),
            "--name".into(),
            name.clone(),
        ]);
        args.extend(spec.args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::spawn(&name, &self.node, &args)
    }

    /// How workers started from now on find the master.
    pub fn set_locate(&mut self, locate: Locate) {
        self.locate = locate;
    }

    /// Starts a new process in every slot whose process exited; returns who died.
    pub fn reap(&mut self) -> Vec<Death> {
        let mut deaths = Vec::new();
        for i in 0..self.slots.len() {
            let Ok(Some(status)) = self.slots[i].proc.child.try_wait() else {
                continue;
            };
            let name = self.slots[i].name();
            let incarnation = self.slots[i].incarnation + 1;
            let proc = self.spawn(&self.slots[i].spec.clone(), incarnation);
            let slot = &mut self.slots[i];
            slot.proc = proc;
            slot.incarnation = incarnation;
            slot.paused = false;
            deaths.push(Death {
                slot: i,
                name,
                status,
            });
        }
        deaths
    }

    /// SIGKILLs slot `i`'s process (the next [`Workers::reap`] restarts it).
    pub fn kill(&mut self, i: usize) {
        self.slots[i].proc.signal("KILL");
    }

    /// SIGSTOPs slot `i`'s process.
    pub fn pause(&mut self, i: usize) {
        self.slots[i].proc.signal("STOP");
        self.slots[i].paused = true;
    }

    /// SIGCONTs slot `i`'s process.
    pub fn resume(&mut self, i: usize) {
        if self.slots[i].paused {
            self.slots[i].proc.signal("CONT");
            self.slots[i].paused = false;
        }
    }

    /// Resumes every paused worker.
    pub fn resume_all(&mut self) {
        for i in 0..self.slots.len() {
            self.resume(i);
        }
    }

    /// The name and pid of every worker process now running.
    pub fn pids(&mut self) -> Vec<(String, u32)> {
        self.slots
            .iter_mut()
            .filter_map(|s| match s.proc.child.try_wait() {
                Ok(None) => Some((s.name(), s.proc.pid())),
                _ => None,
            })
            .collect()
    }
}
