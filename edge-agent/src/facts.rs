//! Device facts, read from /proc and /etc without libc calls.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use faros_api::edge::DeviceInfo;

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The kernel's host name (`/proc/sys/kernel/hostname`).
pub fn hostname() -> String {
    read("/proc/sys/kernel/hostname").trim().to_string()
}

pub fn collect() -> DeviceInfo {
    DeviceInfo {
        hostname: hostname(),
        os: std::env::consts::OS.to_string(),
        os_image: os_image(&read("/etc/os-release")),
        kernel_version: read("/proc/sys/kernel/osrelease").trim().to_string(),
        architecture: std::env::consts::ARCH.to_string(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1),
        memory_bytes: mem_total(&read("/proc/meminfo")),
        addresses: addresses(&read("/proc/net/fib_trie"), &read("/proc/net/if_inet6")),
        agent_version: AGENT_VERSION.to_string(),
        boot_time: boot_time(&read("/proc/stat")),
    }
}

/// `PRETTY_NAME` from os-release, falling back to `NAME VERSION`.
fn os_image(os_release: &str) -> String {
    let field = |key: &str| {
        os_release.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
    };
    field("PRETTY_NAME")
        .or_else(|| field("NAME").map(|n| format!("{n} {}", field("VERSION").unwrap_or_default())))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn mem_total(meminfo: &str) -> i64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<i64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn boot_time(stat: &str) -> String {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The host's own addresses: IPv4 from the local routing table (`/32 host LOCAL` entries of
/// `/proc/net/fib_trie`), IPv6 of global scope from `/proc/net/if_inet6`; loopback left out.
fn addresses(fib_trie: &str, if_inet6: &str) -> Vec<String> {
    let mut v4 = BTreeSet::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let trimmed = line.trim();
        if let Some(ip) = trimmed.strip_prefix("|-- ") {
            last = ip.parse().ok();
        } else if trimmed.starts_with("/32 host LOCAL")
            && let Some(ip) = last.filter(|ip| !ip.is_loopback())
        {
            v4.insert(ip);
        }
    }
    let mut v6 = BTreeSet::new();
    for line in if_inet6.lines() {
        let mut fields = line.split_whitespace();
        let (Some(hex), Some(scope)) = (fields.next(), fields.nth(2)) else {
            continue;
        };
        if scope != "00" || hex.len() != 32 {
            continue;
        }
        let Ok(bits) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        v6.insert(Ipv6Addr::from(bits));
    }
    v4.into_iter()
        .map(IpAddr::V4)
        .chain(v6.into_iter().map(IpAddr::V6))
        .map(|ip| ip.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\n     |-- 10.1.2.3\n        /32 host LOCAL\n     |-- 10.1.2.255\n        /32 link BROADCAST\nLocal:\n     |-- 10.1.2.3\n        /32 host LOCAL\n";
        let inet6 = "00000000000000000000000000000001 01 80 10 80       lo\n20010db8000000000000000000000001 02 40 00 80     eth0\nfe800000000000000000000000000001 02 40 20 80     eth0\n";
        assert_eq!(addresses(fib, inet6), vec!["10.1.2.3", "2001:db8::1"]);
        assert_eq!(
            mem_total("MemTotal:       16303440 kB\nMemFree: 1 kB\n"),
            16303440 * 1024
        );
        assert_eq!(boot_time("cpu 1 2\nbtime 1700000000\n"), "2023-11-14T22:13:20Z");
        assert_eq!(
            os_image("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(os_image("NAME=Alpine\nVERSION=3.19\n"), "Alpine 3.19");
    }

    #[test]
    fn collects_something_on_this_machine() {
        let facts = collect();
        assert!(!facts.kernel_version.is_empty());
        assert!(facts.cpus >= 1);
        assert!(facts.memory_bytes > 0);
        assert!(!facts.boot_time.is_empty());
    }
}
