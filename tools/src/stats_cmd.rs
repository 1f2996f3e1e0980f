//! `bucketfs stats`: the engine's counters from the admin endpoint, as a readable summary or as
//! JSON, once or every few seconds. Runs on the main thread.

use std::io::IsTerminal;
use std::time::Duration;

use bucketfs::admin_client::AdminClient;
use clap::Args;
use engine::stats::{EngineStats, LatencySummary};

use crate::human::{bytes, micros, millis, percent, Table};

pub const ADMIN_DEFAULT: &str = "127.0.0.1:9180";

#[derive(Args)]
pub struct StatsArgs {
    /// The admin endpoint of the running server.
    #[arg(long, env = "BUCKETFS_ADMIN", default_value = ADMIN_DEFAULT)]
    admin: String,
    /// Print the stats as JSON (one line per snapshot with --watch).
    #[arg(long)]
    json: bool,
    /// Print again every SECS seconds until interrupted.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    watch: Option<u64>,
    /// Wait up to SECS seconds until every changed file is in the bucket (no uploads or bucket
    /// operations pending), then print the stats; fails if they are still pending.
    #[arg(long, value_name = "SECS", conflicts_with = "watch")]
    wait_uploaded: Option<u64>,
}

pub fn stats(args: &StatsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.admin);
    if let Some(secs) = args.wait_uploaded {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let stats: EngineStats = client.get_json("/v1/stats")?;
            let w = &stats.writes;
            let settled = w.pending_uploads == 0 && w.pending_bucket_ops == 0;
            if settled || std::time::Instant::now() >= until {
                print!("{}", if args.json { serde_json::to_string_pretty(&stats)? + "\n" } else { render(&stats) });
                if !settled {
                    anyhow::bail!(
                        "after {secs} s still {} upload(s) and {} bucket operation(s) pending (last error: {})",
                        w.pending_uploads,
                        w.pending_bucket_ops,
                        w.last_error.as_deref().unwrap_or("none")
                    );
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let Some(every) = args.watch else {
        let stats: EngineStats = client.get_json("/v1/stats")?;
        print!("{}", if args.json { serde_json::to_string_pretty(&stats)? + "\n" } else { render(&stats) });
        return Ok(());
    };
    let clear = std::io::stdout().is_terminal() && !args.json;
    loop {
        match client.get_json::<EngineStats>("/v1/stats") {
            Ok(stats) if args.json => println!("{}", serde_json::to_string(&stats)?),
            Ok(stats) => {
                if clear {
                    print!("\x1b[2J\x1b[H");
                }
                print!("{}", render(&stats));
                println!("(every {every} s; Ctrl-C to stop)");
            }
            // Keep watching through a restart of the server.
            Err(e) => eprintln!("{e}"),
        }
        std::thread::sleep(Duration::from_secs(every));
    }
}

fn latency(l: &LatencySummary) -> String {
    if l.count == 0 {
        return "-".to_string();
    }
    format!("p50 {}  p99 {}  p99.9 {}  max {}", micros(l.p50_us), micros(l.p99_us), micros(l.p999_us), micros(l.max_us))
}

/// The summary printed for people.
pub fn render(s: &EngineStats) -> String {
    let c = &s.cache;
    let looked_up = s.block_hits + s.block_misses;
    let mut out = String::new();
    let mut line = |label: &str, value: String| out.push_str(&format!("{label:<14}{value}\n"));
    line("uptime", millis(s.uptime_ms));
    line("reads", format!("{} ({})", s.reads, bytes(s.read_bytes)));
    line("read latency", latency(&s.read_latency));
    line(
        "blocks",
        format!(
            "{} hits, {} misses: {} hit ratio; {} joined a fetch, {} read ahead",
            s.block_hits,
            s.block_misses,
            percent(s.block_hits, looked_up),
            s.block_joins,
            s.read_ahead_blocks
        ),
    );
    line("objects", format!("{} found stale, {} keys skipped (not valid names)", s.stale_objects, s.keys_skipped));
    line(
        "cache",
        format!(
            "{} of {} used ({})",
            bytes(c.data_bytes),
            bytes(c.capacity_bytes),
            percent(c.data_bytes, c.capacity_bytes)
        ),
    );
    line("", format!("dirty {}, pinned {}", bytes(c.dirty_bytes), bytes(c.pinned_bytes)));
    line(
        "",
        format!(
            "{} extents, {} evicted; {} of {} segments free; {} checksum errors",
            c.extents, c.extents_evicted, c.segments_free, c.segments_total, c.checksum_errors
        ),
    );
    let w = &s.writes;
    line(
        "writes",
        format!(
            "{} ({}), {} commits, {} buffered in memory",
            w.writes,
            bytes(w.write_bytes),
            w.commits,
            bytes(w.buffered_bytes)
        ),
    );
    line(
        "uploads",
        format!(
            "{} done ({}), {} pending, {} bucket operations pending; {} copies, {} deletes, {} markers",
            w.uploads,
            bytes(w.upload_bytes),
            w.pending_uploads,
            w.pending_bucket_ops,
            w.copies,
            w.deletes,
            w.markers
        ),
    );
    line(
        "",
        format!(
            "{} failed (retried), {} restarted (file changed), {} conflicts, {} writes refused for a full cache",
            w.upload_failures, w.uploads_restarted, w.conflicts, w.no_space
        ),
    );
    if let Some(e) = &w.last_error {
        line("last error", e.clone());
    }
    if c.poisoned.is_empty() {
        line("poisoned", "none".to_string());
    }
    for reason in &c.poisoned {
        line("POISONED", reason.clone());
    }
    if s.buckets.is_empty() {
        return out;
    }
    out.push('\n');
    let mut requests = Table::new(&["BUCKET", "REQUESTS", "ERRORS", "RETRIES", "GETS IN FLIGHT"]);
    let mut traffic = Table::new(&["BUCKET", "RECEIVED", "SENT", "GET LATENCY", "WHERE"]);
    for b in &s.buckets {
        let counts = |m: &std::collections::BTreeMap<String, u64>| {
            let parts: Vec<String> = m.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect();
            if parts.is_empty() {
                "-".to_string()
            } else {
                parts.join(", ")
            }
        };
        requests.row(vec![
            b.name.clone(),
            counts(&b.requests),
            counts(&b.errors),
            b.retries.to_string(),
            b.gets_in_flight.to_string(),
        ]);
        traffic.row(vec![
            b.name.clone(),
            bytes(b.bytes_received),
            bytes(b.bytes_sent),
            latency(&b.get_latency),
            b.describe.clone(),
        ]);
    }
    out.push_str(&requests.render());
    out.push('\n');
    out.push_str(&traffic.render());
    out
}

#[cfg(test)]
mod tests {
    use engine::stats::{BucketStats, CacheStats};

    use super::*;

    #[test]
    fn renders_every_part() {
        let stats = EngineStats {
            uptime_ms: 61_000,
            reads: 10,
            read_bytes: 10 << 20,
            block_hits: 9,
            block_misses: 1,
            read_latency: LatencySummary {
                count: 10,
                p50_us: 90,
                p99_us: 1_500,
                p999_us: 2_000,
                max_us: 2_500,
                ..Default::default()
            },
            cache: CacheStats {
                capacity_bytes: 1 << 30,
                data_bytes: 256 << 20,
                poisoned: vec!["shard 2: flush failed: EIO".into()],
                ..Default::default()
            },
            buckets: vec![BucketStats {
                name: "train".into(),
                describe: "s3://ml-train".into(),
                requests: [("get".to_string(), 7), ("head".to_string(), 0)].into_iter().collect(),
                gets_in_flight: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render(&stats);
        for part in [
            "1m 01s",
            "10 (10.0 MiB)",
            "p50 90 µs  p99 1.5 ms  p99.9 2.0 ms",
            "90.0% hit ratio",
            "256.0 MiB of 1.0 GiB used (25.0%)",
            "POISONED      shard 2: flush failed: EIO",
            "train   get 7     -",
            "s3://ml-train",
        ] {
            assert!(text.contains(part), "{part:?} missing from\n{text}");
        }
        assert!(!text.contains("head 0"));
        assert!(render(&EngineStats::default()).contains("poisoned      none"));
    }
}
