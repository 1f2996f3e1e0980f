//! The peers users would pick instead of bucketfs, run against the same S3 bucket for
//! side-by-side benchmarks (installed by scripts/install-perf-deps.sh):
//!
//! - `rclone serve nfs` (NFSv3 through go-nfs; MOUNT on the same port) with the VFS cache in
//!   `full` mode — the closest peer: a caching NFS server in front of a bucket (libnfs needs
//!   `auto-traverse-mounts=0` in its URL, or fio's nfs engine reads nothing);
//! - `rclone mount` (FUSE) with the VFS cache in `full` mode;
//! - `s3fs` (FUSE) with `use_cache`.
//!
//! Settings are the ones a fair-minded user would pick for an ML read workload on a box with a
//! fast local disk: rclone `--vfs-cache-mode full` (reads land in the cache, warm reads come from
//! it), `--vfs-cache-max-size` = the cache budget bucketfs gets, `--dir-cache-time 1h` and
//! `--attr-timeout 1h` (the benchmark never changes the bucket behind its back),
//! `--vfs-read-chunk-size 16M` with `--buffer-size 16M` and `--transfers 8`,
//! `--vfs-write-back 1s` (uploads start one second after close, as bucketfs's default two);
//! s3fs `use_cache` with `parallel_count=8`, `multipart_size=16` (MiB), `stat_cache_expire=3600`,
//! `ensure_diskfree` keeping the disk's free space above what the cache budget leaves (s3fs has
//! no cache size limit of its own).
//!
//! Runs on: the caller's thread; the peers are child processes pinned with taskset, in their own
//! process group; `stop` (or drop) unmounts and kills them and removes their directories.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::servers::{self, pinned};
use crate::workloads::Access;

/// Where `scripts/install-perf-deps.sh` puts rclone.
pub const RCLONE_INSTALL_PATH: &str = "/opt/bucketfs-test/rclone/bin/rclone";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to reach the S3 bucket (path style, plain http).
#[derive(Clone, Debug)]
pub struct S3Target {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    RcloneNfs,
    RcloneMount,
    S3fs,
}

impl PeerKind {
    pub fn name(&self) -> &'static str {
        match self {
            PeerKind::RcloneNfs => "rclone-nfs",
            PeerKind::RcloneMount => "rclone-mount",
            PeerKind::S3fs => "s3fs",
        }
    }
}

fn rclone_binary() -> anyhow::Result<PathBuf> {
    let p = std::env::var_os("BUCKETFS_RCLONE").map(PathBuf::from).unwrap_or_else(|| RCLONE_INSTALL_PATH.into());
    if !p.is_file() {
        bail!("rclone not found at {} (run scripts/install-perf-deps.sh, or set BUCKETFS_RCLONE)", p.display());
    }
    Ok(p)
}

/// "rclone v1.75.0", "s3fs V1.90": for the report's versions.
pub fn peer_version(kind: PeerKind) -> String {
    match kind {
        PeerKind::RcloneNfs | PeerKind::RcloneMount => {
            rclone_binary().map(|r| servers::version_of_args(&r, &["version"])).unwrap_or_else(|e| format!("{e:#}"))
        }
        PeerKind::S3fs => {
            let v = servers::version_of(Path::new("s3fs"));
            v.split_whitespace().find(|w| w.starts_with('V')).map(|w| format!("s3fs {w}")).unwrap_or(v)
        }
    }
}

/// A running peer.
pub struct Peer {
    kind: PeerKind,
    child: Option<Child>,
    access: Access,
    mountpoint: Option<PathBuf>,
    dir: PathBuf,
    log: PathBuf,
}

/// Whether `path` is a mount point now (in /proc/self/mounts).
fn is_mounted(path: &Path) -> bool {
    let want = path.display().to_string();
    std::fs::read_to_string("/proc/self/mounts")
        .map(|t| t.lines().any(|l| l.split_whitespace().nth(1) == Some(want.as_str())))
        .unwrap_or(false)
}

impl Peer {
    /// Starts the peer on `cpus` (a taskset list) with its cache and logs in `work` (emptied
    /// first), and waits until it serves the bucket's root (30 s at most, then fails with its
    /// log's tail). `cache_bytes_max`: the peer's cache budget.
    pub fn start(
        kind: PeerKind,
        s3: &S3Target,
        work: &Path,
        cpus: Option<&str>,
        cache_bytes_max: u64,
    ) -> anyhow::Result<Peer> {
        let _ = std::fs::remove_dir_all(work);
        let cache = work.join("cache");
        std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
        let log = work.join(format!("{}.log", kind.name()));
        let cache_mib = cache_bytes_max.div_ceil(1 << 20).to_string();
        let mut peer =
            Peer { kind, child: None, access: Access::Path(PathBuf::new()), mountpoint: None, dir: work.into(), log };
        let log_file = std::fs::File::create(&peer.log)?;
        let mut cmd = match kind {
            PeerKind::RcloneNfs | PeerKind::RcloneMount => {
                let mut c = pinned(&rclone_binary()?, cpus);
                c.env_remove("AWS_CA_BUNDLE")
                    .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
                    .env("RCLONE_CONFIG_BENCH_PROVIDER", "Other")
                    .env("RCLONE_CONFIG_BENCH_ENDPOINT", &s3.endpoint)
                    .env("RCLONE_CONFIG_BENCH_REGION", &s3.region)
                    .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", &s3.access_key)
                    .env("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", &s3.secret_key)
                    .env("RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE", "true")
                    .env("RCLONE_CONFIG_BENCH_NO_CHECK_BUCKET", "true");
                let remote = format!("bench:{}", s3.bucket);
                if kind == PeerKind::RcloneNfs {
                    let port = servers::free_port()?;
                    c.args(["serve", "nfs", &remote, "--addr", &format!("127.0.0.1:{port}")]);
                    peer.access = Access::Nfs {
                        url_v3: format!("nfs://127.0.0.1/?nfsport={port}&mountport={port}&auto-traverse-mounts=0"),
                    };
                } else {
                    let mp = work.join("mnt");
                    std::fs::create_dir_all(&mp)?;
                    c.args(["mount", &remote]).arg(&mp).args(["--attr-timeout", "1h"]);
                    peer.access = Access::Path(mp.clone());
                    peer.mountpoint = Some(mp);
                }
                c.args([
                    "--vfs-cache-mode",
                    "full",
                    "--vfs-cache-max-size",
                    &format!("{cache_mib}M"),
                    "--dir-cache-time",
                    "1h",
                    "--vfs-read-chunk-size",
                    "16M",
                    "--buffer-size",
                    "16M",
                    "--transfers",
                    "8",
                    "--vfs-write-back",
                    "1s",
                    "--log-level",
                    "NOTICE",
                ])
                .arg("--cache-dir")
                .arg(&cache);
                c
            }
            PeerKind::S3fs => {
                let mp = work.join("mnt");
                std::fs::create_dir_all(&mp)?;
                let passwd = work.join("passwd-s3fs");
                std::fs::write(&passwd, format!("{}:{}\n", s3.access_key, s3.secret_key))?;
                std::fs::set_permissions(&passwd, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
                // Keep free disk space above what the cache budget leaves.
                let free_mib = rustix::fs::statvfs(work).map(|s| (s.f_bavail * s.f_frsize) >> 20).unwrap_or(0);
                let keep_free_mib = free_mib.saturating_sub(cache_bytes_max >> 20).max(1024);
                let mut c = pinned(Path::new("s3fs"), cpus);
                c.arg(&s3.bucket).arg(&mp).arg("-f").arg("-o").arg(format!(
                    "url={},endpoint={},use_path_request_style,passwd_file={},use_cache={},parallel_count=8,\
                     multipart_size=16,stat_cache_expire=3600,ensure_diskfree={keep_free_mib},dbglevel=warn",
                    s3.endpoint,
                    s3.region,
                    passwd.display(),
                    cache.display()
                ));
                peer.access = Access::Path(mp.clone());
                peer.mountpoint = Some(mp);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {} (scripts/install-perf-deps.sh installs it)", kind.name()))?;
        peer.child = Some(child);
        if let Err(e) = peer.wait_serving() {
            let tail = peer.log_tail();
            let _ = peer.shutdown();
            bail!("{} did not start: {e:#}; log:\n{tail}", kind.name());
        }
        eprintln!("{}: serving s3://{} ({})", kind.name(), s3.bucket, peer.access.describe());
        Ok(peer)
    }

    fn wait_serving(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("exited ({status})");
            }
            let ready = match (&self.access, &self.mountpoint) {
                (Access::Path(root), Some(mp)) => is_mounted(mp) && std::fs::read_dir(root).is_ok(),
                (Access::Nfs { url_v3 }, _) => {
                    let port = url_v3.split("nfsport=").nth(1).and_then(|p| p.split('&').next()?.parse().ok());
                    servers::port_open(port.unwrap_or(0))
                }
                _ => false,
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("not serving after {} s", START_TIMEOUT.as_secs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where the bucket's root is reached.
    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn kind(&self) -> PeerKind {
        self.kind
    }

    pub fn log_tail(&self) -> String {
        servers::log_tail(&self.log)
    }

    /// Unmounts (for a mount), stops the process, removes the peer's directory. Fails when the
    /// mount would not go away.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        if let Some(mp) = self.mountpoint.take() {
            if is_mounted(&mp) {
                let ok = Command::new("fusermount3").arg("-u").arg(&mp).status().map(|s| s.success()).unwrap_or(false);
                if !ok {
                    let _ = Command::new("fusermount3").arg("-uz").arg(&mp).status();
                    result = Err(anyhow::anyhow!("{}: {} was busy: lazily unmounted", self.kind.name(), mp.display()));
                }
            }
        }
        if let Some(mut child) = self.child.take() {
            let why = servers::stop_gently(&mut child, Duration::from_secs(10));
            if why.contains("killed") {
                eprintln!("{}: {why}", self.kind.name());
            }
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        result
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
