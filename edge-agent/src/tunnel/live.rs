//! The device's live state for `agents/<name>/live`: sampled when asked, from `/proc` and
//! `statvfs`, without libc. Parsers are pure functions of the files' text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use faros_api::edge::{AgentWorkload, LIVE_STATE_KIND, LiveCpu, LiveDisk, LiveInterface, LiveMemory, LiveState};

/// How long CPU use is sampled over.
pub(crate) const CPU_SAMPLE: Duration = Duration::from_millis(200);

/// Samples the device now. `state_dir` is reported besides `/`; `workloads` is what the
/// agent runs.
pub(crate) async fn sample(state_dir: &Path, workloads: Vec<AgentWorkload>) -> LiveState {
    let before = read("/proc/stat").and_then(|s| cpu_times(&s));
    tokio::time::sleep(CPU_SAMPLE).await;
    let after = read("/proc/stat").and_then(|s| cpu_times(&s));
    let usage_percent = match (before, after) {
        (Some(a), Some(b)) => busy_percent(a, b),
        _ => 0.0,
    };
    let cpus = read("/proc/stat").map(|s| cpu_count(&s)).unwrap_or(0);
    let mut paths: Vec<PathBuf> = vec![state_dir.to_path_buf(), PathBuf::from("/")];
    paths.dedup();
    let now = jiff::Timestamp::now();
    LiveState {
        api_version: format!("{}/{}", faros_api::EDGE_GROUP, faros_api::EDGE_VERSION),
        kind: LIVE_STATE_KIND.to_string(),
        time: jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string(),
        hostname: crate::facts::hostname(),
        uptime_seconds: read("/proc/uptime").and_then(|s| uptime(&s)).unwrap_or(0),
        load_average: read("/proc/loadavg").and_then(|s| load_average(&s)).unwrap_or_default(),
        cpu: LiveCpu {
            cpus,
            usage_percent,
            sample_millis: CPU_SAMPLE.as_millis() as u64,
        },
        memory: read("/proc/meminfo").map(|s| memory(&s)).unwrap_or_default(),
        disks: paths.iter().filter_map(|p| disk(p)).collect(),
        network: read("/proc/net/dev").map(|s| interfaces(&s)).unwrap_or_default(),
        workloads,
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// (busy, total) jiffies of the aggregate `cpu` line of /proc/stat.
fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    if fields.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    // already counted in user and nice.
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

fn busy_percent(before: (u64, u64), after: (u64, u64)) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    if total <= 0.0 {
        return 0.0;
    }
    ((busy / total) * 1000.0).round() / 10.0
}

fn cpu_count(stat: &str) -> u32 {
    let count = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn uptime(text: &str) -> Option<u64> {
    let seconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(seconds as u64)
}

fn load_average(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

fn memory(meminfo: &str) -> LiveMemory {
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_mul(1024)
    };
    let total = kib("MemTotal");
    let available = kib("MemAvailable");
    LiveMemory {
        total_bytes: total,
        available_bytes: available,
        used_bytes: total.saturating_sub(available),
        swap_total_bytes: kib("SwapTotal"),
        swap_free_bytes: kib("SwapFree"),
    }
}

fn interfaces(netdev: &str) -> Vec<LiveInterface> {
    netdev
        .lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let c: Vec<u64> = counters.split_whitespace().filter_map(|f| f.parse().ok()).collect();
            if c.len() < 16 {
                return None;
            }
            Some(LiveInterface {
                name: name.trim().to_string(),
                rx_bytes: c[0],
                rx_packets: c[1],
                rx_errors: c[2],
                tx_bytes: c[8],
                tx_packets: c[9],
                tx_errors: c[10],
            })
        })
        .collect()
}

fn disk(path: &Path) -> Option<LiveDisk> {
    let stat = rustix::fs::statvfs(path).ok()?;
    let unit = stat.f_frsize.max(1);
    let total = stat.f_blocks.saturating_mul(unit);
    let free = stat.f_bfree.saturating_mul(unit);
    Some(LiveDisk {
        path: path.display().to_string(),
        total_bytes: total,
        available_bytes: stat.f_bavail.saturating_mul(unit),
        used_bytes: total.saturating_sub(free),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_use_from_two_samples() {
        let a = "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\ncpu1 50 0 50 400 0 0 0 0 0 0\nintr 1\n";
        let b = "cpu  150 0 150 900 0 0 0 0 0 0\n";
        assert_eq!(cpu_count(a), 2);
        let (before, after) = (cpu_times(a).unwrap(), cpu_times(b).unwrap());
        assert_eq!(before, (200, 1000));
        assert_eq!(busy_percent(before, after), 50.0);
        assert_eq!(busy_percent(after, after), 0.0);
        assert_eq!(cpu_times("intr 1\n"), None);
    }

    #[test]
    fn memory_uptime_load_and_interfaces() {
        let m = memory(
            "MemTotal:       2048 kB\nMemFree:  100 kB\nMemAvailable:   1024 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        );
        assert_eq!(
            (m.total_bytes, m.available_bytes, m.used_bytes),
            (2 << 20, 1 << 20, 1 << 20)
        );
        assert_eq!(uptime("12345.67 999.0\n"), Some(12345));
        assert_eq!(load_average("0.50 0.25 0.10 1/100 42\n"), Some([0.5, 0.25, 0.1]));
        assert_eq!(load_average("garbage"), None);
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n  eth0: 5000 10 1 0 0 0 0 0 7000 20 2 0 0 0 0 0\n";
        let i = interfaces(dev);
        assert_eq!(i.len(), 2);
        assert_eq!(
            (
                i[1].name.as_str(),
                i[1].rx_bytes,
                i[1].tx_bytes,
                i[1].rx_errors,
                i[1].tx_packets
            ),
            ("eth0", 5000, 7000, 1, 20)
        );
    }

    #[test]
    fn disks_of_real_paths() {
        let d = disk(Path::new("/")).unwrap();
        assert!(d.total_bytes > 0 && d.used_bytes <= d.total_bytes, "{d:?}");
        assert!(disk(Path::new("/no/such/dir")).is_none());
    }
}
