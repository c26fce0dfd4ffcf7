//! `merge-bench`: how long a strategic merge patch takes on long lists — the finalizers of an
//! object (a list of strings merged as a set) and a list of objects merged by key — as the
//! hub applies `kubectl patch` and client-side apply. A client may send such a patch about
//! its own objects, so the cost must grow with the lists, not with their product.
//!
//! Usage: `merge-bench --lengths 1000,10000,20000 --rounds 5`

use std::time::{Duration, Instant};

use clap::Parser;
use faros_machinery::strategic_merge::{self, ListStrategy, PatchMeta};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "merge-bench")]
struct Args {
    /// List lengths to measure (the live list; the patch adds as many again).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,20000")]
    lengths: Vec<usize>,
    /// Runs per length; the median and the spread are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// `metadata.finalizers` merged as a set and `items` merged by `name`, as built-in kinds
/// declare them.
struct Meta;

impl PatchMeta for Meta {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy<'_> {
        match path {
            ["metadata", "finalizers"] => ListStrategy::Merge { key: None },
            ["items"] => ListStrategy::Merge { key: Some("name") },
            _ => ListStrategy::Replace,
        }
    }

    fn retain_keys(&self, _path: &[&str]) -> bool {
        false
    }
}

/// A live object with `n` finalizers and `n` keyed items, and a patch adding `n` finalizers
/// and changing the second half of the items while adding as many new ones.
fn inputs(n: usize) -> (Value, Value) {
    let finalizers = |range: std::ops::Range<usize>| range.map(|i| format!("example.com/f{i}")).collect::<Vec<_>>();
    let items = |range: std::ops::Range<usize>, v: i64| {
        range
            .map(|i| json!({"name": format!("item-{i}"), "value": v}))
            .collect::<Vec<_>>()
    };
    let original = json!({"metadata": {"name": "big", "finalizers": finalizers(0..n)}, "items": items(0..n, 0)});
    let patch = json!({"metadata": {"finalizers": finalizers(n..2 * n)}, "items": items(n / 2..n + n / 2, 1)});
    (original, patch)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("| list length | patch size | median | fastest | slowest |");
    println!("|---|---|---|---|---|");
    for &n in &args.lengths {
        let (original, patch) = inputs(n);
        let size = serde_json::to_vec(&patch)?.len();
        let mut times: Vec<Duration> = (0..args.rounds.max(1))
            .map(|_| {
                let started = Instant::now();
                let merged = strategic_merge::apply(&original, &patch, &Meta).expect("the patch applies");
                let elapsed = started.elapsed();
                assert_eq!(merged["metadata"]["finalizers"].as_array().map(Vec::len), Some(2 * n));
                elapsed
            })
            .collect();
        times.sort();
        println!(
            "| {n} | {} KiB | {:.1} ms | {:.1} ms | {:.1} ms |",
            size / 1024,
            ms(times[times.len() / 2]),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
