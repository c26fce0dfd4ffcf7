//! `kubectl faros agent top NAME`: the device's live state, asked from the device now
//! through the hub (`agents/<name>/live`).

use anyhow::anyhow;
use faros_api::edge::LiveState;

use crate::output;
use crate::session::{self, Session};

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// Name of the agent.
    pub name: String,
    /// Output format: the default summary, or `json` (the device's answer as it is).
    #[arg(long, short = 'o', value_name = "FORMAT", value_parser = ["json"])]
    pub output: Option<String>,
}

pub(crate) async fn top(session: &Session, namespace: &str, args: TopArgs) -> anyhow::Result<()> {
    let client = session.client()?;
    let path = format!(
        "/apis/{}/{}/namespaces/{namespace}/agents/{}/{}",
        faros_api::EDGE_GROUP,
        faros_api::EDGE_VERSION,
        args.name,
        faros_tunnel::LIVE_SUBRESOURCE
    );
    let request = http::Request::get(&path).body(Vec::new())?;
    let text = client.request_text(request).await.map_err(|e| {
        let workspace = session.current_path();
        if session::is_status(&e, 404) {
            return anyhow!(
                "there is no agent {:?} in namespace {namespace} of workspace {workspace}",
                args.name
            );
        }
        anyhow!(
            "cannot get the live state of agent {} in namespace {namespace} of workspace {workspace}: {}",
            args.name,
            session::describe(&e, session.base())
        )
    })?;
    if args.output.as_deref() == Some("json") {
        let value: serde_json::Value = serde_json::from_str(&text)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let state: LiveState = serde_json::from_str(&text)
        .map_err(|e| anyhow!("the agent answered something that is not a live state ({e})"))?;
    print!("{}", render(&args.name, &state));
    Ok(())
}

fn render(name: &str, s: &LiveState) -> String {
    let mut out = String::new();
    let percent = |used: u64, total: u64| {
        if total == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", used as f64 * 100.0 / total as f64)
        }
    };
    out.push_str(&format!(
        "AGENT {name} ({}), sampled {}, up {}, load {:.2} {:.2} {:.2}\n",
        s.hostname,
        s.time,
        duration(s.uptime_seconds),
        s.load_average[0],
        s.load_average[1],
        s.load_average[2]
    ));
    out.push_str(&format!("CPU     {:.1}% of {} cpus\n", s.cpu.usage_percent, s.cpu.cpus));
    out.push_str(&format!(
        "MEMORY  {} used of {} ({}), swap {} free of {}\n\n",
        bytes(s.memory.used_bytes),
        bytes(s.memory.total_bytes),
        percent(s.memory.used_bytes, s.memory.total_bytes),
        bytes(s.memory.swap_free_bytes),
        bytes(s.memory.swap_total_bytes)
    ));
    let disks: Vec<Vec<String>> = s
        .disks
        .iter()
        .map(|d| {
            vec![
                d.path.clone(),
                bytes(d.used_bytes),
                bytes(d.available_bytes),
                bytes(d.total_bytes),
                percent(d.used_bytes, d.total_bytes),
            ]
        })
        .collect();
    out.push_str(&output::table(&["DISK", "USED", "AVAILABLE", "SIZE", "USE%"], &disks));
    out.push('\n');
    let network: Vec<Vec<String>> = s
        .network
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                bytes(i.rx_bytes),
                bytes(i.tx_bytes),
                format!("{}/{}", i.rx_errors, i.tx_errors),
            ]
        })
        .collect();
    out.push_str(&output::table(
        &["INTERFACE", "RECEIVED", "SENT", "ERRORS (RX/TX)"],
        &network,
    ));
    out.push('\n');
    if s.workloads.is_empty() {
        out.push_str("No workloads run on this device.\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .workloads
            .iter()
            .map(|w| {
                vec![
                    w.workload.clone(),
                    w.placement.clone(),
                    w.phase.clone(),
                    w.ready.to_string(),
                ]
            })
            .collect();
        out.push_str(&output::table(&["WORKLOAD", "PLACEMENT", "PHASE", "READY"], &rows));
    }
    out
}

/// Bytes in binary units, as `kubectl top` prints memory (`512Mi`, `1.5Gi`).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

fn duration(seconds: u64) -> String {
    let (d, h, m) = (seconds / 86400, seconds % 86400 / 3600, seconds % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512");
        assert_eq!(bytes(1536), "1.5Ki");
        assert_eq!(bytes(300 * 1024 * 1024), "300Mi");
        assert_eq!(duration(59), "0m");
        assert_eq!(duration(3 * 3600 + 120), "3h2m");
        assert_eq!(duration(2 * 86400 + 3600), "2d1h");
    }
}
