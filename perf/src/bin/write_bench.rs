//! NFS writes: bucketfs vs nfs-ganesha, side by side in one run, and for bucketfs what the
//! writes cost in the bucket: how long until the object is there, and how many requests.
//!
//! Both servers run at once: nfs-ganesha (FSAL_VFS on a local directory: the NFS server ceiling;
//! its "bucket" is that directory) and `bucketfs serve` (a local-directory bucket, or with
//! `--bucket s3` a bucket on SeaweedFS started by testkit). Per server, over NFSv3:
//!
//! 1. **Sequential write**: `seq.bin` is created empty through NFS (fio's nfs engine does not
//!    create files), then fio's `nfs` engine writes `--size-mib` in 1 MiB writes: `--jobs`
//!    jobs, each its own connection and slice of the file, at `--iodepth` (1: more loses writes
//!    in libnfs 4.0), with fio's verify headers in every block (`verify=crc32c`, not read back).
//!    fio's nfs engine cannot fsync (`end_fsync=1` fails: "unhandled io 3"), so the bench sends
//!    the COMMIT itself (nfs-rs) right after fio and times it. Reports fio's MB/s and write
//!    latency percentiles, MB/s including the COMMIT, and the ratio bucketfs/ganesha.
//! 2. **Checkpoint pattern**: `--ckpt-rounds` rounds of: create `ckpt.tmp`, write
//!    `--ckpt-mib` in 1 MiB UNSTABLE writes (`--ckpt-iodepth` in flight), COMMIT, rename over
//!    `ckpt` (nfs-rs, a pure Rust NFSv3 client). Reports each round's time and MB/s. After each
//!    round the bench waits until the bucket holds that round's `ckpt` (like the compute between
//!    two checkpoints), so every round is one upload.
//! 3. For each phase: the time from the last COMMIT/rename returning until the bucket holds the
//!    object with its final size (and, for `ckpt`, that round's first bytes), polled every 20 ms
//!    (the directory, or HEAD + a small ranged GET on S3); and for bucketfs the requests it sent
//!    to the bucket by kind (deltas of `bucketfs stats --json`), per GiB written. Checks that
//!    fail the run: each checkpoint round costs exactly one upload, no copy, and `ckpt.tmp` is
//!    never in the bucket.
//! 4. At the end of each phase the bucket's object is checked byte for byte: `ckpt` against the
//!    bytes of the last round; `seq.bin` block by block against fio's verify headers (magic,
//!    offset, length, header CRC32C and the block's CRC32C).
//!
//! Cores: servers (and SeaweedFS) on the first half, fio and this process on the other half;
//! `--shared-cores` lets them mix. `--smoke`: 64 MiB, 3 rounds × 24 MiB, about 15 s.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use engine::object::store::{ObjectStoreConfig, S3Config, StoreClient};
use engine::object::{ObjectClient, ObjectError};
use futures::StreamExt;
use nfs_rs::Mount;
use perf::fio::{Fio, FIO_ATTEMPTS, FIO_GRACE};
use perf::median;
use perf::servers::{self, pinned, wait_ready, Cpus, GaneshaSpec};
use perf::workloads::{call, ckpt_data, ckpt_round_nfs, mount, CKPT, CKPT_TMP, NFS_CALL_TIMEOUT};

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
/// One NFS call (CREATE, a WRITE, COMMIT, RENAME) longer than this fails the run.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// `bucketfs stats` taking longer than this fails the run.
const STATS_TIMEOUT_S: u64 = 30;
/// Request kinds of bucketfs's per-bucket counters, in report order.
const REQUEST_KINDS: [&str; 7] = ["put", "multipart_part", "copy", "delete", "head", "list", "get"];
const SEQ_FILE: &str = "seq.bin";
/// Bytes of each round's data compared while polling for `ckpt` (tells the rounds apart).
const CKPT_MARK_BYTES: usize = 64;

#[derive(Parser, Clone)]
#[command(about = "NFS writes: bucketfs vs nfs-ganesha, with time-to-bucket and requests per GiB")]
struct Args {
    /// Work directory: ganesha's export, bucketfs's bucket, cache and configuration, logs.
    #[arg(long, default_value = "/var/tmp/bucketfs-write-bench")]
    dir: PathBuf,
    /// Sequential write: size of the file, MiB.
    #[arg(long, default_value_t = 4096)]
    size_mib: u64,
    /// Sequential write: fio jobs, each its own NFS connection writing its own slice of the
    /// file sequentially (`offset_increment`).
    #[arg(long, default_value_t = 4)]
    jobs: u64,
    /// Sequential write: queue depth per job (1 MiB writes). Above 1, fio's nfs engine (libnfs
    /// 4.0) loses writes now and then without failing (seen against ganesha): such runs are
    /// detected and tried again.
    #[arg(long, default_value_t = 1)]
    iodepth: u32,
    /// Checkpoint pattern: rounds.
    #[arg(long, default_value_t = 5)]
    ckpt_rounds: u32,
    /// Checkpoint pattern: size of each checkpoint, MiB.
    #[arg(long, default_value_t = 256)]
    ckpt_mib: u64,
    /// Checkpoint pattern: 1 MiB writes in flight.
    #[arg(long, default_value_t = 4)]
    ckpt_iodepth: usize,
    /// Checkpoint pattern: NFS version of its client (nfs-rs). fio's sequential write is always
    /// NFSv3 (libnfs 4.0 fails NFSv4 writes above 3944 bytes).
    #[arg(long, value_enum, default_value = "v3")]
    ckpt_nfs: NfsVersion,
    /// bucketfs's bucket: a local directory, or a bucket on SeaweedFS (testkit; the `weed`
    /// binary from scripts/install-s3-server.sh).
    #[arg(long, value_enum, default_value = "local")]
    bucket: BucketKind,
    /// bucketfs `[write] upload_after_close` (a rename counts as a close over NFSv3).
    #[arg(long, default_value = "2s")]
    upload_after_close: String,
    /// bucketfs `[write] upload_after_idle` (NFSv3 has no close: a file only written is
    /// uploaded this long after its last write).
    #[arg(long, default_value = "30s")]
    upload_after_idle: String,
    /// bucketfs's cache file, MiB (default: twice the largest file, plus 1 GiB).
    #[arg(long)]
    cache_mib: Option<u64>,
    /// How long to wait for an object to reach the bucket, seconds.
    #[arg(long, default_value_t = 600)]
    upload_timeout_s: u64,
    /// Servers to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ganesha,bucketfs")]
    servers: Vec<ServerKind>,
    /// fio built with the nfs engine (scripts/install-fio-nfs.sh).
    #[arg(long, default_value = "/opt/bucketfs-test/fio-nfs/bin/fio")]
    fio: PathBuf,
    /// The bucketfs binary (default: target/release/bucketfs of $CARGO_TARGET_DIR or this
    /// workspace).
    #[arg(long)]
    bucketfs: Option<PathBuf>,
    /// Ports from here on: ganesha NFS, MOUNT; bucketfs NFS, MOUNT, portmapper, admin.
    #[arg(long, default_value_t = 20620)]
    port_base: u16,
    /// Let servers and clients share every core (default: servers on the first half).
    #[arg(long)]
    shared_cores: bool,
    /// Write the Markdown report here too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Small and quick (about 15 s): 64 MiB, 3 rounds × 24 MiB, upload_after_idle 5s.
    #[arg(long)]
    smoke: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum NfsVersion {
    V3,
    #[value(name = "v4.0")]
    V40,
    #[value(name = "v4.1")]
    V41,
}

impl NfsVersion {
    fn label(self) -> &'static str {
        match self {
            NfsVersion::V3 => "NFSv3",
            NfsVersion::V40 => "NFSv4.0",
            NfsVersion::V41 => "NFSv4.1",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BucketKind {
    Local,
    S3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum ServerKind {
    Ganesha,
    Bucketfs,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Ganesha => "ganesha",
            ServerKind::Bucketfs => "bucketfs",
        }
    }
}

/// Every port the run uses, from `--port-base`.
#[derive(Clone, Copy)]
struct Ports {
    ganesha_nfs: u16,
    ganesha_mount: u16,
    bucketfs_nfs: u16,
    bucketfs_mount: u16,
    bucketfs_portmap: u16,
    bucketfs_admin: u16,
}

impl Ports {
    fn from_base(base: u16) -> Ports {
        Ports {
            ganesha_nfs: base,
            ganesha_mount: base + 1,
            bucketfs_nfs: base + 2,
            bucketfs_mount: base + 3,
            bucketfs_portmap: base + 4,
            bucketfs_admin: base + 5,
        }
    }
}

/// Where a server's files end up: the directory itself (ganesha; bucketfs's local bucket) or
/// an S3 bucket.
enum BucketView {
    Dir(PathBuf),
    S3(Arc<dyn ObjectClient>),
}

impl BucketView {
    fn describe(&self) -> String {
        match self {
            BucketView::Dir(dir) => format!("directory {}", dir.display()),
            BucketView::S3(client) => client.describe(),
        }
    }

    /// The object's size, or None when the key is not there.
    async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match self {
            BucketView::Dir(dir) => match std::fs::metadata(dir.join(key)) {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("stat {key} in {}", dir.display())),
            },
            BucketView::S3(client) => match client.head(key).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(ObjectError::NotFound { .. }) => Ok(None),
                Err(e) => Err(anyhow!("HEAD {key}: {e}")),
            },
        }
    }

    /// Feeds the whole object, `size` bytes, to `sink` in order.
    async fn read_all(
        &self,
        key: &str,
        size: u64,
        mut sink: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match self {
            BucketView::Dir(dir) => {
                use std::io::Read as _;
                let path = dir.join(key);
                let mut file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                let mut buf = vec![0u8; MIB as usize];
                loop {
                    let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
                    if n == 0 {
                        return Ok(());
                    }
                    sink(&buf[..n])?;
                }
            }
            BucketView::S3(client) => {
                let mut stream = client.get_range(key, 0..size, None).await.map_err(|e| anyhow!("GET {key}: {e}"))?;
                while let Some(chunk) = stream.next().await {
                    sink(&chunk.map_err(|e| anyhow!("GET {key}: {e}"))?)?;
                }
                Ok(())
            }
        }
    }

    /// The first `n` bytes (fewer when the object is shorter).
    async fn head_bytes(&self, key: &str, size: u64, n: usize) -> anyhow::Result<Vec<u8>> {
        let want = (n as u64).min(size);
        match self {
            BucketView::Dir(dir) => {
                use std::io::Read as _;
                let file = std::fs::File::open(dir.join(key)).with_context(|| format!("opening {key}"))?;
                let mut out = Vec::new();
                file.take(want).read_to_end(&mut out).with_context(|| format!("reading {key}"))?;
                Ok(out)
            }
            BucketView::S3(client) => {
                let bytes = engine::object::get_range_bytes(&**client, key, 0..want, None)
                    .await
                    .map_err(|e| anyhow!("GET {key}: {e}"))?;
                Ok(bytes.to_vec())
            }
        }
    }
}

/// A server under test.
struct Server {
    kind: ServerKind,
    children: Vec<Child>,
    /// Export URL for fio (libnfs) and nfs-rs, NFSv3.
    url: String,
    /// Export URL for nfs-rs over NFSv4 (`version=` appended).
    url_v4: String,
    bucket: BucketView,
    /// bucketfs's admin endpoint (`bucketfs stats --admin`).
    admin: Option<String>,
    /// How the server ended (filled at shutdown).
    stopped: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        for child in &mut self.children {
            servers::stop(child);
        }
    }
}

/// A snapshot of bucketfs's counters that matter here.
#[derive(Clone, Debug, Default, PartialEq)]
struct Counters {
    uploads: u64,
    commits: u64,
    copies: u64,
    deletes: u64,
    pending_uploads: u64,
    pending_bucket_ops: u64,
    requests: BTreeMap<String, u64>,
}

impl Counters {
    fn from_json(v: &serde_json::Value) -> anyhow::Result<Counters> {
        let w = v.get("writes").context("no `writes` in the stats")?;
        let n = |key: &str| w.get(key).and_then(serde_json::Value::as_u64).with_context(|| format!("writes.{key}"));
        let mut requests = BTreeMap::new();
        for bucket in v.get("buckets").and_then(serde_json::Value::as_array).context("no `buckets`")? {
            if let Some(map) = bucket.get("requests").and_then(serde_json::Value::as_object) {
                for (kind, count) in map {
                    *requests.entry(kind.clone()).or_insert(0) += count.as_u64().unwrap_or(0);
                }
            }
        }
        Ok(Counters {
            uploads: n("uploads")?,
            commits: n("commits")?,
            copies: n("copies")?,
            deletes: n("deletes")?,
            pending_uploads: n("pending_uploads")?,
            pending_bucket_ops: n("pending_bucket_ops")?,
            requests,
        })
    }

    /// `self - before`, counter by counter.
    fn since(&self, before: &Counters) -> Counters {
        let requests = self
            .requests
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(before.requests.get(k).copied().unwrap_or(0))))
            .collect();
        Counters {
            uploads: self.uploads.saturating_sub(before.uploads),
            commits: self.commits.saturating_sub(before.commits),
            copies: self.copies.saturating_sub(before.copies),
            deletes: self.deletes.saturating_sub(before.deletes),
            pending_uploads: self.pending_uploads,
            pending_bucket_ops: self.pending_bucket_ops,
            requests,
        }
    }

    fn request(&self, kind: &str) -> u64 {
        self.requests.get(kind).copied().unwrap_or(0)
    }
}

/// The sequential write on one server.
#[derive(Clone, Debug, Default)]
struct SeqResult {
    /// fio's own figure (writes acknowledged, before the COMMIT).
    fio_bytes_per_s: f64,
    fio_runtime_ms: f64,
    commit_ms: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    /// From the COMMIT's return until the bucket held the whole object.
    to_bucket_ms: f64,
    /// bucketfs only.
    counters: Option<Counters>,
    blocks_checked: u64,
    /// fio runs that lost writes (libnfs) and were run again.
    fio_retries: Vec<String>,
}

impl SeqResult {
    /// Including the COMMIT that makes the data durable.
    fn durable_bytes_per_s(&self, size_bytes: u64) -> f64 {
        size_bytes as f64 / ((self.fio_runtime_ms + self.commit_ms) / 1e3)
    }
}

/// The checkpoint pattern on one server.
#[derive(Clone, Debug, Default)]
struct CkptResult {
    /// Create to rename returned, per round.
    round_ms: Vec<f64>,
    commit_ms: Vec<f64>,
    /// Rename returned to `ckpt` with this round's bytes in the bucket, per round.
    to_bucket_ms: Vec<f64>,
    counters: Option<Counters>,
    tmp_seen: bool,
    bytes_checked: u64,
}

/// Pass/fail checks of the run, reported and enforced.
struct Check {
    what: String,
    ok: bool,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.size_mib = 64;
        args.ckpt_rounds = 3;
        args.ckpt_mib = 24;
        args.upload_after_idle = "5s".into();
    }
    if args.size_mib == 0
        || args.ckpt_mib == 0
        || args.ckpt_rounds == 0
        || args.iodepth == 0
        || args.ckpt_iodepth == 0
        || args.jobs == 0
    {
        bail!("--size-mib, --ckpt-mib, --ckpt-rounds, --jobs, --iodepth and --ckpt-iodepth must be at least 1");
    }
    if args.size_mib % args.jobs != 0 {
        bail!("--size-mib must be a multiple of --jobs (each job writes its own slice)");
    }
    if args.port_base > u16::MAX - 6 {
        bail!("--port-base leaves no room for its 6 ports");
    }
    args.servers.sort();
    args.servers.dedup();
    if !args.fio.exists() {
        bail!("{} not found: run scripts/install-fio-nfs.sh (fio with the nfs engine)", args.fio.display());
    }
    let ports = Ports::from_base(args.port_base);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpus = Cpus::split(args.shared_cores, cores);
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    args.dir = dir;
    check_free_space(&args)?;

    // SeaweedFS first, on the servers' cores; then this process moves to the client's.
    let s3 = match args.bucket {
        BucketKind::S3 if args.servers.contains(&ServerKind::Bucketfs) => {
            Some(testkit::S3Server::start_on(cpus.servers.as_deref()).map_err(|e| anyhow!(e))?)
        }
        _ => None,
    };
    if cpus.client.is_some() {
        pin_self_to(cores / 2..cores)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    let mut rpcbind = None;
    let mut servers_up: Vec<Server> = Vec::new();
    let mut failures: BTreeMap<&'static str, String> = BTreeMap::new();
    for &kind in &args.servers {
        let started = match kind {
            ServerKind::Ganesha => start_ganesha(&args, ports, &cpus, &mut rpcbind),
            ServerKind::Bucketfs => start_bucketfs(&args, ports, &cpus, &rt, s3.as_ref()),
        };
        match started {
            Ok(server) => servers_up.push(server),
            Err(e) => {
                eprintln!("{}: not available: {e:#}", kind.name());
                failures.insert(kind.name(), format!("not available: {e:#}"));
            }
        }
    }

    let mut seq: BTreeMap<&'static str, Result<SeqResult, String>> = BTreeMap::new();
    for server in &servers_up {
        let result = sequential(&args, &cpus, &rt, server).map_err(|e| format!("{e:#}"));
        match &result {
            Ok(r) => eprintln!(
                "{} sequential write: {:.0} MB/s (fio), COMMIT {:.0} ms, in the bucket {:.0} ms later",
                server.kind.name(),
                r.fio_bytes_per_s / 1e6,
                r.commit_ms,
                r.to_bucket_ms
            ),
            Err(e) => eprintln!("{} sequential write failed: {e}", server.kind.name()),
        }
        seq.insert(server.kind.name(), result);
    }
    let mut ckpt: BTreeMap<&'static str, Result<CkptResult, String>> = BTreeMap::new();
    for server in &servers_up {
        let result = checkpoints(&args, &rt, server).map_err(|e| format!("{e:#}"));
        if let Err(e) = &result {
            eprintln!("{} checkpoint pattern failed: {e}", server.kind.name());
        }
        ckpt.insert(server.kind.name(), result);
    }

    // Clean shutdown: SIGTERM, and bucketfs gets time for its `upload_on_stop`.
    for server in &mut servers_up {
        let grace = Duration::from_secs(if server.kind == ServerKind::Bucketfs { 20 } else { 10 });
        let mut how = Vec::new();
        for child in &mut server.children {
            how.push(servers::stop_gently(child, grace));
        }
        server.stopped = how.join("; ");
        eprintln!("{}: {}", server.kind.name(), server.stopped);
    }
    if let Some(mut child) = rpcbind {
        servers::stop(&mut child);
    }

    let checks = checks(&args, &servers_up, &seq, &ckpt);
    let report = report(&args, cores, &cpus, &servers_up, &failures, &seq, &ckpt, &checks, s3.as_ref());
    println!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    drop(servers_up);
    drop(s3);
    if let Some((name, why)) = failures.iter().next() {
        bail!("{name}: {why}");
    }
    for (name, r) in &seq {
        if let Err(e) = r {
            bail!("{name} sequential write: {e}");
        }
    }
    for (name, r) in &ckpt {
        if let Err(e) = r {
            bail!("{name} checkpoint pattern: {e}");
        }
    }
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.what.as_str()).collect();
    if !failed.is_empty() {
        bail!("checks failed: {}", failed.join("; "));
    }
    Ok(())
}

/// Fails early when the work directory's file system cannot hold the run: bucketfs's cache
/// file and its bucket's copy of the largest file (ganesha's copy is removed before bucketfs
/// writes; SeaweedFS's data, under the temp directory, is counted when on the same file system).
fn check_free_space(args: &Args) -> anyhow::Result<()> {
    let largest_bytes = args.size_mib.max(args.ckpt_mib) * MIB;
    let needed_bytes = cache_mib(args) * MIB + largest_bytes + (1 << 30);
    let st = rustix::fs::statvfs(&args.dir).with_context(|| format!("statvfs {}", args.dir.display()))?;
    let free_bytes = st.f_bavail * st.f_frsize;
    if free_bytes < needed_bytes {
        bail!(
            "{} has {} MiB free; the run needs about {} MiB (a smaller --size-mib needs less)",
            args.dir.display(),
            free_bytes / MIB,
            needed_bytes / MIB
        );
    }
    Ok(())
}

/// bucketfs's cache, MiB: every byte of a file written over NFSv3 stays dirty until the upload
/// after the last write, so twice the largest file, plus 1 GiB. (A 5 GiB cache refused the last
/// writes of a 4 GiB file with NFS3ERR_NOSPC: "the cache is full of data not yet in the bucket".)
fn cache_mib(args: &Args) -> u64 {
    args.cache_mib.unwrap_or(2 * args.size_mib.max(args.ckpt_mib) + 1024)
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

/// An empty directory at `path` (whatever was there is removed).
fn fresh_dir(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}

fn start_ganesha(args: &Args, ports: Ports, cpus: &Cpus, rpcbind: &mut Option<Child>) -> anyhow::Result<Server> {
    let export = args.dir.join("ganesha-export");
    fresh_dir(&export)?;
    let spec = GaneshaSpec {
        work_dir: &args.dir.join("ganesha"),
        export: &export,
        nfs_port: ports.ganesha_nfs,
        mount_port: ports.ganesha_mount,
        v3: true,
        cpus: cpus.servers.as_deref(),
    };
    let ganesha = servers::start_ganesha(&spec, rpcbind)?;
    if let Some(why) = &ganesha.v3_unavailable {
        let mut child = ganesha.child;
        servers::stop(&mut child);
        bail!("{why}");
    }
    let url = ganesha.v3_url(ports.ganesha_nfs, ports.ganesha_mount);
    let bucket = BucketView::Dir(ganesha.export.clone());
    Ok(Server {
        kind: ServerKind::Ganesha,
        children: vec![ganesha.child],
        url,
        url_v4: format!("nfs://127.0.0.1/export?nfsport={}", ports.ganesha_nfs),
        bucket,
        admin: None,
        stopped: String::new(),
    })
}

/// Its export's path: the MOUNT path for NFSv3.
const BUCKETFS_EXPORT: &str = "/export";

/// bucketfs's configuration: cache, admin, `[write]`, the bucket, one read-write export, `[nfs]`.
fn bucketfs_config(args: &Args, ports: Ports, cache_mib: u64, bucket_section: &str) -> String {
    format!(
        "[cache]\ndevice = \"cache.img\"\nsize = \"{cache_mib}MiB\"\nmetadata_dir = \"meta\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{}\"\n\n\
         [write]\nupload_after_close = \"{}\"\nupload_after_idle = \"{}\"\n\n\
         [[bucket]]\nname = \"bench\"\n{bucket_section}\n\
         [[export]]\npath = \"{BUCKETFS_EXPORT}\"\nbucket = \"bench\"\nread_only = false\nroot_squash = false\n\n\
         [nfs]\nlisten = \"127.0.0.1:{}\"\nmount_listen = \"127.0.0.1:{}\"\nportmap_listen = \"127.0.0.1:{}\"\n",
        ports.bucketfs_admin,
        args.upload_after_close,
        args.upload_after_idle,
        ports.bucketfs_nfs,
        ports.bucketfs_mount,
        ports.bucketfs_portmap
    )
}

fn start_bucketfs(
    args: &Args,
    ports: Ports,
    cpus: &Cpus,
    rt: &tokio::runtime::Runtime,
    s3: Option<&testkit::S3Server>,
) -> anyhow::Result<Server> {
    let binary = servers::bucketfs_binary(args.bucketfs.as_deref());
    if !binary.exists() {
        bail!("no bucketfs binary at {} (cargo build --release -p bucketfs, or --bucketfs PATH)", binary.display());
    }
    let dir = args.dir.join("bucketfs");
    fresh_dir(&dir)?;
    let (bucket_section, bucket) = match s3 {
        None => {
            let path = dir.join("bucket");
            std::fs::create_dir_all(&path)?;
            (format!("kind = \"local\"\npath = \"{}\"\n", path.display()), BucketView::Dir(path))
        }
        Some(server) => {
            let name = rt.block_on(server.new_bucket("wbench")).map_err(|e| anyhow!(e))?;
            let section = format!(
                "kind = \"s3\"\nbucket = \"{name}\"\nendpoint = \"{}\"\nregion = \"{}\"\npath_style = true\n\
                 allow_http = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                server.endpoint(),
                server.region(),
                server.access_key(),
                server.secret_key()
            );
            let config = ObjectStoreConfig::S3(S3Config::static_keys(
                &name,
                server.endpoint(),
                server.region(),
                server.access_key(),
                server.secret_key(),
            ));
            let client: Arc<dyn ObjectClient> = Arc::new(StoreClient::new(&config).context("S3 client")?);
            (section, BucketView::S3(client))
        }
    };
    let config = bucketfs_config(args, ports, cache_mib(args), &bucket_section);
    let config_path = dir.join("bucketfs.toml");
    std::fs::write(&config_path, config)?;
    let log = dir.join("bucketfs.log");
    let log_file = std::fs::File::create(&log)?;
    let mut child = pinned(&binary, cpus.servers.as_deref())
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .current_dir(&dir)
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    if let Err(e) = wait_ready(&mut child, ports.bucketfs_nfs, &log) {
        servers::stop(&mut child);
        bail!("bucketfs serve did not serve NFS: {e:#}");
    }
    eprintln!("bucketfs: serving {} on 127.0.0.1:{}", bucket.describe(), ports.bucketfs_nfs);
    Ok(Server {
        kind: ServerKind::Bucketfs,
        children: vec![child],
        url: format!(
            "nfs://127.0.0.1{BUCKETFS_EXPORT}?nfsport={}&mountport={}",
            ports.bucketfs_nfs, ports.bucketfs_mount
        ),
        url_v4: format!("nfs://127.0.0.1{BUCKETFS_EXPORT}?nfsport={}", ports.bucketfs_nfs),
        bucket,
        admin: Some(format!("127.0.0.1:{}", ports.bucketfs_admin)),
        stopped: String::new(),
    })
}

/// bucketfs's counters now (`bucketfs stats --json`).
fn counters(args: &Args, admin: &str) -> anyhow::Result<Counters> {
    let binary = servers::bucketfs_binary(args.bucketfs.as_deref());
    // Under coreutils' `timeout`: a server that stopped answering fails the run, not hangs it.
    let out = Command::new("timeout")
        .arg(STATS_TIMEOUT_S.to_string())
        .arg(&binary)
        .args(["stats", "--json", "--admin", admin])
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {} stats", binary.display()))?;
    if !out.status.success() {
        bail!("bucketfs stats ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing bucketfs stats --json")?;
    Counters::from_json(&json)
}

/// Waits until bucketfs has nothing left to upload or to send to the bucket; its counters then.
fn settled_counters(args: &Args, admin: &str) -> anyhow::Result<Counters> {
    let deadline = Instant::now() + Duration::from_secs(args.upload_timeout_s);
    loop {
        let c = counters(args, admin)?;
        if c.pending_uploads == 0 && c.pending_bucket_ops == 0 {
            return Ok(c);
        }
        if Instant::now() > deadline {
            bail!(
                "still {} upload(s) and {} bucket operation(s) pending after {} s",
                c.pending_uploads,
                c.pending_bucket_ops,
                args.upload_timeout_s
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes `name` from the export's root when it is there.
async fn remove_if_present(m: &dyn Mount, root: &Bytes, name: &str) -> anyhow::Result<()> {
    match tokio::time::timeout(NFS_CALL_TIMEOUT, m.lookup(root.clone(), name)).await {
        Ok(Ok(_)) => call(&format!("REMOVE {name}"), m.remove(root.clone(), name)).await,
        Ok(Err(_)) => Ok(()),
        Err(_) => bail!("LOOKUP {name}: no answer"),
    }
}

/// Polls the bucket until `key` has `size` bytes (and starts with `mark` when given); the time
/// it took from `since`. With `tmp_key`, also notes whether that key was ever seen.
async fn wait_in_bucket(
    args: &Args,
    bucket: &BucketView,
    key: &str,
    size: u64,
    mark: Option<&[u8]>,
    since: Instant,
    tmp_key: Option<(&str, &mut bool)>,
) -> anyhow::Result<f64> {
    let deadline = since + Duration::from_secs(args.upload_timeout_s);
    let mut tmp_key = tmp_key;
    loop {
        if let Some((tmp, seen)) = tmp_key.as_mut() {
            if bucket.size(tmp).await?.is_some() {
                **seen = true;
            }
        }
        if bucket.size(key).await? == Some(size) {
            let done = since.elapsed();
            let matches = match mark {
                None => true,
                Some(mark) => bucket.head_bytes(key, size, mark.len()).await? == mark,
            };
            if matches {
                return Ok(done.as_secs_f64() * 1e3);
            }
        }
        if Instant::now() > deadline {
            bail!("{key} not in the bucket with {size} bytes after {} s", args.upload_timeout_s);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Phase 1 on one server: fio sequential write of `seq.bin`, COMMIT, time to bucket, requests,
/// and the bucket's object checked against fio's verify headers.
fn sequential(args: &Args, cpus: &Cpus, rt: &tokio::runtime::Runtime, server: &Server) -> anyhow::Result<SeqResult> {
    let size_bytes = args.size_mib * MIB;
    let name = server.kind.name();
    let m = rt.block_on(mount(&server.url))?;
    let root = rt.block_on(m.getfh());
    let before = match &server.admin {
        Some(admin) => Some(settled_counters(args, admin)?),
        None => None,
    };
    let slice_bytes = size_bytes / args.jobs;
    let job = format!(
        "[global]\nioengine=nfs\nnfs_url={}\nrw=write\nbs=1M\niodepth={}\nnumjobs={}\nsize={slice_bytes}\n\
         offset_increment={slice_bytes}\ngroup_reporting=1\nverify=crc32c\ndo_verify=0\nverify_state_save=0\n\n\
         [seq]\nfilename={SEQ_FILE}\n",
        server.url, args.iodepth, args.jobs
    );
    // 20 MB/s would do.
    let limit = Duration::from_secs(size_bytes / 20_000_000 + 30) + FIO_GRACE;
    let fio = Fio { program: &args.fio, dir: &args.dir, cpus: cpus.client.as_deref() };
    // fio's nfs engine (libnfs 4.0) now and then loses writes without failing the job: it prints
    // "Failed NFS operation(code:-14)" and counts fewer bytes (seen against ganesha). The client's
    // fault: such a run is tried again like a hang, and noted.
    let mut retries = Vec::new();
    let json = loop {
        let json = fio.json_with(&job, &format!("seq-{name}"), limit, |attempt| {
            // A fresh, empty file each attempt, created through the server.
            rt.block_on(async {
                remove_if_present(&*m, &root, SEQ_FILE).await?;
                call("CREATE seq.bin", m.create(root.clone(), SEQ_FILE, Some(0o644))).await.map(|_| ())
            })
            .with_context(|| format!("creating {SEQ_FILE} (attempt {attempt})"))
        })?;
        let io_bytes = json.pointer("/jobs/0/write/io_bytes").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if io_bytes == size_bytes {
            break json;
        }
        let stderr = std::fs::read_to_string(args.dir.join(format!("seq-{name}.err"))).unwrap_or_default();
        let why = format!(
            "fio wrote {io_bytes} of {size_bytes} bytes without failing ({})",
            stderr.lines().next().unwrap_or("no message").trim()
        );
        retries.push(why.clone());
        if retries.len() >= FIO_ATTEMPTS as usize {
            bail!("{why}, {} times", retries.len());
        }
        eprintln!("{name}: {why}; trying again");
    };
    let (fh, commit_ms) = rt.block_on(async {
        let obj = call("LOOKUP seq.bin", m.lookup(root.clone(), SEQ_FILE)).await?;
        let started = Instant::now();
        call("COMMIT seq.bin", m.commit(obj.fh.clone(), 0, 0)).await?;
        anyhow::Ok((obj.fh, started.elapsed().as_secs_f64() * 1e3))
    })?;
    let committed = Instant::now();
    let mut result = parse_write(&json)?;
    result.commit_ms = commit_ms;
    result.fio_retries = retries;
    let attr = rt.block_on(call("GETATTR seq.bin", m.getattr(fh)))?;
    if attr.filesize != size_bytes {
        bail!("{SEQ_FILE} has {} bytes after fio, not {size_bytes}", attr.filesize);
    }
    result.to_bucket_ms =
        rt.block_on(wait_in_bucket(args, &server.bucket, SEQ_FILE, size_bytes, None, committed, None))?;
    if let (Some(admin), Some(before)) = (&server.admin, &before) {
        result.counters = Some(settled_counters(args, admin)?.since(before));
    }
    let mut check = FioVerify::new(MIB as usize);
    rt.block_on(server.bucket.read_all(SEQ_FILE, size_bytes, |chunk| check.push(chunk)))?;
    result.blocks_checked = check.finish(size_bytes)?;
    eprintln!("{name}: {SEQ_FILE} in the bucket matches fio's {} blocks", result.blocks_checked);
    // Room on the disk for what comes next.
    rt.block_on(async {
        remove_if_present(&*m, &root, SEQ_FILE).await?;
        let _ = tokio::time::timeout(NFS_CALL_TIMEOUT, m.umount()).await;
        anyhow::Ok(())
    })?;
    if let Some(admin) = &server.admin {
        settled_counters(args, admin)?;
    }
    Ok(result)
}

fn parse_write(json: &serde_json::Value) -> anyhow::Result<SeqResult> {
    let write = json.pointer("/jobs/0/write").context("no jobs[0].write in fio's JSON")?;
    let num = |path: &str| write.pointer(path).and_then(serde_json::Value::as_f64);
    let ios = num("/total_ios").context("total_ios")?;
    if ios <= 0.0 {
        bail!("fio completed no writes");
    }
    let percentile = |p: &str| num(&format!("/clat_ns/percentile/{p}")).map(|ns| ns / 1e3).unwrap_or(f64::NAN);
    Ok(SeqResult {
        fio_bytes_per_s: num("/bw_bytes").context("bw_bytes")?,
        fio_runtime_ms: num("/runtime").context("runtime")?,
        p50_us: percentile("50.000000"),
        p99_us: percentile("99.000000"),
        p999_us: percentile("99.900000"),
        ..SeqResult::default()
    })
}

/// Checks a file written by fio with `verify=crc32c` (bs = `block_bytes`, one verify header per
/// block): each block's header has fio's magic, the crc32c type, the block's length and offset,
/// a valid header CRC, and the CRC32C of the rest of the block. fio's CRC32C is the standard
/// one without the final inversion.
struct FioVerify {
    block_bytes: usize,
    buf: Vec<u8>,
    blocks: u64,
}

const FIO_HDR_MAGIC: u16 = 0xacca;
const FIO_VERIFY_CRC32C: u16 = 5;
/// `struct verify_header` (40 bytes, its CRC at 36) + `struct vhdr_crc32` (4 bytes).
const FIO_HDR_BYTES: usize = 44;

fn fio_crc32c(data: &[u8]) -> u32 {
    !(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32)
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// One block at `offset`; why it is wrong.
fn check_fio_block(block: &[u8], offset: u64) -> Result<(), String> {
    if block.len() <= FIO_HDR_BYTES {
        return Err(format!("block at {offset}: only {} bytes", block.len()));
    }
    let magic = le_u16(block, 0);
    if magic != FIO_HDR_MAGIC {
        return Err(format!("block at {offset}: magic {magic:#06x}, not fio's (zeros or foreign bytes)"));
    }
    let kind = le_u16(block, 2);
    let len = le_u32(block, 4) as usize;
    let at = le_u64(block, 16);
    if kind != FIO_VERIFY_CRC32C || len != block.len() || at != offset {
        return Err(format!("block at {offset}: header says type {kind}, {len} bytes at offset {at}"));
    }
    if le_u32(block, 36) != fio_crc32c(&block[..36]) {
        return Err(format!("block at {offset}: header CRC mismatch"));
    }
    if le_u32(block, 40) != fio_crc32c(&block[FIO_HDR_BYTES..]) {
        return Err(format!("block at {offset}: data CRC32C mismatch"));
    }
    Ok(())
}

impl FioVerify {
    fn new(block_bytes: usize) -> FioVerify {
        FioVerify { block_bytes, buf: Vec::with_capacity(block_bytes), blocks: 0 }
    }

    fn push(&mut self, mut chunk: &[u8]) -> anyhow::Result<()> {
        while !chunk.is_empty() {
            let take = (self.block_bytes - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() == self.block_bytes {
                check_fio_block(&self.buf, self.blocks * self.block_bytes as u64).map_err(|e| anyhow!(e))?;
                self.blocks += 1;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Blocks checked; fails unless they add up to `size_bytes` exactly.
    fn finish(self, size_bytes: u64) -> anyhow::Result<u64> {
        let seen = self.blocks * self.block_bytes as u64 + self.buf.len() as u64;
        if seen != size_bytes || !self.buf.is_empty() {
            bail!("read {seen} bytes from the bucket, expected {size_bytes} in whole blocks");
        }
        Ok(self.blocks)
    }
}

/// Phase 2 on one server: the checkpoint pattern, each round followed by the wait until the
/// bucket holds it; requests counted over all rounds; the final `ckpt` compared byte for byte.
fn checkpoints(args: &Args, rt: &tokio::runtime::Runtime, server: &Server) -> anyhow::Result<CkptResult> {
    let size_bytes = args.ckpt_mib * MIB;
    let name = server.kind.name();
    let url = match args.ckpt_nfs {
        NfsVersion::V3 => server.url.clone(),
        NfsVersion::V40 => format!("{}&version=4.0", server.url_v4),
        NfsVersion::V41 => format!("{}&version=4.1", server.url_v4),
    };
    let m = rt.block_on(mount(&url))?;
    let root = rt.block_on(m.getfh());
    rt.block_on(async {
        remove_if_present(&*m, &root, CKPT_TMP).await?;
        remove_if_present(&*m, &root, CKPT).await
    })?;
    let before = match &server.admin {
        Some(admin) => Some(settled_counters(args, admin)?),
        None => None,
    };
    let mut result = CkptResult::default();
    let mut last = Bytes::new();
    for round in 0..args.ckpt_rounds {
        let data = ckpt_data(round, size_bytes);
        let started = Instant::now();
        let commit_ms = rt.block_on(ckpt_round_nfs(&*m, &root, &data, args.ckpt_iodepth))?;
        let renamed = Instant::now();
        let round_ms = (renamed - started).as_secs_f64() * 1e3;
        let mark = &data[..CKPT_MARK_BYTES.min(data.len())];
        let mut tmp_seen = false;
        let to_bucket_ms = rt.block_on(wait_in_bucket(
            args,
            &server.bucket,
            CKPT,
            size_bytes,
            Some(mark),
            renamed,
            Some((CKPT_TMP, &mut tmp_seen)),
        ))?;
        result.tmp_seen |= tmp_seen;
        eprintln!(
            "{name} checkpoint round {round}: {round_ms:.0} ms ({:.0} MB/s, COMMIT {commit_ms:.0} ms), in the bucket {to_bucket_ms:.0} ms after the rename",
            size_bytes as f64 / round_ms / 1e3
        );
        result.round_ms.push(round_ms);
        result.commit_ms.push(commit_ms);
        result.to_bucket_ms.push(to_bucket_ms);
        last = data;
    }
    if let (Some(admin), Some(before)) = (&server.admin, &before) {
        result.counters = Some(settled_counters(args, admin)?.since(before));
    }
    // A last look for the temporary name, once everything settled.
    if rt.block_on(server.bucket.size(CKPT_TMP))?.is_some() {
        result.tmp_seen = true;
    }
    let mut at = 0usize;
    rt.block_on(server.bucket.read_all(CKPT, size_bytes, |chunk| {
        let end = at + chunk.len();
        if end > last.len() || chunk != &last[at..end] {
            bail!("{CKPT} in the bucket differs from the last round's bytes in {at}..{end}");
        }
        at = end;
        Ok(())
    }))?;
    if at != last.len() {
        bail!("{CKPT} in the bucket has {at} bytes, the last round wrote {}", last.len());
    }
    result.bytes_checked = at as u64;
    eprintln!("{name}: {CKPT} in the bucket equals the last round's {at} bytes");
    let _ = rt.block_on(async { tokio::time::timeout(NFS_CALL_TIMEOUT, m.umount()).await });
    Ok(result)
}

/// What must hold for the run to pass (beyond every phase completing).
fn checks(
    args: &Args,
    servers: &[Server],
    seq: &BTreeMap<&'static str, Result<SeqResult, String>>,
    ckpt: &BTreeMap<&'static str, Result<CkptResult, String>>,
) -> Vec<Check> {
    let mut out = Vec::new();
    for server in servers {
        let name = server.kind.name();
        if let Some(Ok(s)) = seq.get(name) {
            out.push(Check {
                what: format!("{name}: {SEQ_FILE} in the bucket matches fio's blocks ({} × 1 MiB)", s.blocks_checked),
                ok: s.blocks_checked == args.size_mib,
            });
            if let Some(c) = &s.counters {
                out.push(Check {
                    what: format!(
                        "{name}: sequential write uploaded once ({} upload(s), {} copies)",
                        c.uploads,
                        c.request("copy")
                    ),
                    ok: c.uploads == 1 && c.request("copy") == 0,
                });
            }
        }
        if let Some(Ok(r)) = ckpt.get(name) {
            out.push(Check {
                what: format!("{name}: {CKPT} in the bucket equals the last round's bytes ({} bytes)", r.bytes_checked),
                ok: r.bytes_checked == args.ckpt_mib * MIB,
            });
            out.push(Check { what: format!("{name}: {CKPT_TMP} never seen in the bucket"), ok: !r.tmp_seen });
            if let Some(c) = &r.counters {
                out.push(Check {
                    what: format!(
                        "{name}: one upload per checkpoint round ({} uploads for {} rounds), no copy ({} copy requests)",
                        c.uploads,
                        args.ckpt_rounds,
                        c.request("copy")
                    ),
                    ok: c.uploads == u64::from(args.ckpt_rounds) && c.request("copy") == 0 && c.copies == 0,
                });
            }
        }
    }
    out
}

/// The entries of a per-server map, ganesha (the yardstick) first.
fn in_order<'a, T>(m: &'a BTreeMap<&'static str, T>) -> impl Iterator<Item = (&'a &'static str, &'a T)> {
    ["ganesha", "bucketfs"].into_iter().filter_map(move |n| m.get_key_value(&n))
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Requests per GiB written, `kind` by kind, and their total.
fn per_gib_cells(c: &Counters, written_bytes: u64) -> Vec<String> {
    let gib = written_bytes as f64 / GIB;
    let mut cells: Vec<String> = REQUEST_KINDS.iter().map(|k| format!("{:.1}", c.request(k) as f64 / gib)).collect();
    let total: u64 = REQUEST_KINDS.iter().map(|k| c.request(k)).sum();
    cells.push(format!("**{:.1}**", total as f64 / gib));
    cells
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    cores: usize,
    cpus: &Cpus,
    servers: &[Server],
    failures: &BTreeMap<&'static str, String>,
    seq: &BTreeMap<&'static str, Result<SeqResult, String>>,
    ckpt: &BTreeMap<&'static str, Result<CkptResult, String>>,
    checks: &[Check],
    s3: Option<&testkit::S3Server>,
) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu_model = servers::cpu_model();
    let bucketfs_version = servers::version_of(&servers::bucketfs_binary(args.bucketfs.as_deref()));
    let bucket_desc = servers
        .iter()
        .find(|s| s.kind == ServerKind::Bucketfs)
        .map_or_else(|| "—".to_string(), |s| s.bucket.describe());
    let weed =
        s3.map(|_| testkit::weed_binary().map(|w| servers::version_of_args(&w, &["version"])).unwrap_or_default());
    let size_bytes = args.size_mib * MIB;
    let ckpt_bytes = args.ckpt_mib * MIB;
    let mut r = String::new();
    let _ = writeln!(r, "### NFSv3 writes: bucketfs vs nfs-ganesha\n");
    let _ = writeln!(
        r,
        "Sequential write: one file of {} MiB, fio `nfs` engine, `rw=write bs=1M`, {} jobs × iodepth {} (each job \
         its own connection and its own slice of the file), then one COMMIT \
         (sent by the bench: fio's nfs engine cannot fsync). Checkpoint pattern: {} rounds of create `{CKPT_TMP}`, \
         {} MiB in 1 MiB UNSTABLE writes ({} in flight), COMMIT, rename over `{CKPT}` (nfs-rs 0.11, {}); \
         each round waits until the bucket holds it. ganesha: FSAL_VFS on a local directory (its bucket is that \
         directory), nfs-ganesha {}. bucketfs: {bucketfs_version}, bucket {bucket_desc}{}; `[write] \
         upload_after_close = \"{}\"`, `upload_after_idle = \"{}\"`, other `[write]` settings default \
         (`part_bytes` 16 MiB: larger files go up as multipart uploads). {} (libnfs 4.0); kernel {}; {cores} cores ({cpu_model}), {}.\n",
        args.size_mib,
        args.jobs,
        args.iodepth,
        args.ckpt_rounds,
        args.ckpt_mib,
        args.ckpt_iodepth,
        args.ckpt_nfs.label(),
        servers::dpkg_version("nfs-ganesha"),
        weed.map(|w| format!(" (SeaweedFS {w})")).unwrap_or_default(),
        args.upload_after_close,
        args.upload_after_idle,
        servers::version_of(&args.fio),
        kernel.trim(),
        cpus.describe("fio and the bench's client")
    );
    for (name, why) in failures {
        let _ = writeln!(r, "- **{name}: {}**\n", why.replace('|', "/"));
    }

    // 1. Sequential write.
    let ganesha_seq = seq.get("ganesha").and_then(|r| r.as_ref().ok());
    let _ = writeln!(r, "#### Sequential write ({} MiB)\n", args.size_mib);
    let _ = writeln!(
        r,
        "| server | MB/s (fio) | MB/s incl. COMMIT | COMMIT ms | write p50 / p99 / p99.9 ms | in the bucket after COMMIT | bucketfs/ganesha (incl. COMMIT) |\n|---|---|---|---|---|---|---|"
    );
    for (name, result) in in_order(seq) {
        match result {
            Ok(s) => {
                let ratio = match (name, ganesha_seq) {
                    (&"bucketfs", Some(g)) => format!(
                        "**{:.2}** ({:.2})",
                        s.fio_bytes_per_s / g.fio_bytes_per_s,
                        s.durable_bytes_per_s(size_bytes) / g.durable_bytes_per_s(size_bytes)
                    ),
                    _ => String::new(),
                };
                let _ = writeln!(
                    r,
                    "| {name} | {:.0} | {:.0} | {} | {} / {} / {} | {} | {ratio} |",
                    s.fio_bytes_per_s / 1e6,
                    s.durable_bytes_per_s(size_bytes) / 1e6,
                    ms(s.commit_ms),
                    ms(s.p50_us / 1e3),
                    ms(s.p99_us / 1e3),
                    ms(s.p999_us / 1e3),
                    if *name == "ganesha" {
                        "0 s (the directory)".to_string()
                    } else {
                        format!("{:.2} s", s.to_bucket_ms / 1e3)
                    }
                );
            }
            Err(e) => {
                let _ = writeln!(r, "| {name} | failed: {} | | | | | |", e.replace('|', "/"));
            }
        }
    }
    for (name, result) in in_order(seq) {
        if let Ok(s) = result {
            for why in &s.fio_retries {
                let _ = writeln!(r, "\n{name}: a first fio run was not counted: {why}; run again.");
            }
        }
    }
    let _ = writeln!(
        r,
        "\nfio's MB/s counts writes acknowledged (UNSTABLE); \"incl. COMMIT\" divides the size by fio's runtime plus \
         the COMMIT. Over NFSv3 a file is never closed: bucketfs uploads `{SEQ_FILE}` `upload_after_idle` ({}) \
         after its last write, so that time is most of \"in the bucket\".\n",
        args.upload_after_idle
    );

    // 2. Checkpoint pattern.
    let _ = writeln!(r, "#### Checkpoint pattern ({} rounds × {} MiB)\n", args.ckpt_rounds, args.ckpt_mib);
    let ok_ckpt: Vec<(&str, &CkptResult)> =
        in_order(ckpt).filter_map(|(n, r)| r.as_ref().ok().map(|c| (*n, c))).collect();
    let mut header = String::from("| round |");
    let mut rule = String::from("|---|");
    for (name, _) in &ok_ckpt {
        let _ = write!(header, " {name} ms | {name} MB/s | {name} COMMIT ms | {name} in the bucket after rename, ms |");
        rule.push_str("---|---|---|---|");
    }
    let both = ok_ckpt.len() == 2;
    if both {
        header.push_str(" bucketfs/ganesha MB/s |");
        rule.push_str("---|");
    }
    let _ = writeln!(r, "{header}\n{rule}");
    let mut ratios = Vec::new();
    for round in 0..args.ckpt_rounds as usize {
        let mut line = format!("| {round} |");
        for (_, c) in &ok_ckpt {
            let t = c.round_ms.get(round).copied().unwrap_or(f64::NAN);
            let _ = write!(
                line,
                " {} | {:.0} | {} | {} |",
                ms(t),
                ckpt_bytes as f64 / t / 1e3,
                ms(c.commit_ms.get(round).copied().unwrap_or(f64::NAN)),
                ms(c.to_bucket_ms.get(round).copied().unwrap_or(f64::NAN))
            );
        }
        if both {
            let g = ok_ckpt.iter().find(|(n, _)| *n == "ganesha").and_then(|(_, c)| c.round_ms.get(round));
            let b = ok_ckpt.iter().find(|(n, _)| *n == "bucketfs").and_then(|(_, c)| c.round_ms.get(round));
            if let (Some(g), Some(b)) = (g, b) {
                ratios.push(g / b);
                let _ = write!(line, " {:.2} |", g / b);
            }
        }
        let _ = writeln!(r, "{line}");
    }
    let mut line = String::from("| **median** |");
    for (_, c) in &ok_ckpt {
        let t = median(c.round_ms.clone()).unwrap_or(f64::NAN);
        let _ = write!(
            line,
            " **{}** | **{:.0}** | {} | **{}** |",
            ms(t),
            ckpt_bytes as f64 / t / 1e3,
            ms(median(c.commit_ms.clone()).unwrap_or(f64::NAN)),
            ms(median(c.to_bucket_ms.clone()).unwrap_or(f64::NAN))
        );
    }
    if both {
        let _ = write!(line, " **{:.2}** |", median(ratios).unwrap_or(f64::NAN));
    }
    let _ = writeln!(r, "{line}");
    for (name, result) in in_order(ckpt) {
        if let Err(e) = result {
            let _ = writeln!(r, "\n{name}: failed: {e}");
        }
    }
    let _ = writeln!(
        r,
        "\nA round: CREATE to RENAME returned. \"In the bucket\": from the rename's return until the bucket's `{CKPT}` \
         has the round's size and first bytes; for bucketfs mostly `upload_after_close` ({}; a rename counts as a \
         close over NFSv3), then the upload. ganesha's bucket is its directory: there from the rename on.\n",
        args.upload_after_close
    );

    // 3. Requests to the bucket.
    let _ = writeln!(r, "#### bucketfs: requests to the bucket per GiB written\n");
    let _ = writeln!(
        r,
        "| phase | {} | total | uploads | COMMITs |\n|---|{}---|---|---|",
        REQUEST_KINDS.join(" | "),
        "---|".repeat(REQUEST_KINDS.len())
    );
    if let Some(Ok(s)) = seq.get("bucketfs") {
        if let Some(c) = &s.counters {
            let _ = writeln!(
                r,
                "| sequential write ({} MiB) | {} | {} | {} |",
                args.size_mib,
                per_gib_cells(c, size_bytes).join(" | "),
                c.uploads,
                c.commits
            );
        }
    }
    if let Some(Ok(k)) = ckpt.get("bucketfs") {
        if let Some(c) = &k.counters {
            let written = ckpt_bytes * u64::from(args.ckpt_rounds);
            let _ = writeln!(
                r,
                "| checkpoint ({} × {} MiB) | {} | {} | {} |",
                args.ckpt_rounds,
                args.ckpt_mib,
                per_gib_cells(c, written).join(" | "),
                c.uploads,
                c.commits
            );
        }
    }
    let _ = writeln!(
        r,
        "\nDeltas of bucketfs's per-bucket request counters (`bucketfs stats --json`) over each phase, once \
         nothing was pending; divided by the GiB written in the phase. `put` counts single PUTs and the creation \
         of each multipart upload, `multipart_part` its parts (bucketfs does not count the completion). The bench's own polling and checks \
         go to the bucket directly and are not in these counts.\n"
    );

    // 4. Checks.
    let _ = writeln!(r, "#### Checks\n");
    for c in checks {
        let _ = writeln!(r, "- {} {}", if c.ok { "✓" } else { "✗ **FAILED**" }, c.what);
    }
    for s in servers {
        let _ = writeln!(r, "- {}: {}", s.kind.name(), s.stopped);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as fio 3.33 writes it with `verify=crc32c`.
    fn fio_block(offset: u64, len: usize, fill: u8) -> Vec<u8> {
        let mut b = vec![fill; len];
        b[0..2].copy_from_slice(&FIO_HDR_MAGIC.to_le_bytes());
        b[2..4].copy_from_slice(&FIO_VERIFY_CRC32C.to_le_bytes());
        b[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        b[8..16].copy_from_slice(&7u64.to_le_bytes());
        b[16..24].copy_from_slice(&offset.to_le_bytes());
        let hdr = fio_crc32c(&b[..36]);
        b[36..40].copy_from_slice(&hdr.to_le_bytes());
        let data = fio_crc32c(&b[FIO_HDR_BYTES..]);
        b[40..44].copy_from_slice(&data.to_le_bytes());
        b
    }

    #[test]
    fn fio_crc32c_is_the_uninverted_castagnoli() {
        // CRC-32C("123456789") = 0xe3069283; fio keeps it without the final inversion.
        assert_eq!(fio_crc32c(b"123456789"), !0xe306_9283);
    }

    #[test]
    fn verifies_fio_blocks_in_any_chunking() {
        let block = 4096;
        let file: Vec<u8> = (0..4u64).flat_map(|i| fio_block(i * block as u64, block, i as u8)).collect();
        for chunk in [1usize, 100, 4096, 5000, file.len()] {
            let mut v = FioVerify::new(block);
            for piece in file.chunks(chunk) {
                v.push(piece).unwrap();
            }
            assert_eq!(v.finish(file.len() as u64).unwrap(), 4);
        }
        // A flipped data byte, a block at the wrong place, zeros, a short file.
        let mut bad = file.clone();
        bad[block + 100] ^= 1;
        let e = FioVerify::new(block).push(&bad).unwrap_err().to_string();
        assert!(e.contains("data CRC32C") && e.contains("at 4096"), "{e}");
        let mut swapped = file.clone();
        swapped[..block].copy_from_slice(&file[block..2 * block]);
        let e = FioVerify::new(block).push(&swapped).unwrap_err().to_string();
        assert!(e.contains("offset 4096"), "{e}");
        let e = FioVerify::new(block).push(&vec![0u8; block]).unwrap_err().to_string();
        assert!(e.contains("magic"), "{e}");
        let mut v = FioVerify::new(block);
        v.push(&file[..block + 10]).unwrap();
        assert!(v.finish(file.len() as u64).is_err());
    }

    #[test]
    fn counters_from_stats_json_and_deltas() {
        let json = |uploads: u64, puts: u64| {
            serde_json::json!({
                "writes": {"uploads": uploads, "commits": 2, "copies": 0, "deletes": 1,
                           "pending_uploads": 0, "pending_bucket_ops": 0},
                "buckets": [{"name": "bench", "requests": {"put": puts, "copy": 0, "head": 3}}]
            })
        };
        let before = Counters::from_json(&json(1, 1)).unwrap();
        let after = Counters::from_json(&json(4, 3)).unwrap();
        let d = after.since(&before);
        assert_eq!((d.uploads, d.request("put"), d.request("head"), d.request("get")), (3, 2, 0, 0));
        let cells = per_gib_cells(&d, 1 << 29);
        assert_eq!(cells[0], "4.0");
        assert_eq!(cells.last().map(String::as_str), Some("**4.0**"));
        assert!(Counters::from_json(&serde_json::json!({"buckets": []})).is_err());
    }

    #[test]
    fn bucketfs_config_parts() {
        let args = Args::parse_from(["write-bench"]);
        let s = bucketfs_config(&args, Ports::from_base(30000), 5120, "kind = \"local\"\npath = \"/b\"\n");
        for part in [
            "size = \"5120MiB\"",
            "listen = \"127.0.0.1:30005\"",
            "upload_after_close = \"2s\"",
            "upload_after_idle = \"30s\"",
            "kind = \"local\"\npath = \"/b\"",
            "[nfs]\nlisten = \"127.0.0.1:30002\"\nmount_listen = \"127.0.0.1:30003\"",
        ] {
            assert!(s.contains(part), "{part:?} missing from\n{s}");
        }
    }
}
