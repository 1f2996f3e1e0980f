//! NFS read throughput and latency: bucketfs vs nfs-ganesha, side by side in one run, both
//! measured by the same client, fio with its `nfs` engine (libnfs, user space: no kernel mount).
//!
//! 1. Writes `--files` files of `--file-mib` random bytes into `<dir>/export` (reused when
//!    already there at the right size).
//! 2. Starts nfs-ganesha (FSAL_VFS on that directory, config from perf/ganesha/ganesha.conf.in;
//!    NFSv3 needs rpcbind, started here when none runs) and `bucketfs serve --config FILE` with
//!    the same directory as a local bucket and a fresh file cache. A side that cannot start is
//!    reported as "not available: <why>", never given numbers.
//! 3. Per protocol (`--protocols v3,v4`): a warm-up pass reads every file once through each
//!    server (bucketfs's cache fills; ganesha's page cache is warm anyway), then per workload
//!    `--rounds` timed rounds, alternating which server goes first:
//!    - 4 KiB random reads, `--jobs` jobs × `--iodepth`, one file per job;
//!    - 1 MiB sequential reads, `--jobs` jobs × `--iodepth-seq`.
//! 4. Reports IOPS, GB/s, clat p50/p99/p99.9 (fio's JSON), the ratio bucketfs/ganesha per round
//!    and its median, as Markdown (stdout, and `--report FILE`).
//!
//! Cores: the servers get the first half of the cores and fio the other half (`taskset`), so
//! neither server can take CPU from the client; `--shared-cores` lets them mix. `--smoke` runs
//! tiny sizes for a second so the harness never rots.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use perf::fio::{Fio, Measure, FIO_GRACE};
use perf::median;
use perf::servers::{self, pinned, wait_ready, Cpus, Ganesha, GaneshaSpec};
use rand::{RngCore, SeedableRng};

#[derive(Parser, Clone)]
#[command(about = "bucketfs vs nfs-ganesha over NFS (fio's nfs engine), side by side")]
struct Args {
    /// Work directory: the exported files, server configurations, logs, bucketfs's cache.
    #[arg(long, default_value = "/var/tmp/bucketfs-nfs-bench")]
    dir: PathBuf,
    /// Files in the export (one per fio job; jobs beyond this share files).
    #[arg(long, default_value_t = 4)]
    files: usize,
    /// Size of each file, MiB.
    #[arg(long, default_value_t = 256)]
    file_mib: u64,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Timed rounds per workload (alternating which server goes first).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// fio jobs (each its own NFS connection and file).
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Queue depth per job, 4 KiB random reads.
    #[arg(long, default_value_t = 16)]
    iodepth: u32,
    /// Queue depth per job, 1 MiB sequential reads.
    #[arg(long, default_value_t = 4)]
    iodepth_seq: u32,
    /// NFS versions to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "v3,v4")]
    protocols: Vec<Proto>,
    /// fio built with the nfs engine (scripts/install-fio-nfs.sh).
    #[arg(long, default_value = "/opt/bucketfs-test/fio-nfs/bin/fio")]
    fio: PathBuf,
    /// The bucketfs binary (`cargo build --release -p bucketfs`); default: target/release/bucketfs
    /// of this workspace (or of $CARGO_TARGET_DIR).
    #[arg(long)]
    bucketfs: Option<PathBuf>,
    /// Ports from here on: ganesha NFS, MOUNT; bucketfs NFS, MOUNT, portmapper, admin.
    #[arg(long, default_value_t = 20600)]
    port_base: u16,
    /// Let servers and fio share every core (default: servers on the first half).
    #[arg(long)]
    shared_cores: bool,
    /// Write the Markdown report here too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Tiny and quick: 2 files × 8 MiB, 2 jobs × iodepth 4, 1 s, 1 round.
    #[arg(long)]
    smoke: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Proto {
    V3,
    V4,
}

impl Proto {
    fn label(self) -> &'static str {
        match self {
            Proto::V3 => "NFSv3",
            Proto::V4 => "NFSv4.0",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Random4k,
    Seq1m,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Workload::Random4k => "4 KiB random read",
            Workload::Seq1m => "1 MiB sequential read",
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

/// A server under test: its process(es), and per protocol the libnfs URL of its export, or why
/// that protocol cannot be measured on it.
struct Side {
    name: &'static str,
    children: Vec<Child>,
    urls: BTreeMap<Proto, Result<String, String>>,
}

impl Side {
    fn unavailable(name: &'static str, protocols: &[Proto], why: &str) -> Side {
        let urls = protocols.iter().map(|p| (*p, Err(why.to_string()))).collect();
        Side { name, children: Vec::new(), urls }
    }

    fn url(&self, proto: Proto) -> Result<&str, &str> {
        match self.urls.get(&proto) {
            Some(Ok(url)) => Ok(url),
            Some(Err(why)) => Err(why),
            None => Err("not requested"),
        }
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.files = 2;
        args.file_mib = 8;
        args.seconds = 1;
        args.rounds = 1;
        args.jobs = 2;
        args.iodepth = 4;
        args.iodepth_seq = 2;
    }
    if args.files == 0 || args.jobs == 0 || args.file_mib == 0 || args.rounds == 0 || args.seconds == 0 {
        bail!("--files, --jobs, --file-mib, --rounds and --seconds must be at least 1");
    }
    if args.port_base > u16::MAX - 6 {
        bail!("--port-base leaves no room for its 6 ports");
    }
    args.protocols.sort();
    args.protocols.dedup();
    let ports = Ports::from_base(args.port_base);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpus = Cpus::split(args.shared_cores, cores);
    if !args.fio.exists() {
        bail!("{} not found: run scripts/install-fio-nfs.sh (fio with the nfs engine)", args.fio.display());
    }
    let export = args.dir.join("export");
    let files = prepare_files(&export, args.files, args.file_mib << 20)?;

    let mut rpcbind = None;
    let ganesha = start_ganesha(&args, ports, &cpus, &export, &mut rpcbind)?;
    let bucketfs = match start_bucketfs(&args, ports, &cpus, &export) {
        Ok(side) => side,
        Err(why) => {
            eprintln!("bucketfs: not available: {why:#}");
            Side::unavailable("bucketfs", &args.protocols, &format!("{why:#}"))
        }
    };
    let mut sides = [ganesha, bucketfs];

    let mut rows: Vec<Row> = Vec::new();
    for &proto in &args.protocols {
        for side in sides.iter_mut() {
            let Ok(url) = side.url(proto).map(str::to_string) else { continue };
            let started = Instant::now();
            match warm(&args, &cpus, &url, &files) {
                Ok(()) => {
                    eprintln!("{} {}: warm-up read of every file in {:.1} s", side.name, proto.label(), secs(started))
                }
                Err(e) => {
                    eprintln!("{} {}: warm-up failed: {e:#}", side.name, proto.label());
                    side.urls.insert(proto, Err(format!("warm-up read failed: {e:#}")));
                }
            }
        }
        for workload in [Workload::Random4k, Workload::Seq1m] {
            for round in 0..args.rounds {
                let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                let mut results: [Option<Result<Measure, String>>; 2] = [None, None];
                for i in order {
                    let side = &mut sides[i];
                    let result = match side.url(proto) {
                        Ok(url) => {
                            let url = url.to_string();
                            run_fio(&args, &cpus, &url, &files, workload).map_err(|e| format!("{e:#}"))
                        }
                        Err(why) => Err(format!("not available: {why}")),
                    };
                    if let Err(e) = &result {
                        if side.url(proto).is_ok() {
                            // A failure mid-run: keep the reason, stop measuring this side.
                            side.urls.insert(proto, Err(e.clone()));
                        }
                    }
                    results[i] = Some(result);
                }
                let [g, b] = results;
                let row = Row {
                    proto,
                    workload,
                    round,
                    ganesha: g.unwrap_or_else(|| Err("not run".into())),
                    bucketfs: b.unwrap_or_else(|| Err("not run".into())),
                };
                eprintln!("{}", row.progress());
                rows.push(row);
            }
        }
    }
    drop(sides);
    if let Some(mut child) = rpcbind {
        let _ = child.kill();
        let _ = child.wait();
    }

    let report = report(&args, cores, &cpus, &rows);
    println!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    // Every requested ganesha measurement must have worked: the peer is the yardstick.
    if let Some(row) = rows.iter().find(|r| r.ganesha.is_err()) {
        bail!(
            "ganesha {} {}: {}",
            row.proto.label(),
            row.workload.label(),
            row.ganesha.as_ref().err().map_or("", |s| s)
        );
    }
    Ok(())
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Files `f000`.. of `bytes` random bytes each; reused when already that size. Names relative
/// to the export.
fn prepare_files(export: &Path, count: usize, bytes: u64) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(export).with_context(|| format!("creating {}", export.display()))?;
    let started = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x6e_6673);
    let mut names = Vec::new();
    let mut written = 0u64;
    for i in 0..count {
        let name = format!("f{i:03}");
        let path = export.join(&name);
        if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(bytes) {
            let mut file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                rng.fill_bytes(&mut buf[..n]);
                file.write_all(&buf[..n]).with_context(|| format!("writing {}", path.display()))?;
                left -= n as u64;
            }
            written += bytes;
        }
        names.push(name);
    }
    if written > 0 {
        eprintln!("wrote {} MiB of files in {:.1} s", written >> 20, secs(started));
    }
    Ok(names)
}

fn start_ganesha(
    args: &Args,
    ports: Ports,
    cpus: &Cpus,
    export: &Path,
    rpcbind: &mut Option<Child>,
) -> anyhow::Result<Side> {
    let spec = GaneshaSpec {
        work_dir: &args.dir.join("ganesha"),
        export,
        nfs_port: ports.ganesha_nfs,
        mount_port: ports.ganesha_mount,
        v3: args.protocols.contains(&Proto::V3),
        cpus: cpus.servers.as_deref(),
    };
    let ganesha = servers::start_ganesha(&spec, rpcbind)?;
    let mut urls = BTreeMap::new();
    if let Some(why) = &ganesha.v3_unavailable {
        urls.insert(Proto::V3, Err(why.clone()));
    }
    for &proto in &args.protocols {
        urls.entry(proto).or_insert_with(|| {
            Ok(match proto {
                Proto::V3 => ganesha.v3_url(ports.ganesha_nfs, ports.ganesha_mount),
                Proto::V4 => Ganesha::v4_url(ports.ganesha_nfs),
            })
        });
    }
    Ok(Side { name: "ganesha", children: vec![ganesha.child], urls })
}

/// The `[nfs]` section of bucketfs's configuration: the only place its field names appear here.
fn bucketfs_nfs_section(ports: Ports) -> String {
    format!(
        "[nfs]\nlisten = \"127.0.0.1:{}\"\nmount_listen = \"127.0.0.1:{}\"\nportmap_listen = \"127.0.0.1:{}\"\n",
        ports.bucketfs_nfs, ports.bucketfs_mount, ports.bucketfs_portmap
    )
}

/// Its export's path: the MOUNT path for NFSv3 and the path in the NFSv4 pseudo tree.
const BUCKETFS_EXPORT: &str = "/export";

fn start_bucketfs(args: &Args, ports: Ports, cpus: &Cpus, export: &Path) -> anyhow::Result<Side> {
    let binary = servers::bucketfs_binary(args.bucketfs.as_deref());
    if !binary.exists() {
        bail!("no bucketfs binary at {} (cargo build --release -p bucketfs, or --bucketfs PATH)", binary.display());
    }
    let dir = args.dir.join("bucketfs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let data_bytes = args.files as u64 * (args.file_mib << 20);
    // Room for every file twice over, so nothing is evicted while measuring.
    let cache_gib = (2 * data_bytes).div_ceil(1 << 30).max(1);
    let export = export.canonicalize().with_context(|| format!("resolving {}", export.display()))?;
    let config = format!(
        "[cache]\ndevice = \"cache.img\"\nsize = \"{cache_gib}GiB\"\nmetadata_dir = \"meta\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{}\"\n\n\
         [[bucket]]\nname = \"bench\"\nkind = \"local\"\npath = \"{}\"\n\n\
         [[export]]\npath = \"{BUCKETFS_EXPORT}\"\nbucket = \"bench\"\nread_only = false\nroot_squash = false\n\n{}",
        ports.bucketfs_admin,
        export.display(),
        bucketfs_nfs_section(ports)
    );
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
    let mut urls = BTreeMap::new();
    for &proto in &args.protocols {
        let url = match proto {
            Proto::V3 => format!(
                "nfs://127.0.0.1{BUCKETFS_EXPORT}?nfsport={}&mountport={}",
                ports.bucketfs_nfs, ports.bucketfs_mount
            ),
            Proto::V4 => format!("nfs://127.0.0.1{BUCKETFS_EXPORT}?version=4&nfsport={}", ports.bucketfs_nfs),
        };
        urls.insert(proto, Ok(url));
    }
    eprintln!("bucketfs: serving {} on 127.0.0.1:{}", export.display(), ports.bucketfs_nfs);
    Ok(Side { name: "bucketfs", children: vec![child], urls })
}

/// Reads every file once, 1 MiB sequentially, one job per file.
fn warm(args: &Args, cpus: &Cpus, url: &str, files: &[String]) -> anyhow::Result<()> {
    let mut job = fio_global(url, "read", 1 << 20, 4, args.file_mib << 20);
    for (i, f) in files.iter().enumerate() {
        let _ = write!(job, "[warm{i}]\nfilename={f}\n");
    }
    // Generous: 20 MB/s would do.
    let limit = Duration::from_secs(args.files as u64 * args.file_mib / 20 + 30);
    fio_json(args, cpus, &job, "warm", limit).map(|_| ())
}

fn fio_global(url: &str, rw: &str, bs: u64, iodepth: u32, size: u64) -> String {
    format!(
        "[global]\nioengine=nfs\nnfs_url={url}\nrw={rw}\nbs={bs}\niodepth={iodepth}\nsize={size}\n\
         group_reporting=1\nrandrepeat=0\n\n"
    )
}

fn run_fio(args: &Args, cpus: &Cpus, url: &str, files: &[String], workload: Workload) -> anyhow::Result<Measure> {
    let (rw, bs, iodepth) = match workload {
        Workload::Random4k => ("randread", 4096, args.iodepth),
        Workload::Seq1m => ("read", 1 << 20, args.iodepth_seq),
    };
    let mut job = fio_global(url, rw, bs, iodepth, args.file_mib << 20);
    let _ = write!(job, "[global]\ntime_based=1\nruntime={}\n\n", args.seconds);
    for i in 0..args.jobs {
        let _ = write!(job, "[job{i}]\nfilename={}\n", files[i % files.len()]);
    }
    let limit = Duration::from_secs(args.seconds) + FIO_GRACE;
    let json = fio_json(args, cpus, &job, "bench", limit)?;
    Measure::of_reads(&json)
}

/// Runs fio on a job file (perf's shared runner: time limit, retries of hangs and crashes).
fn fio_json(args: &Args, cpus: &Cpus, job: &str, name: &str, limit: Duration) -> anyhow::Result<serde_json::Value> {
    Fio { program: &args.fio, dir: &args.dir, cpus: cpus.client.as_deref() }.json(job, name, limit)
}

struct Row {
    proto: Proto,
    workload: Workload,
    round: u32,
    ganesha: Result<Measure, String>,
    bucketfs: Result<Measure, String>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        match (&self.ganesha, &self.bucketfs) {
            (Ok(g), Ok(b)) if g.iops > 0.0 => Some(b.iops / g.iops),
            _ => None,
        }
    }

    fn progress(&self) -> String {
        let show = |r: &Result<Measure, String>| match r {
            Ok(m) => format!("{:.0} IOPS {:.2} GB/s", m.iops, m.bytes_per_s / 1e9),
            Err(e) => e.clone(),
        };
        format!(
            "{} {} round {}: ganesha {}; bucketfs {}",
            self.proto.label(),
            self.workload.label(),
            self.round,
            show(&self.ganesha),
            show(&self.bucketfs)
        )
    }
}

fn cell(r: &Result<Measure, String>, f: impl Fn(&Measure) -> String) -> String {
    match r {
        Ok(m) => f(m),
        Err(_) => "—".into(),
    }
}

fn report(args: &Args, cores: usize, cpus: &Cpus, rows: &[Row]) -> String {
    let fio_version = Command::new(&args.fio)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut r = String::new();
    let _ = writeln!(r, "### bucketfs vs nfs-ganesha over NFS (fio, nfs engine)\n");
    let _ = writeln!(
        r,
        "{} files × {} MiB; {} s per run, {} round(s) per workload, alternating which server goes first; \
         {} jobs (one NFS connection each), iodepth {} (4 KiB random) / {} (1 MiB sequential); \
         every file read once through each server before measuring. {fio_version} (libnfs, user space); \
         kernel {}; {cores} cores, {}.\n",
        args.files,
        args.file_mib,
        args.seconds,
        args.rounds,
        args.jobs,
        args.iodepth,
        args.iodepth_seq,
        kernel.trim(),
        cpus.describe("fio")
    );
    // Why a side has no numbers, once per protocol.
    let mut notes = BTreeMap::new();
    for row in rows {
        for (name, result) in [("ganesha", &row.ganesha), ("bucketfs", &row.bucketfs)] {
            if let Err(why) = result {
                notes.entry((row.proto, name)).or_insert_with(|| why.clone());
            }
        }
    }
    let _ = writeln!(
        r,
        "| protocol | workload | server | IOPS | GB/s | p50 µs | p99 µs | p99.9 µs | bucketfs/ganesha |\n|---|---|---|---|---|---|---|---|---|"
    );
    for &proto in &args.protocols {
        for workload in [Workload::Random4k, Workload::Seq1m] {
            let these: Vec<&Row> = rows.iter().filter(|x| x.proto == proto && x.workload == workload).collect();
            let ratio = median(these.iter().filter_map(|x| x.ratio()).collect());
            for (name, pick) in [
                ("ganesha", (|x: &Row| x.ganesha.clone()) as fn(&Row) -> Result<Measure, String>),
                ("bucketfs", |x: &Row| x.bucketfs.clone()),
            ] {
                let ok: Vec<Measure> = these.iter().filter_map(|x| pick(x).ok()).collect();
                let med = |f: fn(&Measure) -> f64| median(ok.iter().map(f).collect());
                let (Some(iops), Some(bw), Some(p50), Some(p99), Some(p999)) =
                    (med(|m| m.iops), med(|m| m.bytes_per_s), med(|m| m.p50_us), med(|m| m.p99_us), med(|m| m.p999_us))
                else {
                    let why = notes.get(&(proto, name)).cloned().unwrap_or_else(|| "no measurement".into());
                    let why = why.strip_prefix("not available: ").unwrap_or(&why).to_string();
                    let _ = writeln!(
                        r,
                        "| {} | {} | {name} | not available: {} | | | | | |",
                        proto.label(),
                        workload.label(),
                        why.replace('|', "/")
                    );
                    continue;
                };
                let ratio_cell = match (name, ratio) {
                    ("bucketfs", Some(x)) => format!("**{x:.2}**"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    r,
                    "| {} | {} | {name} | {iops:.0} | {:.3} | {p50:.0} | {p99:.0} | {p999:.0} | {ratio_cell} |",
                    proto.label(),
                    workload.label(),
                    bw / 1e9
                );
            }
        }
    }
    let _ = writeln!(r, "\nMedians over rounds; ratio: median of the per-round IOPS ratios.\n");
    let _ = writeln!(
        r,
        "<details><summary>every round</summary>\n\n| protocol | workload | round | ganesha IOPS | bucketfs IOPS | ganesha p99 µs | bucketfs p99 µs | ratio |\n|---|---|---|---|---|---|---|---|"
    );
    for row in rows {
        let _ = writeln!(
            r,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.proto.label(),
            row.workload.label(),
            row.round,
            cell(&row.ganesha, |m| format!("{:.0}", m.iops)),
            cell(&row.bucketfs, |m| format!("{:.0}", m.iops)),
            cell(&row.ganesha, |m| format!("{:.0}", m.p99_us)),
            cell(&row.bucketfs, |m| format!("{:.0}", m.p99_us)),
            row.ratio().map_or("—".into(), |x| format!("{x:.2}"))
        );
    }
    let _ = writeln!(r, "\n</details>");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_median() {
        let m = |iops| Ok(Measure { iops, ..Measure::default() });
        let row = |g, b| Row { proto: Proto::V3, workload: Workload::Random4k, round: 0, ganesha: g, bucketfs: b };
        assert_eq!(row(m(1000.0), m(900.0)).ratio(), Some(0.9));
        assert_eq!(row(m(1000.0), Err("not available: x".into())).ratio(), None);
    }

    #[test]
    fn bucketfs_config_has_one_nfs_section() {
        let s = bucketfs_nfs_section(Ports::from_base(30000));
        assert!(s.starts_with("[nfs]\n"), "{s}");
        for (key, port) in [("listen", 30002), ("mount_listen", 30003), ("portmap_listen", 30004)] {
            assert!(s.contains(&format!("\n{key} = \"127.0.0.1:{port}\"\n")), "{key}: {s}");
        }
    }
}
