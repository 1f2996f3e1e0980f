//! `bucketfs serve` with the embedded default, end to end: the real binary in an empty
//! directory creates and formats its cache, serves the local directory bucket, answers
//! `bucketfs preload` (progress, report) and `bucketfs stats`, and stops cleanly on SIGTERM;
//! a restart finds everything still cached.
#![allow(clippy::unwrap_used)] // test setup: a failure is the test failing

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bucketfs");

struct Server {
    child: Child,
    admin: String,
}

impl Server {
    /// Starts `bucketfs serve` in `dir` with the admin endpoint on a free port.
    fn start(dir: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--admin", "127.0.0.1:0", "--nfs", "127.0.0.1:0", "--mount", "127.0.0.1:0"])
            .current_dir(dir)
            .env("RUST_BACKTRACE", "0")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("serve: {line}");
                if let Some(at) = line.find("admin on http://") {
                    let rest = &line[at + "admin on http://".len()..];
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let admin = rx.recv_timeout(Duration::from_secs(60)).expect("serve announced its admin address");
        Server { child, admin }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN).args(args).args(["--admin", &self.admin]).env("RUST_BACKTRACE", "0").output().unwrap()
    }

    fn stop(mut self) {
        // SAFETY: plain kill(2) of our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn embedded_default_serves_preloads_and_counts() {
    let dir = std::env::temp_dir().join(format!("bucketfs-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("var/bucket/train")).unwrap();
    for i in 0..5 {
        std::fs::write(dir.join(format!("var/bucket/train/s{i}.bin")), vec![i as u8; 3 << 20]).unwrap();
    }
    let server = Server::start(&dir);
    assert!(dir.join("var/cache.img").exists(), "the cache file was created");

    let out = server.cli(&["preload", "local/train/"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "preload failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("fetched") && stdout.contains('5'), "report: {stdout}");

    let out = server.cli(&["stats", "--json"]);
    assert!(out.status.success());
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gets = stats["buckets"][0]["requests"]["get"].as_u64().unwrap();
    assert!(gets >= 5, "one GET per object at least: {gets}");

    // A second preload finds it all cached: no new GET.
    let out = server.cli(&["preload", "local/train/"]);
    assert!(out.status.success());
    let out = server.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["buckets"][0]["requests"]["get"].as_u64().unwrap(), gets);

    // The Prometheus endpoint answers with our series.
    let metrics = http_get(&server.admin, "/metrics");
    assert!(metrics.contains("bucketfs_bucket_requests_total"), "{metrics}");

    // Unknown bucket: a clear failure, non-zero exit.
    let out = server.cli(&["preload", "nope/x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope") || String::from_utf8_lossy(&out.stdout).contains("nope")
    );
    server.stop();

    // Restart: the cache and metadata are reused, nothing is fetched again.
    let server = Server::start(&dir);
    let out = server.cli(&["preload", "local/train/"]);
    assert!(out.status.success());
    let out = server.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["buckets"][0]["requests"]["get"].as_u64().unwrap(), 0, "everything still cached after restart");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The configuration example in the README parses (the docs stay true).
#[test]
fn readme_configuration_example_is_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme.find("```toml\n").expect("a toml block in the README") + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let config = bucketfs::config::Config::parse(&readme[start..end], Path::new("/etc")).unwrap();
    assert_eq!(config.buckets[0].name, "datasets");
    assert_eq!(config.exports[0].prefix, "imagenet/");
}
