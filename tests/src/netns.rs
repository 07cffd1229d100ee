//! Addresses other than loopback that exist only on this machine: a network
//! namespace joined to the host's by a veth pair, for tests whose backends
//! must sit behind addresses that Kubernetes accepts in an EndpointSlice
//! (which refuses 127.0.0.0/8).
//!
//! # Shape
//!
//! ```text
//!  host namespace                       namespace xdsb-<pid>-<n>
//!  xb<pid>h<n>  10.213.S.1/24  <-veth->  eth0  10.213.S.2, .3, ... /24
//! ```
//!
//! Each side has the other's /24 as a connected route, so the test process
//! (in the host namespace) reaches every address on the namespace side and
//! the replies come back; nothing is forwarded or routed further, so no
//! packet leaves the machine. Processes run inside with `ip netns exec`,
//! which execs the program itself, so the [`Process`] handle is the program.
//!
//! # Uniqueness and cleanup
//!
//! Test binaries (and other people's test runs on the same machine) may do
//! this at the same time: the subnet `S` is chosen under an exclusive lock
//! on a file in the temporary directory, as the first /24 of 10.213.0.0/16
//! that no host address or route mentions, and the namespace and links are
//! named after the process id. Dropping a [`Netns`] (also while a test
//! panics) kills every process inside, deletes the veth pair and the
//! namespace. A [`Netns`] also holds a lock on a file named after its
//! namespace, which the kernel releases when the process ends however it
//! ends; the next [`Netns::create`] deletes, with their processes, the
//! namespaces whose lock nobody holds (left by a test process that was
//! killed outright).
//!
//! # Requirements
//!
//! The `ip` command (iproute2), CAP_NET_ADMIN (the links and addresses) and
//! CAP_SYS_ADMIN (`ip netns add` and `exec` mount and enter namespaces): run
//! as root, as CI does. Without them [`Netns::create`] panics saying so.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::fcntl::{Flock, FlockArg};

use crate::{Process, bin_path};

/// The private range the subnets are taken from.
const RANGE: [u8; 2] = [10, 213];
/// Prefix of the namespaces' names.
const PREFIX: &str = "xdsb-";
/// Capability bits in `CapEff` of /proc/self/status.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// A network namespace with `count` addresses, joined to the host's by a
/// veth pair; everything is removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    host_link: String,
    host_address: Ipv4Addr,
    addresses: Vec<Ipv4Addr>,
    /// Held while the namespace is in use (see the module's docs).
    _alive: Flock<File>,
}

impl Netns {
    /// Creates the namespace, the veth pair (the host side holding
    /// `10.213.S.1/24`, the namespace side `eth0` holding `count` addresses
    /// from `10.213.S.2`) and brings every link up.
    ///
    /// # Panics
    ///
    /// Without CAP_NET_ADMIN and CAP_SYS_ADMIN or the `ip` command, when
    /// every subnet of 10.213.0.0/16 is taken, or when an `ip` command fails
    /// (with its output).
    pub fn create(count: u8) -> Self {
        assert!(
            (1..=250).contains(&count),
            "between 1 and 250 addresses, not {count}"
        );
        check_requirements();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = locks();
        let _creating = lock(&dir.join(".lock"), FlockArg::LockExclusive)
            .unwrap_or_else(|e| panic!("lock {}: {e}", dir.join(".lock").display()));
        remove_stale(&dir);
        let subnet = free_subnet(pid);
        let at = |host: u8| Ipv4Addr::new(RANGE[0], RANGE[1], subnet, host);
        let name = format!("{PREFIX}{pid}-{n}");
        let alive = dir.join(format!("{name}.lock"));
        let netns = Self {
            _alive: lock(&alive, FlockArg::LockExclusiveNonblock)
                .unwrap_or_else(|e| panic!("lock {}: {e}", alive.display())),
            name,
            host_link: format!("xb{pid}h{n}"),
            host_address: at(1),
            addresses: (2..2 + count).map(at).collect(),
        };
        // From here on, a failure leaves nothing behind: `netns` drops.
        let (name, host) = (netns.name.as_str(), netns.host_link.as_str());
        ip(&["netns", "add", name]);
        ip(&[
            "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", name,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", netns.host_address),
            "dev",
            host,
        ]);
        ip(&["link", "set", host, "up"]);
        for address in &netns.addresses {
            ip(&[
                "-n",
                name,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ]);
        }
        ip(&["-n", name, "link", "set", "eth0", "up"]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        netns
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host side's address (where connections from the test come from).
    pub fn host_address(&self) -> Ipv4Addr {
        self.host_address
    }

    /// The namespace side's addresses.
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.addresses
    }

    /// Starts workspace binary `bin` inside the namespace, as
    /// [`Process::spawn`] would on the host.
    pub fn spawn(&self, name: &str, bin: &str, args: &[&str]) -> Process {
        let program = bin_path(bin);
        let program = program.to_str().expect("UTF-8 binary path");
        Process::spawn_via(
            name,
            &["ip", "netns", "exec", &self.name],
            program,
            args,
            &[],
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_inside(&self.name);
        // Deleting one end of a veth pair deletes both.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .output();
        if let Err(error) = run(&["netns", "del", &self.name]) {
            eprintln!("failed to delete network namespace {}: {error}", self.name);
        }
        let _ = std::fs::remove_file(locks().join(format!("{}.lock", self.name)));
    }
}

/// The directory of the lock files.
fn locks() -> PathBuf {
    let dir = std::env::temp_dir().join("xds-balancer-netns");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Locks file `path` (created if need be).
fn lock(path: &std::path::Path, how: FlockArg) -> Result<Flock<File>, String> {
    let file = File::create(path).map_err(|e| e.to_string())?;
    Flock::lock(file, how).map_err(|(_, errno)| errno.to_string())
}

/// Panics, naming what is missing, unless this process may create
/// namespaces and links and the `ip` command runs.
fn check_requirements() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|bits| u64::from_str_radix(bits.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| effective & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    assert!(
        missing.is_empty(),
        "this test puts backends on addresses that exist only on this machine, in a network \
         namespace joined to the host's by a veth pair, and creating those needs {}: run it as \
         root (as CI does)",
        missing.join(" and ")
    );
    let found = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test creates a network namespace with the `ip` command, which is missing: install \
         iproute2"
    );
}

/// Runs `ip args`; the error holds its output.
fn run(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs `ip args`, panicking on failure.
fn ip(args: &[&str]) -> String {
    run(args).unwrap_or_else(|error| panic!("{error}"))
}

/// Kills (SIGKILL) every process in namespace `name`.
fn kill_inside(name: &str) {
    let pids = run(&["netns", "pids", name]).unwrap_or_default();
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Deletes the namespaces of test processes that no longer run (killed
/// before they could drop their [`Netns`]): those whose lock file in `dir`
/// nobody holds. Called with the creation lock held, so no namespace is
/// half made.
fn remove_stale(dir: &std::path::Path) {
    let list = run(&["netns", "list"]).unwrap_or_default();
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if !name.starts_with(PREFIX) {
            continue;
        }
        let path = dir.join(format!("{name}.lock"));
        let Ok(_held_by_nobody) = lock(&path, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        let _ = std::fs::remove_file(&path);
        kill_inside(name);
        match run(&["netns", "del", name]) {
            Ok(_) => eprintln!("deleted network namespace {name}, left by a test that was killed"),
            Err(error) => eprintln!("failed to delete a stale namespace: {error}"),
        }
    }
}

/// The first /24 of 10.213.0.0/16, counting from one that depends on `pid`,
/// that no address or route of the host mentions.
fn free_subnet(pid: u32) -> u8 {
    let mut taken = ip(&["-4", "-o", "addr", "show"]);
    taken.push_str(&ip(&["-4", "route", "show", "table", "all"]));
    let start = (pid % 256) as u8;
    (0..=255u8)
        .map(|i| start.wrapping_add(i))
        .find(|s| !taken.contains(&format!("{}.{}.{s}.", RANGE[0], RANGE[1])))
        .unwrap_or_else(|| {
            panic!(
                "every /24 of {}.{}.0.0/16 is in use on this machine",
                RANGE[0], RANGE[1]
            )
        })
}
