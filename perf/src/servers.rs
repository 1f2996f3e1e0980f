//! The servers under test and their processes: nfs-ganesha (FSAL_VFS on a local directory, from
//! `perf/ganesha/ganesha.conf.in`; NFSv3 needs rpcbind, started here when none runs), the
//! bucketfs binary, readiness checks, `taskset` pinning, and why a server stopped (its log).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub const GANESHA_TEMPLATE: &str = include_str!("../ganesha/ganesha.conf.in");
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// CPU lists for `taskset`: (servers, client); None when not pinning.
#[derive(Clone, Debug, Default)]
pub struct Cpus {
    pub servers: Option<String>,
    pub client: Option<String>,
}

impl Cpus {
    /// Servers on the first half of the cores, the client on the other half; no pinning with
    /// `shared`, on one core, or without `taskset`.
    pub fn split(shared: bool, cores: usize) -> Cpus {
        if shared || cores < 2 || Command::new("taskset").arg("-V").output().is_err() {
            Cpus { servers: None, client: None }
        } else {
            Cpus { servers: Some(format!("0-{}", cores / 2 - 1)), client: Some(format!("{}-{}", cores / 2, cores - 1)) }
        }
    }

    /// For reports: "servers on cpus 0, client on cpus 1".
    pub fn describe(&self, client: &str) -> String {
        match (&self.servers, &self.client) {
            (Some(s), Some(c)) => format!("servers on cpus {s}, {client} on cpus {c}"),
            _ => format!("servers and {client} share the cores"),
        }
    }
}

/// `taskset -c CPUS PROGRAM` (or just PROGRAM when not pinning).
pub fn pinned(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(list) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(list).arg(program);
            c
        }
        None => Command::new(program),
    }
}

pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200)).is_ok()
}

/// Waits until `port` accepts connections; fails when `child` exits first (with `log`'s tail).
pub fn wait_ready(child: &mut Child, port: u16, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if port_open(port) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("exited ({status}): {}", log_tail(log));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("port {port} not open after {} s: {}", READY_TIMEOUT.as_secs(), log_tail(log))
}

/// Why a server stopped, from its log: from the first error line on (bucketfs: anyhow's
/// "Error:" and its context lines), else the last lines; ganesha's D-Bus complaints left out.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.contains("DBUS") && !l.is_empty() && *l != "|").collect();
    let picked: Vec<&str> = match lines.iter().position(|l| l.starts_with("Error:") || l.starts_with("error:")) {
        Some(at) => lines[at..].iter().take_while(|l| !l.starts_with("Stack backtrace")).take(4).copied().collect(),
        None => lines[lines.len().saturating_sub(3)..].to_vec(),
    };
    if picked.is_empty() {
        format!("(nothing in {})", log.display())
    } else {
        picked.join(" / ")
    }
}

/// Kills and reaps a server process (a no-op when it already exited).
pub fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Stops a server cleanly: SIGTERM, then SIGKILL if it is still running after `grace`. Returns
/// how it ended (for reports: a server that needed SIGKILL did not stop cleanly).
pub fn stop_gently(child: &mut Child, grace: Duration) -> String {
    if let Ok(Some(status)) = child.try_wait() {
        return format!("had already exited ({status})");
    }
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return format!("stopped on SIGTERM ({status})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(child);
    format!("still running {} s after SIGTERM: killed", grace.as_secs())
}

/// What nfs-ganesha is started with.
pub struct GaneshaSpec<'a> {
    /// Configuration, log and recovery state go here (emptied first).
    pub work_dir: &'a Path,
    /// The exported directory.
    pub export: &'a Path,
    pub nfs_port: u16,
    pub mount_port: u16,
    /// Serve NFSv3 (and MOUNT) too, which needs rpcbind; NFSv4 is always served.
    pub v3: bool,
    pub cpus: Option<&'a str>,
}

/// A running nfs-ganesha.
pub struct Ganesha {
    pub child: Child,
    /// The export's absolute path (NFSv3 clients MOUNT it by this path).
    pub export: PathBuf,
    /// `Protocols` as configured: "4" or "3, 4".
    pub protocols: &'static str,
    /// Why NFSv3 is not served although asked for (no rpcbind).
    pub v3_unavailable: Option<String>,
}

impl Ganesha {
    /// libnfs/nfs-rs URL of the export over NFSv3 (MOUNT takes the real path: the pseudo path
    /// gets MNT3ERR_ACCES).
    pub fn v3_url(&self, nfs_port: u16, mount_port: u16) -> String {
        format!("nfs://127.0.0.1{}?nfsport={nfs_port}&mountport={mount_port}", self.export.display())
    }

    /// libnfs URL over NFSv4.0 (the pseudo path; no rpcbind needed).
    pub fn v4_url(nfs_port: u16) -> String {
        format!("nfs://127.0.0.1/export?version=4&nfsport={nfs_port}")
    }
}

/// Starts nfs-ganesha on loopback (NFSv3 only when rpcbind runs or could be started into
/// `rpcbind`: the caller stops that one at the end).
pub fn start_ganesha(spec: &GaneshaSpec<'_>, rpcbind: &mut Option<Child>) -> anyhow::Result<Ganesha> {
    let dir = spec.work_dir;
    let state = dir.join("state");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    let export = spec.export.canonicalize().with_context(|| format!("resolving {}", spec.export.display()))?;
    let mut protocols = "4";
    let mut v3_unavailable = None;
    if spec.v3 {
        // NFSv3 and MOUNT register with rpcbind, or ganesha exits.
        match ensure_rpcbind(rpcbind) {
            Ok(()) => protocols = "3, 4",
            Err(e) => v3_unavailable = Some(format!("rpcbind unavailable for an NFSv3 ganesha: {e:#}")),
        }
    }
    let config = GANESHA_TEMPLATE
        .replace("@PROTOCOLS@", protocols)
        .replace("@NFS_PORT@", &spec.nfs_port.to_string())
        .replace("@MNT_PORT@", &spec.mount_port.to_string())
        .replace("@EXPORT_DIR@", &export.display().to_string())
        .replace("@STATE_DIR@", &state.display().to_string());
    let config_path = dir.join("ganesha.conf");
    std::fs::write(&config_path, config)?;
    let log = dir.join("ganesha.log");
    let mut child = pinned(Path::new("ganesha.nfsd"), spec.cpus)
        .arg("-F")
        .arg("-f")
        .arg(&config_path)
        .arg("-L")
        .arg(&log)
        .arg("-p")
        .arg(dir.join("ganesha.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ganesha.nfsd (apt nfs-ganesha nfs-ganesha-vfs; scripts/install-test-deps.sh)")?;
    if let Err(e) = wait_ready(&mut child, spec.nfs_port, &log) {
        stop(&mut child);
        bail!("ganesha did not start: {e:#}");
    }
    eprintln!("ganesha: serving {} on 127.0.0.1:{} (protocols {protocols})", export.display(), spec.nfs_port);
    Ok(Ganesha { child, export, protocols, v3_unavailable })
}

/// Starts `rpcbind -w -f` when nothing listens on port 111 (ours: stopped at the end).
pub fn ensure_rpcbind(slot: &mut Option<Child>) -> anyhow::Result<()> {
    if port_open(111) {
        return Ok(());
    }
    std::fs::create_dir_all("/run/rpcbind").context("creating /run/rpcbind")?;
    let program =
        ["/usr/sbin/rpcbind", "/sbin/rpcbind"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("rpcbind");
    let child = Command::new(program)
        .args(["-w", "-f"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting rpcbind (apt rpcbind)")?;
    *slot = Some(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if port_open(111) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("rpcbind started but port 111 is not open")
}

/// The bucketfs binary: `explicit`, else target/release/bucketfs under $CARGO_TARGET_DIR or
/// this workspace.
pub fn bucketfs_binary(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("release").join("bucketfs")
}

/// A free loopback TCP port (released before it is used: a tiny race, retried by callers).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// bucketfs's export path: the MOUNT path for NFSv3 and the path in the NFSv4 pseudo tree.
pub const BUCKETFS_EXPORT: &str = "/export";

/// What `bucketfs serve` is started with: one bucket, one read-write export at
/// [`BUCKETFS_EXPORT`], NFS on free loopback ports, an admin endpoint for `bucketfs stats`.
pub struct BucketfsSpec<'a> {
    pub binary: &'a Path,
    /// Configuration, cache file, metadata and log go here (emptied first).
    pub dir: &'a Path,
    pub cache_bytes: u64,
    /// The `[[bucket]]` keys after `name` (`kind = "s3"`, endpoint, keys...).
    pub bucket_section: &'a str,
    /// More configuration appended as is (e.g. a `[write]` section).
    pub extra: &'a str,
    pub cpus: Option<&'a str>,
}

/// A running `bucketfs serve`.
pub struct Bucketfs {
    pub child: Child,
    pub nfs_port: u16,
    pub mount_port: u16,
    /// `bucketfs stats --admin` address.
    pub admin: String,
    pub log: PathBuf,
}

impl Bucketfs {
    /// libnfs/nfs-rs URL of the export over NFSv3.
    pub fn v3_url(&self) -> String {
        format!("nfs://127.0.0.1{BUCKETFS_EXPORT}?nfsport={}&mountport={}", self.nfs_port, self.mount_port)
    }

    /// `bucketfs stats --json` under a time limit (a server that stopped answering fails).
    pub fn stats_json(&self, binary: &Path) -> anyhow::Result<serde_json::Value> {
        let out = Command::new("timeout")
            .arg("30")
            .arg(binary)
            .args(["stats", "--json", "--admin", &self.admin])
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running {} stats", binary.display()))?;
        if !out.status.success() {
            bail!("bucketfs stats ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        serde_json::from_slice(&out.stdout).context("parsing bucketfs stats --json")
    }
}

/// Starts `bucketfs serve` and waits until it serves NFS.
pub fn start_bucketfs(spec: &BucketfsSpec<'_>) -> anyhow::Result<Bucketfs> {
    if !spec.binary.exists() {
        bail!(
            "no bucketfs binary at {} (cargo build --release -p bucketfs, or --bucketfs PATH)",
            spec.binary.display()
        );
    }
    let dir = spec.dir;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (nfs_port, mount_port, portmap_port, admin_port) = (free_port()?, free_port()?, free_port()?, free_port()?);
    let cache_mib = spec.cache_bytes.div_ceil(1 << 20).max(256);
    let config = format!(
        "[cache]\ndevice = \"cache.img\"\nsize = \"{cache_mib}MiB\"\nmetadata_dir = \"meta\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n\
         [[bucket]]\nname = \"bench\"\n{}\n\
         [[export]]\npath = \"{BUCKETFS_EXPORT}\"\nbucket = \"bench\"\nread_only = false\nroot_squash = false\n\n\
         [nfs]\nlisten = \"127.0.0.1:{nfs_port}\"\nmount_listen = \"127.0.0.1:{mount_port}\"\n\
         portmap_listen = \"127.0.0.1:{portmap_port}\"\n\n{}",
        spec.bucket_section, spec.extra
    );
    let config_path = dir.join("bucketfs.toml");
    std::fs::write(&config_path, config).with_context(|| format!("writing {}", config_path.display()))?;
    let log = dir.join("bucketfs.log");
    let log_file = std::fs::File::create(&log)?;
    let mut child = pinned(spec.binary, spec.cpus)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .current_dir(dir)
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", spec.binary.display()))?;
    if let Err(e) = wait_ready(&mut child, nfs_port, &log) {
        stop(&mut child);
        bail!("bucketfs serve did not serve NFS: {e:#}");
    }
    Ok(Bucketfs { child, nfs_port, mount_port, admin: format!("127.0.0.1:{admin_port}"), log })
}

/// The CPU's model name (/proc/cpuinfo), for reports.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

/// A Debian package's installed version ("" when not installed), for reports.
pub fn dpkg_version(package: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The first line of `PROGRAM --version`, for reports.
pub fn version_of(program: &Path) -> String {
    version_of_args(program, &["--version"])
}

/// The first line of what `PROGRAM ARGS` prints, for reports.
pub fn version_of_args(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_prefers_the_error() {
        let dir = std::env::temp_dir().join(format!("perf-servers-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        std::fs::write(&log, "starting\nError: bad config\n  |\nunknown field `nfs`\n\nStack backtrace:\n 0: x\n")
            .unwrap();
        assert_eq!(log_tail(&log), "Error: bad config / unknown field `nfs`");
        std::fs::write(&log, "a\nb :DBUS :CRIT\nc\nd\ne\n").unwrap();
        assert_eq!(log_tail(&log), "c / d / e");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
