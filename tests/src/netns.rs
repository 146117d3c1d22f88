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

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// `program args` to run in `host`'s namespace, with `RUST_LOG` and no colours.
    pub fn command(&self, host: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host), program])
            .args(args)
            .env("NO_COLOR", "1")
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
