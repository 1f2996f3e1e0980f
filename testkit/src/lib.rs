//! Test support: real servers on loopback for integration tests (dev-dependency only).
//!
//! [`S3Server`] runs SeaweedFS (`weed mini`: master, volume, filer and S3 gateway in one process)
//! on 127.0.0.1 with every port chosen free, so several test binaries can each run their own.
//! `S3Server::start()` waits until the S3 port answers; [`S3Server::new_bucket`] makes a fresh
//! bucket (SeaweedFS creates it on the first PUT by an admin identity) and waits until a write to
//! it succeeds, which is the real readiness check. [`S3Server::shared`] is one server per test
//! process. The `weed` binary comes from `scripts/install-s3-server.sh` (or `BUCKETFS_WEED`); when
//! it is missing, starting fails with a message naming that script.
//!
//! Cleanup: `weed` runs under a small `sh` watchdog in its own process group. Dropping the
//! `S3Server` kills the group and removes the temp directory; if the test process dies instead
//! (or the server is the never-dropped shared one), the watchdog sees its parent gone within
//! half a second, kills `weed` and removes the directory.
//!
//! Runs on: the test's threads; `start` blocks (std only), `new_bucket` is async (tokio).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload};

/// Where `scripts/install-s3-server.sh` puts SeaweedFS.
pub const WEED_INSTALL_PATH: &str = "/opt/bucketfs-test/seaweedfs/bin/weed";
const ACCESS_KEY: &str = "bucketfs-test";
const SECRET_KEY: &str = "bucketfs-test-secret";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const BUCKET_READY_TIMEOUT: Duration = Duration::from_secs(60);

pub type Result<T> = std::result::Result<T, String>;

/// The `weed` binary: `$BUCKETFS_WEED`, else the install script's path.
pub fn weed_binary() -> Result<PathBuf> {
    weed_binary_from(std::env::var_os("BUCKETFS_WEED"))
}

fn weed_binary_from(var: Option<std::ffi::OsString>) -> Result<PathBuf> {
    let path = var.map(PathBuf::from).unwrap_or_else(|| WEED_INSTALL_PATH.into());
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "SeaweedFS `weed` not found at {} (set BUCKETFS_WEED or run scripts/install-s3-server.sh)",
            path.display()
        ))
    }
}

/// A SeaweedFS S3 server on loopback.
#[derive(Debug)]
pub struct S3Server {
    watchdog: Child,
    dir: tempfile::TempDir,
    endpoint: String,
    startup: Duration,
}

/// Free loopback ports (held open together so they differ, released just before use).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind a free port: {e}")))
        .collect::<Result<_>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(|e| format!("local addr: {e}"))).collect()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// True when something at `port` answers an HTTP request (any status).
fn answers_http(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    matches!(s.read(&mut head), Ok(n) if n >= 5 && head.starts_with(b"HTTP/"))
}

impl S3Server {
    /// Starts a server (retrying with other ports if one was taken meanwhile).
    pub fn start() -> Result<S3Server> {
        S3Server::start_on(None)
    }

    /// Starts a server whose threads may run only on the CPUs of `cpu_list` (taskset syntax,
    /// e.g. "0" or "0-2"): benchmarks give the server and the client their own cores, so a
    /// client that spends more CPU does not slow the server down.
    pub fn start_on(cpu_list: Option<&str>) -> Result<S3Server> {
        let weed = weed_binary()?;
        let mut last = String::new();
        for _ in 0..3 {
            match S3Server::try_start(&weed, cpu_list) {
                Ok(s) => return Ok(s),
                Err(e) if e.contains("address already in use") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn try_start(weed: &Path, cpu_list: Option<&str>) -> Result<S3Server> {
        let began = Instant::now();
        let dir = tempfile::Builder::new().prefix("bucketfs-weed-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|e| format!("create {}: {e}", data.display()))?;
        let creds = dir.path().join("s3.json");
        let identities = format!(
            r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
        );
        std::fs::write(&creds, identities).map_err(|e| format!("write {}: {e}", creds.display()))?;
        let log = dir.path().join("weed.log");
        let p = free_ports(10)?;
        let s3_port = p[0];
        let mut args: Vec<String> = vec![
            "mini".into(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.port={}", p[0]),
            format!("-s3.port.grpc={}", p[1]),
            format!("-master.port={}", p[2]),
            format!("-master.port.grpc={}", p[3]),
            format!("-volume.port={}", p[4]),
            format!("-volume.port.grpc={}", p[5]),
            format!("-filer.port={}", p[6]),
            format!("-filer.port.grpc={}", p[7]),
            format!("-admin.port={}", p[8]),
            format!("-admin.port.grpc={}", p[9]),
            format!("-filer.localSocket={}", dir.path().join("filer.sock").display()),
            format!("-s3.config={}", creds.display()),
            "-webdav=false".into(),
            "-admin.ui=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-master.telemetry=false".into(),
        ];
        args.insert(0, weed.display().to_string());
        if let Some(cpus) = cpu_list {
            args.splice(0..0, ["taskset".to_string(), "-c".to_string(), cpus.to_string()]);
        }
        // $1 parent pid, $2 dir, $3 log, then the weed command line.
        let script = r#"parent=$1; dir=$2; log=$3; shift 3
"$@" >"$log" 2>&1 &
w=$!
while kill -0 "$parent" 2>/dev/null && kill -0 "$w" 2>/dev/null; do sleep 0.5; done
if ! kill -0 "$parent" 2>/dev/null; then kill -9 "$w" 2>/dev/null; wait "$w" 2>/dev/null; rm -rf "$dir"; fi"#;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(dir.path())
            .arg(&log)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", weed.display()))?;
        let mut server =
            S3Server { watchdog, dir, endpoint: format!("http://127.0.0.1:{s3_port}"), startup: Duration::ZERO };
        loop {
            if answers_http(s3_port) {
                break;
            }
            if let Ok(Some(status)) = server.watchdog.try_wait() {
                return Err(format!("weed mini exited ({status}) before S3 answered; log:\n{}", log_tail(&log)));
            }
            if began.elapsed() > START_TIMEOUT {
                return Err(format!("weed mini: S3 not answering after {START_TIMEOUT:?}; log:\n{}", log_tail(&log)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        server.startup = began.elapsed();
        eprintln!("testkit: SeaweedFS S3 at {} answered after {:?}", server.endpoint, server.startup);
        Ok(server)
    }

    /// One server for the whole test process (never dropped: its watchdog cleans up).
    pub fn shared() -> Result<&'static S3Server> {
        static SHARED: OnceLock<Result<S3Server>> = OnceLock::new();
        SHARED.get_or_init(S3Server::start).as_ref().map_err(Clone::clone)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    pub fn region(&self) -> &str {
        "us-east-1"
    }

    /// How long `start` took until S3 answered.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// The end of weed's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("weed.log"))
    }

    /// A new, empty bucket `<name>-<unique>`, ready for requests. Its first PUT creates it; this
    /// retries that PUT until the server accepts writes (the volume server registers a moment
    /// after S3 answers), then removes the probe object.
    pub async fn new_bucket(&self, name: &str) -> Result<String> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let bucket = format!("{name}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(&bucket)
            .with_region(self.region())
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_allow_http(true)
            .build()
            .map_err(|e| format!("S3 client for {bucket}: {e}"))?;
        let probe = StorePath::from("testkit-probe");
        let began = Instant::now();
        loop {
            match store.put(&probe, PutPayload::from_static(b"probe")).await {
                Ok(_) => break,
                Err(e) if began.elapsed() > BUCKET_READY_TIMEOUT => {
                    return Err(format!("create bucket {bucket}: {e}; weed log:\n{}", self.log_tail()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        store.delete(&probe).await.map_err(|e| format!("delete probe in {bucket}: {e}"))?;
        Ok(bucket)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // The watchdog leads its own process group (pgid = its pid): kill it and weed together.
        let pgid = self.watchdog.id();
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        let _ = self.watchdog.wait();
        // `self.dir` (TempDir) removes the directory after this.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_install_script() {
        let e = weed_binary_from(Some("/nonexistent/weed".into())).expect_err("no binary");
        assert!(e.contains("scripts/install-s3-server.sh"), "{e}");
    }

    #[tokio::test]
    async fn two_servers_start_write_and_clean_up() {
        let (a, b) = (S3Server::start().expect("a"), S3Server::start().expect("b"));
        assert_ne!(a.endpoint(), b.endpoint());
        let bucket = a.new_bucket("tk").await.expect("bucket");
        assert!(bucket.starts_with("tk-"));
        b.new_bucket("tk").await.expect("bucket on b");
        let dir = a.dir.path().to_path_buf();
        let port: u16 = a.endpoint().rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        drop(a);
        assert!(!dir.exists(), "temp dir left behind");
        assert!(!answers_http(port), "server still answers after drop");
    }
}
