//! The engine's read path against the best raw client, side by side in one run, on a real S3
//! server (SeaweedFS) on loopback.
//!
//! 1. Starts SeaweedFS (testkit), makes a bucket and uploads `--objects` objects of
//!    `--object-mib` MiB of random bytes (1 GiB by default).
//! 2. Alternates, `--rounds` times:
//!    - raw: `--connections` workers issue ranged GETs of `--fetch-mib` MiB over the whole object
//!      set, reading every body to the end and throwing it away: the same HTTP stack
//!      (`object_store`, reqwest) and the same number of connections the engine may use. This is
//!      the physical ceiling of fetching, with nothing written anywhere.
//!    - engine cold: a freshly formatted cache (file, io_uring O_DIRECT) and metadata store;
//!      `--readers` readers read whole objects in 1 MiB reads, as an NFS client streams a file.
//!      Everything comes from the bucket through the backfill (read-ahead, coalesced GETs,
//!      `gets_in_flight_max = --connections`) and is written to the cache on the way.
//!      Every byte is checked against what was uploaded.
//!    - engine warm: the same reads again on the same engine: must send zero GETs.
//! 3. Prints a Markdown report (GB/s, ratio engine/raw, GET counts) and writes it to `--report`.
//!
//! `--smoke` runs tiny sizes so the harness never rots (the test command runs it).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use blockstore::{DeviceSpec, FormatOptions, Store, StoreConfig};
use bytes::Bytes;
use clap::Parser;
use engine::object::store::{ObjectStoreConfig, S3Config, StoreClient};
use engine::object::{ObjectClient, PutOptions};
use engine::{BucketSpec, Engine, EngineConfig, ExportSpec};
use futures::StreamExt;
use rand::{RngCore, SeedableRng};

const MIB: u64 = 1 << 20;

#[derive(Parser, Clone)]
#[command(about = "engine cold/warm reads vs a raw parallel ranged-GET client, on a loopback S3 server")]
struct Args {
    #[arg(long, default_value_t = 16)]
    objects: u64,
    #[arg(long, default_value_t = 64)]
    object_mib: u64,
    /// Parallel GETs: the raw client's workers and the engine's `gets_in_flight_max`.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Concurrent readers through the engine (each reads whole objects sequentially).
    #[arg(long, default_value_t = 8)]
    readers: usize,
    /// Threads of the engine's backfill runtime.
    #[arg(long, default_value_t = 2)]
    backfill_threads: usize,
    /// Ranged GET size (the raw client's, and the engine's fetch_bytes).
    #[arg(long, default_value_t = 16)]
    fetch_mib: u64,
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Untimed rounds of both first (the first engine of a process faults in its memory and the
    /// cache file's pages; the first raw pass warms connections).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Where the cache files and metadata go.
    #[arg(long, default_value = "/var/tmp/bucketfs-backfill-bench")]
    dir: PathBuf,
    #[arg(long)]
    report: Option<PathBuf>,
    /// Let the S3 server and the client share every core (default: each gets half).
    #[arg(long)]
    shared_cores: bool,
    /// Tiny sizes, one round: checks the harness.
    #[arg(long)]
    smoke: bool,
}

struct Run {
    seconds: f64,
    bytes: u64,
    gets: u64,
}

impl Run {
    fn gbps(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e9
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.objects = 4;
        args.object_mib = 8;
        args.connections = 4;
        args.readers = 2;
        args.fetch_mib = 4;
        args.rounds = 1;
        args.warmup = 0;
    }
    // The S3 server and the client side (raw client, or engine + cache) each get their own
    // cores, so the side that spends more CPU cannot take it from the server: the comparison is
    // of what each client does with the same resources. `--shared-cores` lets them mix.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let split = !args.shared_cores && cores >= 2;
    let server_cpus = split.then(|| if cores == 2 { "0".to_string() } else { format!("0-{}", cores / 2 - 1) });
    let server = testkit::S3Server::start_on(server_cpus.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    if split {
        pin_self_to(cores / 2..cores)?;
    }
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    eprintln!("SeaweedFS up in {:?} at {}", server.startup(), server.endpoint());
    let bucket = client_rt.block_on(server.new_bucket("bench")).map_err(|e| anyhow::anyhow!(e))?;
    let config = ObjectStoreConfig::S3(S3Config::static_keys(
        &bucket,
        server.endpoint(),
        server.region(),
        server.access_key(),
        server.secret_key(),
    ));
    let client: Arc<dyn ObjectClient> = Arc::new(StoreClient::new(&config).context("S3 client")?);

    // The object set.
    let object_bytes = args.object_mib * MIB;
    let keys: Vec<String> = (0..args.objects).map(|i| format!("dataset/shard-{i:04}.bin")).collect();
    let sums: Vec<u32> = client_rt.block_on(async {
        let mut sums = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let mut body = vec![0u8; object_bytes as usize];
            rand_chacha::ChaCha8Rng::seed_from_u64(i as u64).fill_bytes(&mut body);
            sums.push(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &body) as u32);
            upload(&*client, key, Bytes::from(body)).await?;
        }
        anyhow::Ok(sums)
    })?;
    let total = object_bytes * args.objects;
    eprintln!("uploaded {} objects, {} MiB", args.objects, total / MIB);

    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let mut raw_runs = Vec::new();
    let mut cold_runs = Vec::new();
    let mut warm_runs = Vec::new();
    for _ in 0..args.warmup {
        client_rt.block_on(raw(&client, &keys, object_bytes, &args))?;
        engine_runs(&client_rt, &client, &keys, &sums, object_bytes, &args, &bucket)?;
        eprintln!("warm-up round done (not counted)");
    }
    for round in 0..args.rounds {
        let engine_first = round % 2 == 1;
        if !engine_first {
            raw_runs.push(client_rt.block_on(raw(&client, &keys, object_bytes, &args))?);
        }
        let (cold, warm) = engine_runs(&client_rt, &client, &keys, &sums, object_bytes, &args, &bucket)?;
        cold_runs.push(cold);
        warm_runs.push(warm);
        if engine_first {
            raw_runs.push(client_rt.block_on(raw(&client, &keys, object_bytes, &args))?);
        }
        let (r, c, w) = (raw_runs.last(), cold_runs.last(), warm_runs.last());
        if let (Some(r), Some(c), Some(w)) = (r, c, w) {
            eprintln!("{}", row(round as usize + 1, r, c, w));
        }
    }
    let report = report(&args, cores, total, &raw_runs, &cold_runs, &warm_runs);
    println!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    if warm_runs.iter().any(|w| w.gets != 0) {
        bail!("a warm read sent GETs to the bucket");
    }
    Ok(())
}

/// Restricts this thread (and every thread it starts later) to `cpus`.
fn pin_self_to(cpus: std::ops::Range<usize>) -> anyhow::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    for cpu in cpus {
        set.set(cpu);
    }
    rustix::thread::sched_setaffinity(None, &set).context("pinning the client to its cores")?;
    Ok(())
}

async fn upload(client: &dyn ObjectClient, key: &str, body: Bytes) -> anyhow::Result<()> {
    const PART: usize = 16 << 20;
    if body.len() <= PART {
        client.put(key, body, &PutOptions::default()).await?;
        return Ok(());
    }
    let mut up = client.put_multipart(key, &PutOptions::default()).await?;
    let mut parts = Vec::new();
    for at in (0..body.len()).step_by(PART) {
        parts.push(up.put_part(body.slice(at..(at + PART).min(body.len()))));
    }
    for p in parts {
        p.await?;
    }
    up.complete().await?;
    Ok(())
}

/// `connections` workers, ranged GETs of fetch_mib over every object, bodies read and dropped.
async fn raw(client: &Arc<dyn ObjectClient>, keys: &[String], object_bytes: u64, args: &Args) -> anyhow::Result<Run> {
    let fetch = args.fetch_mib * MIB;
    let ranges: Arc<Vec<(String, u64, u64)>> = Arc::new(
        keys.iter()
            .flat_map(|k| {
                (0..object_bytes).step_by(fetch as usize).map(move |s| (k.clone(), s, (s + fetch).min(object_bytes)))
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let (client, ranges, next, bytes) = (client.clone(), ranges.clone(), next.clone(), bytes.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((key, s, e)) = ranges.get(i) else { break };
                let mut body = client.get_range(key, *s..*e, None).await?;
                // Consume every byte as a reader would (the engine pass checksums what it reads).
                let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    digest.update(&chunk);
                    bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                std::hint::black_box(digest.finalize());
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(Run {
        seconds: started.elapsed().as_secs_f64(),
        bytes: bytes.load(Ordering::Relaxed),
        gets: ranges.len() as u64,
    })
}

/// A fresh engine over a fresh cache: a cold pass then a warm pass of every object.
fn engine_runs(
    rt: &tokio::runtime::Runtime,
    client: &Arc<dyn ObjectClient>,
    keys: &[String],
    sums: &[u32],
    object_bytes: u64,
    args: &Args,
    bucket: &str,
) -> anyhow::Result<(Run, Run)> {
    let cache = args.dir.join("cache.img");
    let meta = args.dir.join("meta");
    let _ = std::fs::remove_file(&cache);
    let _ = std::fs::remove_dir_all(&meta);
    let total = object_bytes * keys.len() as u64;
    // Room for the whole set plus slack, in 64 MiB segments.
    let cache_bytes = ((total * 3 / 2).div_ceil(64 * MIB) * 64 * MIB + 256 * MIB).max(1024 * MIB);
    // Allocated up front, as a device is: writes into a sparse file would pay for block
    // allocation on every extent.
    let file = std::fs::File::create(&cache)?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, cache_bytes)
        .with_context(|| format!("allocating {}", cache.display()))?;
    drop(file);
    let spec = DeviceSpec::File { path: cache.clone(), iopoll: false };
    blockstore::format(&spec, &FormatOptions::default())?;
    let store = Store::open(&spec, StoreConfig::default())?;
    let config = EngineConfig {
        fetch_bytes: args.fetch_mib * MIB,
        backfill_threads: args.backfill_threads,
        ..EngineConfig::default()
    };
    let buckets =
        vec![BucketSpec { name: bucket.into(), client: client.clone(), gets_in_flight_max: args.connections }];
    let engine = Arc::new(Engine::new(config, store, &meta, buckets, vec![ExportSpec::new("/data", bucket)])?);
    let cold = rt.block_on(read_all(&engine, keys, sums, object_bytes, args.readers))?;
    let st = engine.stats();
    let gl = &st.buckets[0].get_latency;
    eprintln!(
        "cold: read latency p50 {} us p99 {} us max {} us; GET latency p50 {} us p99 {} us; hits {} misses {} joins {} ahead {}",
        st.read_latency.p50_us, st.read_latency.p99_us, st.read_latency.max_us, gl.p50_us, gl.p99_us,
        st.block_hits, st.block_misses, st.block_joins, st.read_ahead_blocks
    );
    while engine.backfill_blocks_in_flight() > 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let warm = rt.block_on(read_all(&engine, keys, sums, object_bytes, args.readers))?;
    match Arc::try_unwrap(engine) {
        Ok(e) => e.shutdown()?,
        Err(_) => bail!("engine still referenced"),
    }
    let _ = std::fs::remove_file(&cache);
    Ok((cold, warm))
}

/// `readers` tasks, each reading whole objects in 1 MiB reads; checks every object's CRC.
async fn read_all(
    engine: &Arc<Engine>,
    keys: &[String],
    sums: &[u32],
    object_bytes: u64,
    readers: usize,
) -> anyhow::Result<Run> {
    let ns = engine.export("/data").context("export")?.clone();
    let gets_before: u64 = engine.stats().buckets.iter().map(|b| b.requests.get("get").copied().unwrap_or(0)).sum();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let keys = Arc::new(keys.to_vec());
    let sums = Arc::new(sums.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let (engine, ns, next, keys, sums) = (engine.clone(), ns.clone(), next.clone(), keys.clone(), sums.clone());
        tasks.push(tokio::spawn(async move {
            let mut bytes = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (Some(key), Some(sum)) = (keys.get(i), sums.get(i)) else { break };
                let rec = ns.lookup_path(key).await?;
                let fh = ns.handle(&rec);
                let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
                let mut off = 0;
                while off < object_bytes {
                    let r = engine.read(&fh, off, MIB).await?;
                    for c in &r.chunks {
                        for p in c.pieces() {
                            digest.update(p);
                        }
                    }
                    off += r.len() as u64;
                    if r.is_empty() {
                        bail!("{key}: empty read at {off}");
                    }
                }
                if digest.finalize() as u32 != *sum {
                    bail!("{key}: bytes read differ from the bytes uploaded");
                }
                bytes += off;
            }
            anyhow::Ok(bytes)
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let gets_after: u64 = engine.stats().buckets.iter().map(|b| b.requests.get("get").copied().unwrap_or(0)).sum();
    Ok(Run { seconds, bytes, gets: gets_after - gets_before })
}

/// One round as a Markdown table row (also the progress line).
fn row(round: usize, r: &Run, c: &Run, w: &Run) -> String {
    format!(
        "| {round} | {:.2} | {} | {:.2} | {} | {:.2} | {:.2} | {} |",
        r.gbps(),
        r.gets,
        c.gbps(),
        c.gets,
        c.gbps() / r.gbps(),
        w.gbps(),
        w.gets
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `cores`: the machine's, counted before the client pinned itself.
fn report(args: &Args, cores: usize, total: u64, raw: &[Run], cold: &[Run], warm: &[Run]) -> String {
    let mut s = String::new();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    s += "# Engine read path vs raw ranged GETs (SeaweedFS on loopback)\n\n";
    s += &format!(
        "Cores: {}.\n\n",
        if args.shared_cores || cores < 2 {
            "server and client share every core".to_string()
        } else {
            format!(
                "S3 server on cores 0..{}, client side (raw client, or engine + cache) on cores {}..{}",
                cores / 2,
                cores / 2,
                cores
            )
        }
    );
    s += &format!(
        "Host {} ({cores} cores). {} objects × {} MiB = {} MiB; {} connections; {} readers; GETs of {} MiB; 1 MiB reads; cache: file, io_uring O_DIRECT; {} untimed warm-up round(s) first.\n\n",
        host.trim(),
        args.objects,
        args.object_mib,
        total / MIB,
        args.connections,
        args.readers,
        args.fetch_mib,
        args.warmup
    );
    s += "| round | raw GB/s | raw GETs | engine cold GB/s | cold GETs | cold / raw | engine warm GB/s | warm GETs |\n";
    s += "|---|---|---|---|---|---|---|---|\n";
    for (i, ((r, c), w)) in raw.iter().zip(cold).zip(warm).enumerate() {
        s += &format!("{}\n", row(i + 1, r, c, w));
    }
    let ratios: Vec<f64> = raw.iter().zip(cold).map(|(r, c)| c.gbps() / r.gbps()).collect();
    s += &format!(
        "\nMedian cold/raw ratio: **{:.2}** (target ≥ 0.9). Warm GETs: {} (target 0).\n",
        median(ratios),
        warm.iter().map(|w| w.gets).sum::<u64>()
    );
    s
}
