//! A LAN made of network namespaces, for tests of LAN behaviour (mDNS): a
//! bridge in a "switch" namespace of its own, and one namespace per host,
//! joined to the bridge by a veth pair. Nothing is added to the machine's own
//! namespace. The namespaces are deleted when the [`Lan`] is dropped, also
//! when the test fails. Needs root (`ip netns add`).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::process::Command;

use crate::Proc;

/// One host of the LAN.
#[derive(Debug, Clone)]
pub struct HostSpec {
    pub name: &'static str,
    /// An IPv4 address with its prefix (`198.18.0.1/24`), or `None` for a
    /// host with IPv6 link-local addresses only.
    pub ipv4: Option<&'static str>,
}

impl HostSpec {
    /// A host with an IPv4 address (and IPv6 link-local ones).
    pub const fn v4(name: &'static str, ipv4: &'static str) -> Self {
        HostSpec {
            name,
            ipv4: Some(ipv4),
        }
    }

    /// A host with IPv6 link-local addresses only.
    pub const fn link_local_only(name: &'static str) -> Self {
        HostSpec { name, ipv4: None }
    }
}

/// Fails the test, saying why, unless it runs as root (which building
/// namespaces needs).
pub fn require_root() {
    assert_eq!(
        euid(),
        Some(0),
        "this test builds a LAN of network namespaces (`ip netns add`) and needs root: \
         run `cargo test` as root (as .ci/run does in CI)"
    );
}

/// A running LAN; see the module documentation.
#[derive(Debug)]
pub struct Lan {
    prefix: String,
    /// Every namespace created, the switch first.
    namespaces: Vec<String>,
}

/// Prefix of every namespace these tests create; the pid follows.
const PREFIX: &str = "tslan";

/// The effective user id of this process, read from `/proc/self/status`.
pub fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Runs `ip ARGS`; `Err` with its output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Writes `value` to `/proc/sys/<key>` inside namespace `ns`.
fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), String> {
    let script = format!("echo {value} > /proc/sys/{key}");
    ip(&["netns", "exec", ns, "sh", "-c", &script])
}

impl Lan {
    /// Builds the LAN. Namespaces are named `tslan<pid>-<host>`, so parallel
    /// runs never collide; ones left by runs whose process is gone (killed
    /// before their cleanup ran) are deleted first.
    pub fn new(hosts: &[HostSpec]) -> Result<Lan, String> {
        remove_orphans();
        let prefix = format!("{PREFIX}{}", std::process::id());
        let mut lan = Lan {
            prefix,
            namespaces: Vec::new(),
        };
        let sw = lan.add_ns("sw")?;
        // The switch forwards frames only: no addresses of its own.
        sysctl(&sw, "net/ipv6/conf/all/disable_ipv6", "1")?;
        sysctl(&sw, "net/ipv6/conf/default/disable_ipv6", "1")?;
        // Without IGMP snooping the bridge floods multicast to every port.
        ip(&[
            "-n",
            &sw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (i, h) in hosts.iter().enumerate() {
            let ns = lan.add_ns(h.name)?;
            // Link-local IPv6 usable at once (no duplicate address detection).
            sysctl(&ns, "net/ipv6/conf/all/accept_dad", "0")?;
            sysctl(&ns, "net/ipv6/conf/default/accept_dad", "0")?;
            let port = format!("p{i}");
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "multicast", "on", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "multicast", "on", "up"])?;
            if let Some(addr) = h.ipv4 {
                ip(&["-n", &ns, "addr", "add", addr, "dev", "eth0"])?;
            }
        }
        Ok(lan)
    }

    fn add_ns(&mut self, host: &str) -> Result<String, String> {
        let ns = self.ns(host);
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        Ok(ns)
    }

    /// Cuts `host` off the LAN, or joins it again: its port on the switch
    /// goes down (or up). While cut, its packets are dropped and nobody is
    /// told: TCP connections through it stay open and go silent, as in a
    /// real partition.
    pub fn set_connected(&self, host: &str, connected: bool) -> Result<(), String> {
        let i = self.port_of(host)?;
        let state = if connected { "up" } else { "down" };
        ip(&["-n", &self.ns("sw"), "link", "set", &format!("p{i}"), state])
    }

    /// Shapes `host`'s link to `rate` (as `tc` writes it: `1gbit`) both
    /// ways, with a token bucket (`tc qdisc ... tbf`) on each end of its
    /// veth pair: its own `eth0` (what it sends) and its switch port (what
    /// it receives).
    pub fn shape(&self, host: &str, rate: &str) -> Result<(), String> {
        let port = format!("p{}", self.port_of(host)?);
        let tbf = |ns: &str, dev: &str| {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev])
                .args([
                    "root", "tbf", "rate", rate, "burst", "512kb", "latency", "10ms",
                ])
                .output()
                .map_err(|e| format!("cannot run `tc` (install iproute2): {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`tc qdisc replace dev {dev} root tbf rate {rate}` in {ns} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        tbf(&self.ns(host), "eth0")?;
        tbf(&self.ns("sw"), &port)
    }

    /// The switch port number of `host`.
    fn port_of(&self, host: &str) -> Result<usize, String> {
        let ns = self.ns(host);
        // Namespaces are the switch, then the hosts in order; host i has
        // switch port `p{i}`.
        self.namespaces
            .iter()
            .position(|n| *n == ns)
            .and_then(|i| i.checked_sub(1))
            .ok_or_else(|| format!("no host {host} on this LAN"))
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// `program args` to run in `host`'s namespace, with `RUST_LOG`, no
    /// colours and the test-only switches enabled.
    pub fn command(&self, host: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host), program])
            .args(args)
            .env("NO_COLOR", "1")
            .env(crate::TEST_SWITCHES_ENV, "1")
            .env("RUST_LOG", "info,tessera_node::discovery=debug")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Starts `program args` in `host`'s namespace (`ip netns exec` execs it,
    /// so the child's pid is the program's), stdout piped, stderr to `log`.
    pub fn spawn(&self, host: &str, name: &str, program: &str, args: &[&str], log: &Path) -> Proc {
        let log_file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let child = self
            .command(host, program, args)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} in {host}: {e}"));
        Proc {
            child,
            name: name.into(),
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Deletes namespaces of earlier runs whose process no longer exists.
fn remove_orphans() {
    let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The processes' stderr logs; printed (their ends) when the test fails.
#[derive(Debug)]
pub struct Logs(pub PathBuf);

impl Logs {
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(format!("{name}.log"))
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(dir) = std::fs::read_dir(&self.0) else {
            return;
        };
        for entry in dir.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "==== {} (last {} lines) ====\n{}",
                entry.file_name().to_string_lossy(),
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// The cluster key every node of this LAN shares (one file, as a user would copy it).
pub fn key_file() -> &'static str {
    static KEY: std::sync::OnceLock<(tempfile::TempDir, String)> = std::sync::OnceLock::new();
    &KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        tessera_proto::ClusterKey::generate()
            .create_file(&path)
            .unwrap();
        let path = path.to_str().unwrap().to_string();
        (dir, path)
    })
    .1
}
