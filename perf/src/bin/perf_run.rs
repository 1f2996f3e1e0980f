//! `perf-run`: bucketfs side by side with the peers users would pick instead, on one machine, in
//! one run, over workloads shaped like ML training; what every workload costs in requests to the
//! bucket; a Markdown report with PNG plots. `perf/run` installs what it needs, builds, and runs
//! this (perf/README.md).
//!
//! 1. Starts SeaweedFS (testkit) and a request-counting proxy in front of it; every system that
//!    reads the bucket goes through the proxy, so requests are counted the same way for all.
//! 2. Generates the dataset (`perf::dataset`) into a local directory and uploads it.
//! 3. For each system in turn (fresh, with an empty cache; stopped and its cache removed after):
//!    bucketfs (NFSv3), nfs-ganesha (FSAL_VFS on the local directory: the NFS server ceiling),
//!    `rclone serve nfs`, `rclone mount`, s3fs, the local disk itself (the device ceiling) and a
//!    raw parallel-GET client (the bucket's ceiling), runs the phases:
//!    epoch 1 (cold), 2, 3; a fill read of the large files, then fio random reads of 4 KiB and
//!    128 KiB within them; small files cold and warm; listing cold and warm; checkpoint rounds
//!    (write, fsync/COMMIT, rename) and the time until the bucket holds the last one. The host's
//!    page cache is dropped before every read phase, so each system answers from its own cache.
//!    Requests are the proxy's counts between the start of a phase and the moment they stop
//!    moving after it (read-ahead and uploads included).
//! 4. Checks: every byte read is checked against the dataset's CRCs; bucketfs's epochs 2 and 3
//!    send zero requests (the dataset fits its cache); the bucket holds the last checkpoint
//!    byte for byte. A failed check or phase fails the run (exit 1) after the report is written.
//! 5. Optionally (`--kernel`) the same shapes through the Linux kernel client in the QEMU guest
//!    (`image/qemu/perf-kernel.sh`), appended to the report.
//!
//! NFS systems are read with the pure-Rust nfs-rs client over NFSv3 (rclone serves only v3)
//! except random reads, which are fio's nfs engine (libnfs); mounts are read with std::fs and
//! fio's io_uring engine with O_DIRECT. Servers run on the first half of the cores, clients on
//! the other half.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Parser, ValueEnum};
use engine::object::store::{ObjectStoreConfig, S3Config, StoreClient};
use engine::object::{get_range_bytes, ObjectClient};
use futures::{StreamExt, TryStreamExt};
use perf::dataset::{self, Dataset, DatasetSpec};
use perf::fio::{Fio, Measure, FIO_GRACE};
use perf::peers::{Peer, PeerKind, S3Target};
use perf::plot::{self, BarChart};
use perf::s3count::{CountingProxy, RequestCounts};
use perf::servers::{self, Cpus, GaneshaSpec};
use perf::workloads::{self, Access, FileSpec, Outcome, Percentiles, MIB};

#[derive(Parser)]
#[command(about = "bucketfs vs peers over ML-shaped workloads, with requests to the bucket and their cost")]
struct Args {
    /// Tiny sizes, short runs: the harness's smoke test (the test command runs it).
    #[arg(long)]
    smoke: bool,
    /// Work directory: dataset, caches, logs, plots' data (emptied per system).
    #[arg(long, default_value = "/var/tmp/bucketfs-perf-run")]
    dir: PathBuf,
    /// Where to write the Markdown report (PNG plots go beside it, `<stem>-*.png`).
    #[arg(long)]
    report: Option<PathBuf>,
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = System::ALL)]
    systems: Vec<System>,
    /// Readers / fio jobs per workload.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// 1 MiB reads in flight per NFS reader in the epoch workload.
    #[arg(long, default_value_t = 4)]
    depth: usize,
    /// fio iodepth of the 4 KiB random reads (128 KiB: a quarter).
    #[arg(long, default_value_t = 16)]
    iodepth: u32,
    /// Seconds of each fio random-read run (default 20; smoke 2).
    #[arg(long)]
    random_seconds: Option<u64>,
    /// Checkpoint size, MiB (default 512; smoke 8).
    #[arg(long)]
    ckpt_mib: Option<u64>,
    #[arg(long, default_value_t = 3)]
    ckpt_rounds: u32,
    /// How long a checkpoint may take to reach the bucket, seconds.
    #[arg(long, default_value_t = 300)]
    upload_timeout_s: u64,
    #[arg(long, default_value = "/opt/bucketfs-test/fio-nfs/bin/fio")]
    fio: PathBuf,
    /// The bucketfs binary (default: target/release/bucketfs).
    #[arg(long)]
    bucketfs: Option<PathBuf>,
    /// Let servers and clients share every core (default: servers on the first half).
    #[arg(long)]
    shared_cores: bool,
    /// Also run the workloads through the Linux kernel client in the QEMU guest.
    #[arg(long)]
    kernel: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum System {
    Bucketfs,
    RcloneNfs,
    RcloneMount,
    S3fs,
    RawS3,
    Ganesha,
    LocalDisk,
}

impl System {
    const ALL: [System; 7] = [
        System::Bucketfs,
        System::RcloneNfs,
        System::RcloneMount,
        System::S3fs,
        System::RawS3,
        System::Ganesha,
        System::LocalDisk,
    ];

    /// Short name: report columns, checkpoint directories, file names.
    fn slug(self) -> &'static str {
        match self {
            System::Bucketfs => "bucketfs",
            System::RcloneNfs => "rclone-nfs",
            System::RcloneMount => "rclone-mount",
            System::S3fs => "s3fs",
            System::RawS3 => "raw-s3",
            System::Ganesha => "ganesha",
            System::LocalDisk => "local-disk",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            System::Bucketfs => "bucketfs over NFSv3, cache file on the local disk, bucket on SeaweedFS",
            System::RcloneNfs => "`rclone serve nfs --vfs-cache-mode full` (NFSv3), same bucket",
            System::RcloneMount => "`rclone mount --vfs-cache-mode full` (FUSE), same bucket",
            System::S3fs => "s3fs with `use_cache` (FUSE), same bucket",
            System::RawS3 => "parallel ranged GETs / LIST straight to the bucket (the bucket's ceiling)",
            System::Ganesha => "nfs-ganesha FSAL_VFS over NFSv3 on the dataset's local copy (the NFS server ceiling)",
            System::LocalDisk => "the dataset's local copy read directly (the device ceiling)",
        }
    }

    fn reads_bucket(self) -> bool {
        !matches!(self, System::Ganesha | System::LocalDisk)
    }

    fn peer(self) -> Option<PeerKind> {
        match self {
            System::RcloneNfs => Some(PeerKind::RcloneNfs),
            System::RcloneMount => Some(PeerKind::RcloneMount),
            System::S3fs => Some(PeerKind::S3fs),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Epoch(u8),
    RandFill,
    Random4k,
    Random128k,
    SmallCold,
    SmallWarm,
    ListCold,
    ListWarm,
    Checkpoint,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Metric {
    MegabytesPerS,
    Iops,
    FilesPerS,
    EntriesPerS,
}

impl Metric {
    fn unit(self) -> &'static str {
        match self {
            Metric::MegabytesPerS => "MB/s",
            Metric::Iops => "IOPS",
            Metric::FilesPerS => "files/s",
            Metric::EntriesPerS => "entries/s",
        }
    }
}

impl Phase {
    fn label(self) -> String {
        match self {
            Phase::Epoch(1) => "epoch 1 (cold)".into(),
            Phase::Epoch(n) => format!("epoch {n}"),
            Phase::RandFill => "large files: first read".into(),
            Phase::Random4k => "random 4 KiB reads".into(),
            Phase::Random128k => "random 128 KiB reads".into(),
            Phase::SmallCold => "small files, cold".into(),
            Phase::SmallWarm => "small files, warm".into(),
            Phase::ListCold => "listing, cold".into(),
            Phase::ListWarm => "listing, warm".into(),
            Phase::Checkpoint => "checkpoint round".into(),
        }
    }

    fn metric(self) -> Metric {
        match self {
            Phase::Epoch(_) | Phase::RandFill | Phase::Checkpoint => Metric::MegabytesPerS,
            Phase::Random4k | Phase::Random128k => Metric::Iops,
            Phase::SmallCold | Phase::SmallWarm => Metric::FilesPerS,
            Phase::ListCold | Phase::ListWarm => Metric::EntriesPerS,
        }
    }

    fn value(self, o: &Outcome) -> f64 {
        match self.metric() {
            Metric::MegabytesPerS => o.bytes_per_s() / 1e6,
            _ => o.ops_per_s(),
        }
    }

    /// What one latency sample is.
    fn latency_of(self) -> &'static str {
        match self {
            Phase::Epoch(_) | Phase::RandFill => "per 1 MiB read",
            Phase::Random4k | Phase::Random128k => "per read (fio clat)",
            Phase::SmallCold | Phase::SmallWarm => "per file (open + read + close)",
            Phase::ListCold | Phase::ListWarm => "",
            Phase::Checkpoint => "per round (write + fsync + rename)",
        }
    }
}

/// One system's result of one phase.
#[derive(Clone, Debug)]
struct Cell {
    outcome: Result<Outcome, String>,
    /// Requests to the bucket during the phase (None for systems that do not use it).
    requests: Option<RequestCounts>,
    /// Checkpoint: seconds from the last rename until the bucket held it, verified.
    to_bucket_s: Option<f64>,
    note: Option<String>,
}

impl Cell {
    fn failed(why: String) -> Cell {
        Cell { outcome: Err(why), requests: None, to_bucket_s: None, note: None }
    }
}

type Results = BTreeMap<System, BTreeMap<Phase, Cell>>;

/// What every phase needs.
struct Ctx {
    args: Args,
    rt: tokio::runtime::Runtime,
    cpus: Cpus,
    data_dir: PathBuf,
    dataset: Dataset,
    proxy: CountingProxy,
    /// The bucket through the proxy (raw-S3 ceiling), and directly (checks, not counted).
    proxied: Arc<dyn ObjectClient>,
    direct: Arc<dyn ObjectClient>,
    s3: S3Target,
    random_seconds: u64,
    ckpt_bytes: u64,
    bucketfs_binary: PathBuf,
    /// The machine's cores (before this process pinned itself to the client's).
    cores: usize,
    notes: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let spec = if args.smoke { DatasetSpec::smoke() } else { DatasetSpec::full() };
    let random_seconds = args.random_seconds.unwrap_or(if args.smoke { 2 } else { 20 });
    let ckpt_bytes = args.ckpt_mib.unwrap_or(if args.smoke { 8 } else { 512 }) * MIB;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpus = Cpus::split(args.shared_cores, cores);
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    check_free_space(&args.dir, spec.total_bytes() * 4 + ckpt_bytes * 8)?;

    let s3 = testkit::S3Server::start_on(cpus.servers.as_deref()).map_err(|e| anyhow!(e))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let bucket = rt.block_on(s3.new_bucket("perf")).map_err(|e| anyhow!(e))?;
    let proxy = CountingProxy::start(s3.endpoint(), cpus.servers.as_deref())?;
    let target = |endpoint: &str| S3Target {
        endpoint: endpoint.to_string(),
        bucket: bucket.clone(),
        region: s3.region().to_string(),
        access_key: s3.access_key().to_string(),
        secret_key: s3.secret_key().to_string(),
    };
    let client = |t: &S3Target| -> anyhow::Result<Arc<dyn ObjectClient>> {
        let config = ObjectStoreConfig::S3(S3Config::static_keys(
            &t.bucket,
            &t.endpoint,
            &t.region,
            &t.access_key,
            &t.secret_key,
        ));
        Ok(Arc::new(StoreClient::new(&config).with_context(|| format!("S3 client for {}", t.endpoint))?))
    };
    let s3_proxied = target(&proxy.endpoint());
    let direct = client(&target(s3.endpoint()))?;
    let proxied = client(&s3_proxied)?;

    let data_dir = args.dir.join("dataset");
    let names: Vec<&str> = System::ALL.iter().map(|s| s.slug()).collect();
    eprintln!(
        "perf-run: generating the dataset ({:.2} GiB) in {}",
        spec.total_bytes() as f64 / (1u64 << 30) as f64,
        data_dir.display()
    );
    let dataset = dataset::generate(&spec, &data_dir, &names)?;
    let upload_started = Instant::now();
    rt.block_on(dataset::upload(&dataset, &data_dir, direct.clone(), 32))?;
    eprintln!(
        "perf-run: uploaded {} objects to {} in {:.1} s",
        dataset.all_files().len(),
        direct.describe(),
        upload_started.elapsed().as_secs_f64()
    );
    pin_self_to(&cpus)?;

    let bucketfs_binary = servers::bucketfs_binary(args.bucketfs.as_deref());
    // Absolute: bucketfs runs in its own directory.
    let bucketfs_binary = std::fs::canonicalize(&bucketfs_binary).unwrap_or(bucketfs_binary);
    let mut ctx = Ctx {
        args,
        rt,
        cpus,
        data_dir,
        dataset,
        proxy,
        proxied,
        direct,
        s3: s3_proxied,
        random_seconds,
        ckpt_bytes,
        bucketfs_binary,
        cores,
        notes: Vec::new(),
    };
    let mut results: Results = BTreeMap::new();
    let systems = ctx.args.systems.clone();
    for system in systems {
        eprintln!("perf-run: == {}", system.slug());
        let cells = run_system(&mut ctx, system);
        for (phase, cell) in &cells {
            eprintln!("perf-run: {:<12} {:<24} {}", system.slug(), phase.label(), summary(*phase, cell));
        }
        results.insert(system, cells);
    }
    let kernel = if ctx.args.kernel { Some(run_kernel(&ctx)) } else { None };
    let checks = checks(&ctx, &results);
    // What fails the run: a check, a system that could not start (a missing install), a phase of
    // bucketfs. A peer's or a ceiling's phase that failed (libnfs 4.0 now and then hangs in
    // fio's nfs engine against rclone or ganesha, see nfs-bench) is reported, not fatal.
    let mut fatal: Vec<String> = Vec::new();
    for (system, cells) in &results {
        for (phase, cell) in cells {
            let Err(e) = &cell.outcome else { continue };
            let line = format!("{} {}: {e}", system.slug(), phase.label());
            if *system == System::Bucketfs || e.starts_with("not available") {
                fatal.push(line);
            } else {
                ctx.notes.push(format!("failed (reported, not fatal): {line}"));
            }
        }
    }
    let report_path = ctx.args.report.clone().unwrap_or_else(|| ctx.args.dir.join("report.md"));
    let plots = write_plots(&results, &report_path);
    let report = report(&ctx, &results, &checks, &plots, kernel.as_ref(), started.elapsed());
    if let Some(parent) = report_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&report_path, &report).with_context(|| format!("writing {}", report_path.display()))?;
    let json_path = report_path.with_extension("json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results_json(&results))?)?;
    println!("{report}");
    eprintln!("perf-run: report {} ({:.0} s)", report_path.display(), started.elapsed().as_secs_f64());
    let failed: Vec<&String> = checks.iter().filter(|c| !c.1).map(|c| &c.0).collect();
    if let Some(Err(e)) = &kernel {
        bail!("kernel-client run failed: {e}");
    }
    if !failed.is_empty() || !fatal.is_empty() {
        bail!("failed checks: {failed:?}; failed phases: {fatal:?}");
    }
    Ok(())
}

fn check_free_space(dir: &Path, need_bytes: u64) -> anyhow::Result<()> {
    let st = rustix::fs::statvfs(dir).with_context(|| format!("statvfs {}", dir.display()))?;
    let free = st.f_bavail * st.f_frsize;
    if free < need_bytes {
        bail!("{}: {} GiB free, the run needs about {} GiB", dir.display(), free >> 30, need_bytes.div_ceil(1 << 30));
    }
    Ok(())
}

/// Restricts this process's threads (and the threads they start) to the client's cores.
fn pin_self_to(cpus: &Cpus) -> anyhow::Result<()> {
    let Some(list) = &cpus.client else { return Ok(()) };
    let mut set = rustix::thread::CpuSet::new();
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        for cpu in a.parse::<usize>()?..=b.parse::<usize>()? {
            set.set(cpu);
        }
    }
    rustix::thread::sched_setaffinity(None, &set).context("pinning the client to its cores")
}

/// Drops the host's page cache so a read phase is answered by the system's own cache.
fn drop_page_cache() -> Result<(), String> {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| format!("could not drop the page cache: {e}"))
}

/// The proxy's counts once they stop moving (`quiet` without a request; at most `limit`).
fn settled_counts(proxy: &CountingProxy, quiet: Duration, limit: Duration) -> RequestCounts {
    let deadline = Instant::now() + limit;
    let mut last = proxy.counts();
    loop {
        std::thread::sleep(quiet);
        let now = proxy.counts();
        if now.total() == last.total() || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// A started system: where it serves the dataset, and what to stop afterwards.
enum Running {
    Bucketfs(servers::Bucketfs),
    Ganesha { child: Child, rpcbind: Option<Child> },
    Peer(Peer),
    Direct,
}

fn start(ctx: &Ctx, system: System) -> anyhow::Result<(Running, Option<Access>)> {
    let dir = ctx.args.dir.join(system.slug());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // Room for the whole dataset and a few checkpoints: nothing is evicted while measuring.
    let cache_bytes = ctx.dataset.spec.total_bytes() * 5 / 4 + 3 * ctx.ckpt_bytes + 512 * MIB;
    match system {
        System::Bucketfs => {
            let t = &ctx.s3;
            let bucket_section = format!(
                "kind = \"s3\"\nbucket = \"{}\"\nendpoint = \"{}\"\nregion = \"{}\"\npath_style = true\n\
                 allow_http = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                t.bucket, t.endpoint, t.region, t.access_key, t.secret_key
            );
            let b = servers::start_bucketfs(&servers::BucketfsSpec {
                binary: &ctx.bucketfs_binary,
                dir: &dir,
                cache_bytes,
                bucket_section: &bucket_section,
                // Listings and attributes trusted for an hour, as the peers are told
                // (`--dir-cache-time 1h`, `stat_cache_expire=3600`): the bucket does not change
                // behind the benchmark's back.
                extra: "[engine]\nlisting_ttl = \"1h\"\n",
                cpus: ctx.cpus.servers.as_deref(),
            })?;
            let url = b.v3_url();
            Ok((Running::Bucketfs(b), Some(Access::Nfs { url_v3: url })))
        }
        System::Ganesha => {
            let mut rpcbind = None;
            let (nfs_port, mount_port) = (servers::free_port()?, servers::free_port()?);
            let g = servers::start_ganesha(
                &GaneshaSpec {
                    work_dir: &dir,
                    export: &ctx.data_dir,
                    nfs_port,
                    mount_port,
                    v3: true,
                    cpus: ctx.cpus.servers.as_deref(),
                },
                &mut rpcbind,
            )?;
            let url = g.v3_url(nfs_port, mount_port);
            let mut child = g.child;
            if let Some(why) = g.v3_unavailable {
                servers::stop(&mut child);
                if let Some(r) = rpcbind.as_mut() {
                    servers::stop(r);
                }
                bail!("{why}");
            }
            Ok((Running::Ganesha { child, rpcbind }, Some(Access::Nfs { url_v3: url })))
        }
        System::RcloneNfs | System::RcloneMount | System::S3fs => {
            let kind = system.peer().expect("a peer system");
            let peer = Peer::start(kind, &ctx.s3, &dir, ctx.cpus.servers.as_deref(), cache_bytes)?;
            let access = peer.access().clone();
            Ok((Running::Peer(peer), Some(access)))
        }
        System::LocalDisk => Ok((Running::Direct, Some(Access::Path(ctx.data_dir.clone())))),
        System::RawS3 => Ok((Running::Direct, None)),
    }
}

fn stop(running: Running) -> anyhow::Result<()> {
    match running {
        Running::Bucketfs(mut b) => {
            let why = servers::stop_gently(&mut b.child, Duration::from_secs(20));
            if !why.is_empty() && !why.contains("exited") {
                eprintln!("bucketfs: {why}");
            }
            Ok(())
        }
        Running::Ganesha { mut child, rpcbind } => {
            servers::stop(&mut child);
            if let Some(mut r) = rpcbind {
                servers::stop(&mut r);
            }
            Ok(())
        }
        Running::Peer(p) => p.stop(),
        Running::Direct => Ok(()),
    }
}

fn run_system(ctx: &mut Ctx, system: System) -> BTreeMap<Phase, Cell> {
    let mut cells = BTreeMap::new();
    let (running, access) = match start(ctx, system) {
        Ok(r) => r,
        Err(e) => {
            let why = format!("not available: {e:#}");
            for phase in phases(system) {
                cells.insert(phase, Cell::failed(why.clone()));
            }
            return cells;
        }
    };
    for phase in phases(system) {
        let cell = run_phase(ctx, system, access.as_ref(), phase);
        let failed = cell.outcome.is_err();
        cells.insert(phase, cell);
        if failed && matches!(phase, Phase::Epoch(1)) {
            // A system that cannot read its dataset once will not do better later.
            let rest: Vec<Phase> = phases(system).into_iter().filter(|p| !cells.contains_key(p)).collect();
            for p in rest {
                cells.insert(p, Cell::failed("skipped: the first epoch failed".into()));
            }
            break;
        }
    }
    if let Err(e) = stop(running) {
        ctx.notes.push(format!("{}: stopping: {e:#}", system.slug()));
    }
    let _ = std::fs::remove_dir_all(ctx.args.dir.join(system.slug()));
    cells
}

fn phases(system: System) -> Vec<Phase> {
    let mut v = vec![
        Phase::Epoch(1),
        Phase::Epoch(2),
        Phase::Epoch(3),
        Phase::RandFill,
        Phase::Random4k,
        Phase::Random128k,
        Phase::SmallCold,
        Phase::SmallWarm,
        Phase::ListCold,
        Phase::ListWarm,
        Phase::Checkpoint,
    ];
    if system == System::RawS3 {
        // Random reads and checkpoints are not a GET client's to do.
        v.retain(|p| !matches!(p, Phase::Random4k | Phase::Random128k | Phase::Checkpoint));
    }
    v
}

fn run_phase(ctx: &mut Ctx, system: System, access: Option<&Access>, phase: Phase) -> Cell {
    let mut note = None;
    if let Err(e) = drop_page_cache() {
        if !ctx.notes.contains(&e) {
            ctx.notes.push(e);
        }
    }
    let before = ctx.proxy.counts();
    let jobs = ctx.args.jobs;
    let seed = |n: u64| 0x5eed_0000 + n;
    let outcome: anyhow::Result<Outcome> = match (phase, access) {
        (Phase::Epoch(n), Some(a)) => {
            workloads::epoch(&ctx.rt, a, &ctx.dataset.shards, jobs, ctx.args.depth, seed(u64::from(n)))
        }
        (Phase::RandFill, Some(a)) => workloads::epoch(&ctx.rt, a, &ctx.dataset.rand, jobs, ctx.args.depth, seed(10)),
        (Phase::Random4k, Some(a)) => fio_random(ctx, a, 4096, ctx.args.iodepth, &mut note),
        (Phase::Random128k, Some(a)) => fio_random(ctx, a, 128 * 1024, (ctx.args.iodepth / 4).max(1), &mut note),
        (Phase::SmallCold | Phase::SmallWarm, Some(a)) => {
            workloads::small_files(&ctx.rt, a, &ctx.dataset.small, jobs, seed(20))
        }
        (Phase::ListCold | Phase::ListWarm, Some(a)) => {
            workloads::listing(&ctx.rt, a, dataset::LIST_DIR, ctx.dataset.list.len() as u64)
        }
        (Phase::Checkpoint, Some(a)) => {
            let dir = dataset::ckpt_dir(system.slug());
            workloads::checkpoint(&ctx.rt, a, &dir, ctx.ckpt_bytes, ctx.args.ckpt_rounds, ctx.args.depth)
        }
        (Phase::Epoch(n), None) => raw_epoch(ctx, &ctx.dataset.shards, seed(u64::from(n))),
        (Phase::RandFill, None) => raw_epoch(ctx, &ctx.dataset.rand, seed(10)),
        (Phase::SmallCold | Phase::SmallWarm, None) => raw_small(ctx),
        (Phase::ListCold | Phase::ListWarm, None) => raw_list(ctx),
        (_, None) => Err(anyhow!("not measured for this system")),
    };
    let mut to_bucket_s = None;
    let outcome = outcome.and_then(|o| {
        if phase == Phase::Checkpoint {
            let a = access.expect("checkpoints only run on systems with an access");
            let dir = dataset::ckpt_dir(system.slug());
            let last = ctx.args.ckpt_rounds - 1;
            if system.reads_bucket() {
                to_bucket_s = Some(wait_in_bucket(ctx, &format!("{dir}/{}", workloads::CKPT), last)?);
            }
            workloads::verify_checkpoint(&ctx.rt, a, &dir, ctx.ckpt_bytes, last)
                .context("reading the last checkpoint back through the system")?;
        }
        Ok(o)
    });
    let requests = if system.reads_bucket() {
        // A second of quiet (a smoke run: 0.3 s, its phases are tiny).
        let quiet = Duration::from_millis(if ctx.args.smoke { 300 } else { 1000 });
        Some(settled_counts(&ctx.proxy, quiet, Duration::from_secs(60)).since(&before))
    } else {
        None
    };
    Cell { outcome: outcome.map_err(|e| format!("{e:#}")), requests, to_bucket_s, note }
}

/// fio random reads over the large files: 4 jobs (`--jobs`) at `iodepth`, time-based.
fn fio_random(ctx: &Ctx, access: &Access, bs: u64, iodepth: u32, note: &mut Option<String>) -> anyhow::Result<Outcome> {
    let files = &ctx.dataset.rand;
    let size = files[0].size_bytes;
    let fio = Fio { program: &ctx.args.fio, dir: &ctx.args.dir, cpus: ctx.cpus.client.as_deref() };
    let limit = Duration::from_secs(ctx.random_seconds) + FIO_GRACE;
    let common = format!(
        "rw=randread\nbs={bs}\niodepth={iodepth}\nsize={size}\ngroup_reporting=1\nrandrepeat=0\n\
         time_based=1\nruntime={}\n",
        ctx.random_seconds
    );
    let jobs = |global: &str, path: &dyn Fn(&FileSpec) -> String| {
        let mut job = format!("[global]\n{global}{common}\n");
        for i in 0..ctx.args.jobs {
            let _ = write!(job, "[job{i}]\nfilename={}\n", path(&files[i % files.len()]));
        }
        job
    };
    let json = match access {
        Access::Nfs { url_v3 } => {
            let job = jobs(&format!("ioengine=nfs\nnfs_url={url_v3}\n"), &|f| f.name.clone());
            fio.json(&job, "random", limit)?
        }
        Access::Path(root) => {
            let path = |f: &FileSpec| root.join(&f.name).display().to_string().replace(':', "\\:");
            let direct = jobs("ioengine=io_uring\ndirect=1\n", &path);
            match fio.json(&direct, "random", limit) {
                Ok(json) => json,
                Err(e) => {
                    // Some FUSE file systems refuse O_DIRECT: then buffered, and say so.
                    *note = Some(format!("buffered (O_DIRECT refused: {e:#})"));
                    fio.json(&jobs("ioengine=io_uring\ndirect=0\n", &path), "random", limit)?
                }
            }
        }
    };
    let m = Measure::of_reads(&json)?;
    let seconds = ctx.random_seconds as f64;
    Ok(Outcome {
        seconds,
        bytes: (m.bytes_per_s * seconds) as u64,
        ops: (m.iops * seconds) as u64,
        latency: Percentiles { p50_us: m.p50_us, p99_us: m.p99_us, p999_us: m.p999_us },
    })
}

/// The bucket's ceiling for an epoch: every file in 8 MiB ranged GETs, `jobs × depth` in flight.
fn raw_epoch(ctx: &Ctx, files: &[FileSpec], seed: u64) -> anyhow::Result<Outcome> {
    const RANGE_BYTES: u64 = 8 * MIB;
    let order = workloads::shuffled(files, seed);
    let ranges: Vec<(String, u64, u64)> = order
        .iter()
        .flat_map(|f| {
            (0..f.size_bytes)
                .step_by(RANGE_BYTES as usize)
                .map(|at| (f.name.clone(), at, (at + RANGE_BYTES).min(f.size_bytes)))
        })
        .collect();
    let client = ctx.proxied.clone();
    let in_flight = ctx.args.jobs * ctx.args.depth;
    ctx.rt.block_on(async {
        let started = Instant::now();
        let samples: Vec<(u64, Duration)> = futures::stream::iter(ranges)
            .map(|(key, a, b)| {
                let client = client.clone();
                async move {
                    let t = Instant::now();
                    let bytes = get_range_bytes(&*client, &key, a..b, None)
                        .await
                        .with_context(|| format!("GET {key} {a}..{b}"))?;
                    if bytes.len() as u64 != b - a {
                        bail!("GET {key} {a}..{b}: {} bytes", bytes.len());
                    }
                    anyhow::Ok((b - a, t.elapsed()))
                }
            })
            .buffer_unordered(in_flight)
            .try_collect()
            .await?;
        Ok(outcome_of(&samples, started.elapsed()))
    })
}

/// The bucket's ceiling for small files: one GET per file, `jobs × depth` in flight, CRC checked.
fn raw_small(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let client = ctx.proxied.clone();
    let files = ctx.dataset.small.clone();
    let in_flight = ctx.args.jobs * ctx.args.depth;
    ctx.rt.block_on(async {
        let started = Instant::now();
        let samples: Vec<(u64, Duration)> = futures::stream::iter(files)
            .map(|f| {
                let client = client.clone();
                async move {
                    let t = Instant::now();
                    let bytes = get_range_bytes(&*client, &f.name, 0..f.size_bytes, None)
                        .await
                        .with_context(|| format!("GET {}", f.name))?;
                    if dataset::crc(&bytes) != f.crc32c {
                        bail!("GET {}: wrong bytes", f.name);
                    }
                    anyhow::Ok((f.size_bytes, t.elapsed()))
                }
            })
            .buffer_unordered(in_flight)
            .try_collect()
            .await?;
        Ok(outcome_of(&samples, started.elapsed()))
    })
}

/// The bucket's ceiling for a listing: ListObjectsV2 pages of 1,000 keys.
fn raw_list(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let prefix = format!("{}/", dataset::LIST_DIR);
    let started = Instant::now();
    let n = ctx.rt.block_on(async {
        let mut token: Option<String> = None;
        let mut n = 0u64;
        loop {
            let page = ctx
                .proxied
                .list(&prefix, true, token.as_deref(), 1000)
                .await
                .with_context(|| format!("LIST {prefix}"))?;
            n += page.objects.len() as u64;
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        anyhow::Ok(n)
    })?;
    let want = ctx.dataset.list.len() as u64;
    if n != want {
        bail!("LIST {prefix}: {n} keys, expected {want}");
    }
    Ok(Outcome { seconds: started.elapsed().as_secs_f64(), bytes: 0, ops: n, latency: Percentiles::default() })
}

fn outcome_of(samples: &[(u64, Duration)], elapsed: Duration) -> Outcome {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    for (_, d) in samples {
        h.record((d.as_micros() as u64).clamp(1, 3_600_000_000)).expect("within bounds");
    }
    Outcome {
        seconds: elapsed.as_secs_f64(),
        bytes: samples.iter().map(|s| s.0).sum(),
        ops: samples.len() as u64,
        latency: Percentiles::of(&h),
    }
}

/// Waits until the bucket holds round `round`'s checkpoint at `key` (read directly, not
/// counted); the seconds it took from now.
fn wait_in_bucket(ctx: &Ctx, key: &str, round: u32) -> anyhow::Result<f64> {
    let want = dataset::crc(&workloads::ckpt_data(round, ctx.ckpt_bytes));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(ctx.args.upload_timeout_s);
    let mut checked_etag: Option<String> = None;
    loop {
        let seen = ctx.rt.block_on(ctx.direct.head(key));
        if let Ok(meta) = seen {
            if meta.size == ctx.ckpt_bytes && meta.etag != checked_etag {
                let at = started.elapsed().as_secs_f64();
                let bytes = ctx.rt.block_on(get_range_bytes(&*ctx.direct, key, 0..meta.size, None));
                if let Ok(bytes) = bytes {
                    if dataset::crc(&bytes) == want {
                        return Ok(at);
                    }
                }
                checked_etag = meta.etag.clone();
            }
        }
        if Instant::now() > deadline {
            bail!("{key}: the last checkpoint was not in the bucket after {} s", ctx.args.upload_timeout_s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The kernel-client run in the QEMU guest: its Markdown.
fn run_kernel(ctx: &Ctx) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/qemu/perf-kernel.sh");
    let out = ctx.args.dir.join("kernel");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg("--out").arg(&out).env("BUCKETFS_BIN", &ctx.bucketfs_binary);
    if ctx.args.smoke {
        cmd.arg("--smoke");
    }
    eprintln!("perf-run: == kernel client in the QEMU guest ({})", script.display());
    let status = cmd.status().map_err(|e| format!("running {}: {e}", script.display()))?;
    let md = std::fs::read_to_string(out.join("kernel-shape.md")).unwrap_or_default();
    if !status.success() {
        let mut e = format!("{} failed ({status})", script.display());
        if !md.is_empty() {
            e.push_str("; its report:\n\n");
            e.push_str(&md);
        }
        return Err(e);
    }
    Ok(md)
}

fn value(results: &Results, system: System, phase: Phase) -> Option<f64> {
    let cell = results.get(&system)?.get(&phase)?;
    cell.outcome.as_ref().ok().map(|o| phase.value(o))
}

/// (what, passed, detail)
fn checks(ctx: &Ctx, results: &Results) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    if let Some(b) = results.get(&System::Bucketfs) {
        for n in [2u8, 3] {
            let detail = match b.get(&Phase::Epoch(n)) {
                Some(Cell { outcome: Ok(_), requests: Some(r), .. }) => Ok(*r),
                Some(c) => Err(c.outcome.clone().err().unwrap_or_else(|| "no request count".into())),
                None => Err("not run".into()),
            };
            let (ok, text) = match detail {
                Ok(r) => (r.total() == 0, format!("{} requests ({})", r.total(), r.describe())),
                Err(e) => (false, e),
            };
            out.push((
                format!("bucketfs epoch {n} sends zero requests to the bucket (the dataset fits the cache)"),
                ok,
                text,
            ));
        }
        let (ok, text) = match b.get(&Phase::Epoch(1)) {
            Some(Cell { outcome: Ok(_), requests: Some(r), .. }) => {
                let shards = ctx.dataset.shards.len() as u64;
                (r.get >= shards, format!("{} GETs for {shards} shards", r.get))
            }
            _ => (false, "epoch 1 did not run".into()),
        };
        out.push(("bucketfs epoch 1 fetched every shard from the bucket (cold)".into(), ok, text));
        let (ok, text) = match b.get(&Phase::Checkpoint) {
            Some(Cell { outcome: Ok(_), to_bucket_s: Some(s), .. }) => (true, format!("after {s:.1} s, byte for byte")),
            Some(c) => (false, c.outcome.clone().err().unwrap_or_default()),
            None => (false, "not run".into()),
        };
        out.push(("the bucket holds bucketfs's last checkpoint".into(), ok, text));
    }
    out
}

fn summary(phase: Phase, cell: &Cell) -> String {
    match &cell.outcome {
        Ok(o) => {
            let mut s = format!("{:.1} {}", phase.value(o), phase.metric().unit());
            if let Some(r) = &cell.requests {
                let _ = write!(s, ", {} requests", r.total());
            }
            s
        }
        Err(e) => e.clone(),
    }
}

fn fmt_value(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_ms(us: f64) -> String {
    if us <= 0.0 || us.is_nan() {
        "—".into()
    } else {
        fmt_value(us / 1e3)
    }
}

fn fmt_usd(usd: f64) -> String {
    if usd == 0.0 {
        "$0".into()
    } else if usd < 0.01 {
        format!("${usd:.5}")
    } else {
        format!("${usd:.3}")
    }
}

/// Workload groups of the report, each a table.
const GROUPS: [(&str, &[Phase]); 5] = [
    ("1. Epoch read of the shards (cold, then warm)", &[Phase::Epoch(1), Phase::Epoch(2), Phase::Epoch(3)]),
    ("2. Random reads within large files", &[Phase::RandFill, Phase::Random4k, Phase::Random128k]),
    ("3. Small files: open + read + close", &[Phase::SmallCold, Phase::SmallWarm]),
    ("4. Checkpoint: sequential 1 MiB writes + fsync + rename", &[Phase::Checkpoint]),
    ("5. Listing one large directory", &[Phase::ListCold, Phase::ListWarm]),
];

fn report(
    ctx: &Ctx,
    results: &Results,
    checks: &[(String, bool, String)],
    plots: &[(String, Result<PathBuf, String>)],
    kernel: Option<&Result<String, String>>,
    elapsed: Duration,
) -> String {
    let a = &ctx.args;
    let s = &ctx.dataset.spec;
    let mut r = String::new();
    let _ = writeln!(r, "# perf-run{}: bucketfs side by side\n", if a.smoke { " (smoke)" } else { "" });
    let _ = writeln!(r, "{} · {:.0} s\n", utc_now(), elapsed.as_secs_f64());
    let _ = writeln!(r, "## Machine and versions\n");
    for (k, v) in machine_and_versions(ctx) {
        let _ = writeln!(r, "- **{k}:** {v}");
    }
    let _ = writeln!(r, "- **Cores:** {}", ctx.cpus.describe("clients (this bench, fio)"));
    let _ = writeln!(r, "\n## Dataset and settings\n");
    let _ = writeln!(
        r,
        "- {} shards of {}–{} MiB ({:.2} GiB); {} large file(s) of {} MiB; {} small files of {} KiB; a \
         directory of {} entries; checkpoints of {} MiB × {} rounds.\n- {} readers / fio jobs; NFS \
         readers keep {} reads of 1 MiB in flight; fio random reads: 4 KiB at iodepth {}, 128 KiB at {}, \
         {} s each, after a first read of the large files.\n- The host's page cache is dropped before every \
         phase. Every byte read is checked against the dataset's CRC32C (the raw-S3 epoch checks sizes).",
        s.shards,
        s.shard_bytes_min >> 20,
        s.shard_bytes_max >> 20,
        (0..s.shards).map(|i| s.shard_bytes(i)).sum::<u64>() as f64 / (1u64 << 30) as f64,
        s.rand_files,
        s.rand_file_bytes >> 20,
        s.small_files,
        s.small_file_bytes >> 10,
        s.list_entries,
        ctx.ckpt_bytes >> 20,
        a.ckpt_rounds,
        a.jobs,
        a.depth,
        a.iodepth,
        (a.iodepth / 4).max(1),
        ctx.random_seconds
    );
    let _ = writeln!(r, "\nSystems:\n");
    for system in results.keys() {
        let _ = writeln!(r, "- **{}**: {}", system.slug(), system.describe());
    }
    let _ = writeln!(r, "\n## Checks\n");
    if checks.is_empty() {
        let _ = writeln!(r, "(bucketfs was not run)");
    }
    for (what, ok, detail) in checks {
        let _ = writeln!(r, "- {} {what}: {detail}", if *ok { "PASS" } else { "**FAIL**" });
    }
    let _ = writeln!(
        r,
        "\nRatio = bucketfs's figure / the system's (above 1: bucketfs is faster). Latency in ms. \
         Requests: sent to the bucket during the phase, counted by the proxy; cost at S3 Standard list \
         prices (PUT/COPY/POST/LIST $0.005 per 1,000, GET/HEAD $0.0004 per 1,000)."
    );
    for (title, group) in GROUPS {
        let _ = writeln!(r, "\n## {title}\n");
        if let Some((_, Ok(png))) = plots.iter().find(|(t, _)| t == title) {
            let _ = writeln!(
                r,
                "![{title}]({})\n",
                png.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default()
            );
        }
        let _ = writeln!(
            r,
            "| phase | system | figure | p50 / p99 / p99.9 ms | requests to the bucket | cost | bucketfs ÷ system |"
        );
        let _ = writeln!(r, "|---|---|---|---|---|---|---|");
        for &phase in group {
            for (system, cells) in results {
                let Some(cell) = cells.get(&phase) else { continue };
                let figure = match &cell.outcome {
                    Ok(o) => {
                        let mut f = format!("{} {}", fmt_value(phase.value(o)), phase.metric().unit());
                        if phase == Phase::Random128k {
                            let _ = write!(f, " ({} MB/s)", fmt_value(o.bytes_per_s() / 1e6));
                        }
                        if let Some(s) = cell.to_bucket_s {
                            let _ = write!(f, "; in the bucket {s:.1} s after the last rename");
                        }
                        if let Some(n) = &cell.note {
                            let _ = write!(f, " ({n})");
                        }
                        f
                    }
                    Err(e) => e.replace('|', "/").replace('\n', " "),
                };
                let lat = match &cell.outcome {
                    Ok(o) if !phase.latency_of().is_empty() => format!(
                        "{} / {} / {}",
                        fmt_ms(o.latency.p50_us),
                        fmt_ms(o.latency.p99_us),
                        fmt_ms(o.latency.p999_us)
                    ),
                    Ok(o) => format!("{:.2} s whole", o.seconds),
                    Err(_) => "—".into(),
                };
                let (req, cost) = match &cell.requests {
                    Some(c) => (format!("{} ({})", c.total(), c.describe()), fmt_usd(c.cost_usd())),
                    None => ("— (no bucket)".into(), "—".into()),
                };
                let ratio = match (value(results, System::Bucketfs, phase), value(results, *system, phase)) {
                    (Some(b), Some(x)) if x > 0.0 => format!("{b_x:.2}", b_x = b / x),
                    _ => "—".into(),
                };
                let _ = writeln!(
                    r,
                    "| {} | {} | {figure} | {lat} | {req} | {cost} | {ratio} |",
                    phase.label(),
                    system.slug()
                );
            }
        }
        let lat_of: Vec<String> = group
            .iter()
            .filter(|p| !p.latency_of().is_empty())
            .map(|p| format!("{}: {}", p.label(), p.latency_of()))
            .collect();
        if !lat_of.is_empty() {
            let _ = writeln!(r, "\nLatency is {}.", lat_of.join("; "));
        }
    }
    let _ = writeln!(r, "\n## Requests to the bucket, whole run\n");
    let _ = writeln!(r, "| system | requests | cost | of which epochs 2–3 |");
    let _ = writeln!(r, "|---|---|---|---|");
    for (system, cells) in results {
        let mut all = RequestCounts::default();
        let mut warm = RequestCounts::default();
        for (phase, c) in cells {
            if let Some(x) = &c.requests {
                all = all.plus(x);
                if matches!(phase, Phase::Epoch(2) | Phase::Epoch(3)) {
                    warm = warm.plus(x);
                }
            }
        }
        if system.reads_bucket() {
            let _ = writeln!(
                r,
                "| {} | {} ({}) | {} | {} |",
                system.slug(),
                all.total(),
                all.describe(),
                fmt_usd(all.cost_usd()),
                warm.total()
            );
        }
    }
    for (title, p) in plots {
        if let Err(e) = p {
            let _ = writeln!(r, "\nPlot \"{title}\" not drawn: {e}");
        }
    }
    if let Some(k) = kernel {
        let _ = writeln!(r, "\n## The same shapes through the Linux kernel client (QEMU guest, TCG)\n");
        let _ = writeln!(r, "Absolute figures under emulation are not comparable; the shape is.\n");
        match k {
            Ok(md) => r.push_str(md),
            Err(e) => {
                let _ = writeln!(r, "**FAILED:** {e}");
            }
        }
    }
    if !ctx.notes.is_empty() {
        let _ = writeln!(r, "\n## Notes\n");
        for n in &ctx.notes {
            let _ = writeln!(r, "- {n}");
        }
    }
    let _ = writeln!(r, "\nAll figures: the `.json` beside this report.");
    r
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine_and_versions(ctx: &Ctx) -> Vec<(&'static str, String)> {
    let cpu = servers::cpu_model();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0)))
        .map(|kib| format!("{:.1} GiB", kib as f64 / (1u64 << 20) as f64))
        .unwrap_or_default();
    let cores = ctx.cores;
    let git = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let weed = testkit::weed_binary().map(|w| servers::version_of_args(&w, &["version"])).unwrap_or_default();
    vec![
        ("CPU", format!("{cpu}, {cores} cores, {mem}")),
        ("Kernel", servers::version_of_args(Path::new("uname"), &["-sr"])),
        ("bucketfs", format!("{} ({git})", servers::version_of(&ctx.bucketfs_binary))),
        ("S3 server", format!("SeaweedFS {weed}")),
        ("nfs-ganesha", servers::dpkg_version("nfs-ganesha")),
        ("rclone", perf::peers::peer_version(PeerKind::RcloneNfs)),
        ("s3fs", perf::peers::peer_version(PeerKind::S3fs)),
        ("fio", servers::version_of(&ctx.args.fio)),
        ("NFS clients", "nfs-rs 0.11 (NFSv3) for epochs, small files, listing, checkpoints; fio's nfs engine (libnfs) for random reads".into()),
    ]
}

/// The plots: one per workload group, plus requests per phase; (group title, PNG or why not).
fn write_plots(results: &Results, report: &Path) -> Vec<(String, Result<PathBuf, String>)> {
    let stem = report.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "report".into());
    let dir = report.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut out = Vec::new();
    for (i, (title, group)) in GROUPS.iter().enumerate() {
        // Random reads: IOPS only (the fill read is MB/s, in the table).
        let phases: Vec<Phase> = group.iter().copied().filter(|p| *p != Phase::RandFill).collect();
        let unit = phases[0].metric().unit();
        let series: Vec<(String, Vec<Option<f64>>)> = results
            .keys()
            .map(|s| (s.slug().to_string(), phases.iter().map(|p| value(results, *s, *p)).collect()))
            .collect();
        // Figures spanning more than 50× get a log scale, so the small ones stay visible.
        let all: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().flatten().copied()).filter(|x| *x > 0.0).collect();
        let span = all.iter().copied().fold(0.0, f64::max) / all.iter().copied().fold(f64::INFINITY, f64::min);
        let log_y = span > 50.0;
        let chart = BarChart {
            title: format!("{title}{}", if log_y { " (log scale)" } else { "" }),
            y_label: unit.to_string(),
            log_y,
            groups: phases.iter().map(|p| p.label()).collect(),
            series,
        };
        let png = dir.join(format!("{stem}-{}.png", i + 1));
        out.push((title.to_string(), plot::write_png(&chart, &png).map(|()| png).map_err(|e| format!("{e:#}"))));
    }
    let phases = [Phase::Epoch(1), Phase::Epoch(2), Phase::SmallCold, Phase::ListCold, Phase::Checkpoint];
    let chart = BarChart {
        title: "Requests to the bucket per phase (log scale; missing bar = none)".into(),
        y_label: "requests".into(),
        log_y: true,
        groups: phases.iter().map(|p| p.label()).collect(),
        series: results
            .iter()
            .filter(|(s, _)| s.reads_bucket())
            .map(|(s, cells)| {
                let v = phases
                    .iter()
                    .map(|p| cells.get(p).and_then(|c| c.requests).map(|r| r.total() as f64).filter(|n| *n > 0.0))
                    .collect();
                (s.slug().to_string(), v)
            })
            .collect(),
    };
    let png = dir.join(format!("{stem}-requests.png"));
    out.push(("requests".into(), plot::write_png(&chart, &png).map(|()| png).map_err(|e| format!("{e:#}"))));
    out
}

fn results_json(results: &Results) -> serde_json::Value {
    let mut systems = serde_json::Map::new();
    for (system, cells) in results {
        let mut phases = serde_json::Map::new();
        for (phase, c) in cells {
            let v = match &c.outcome {
                Ok(o) => serde_json::json!({
                    "value": phase.value(o), "unit": phase.metric().unit(), "seconds": o.seconds,
                    "bytes": o.bytes, "ops": o.ops, "p50_us": o.latency.p50_us, "p99_us": o.latency.p99_us,
                    "p999_us": o.latency.p999_us, "to_bucket_s": c.to_bucket_s, "note": c.note,
                    "requests": c.requests.map(|r| serde_json::json!({
                        "total": r.total(), "get": r.get, "head": r.head, "list": r.list, "put": r.put,
                        "copy": r.copy, "post": r.post, "delete": r.delete, "other": r.other,
                        "failed": r.failed, "bytes_down": r.bytes_down, "bytes_up": r.bytes_up,
                        "cost_usd": r.cost_usd()})),
                }),
                Err(e) => serde_json::json!({"error": e}),
            };
            phases.insert(phase.label(), v);
        }
        systems.insert(system.slug().to_string(), serde_json::Value::Object(phases));
    }
    serde_json::Value::Object(systems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_units() {
        assert_eq!(Phase::Epoch(1).label(), "epoch 1 (cold)");
        assert_eq!(Phase::Epoch(3).label(), "epoch 3");
        let o = Outcome { seconds: 2.0, bytes: 4_000_000, ops: 10, latency: Percentiles::default() };
        assert_eq!(Phase::Epoch(2).value(&o), 2.0);
        assert_eq!(Phase::SmallCold.value(&o), 5.0);
        assert_eq!(fmt_usd(0.0), "$0");
        assert_eq!(fmt_ms(1500.0), "1.50");
        assert!(phases(System::RawS3).iter().all(|p| *p != Phase::Checkpoint));
    }
}
