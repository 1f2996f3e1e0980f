//! blockstore vs fio on the same device, side by side in one run.
//!
//! 1. Formats the device (a file is created at `--size`), fills it with 1 MiB extents through the
//!    store (every shard in parallel), and flushes.
//! 2. Alternates fio (`ioengine=io_uring`, `direct=1`, on the same byte range as the store's data)
//!    and the store, `--rounds` times, for each workload:
//!    - 4 KiB random reads, queue depth 32 per core, one fio job / one shard per core;
//!    - 1 MiB sequential reads, queue depth 8 per core.
//!      The store's reads go through the shard's full read path on the shard's own thread: index
//!      lookup, registered-buffer read, CRC32C verification of every sector.
//! 3. Measures recovery: the time to reopen the filled store (index rebuilt from checkpoint and
//!    segment summaries).
//!
//! Prints a Markdown report (IOPS, GB/s, p50/p99 latency, ratio store/fio) and writes it to
//! `--report` when given. `--smoke` runs tiny sizes for a second each so the harness never rots
//! (the test command runs it).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use blockstore::{
    shard_of, DeviceSpec, Event, ExtentBuf, FormatOptions, Key, PutOptions, Shard, Store, StoreConfig, SECTOR_BYTES,
};
use clap::Parser;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};

const EXTENT_BYTES: usize = 1 << 20;

#[derive(Parser, Clone)]
#[command(about = "blockstore vs fio (io_uring, O_DIRECT) on the same device")]
struct Args {
    /// File or device to run on (a file is created and sized with --size).
    #[arg(long, default_value = "/var/tmp/bucketfs-bench.img")]
    device: PathBuf,
    /// Size of the file to create, GiB.
    #[arg(long, default_value_t = 4)]
    size_gib: u64,
    /// Segment size, MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// fio / store alternations per workload.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Queue depth per core for 4 KiB random reads.
    #[arg(long, default_value_t = 32)]
    qd_random: u32,
    /// Queue depth per core for 1 MiB sequential reads.
    #[arg(long, default_value_t = 8)]
    qd_seq: u32,
    /// fio binary.
    #[arg(long, default_value = "fio")]
    fio: String,
    /// Write the Markdown report here too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Tiny and quick: 96 MiB, 1 s, 1 round (keeps the harness from rotting).
    #[arg(long)]
    smoke: bool,
    /// Keep the device file afterwards.
    #[arg(long)]
    keep: bool,
    /// Which workloads: random, seq, or both.
    #[arg(long, default_value = "both")]
    workloads: String,
    /// Do not pin shard threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// Skip fio (to profile the store alone); no ratios then.
    #[arg(long)]
    no_fio: bool,
}

#[derive(Clone, Debug, Default)]
struct Measure {
    ops: u64,
    bytes: u64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Measure {
    fn iops(&self) -> f64 {
        self.ops as f64 / self.seconds
    }
    fn gbps(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e9
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.size_gib = 0;
        args.seconds = 1;
        args.rounds = 1;
        args.segment_mib = 8;
    }
    let size_bytes = if args.smoke { 96 << 20 } else { args.size_gib << 30 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;

    // --- format and fill ---
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&args.device)
        .with_context(|| format!("creating {}", args.device.display()))?;
    file.set_len(size_bytes)?;
    drop(file);
    // Write every block once: a file's holes read back as zeros without any device I/O, which
    // would flatter whichever side reads them (fio's range covers space the store never wrote).
    if !args.no_fio {
        prefill(&args, size_bytes)?;
    }
    let spec = DeviceSpec::File { path: args.device.clone(), iopoll: false };
    let sb = blockstore::format(&spec, &FormatOptions { segment_bytes: args.segment_mib << 20, shard_count: cores })?;
    let mut config = StoreConfig { pin_cores: !args.no_pin, ..StoreConfig::default() };
    config.shard.queue_depth = args.qd_random.max(args.qd_seq * 2).max(64);
    let store = Store::open(&spec, config.clone())?;
    // fill what fits without eviction: each shard keeps FREE_SEGMENTS_RESERVE segments free and
    // one open; keys spread by hash, so leave a tenth for imbalance
    let data_bytes = u64::from(sb.segment_count) * sb.segment_bytes;
    let per_segment = (sb.segment_bytes - 4 * SECTOR_BYTES as u64) / (EXTENT_BYTES as u64 + SECTOR_BYTES as u64);
    let usable_segments = u64::from(sb.segment_count)
        .saturating_sub(u64::from(cores) * (blockstore::shard::FREE_SEGMENTS_RESERVE as u64 + 1));
    let extents = (usable_segments * per_segment / 10 * 9).max(u64::from(cores));
    let fill_started = Instant::now();
    let filled: Vec<u64> =
        store.run_on_all(move |shard| fill(shard, extents, cores))?.into_iter().collect::<Result<_, _>>()?;
    store.flush()?;
    let fill_s = fill_started.elapsed().as_secs_f64();
    let filled_total: u64 = filled.iter().sum();
    eprintln!(
        "filled {filled_total} extents of 1 MiB in {fill_s:.1} s ({:.2} GB/s)",
        filled_total as f64 * EXTENT_BYTES as f64 / fill_s / 1e9
    );

    let fio_version = Command::new(&args.fio)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "fio not found".into());
    let mut rows = Vec::new();
    for (name, bs, qd, random) in [
        ("4 KiB random read", 4096usize, args.qd_random, true),
        ("1 MiB sequential read", EXTENT_BYTES, args.qd_seq, false),
    ] {
        if (random && args.workloads == "seq") || (!random && args.workloads == "random") {
            continue;
        }
        // An untimed pass of each first, so neither meets a colder cache than the other.
        let warm_seconds = args.seconds.div_ceil(2);
        if !args.no_fio {
            let mut warm = args.clone();
            warm.seconds = warm_seconds;
            run_fio(&warm, sb.data_start, data_bytes, bs, qd, random, cores)?;
        }
        merge(store.run_on_all(move |shard| read_load(shard, extents, cores, bs, qd, random, warm_seconds))?)?;
        for round in 0..args.rounds {
            // alternate who goes first: the device's and host's state drift during a run
            let secs = args.seconds;
            let run_store =
                || merge(store.run_on_all(move |shard| read_load(shard, extents, cores, bs, qd, random, secs))?);
            let run_peer = || {
                if args.no_fio {
                    Ok(Measure { seconds: 1.0, ..Measure::default() })
                } else {
                    run_fio(&args, sb.data_start, data_bytes, bs, qd, random, cores)
                }
            };
            let (fio, store_m) = if round % 2 == 0 {
                let f = run_peer()?;
                (f, run_store()?)
            } else {
                let s = run_store()?;
                (run_peer()?, s)
            };
            eprintln!("{name} round {round}: fio {:.0} IOPS, store {:.0} IOPS", fio.iops(), store_m.iops());
            rows.push((name, round, fio, store_m));
        }
    }
    store.close();

    // --- recovery ---
    let started = Instant::now();
    let reopened = Store::open(&spec, config)?;
    let recovery_s = started.elapsed().as_secs_f64();
    let stats = reopened.stats()?;
    let recovered: u64 = stats.iter().map(|s| s.recovered_extents).sum();
    reopened.close();
    if recovered != filled_total {
        bail!("recovery found {recovered} extents, {filled_total} were written");
    }

    let mut report = String::new();
    report.push_str(&format!(
        "### blockstore vs fio — {} bytes on {}, {} cores, {} s per run\n\n",
        size_bytes,
        args.device.display(),
        cores,
        args.seconds
    ));
    report.push_str(&format!("{fio_version}; {}; kernel {}\n\n", env!("CARGO_PKG_NAME"), kernel()));
    report.push_str("| workload | round | fio IOPS | store IOPS | fio GB/s | store GB/s | fio p50/p99 µs | store p50/p99 µs | store/fio |\n|---|---|---|---|---|---|---|---|---|\n");
    for (name, round, fio, st) in &rows {
        report.push_str(&format!(
            "| {name} | {round} | {:.0} | {:.0} | {:.3} | {:.3} | {:.0} / {:.0} | {:.0} / {:.0} | {:.2} |\n",
            fio.iops(),
            st.iops(),
            fio.gbps(),
            st.gbps(),
            fio.p50_us,
            fio.p99_us,
            st.p50_us,
            st.p99_us,
            st.iops() / fio.iops()
        ));
    }
    for name in ["4 KiB random read", "1 MiB sequential read"] {
        let mut ratios: Vec<f64> =
            rows.iter().filter(|r| r.0 == name && r.2.ops > 0).map(|r| r.3.iops() / r.2.iops()).collect();
        if ratios.is_empty() {
            continue;
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        report.push_str(&format!("\n{name}: median store/fio over {} rounds = **{median:.2}**", ratios.len()));
    }
    report.push_str(&format!(
        "\n\nRecovery: reopened a store of {} GiB data area holding {recovered} extents ({} segments) in {:.0} ms.\nFill: {filled_total} MiB written through the store in {fill_s:.1} s.\n",
        data_bytes >> 30,
        sb.segment_count,
        recovery_s * 1e3
    ));
    println!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    if !args.keep {
        let _ = std::fs::remove_file(&args.device);
    }
    Ok(())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Keys owned by this shard among `extents` extents.
fn my_keys(shard: &Shard, extents: u64, shards: u32) -> Vec<Key> {
    (0..extents).map(|i| Key::new(i, 0, 1)).filter(|k| shard_of(k, shards) == shard.id()).collect()
}

fn fill(shard: &mut Shard, extents: u64, shards: u32) -> Result<u64, blockstore::StoreError> {
    let keys = my_keys(shard, extents, shards);
    let mut events = Vec::new();
    let mut in_flight = 0usize;
    for (i, key) in keys.iter().enumerate() {
        let mut extent = ExtentBuf::new(EXTENT_BYTES, Some(shard.pool())).expect("1 MiB is a valid extent");
        for (j, chunk) in extent.data_mut().chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(key.object_id ^ (j as u64) << 20).to_le_bytes());
        }
        shard.put(*key, extent, PutOptions::default(), Some(i as u64))?;
        in_flight += 1;
        while in_flight >= 8 {
            shard.poll(true, &mut events)?;
            for e in events.drain(..) {
                if let Event::Written { result, .. } = e {
                    result?;
                    in_flight -= 1;
                }
            }
        }
    }
    while in_flight > 0 {
        shard.poll(true, &mut events)?;
        for e in events.drain(..) {
            if let Event::Written { result, .. } = e {
                result?;
                in_flight -= 1;
            }
        }
    }
    Ok(keys.len() as u64)
}

/// A closed loop of `qd` reads on the shard's own thread for `seconds`.
fn read_load(
    shard: &mut Shard,
    extents: u64,
    shards: u32,
    bs: usize,
    qd: u32,
    random: bool,
    seconds: u64,
) -> Result<(Measure, Histogram<u64>), blockstore::StoreError> {
    let keys = my_keys(shard, extents, shards);
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(shard.id()) + 7);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    let mut started_at = std::collections::HashMap::new();
    let mut events = Vec::new();
    let mut next_tag = 0u64;
    let mut cursor = 0usize;
    let mut ops = 0u64;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut in_flight = 0u32;
    loop {
        let now = Instant::now();
        while in_flight < qd && now < deadline {
            let (key, offset) = if random {
                let key = keys[rng.random_range(0..keys.len())];
                (key, rng.random_range(0..(EXTENT_BYTES / bs) as u64) * bs as u64)
            } else {
                cursor = (cursor + 1) % keys.len();
                (keys[cursor], 0)
            };
            shard.get(key, offset, bs, next_tag)?;
            started_at.insert(next_tag, Instant::now());
            next_tag += 1;
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        // Submit what was just queued and reap what is ready without sleeping; sleep only when
        // nothing has completed, so replacements reach the device as soon as slots free up.
        shard.poll(false, &mut events)?;
        if events.is_empty() {
            shard.poll(true, &mut events)?;
        }
        for e in events.drain(..) {
            if let Event::Read { tag, result } = e {
                let buf = result?;
                debug_assert_eq!(buf.len(), bs);
                in_flight -= 1;
                ops += 1;
                if let Some(t0) = started_at.remove(&tag) {
                    let _ = hist.record(t0.elapsed().as_nanos() as u64);
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let m = Measure { ops, bytes: ops * bs as u64, seconds, p50_us: 0.0, p99_us: 0.0 };
    Ok((m, hist))
}

fn merge(parts: Vec<Result<(Measure, Histogram<u64>), blockstore::StoreError>>) -> anyhow::Result<Measure> {
    let mut total = Measure::default();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for part in parts {
        let (m, h) = part?;
        total.ops += m.ops;
        total.bytes += m.bytes;
        total.seconds = total.seconds.max(m.seconds);
        hist.add(&h)?;
    }
    total.p50_us = hist.value_at_quantile(0.5) as f64 / 1e3;
    total.p99_us = hist.value_at_quantile(0.99) as f64 / 1e3;
    Ok(total)
}

/// Runs fio on the bench device with io_uring and O_DIRECT plus `extra` options; its stdout.
fn fio(args: &Args, name: &str, extra: &[String]) -> anyhow::Result<String> {
    let out = Command::new(&args.fio)
        .arg(format!("--name={name}"))
        .arg(format!("--filename={}", args.device.display()))
        .args(["--ioengine=io_uring", "--direct=1"])
        .args(extra)
        .output()
        .with_context(|| format!("running {}", args.fio))?;
    if !out.status.success() {
        bail!("fio {name} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes the whole file sequentially with fio (O_DIRECT, 1 MiB), so it has no holes.
fn prefill(args: &Args, size_bytes: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    fio(
        args,
        "prefill",
        &["--rw=write".into(), "--bs=1M".into(), "--iodepth=8".into(), format!("--size={size_bytes}")],
    )?;
    eprintln!("prefilled {size_bytes} bytes in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_fio(
    args: &Args,
    offset: u64,
    size: u64,
    bs: usize,
    qd: u32,
    random: bool,
    jobs: u32,
) -> anyhow::Result<Measure> {
    // each job gets its own part of the range, as each shard reads its own extents
    let part = size / u64::from(jobs) / 4096 * 4096;
    let text = fio(
        args,
        "bench",
        &[
            format!("--rw={}", if random { "randread" } else { "read" }),
            format!("--bs={bs}"),
            format!("--iodepth={qd}"),
            format!("--numjobs={jobs}"),
            format!("--offset={offset}"),
            format!("--size={part}"),
            format!("--offset_increment={part}"),
            "--time_based".into(),
            format!("--runtime={}", args.seconds),
            "--group_reporting".into(),
            "--output-format=json".into(),
        ],
    )?;
    let json = &text[text.find('{').context("fio printed no JSON")?..];
    let read = json_section(json, "\"read\"").context("no read section in fio output")?;
    let io_bytes = json_number(read, "\"io_bytes\"").context("io_bytes")?;
    let ios = json_number(read, "\"total_ios\"").context("total_ios")?;
    let runtime_ms = json_number(read, "\"runtime\"").context("runtime")?;
    let clat = json_section(read, "\"clat_ns\"").context("clat_ns")?;
    let p50 = json_number(clat, "\"50.000000\"").unwrap_or(0.0);
    let p99 = json_number(clat, "\"99.000000\"").unwrap_or(0.0);
    Ok(Measure {
        ops: ios as u64,
        bytes: io_bytes as u64,
        seconds: runtime_ms / 1e3,
        p50_us: p50 / 1e3,
        p99_us: p99 / 1e3,
    })
}

/// The text of the JSON object following `key` (fio's JSON is regular; no parser dependency).
fn json_section<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(key)? + key.len();
    let open = start + json[start..].find('{')?;
    let mut depth = 0;
    for (i, c) in json[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&json[open..=open + i]);
                }
            }
            _ => {}
        }
    }
    None
}

fn json_number(json: &str, key: &str) -> Option<f64> {
    let start = json.find(key)? + key.len();
    let rest = json[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == '+'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
