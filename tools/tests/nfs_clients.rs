//! `bucketfs serve` against real NFS clients on loopback: Debian's libnfs utilities (`nfs-ls`,
//! `nfs-cat`, `nfs-cp`) over NFSv3 (with MOUNT) and NFSv4.0, on a local-directory bucket. Also
//! the export policy seen from a client: an export whose allow-list excludes loopback refuses it.
//! The utilities come from `libnfs-utils` (scripts/install-test-deps.sh); without them the test
//! fails rather than skipping, so CI cannot pass without running it.
#![allow(clippy::unwrap_used)] // test setup: a failure is the test failing

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bucketfs");

struct Server {
    child: Child,
    nfs_port: u16,
    mount_port: u16,
}

impl Server {
    fn start(config: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .args(["--admin", "127.0.0.1:0", "--nfs", "127.0.0.1:0", "--mount", "127.0.0.1:0"])
            .env("RUST_BACKTRACE", "0")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("serve: {line}");
                if line.contains("nfs listening on") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("serve announced its NFS ports");
        let port_after = |marker: &str| -> u16 {
            let at = line.find(marker).unwrap_or_else(|| panic!("no {marker:?} in {line:?}")) + marker.len();
            let addr = line[at..].split([' ', ',', ')']).next().unwrap();
            addr.rsplit(':').next().unwrap().parse().unwrap()
        };
        Server { nfs_port: port_after("nfs listening on "), mount_port: port_after("mount on "), child }
    }

    fn url_v3(&self, path: &str) -> String {
        format!("nfs://127.0.0.1{path}?nfsport={}&mountport={}", self.nfs_port, self.mount_port)
    }

    fn url_v4(&self, path: &str) -> String {
        format!("nfs://127.0.0.1{path}?version=4&nfsport={}", self.nfs_port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a libnfs utility with a time limit (a hung server must fail the test, not hang it).
fn run(tool: &str, args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .arg("60")
        .arg(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} cannot run ({e}): scripts/install-test-deps.sh installs libnfs-utils"));
    assert_ne!(out.status.code(), Some(124), "{tool} {args:?} timed out");
    out
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u64).wrapping_mul(2654435761).wrapping_add(u64::from(seed)) as u8).collect()
}

fn setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("bucketfs-nfs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(bucket.join("many")).unwrap();
    std::fs::create_dir_all(bucket.join("nested/deeper")).unwrap();
    std::fs::write(bucket.join("big.bin"), pattern(5 << 20, 1)).unwrap();
    std::fs::write(bucket.join("nested/deeper/small.txt"), b"hello from the bucket\n").unwrap();
    for i in 0..1000 {
        std::fs::write(bucket.join(format!("many/f{i:04}")), format!("{i}\n")).unwrap();
    }
    let config = dir.join("bucketfs.toml");
    std::fs::write(
        &config,
        format!(
            "[cache]\ndevice = \"cache.img\"\nsize = \"256MiB\"\nmetadata_dir = \"meta\"\n\
             [[bucket]]\nname = \"local\"\nkind = \"local\"\npath = \"{}\"\n\
             [[export]]\npath = \"/data\"\nbucket = \"local\"\n\
             [[export]]\npath = \"/elsewhere\"\nbucket = \"local\"\nclients = [\"10.0.0.0/8\"]\n",
            bucket.display()
        ),
    )
    .unwrap();
    (dir, config)
}

#[test]
fn libnfs_utilities_over_v3_and_v4() {
    let (dir, config) = setup("libnfs");
    let server = Server::start(&config);
    let want_big = pattern(5 << 20, 1);

    for (version, url) in [("v3", Server::url_v3 as fn(&Server, &str) -> String), ("v4", Server::url_v4)] {
        // Listing the export root and a directory of 1000 files.
        let out = run("nfs-ls", &[&url(&server, "/data")]);
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{version} nfs-ls: {listing}{}", String::from_utf8_lossy(&out.stderr));
        for name in ["big.bin", "many", "nested"] {
            assert!(listing.lines().any(|l| l.ends_with(name)), "{version}: {name} missing in\n{listing}");
        }
        assert!(listing.contains("5242880"), "{version}: big.bin's size missing in\n{listing}");
        let out = run("nfs-ls", &[&url(&server, "/data/many")]);
        assert!(out.status.success(), "{version} nfs-ls many: {}", String::from_utf8_lossy(&out.stderr));
        let names: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last().map(str::to_string))
            .filter(|n| n.starts_with('f'))
            .collect();
        assert_eq!(names.len(), 1000, "{version}: every file listed once");

        // Reading: a whole 5 MiB file, a small nested one, byte for byte.
        let out = run("nfs-cat", &[&url(&server, "/data/big.bin")]);
        assert!(out.status.success(), "{version} nfs-cat: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == want_big, "{version}: nfs-cat big.bin returned {} bytes that differ", out.stdout.len());
        let out = run("nfs-cat", &[&url(&server, "/data/nested/deeper/small.txt")]);
        assert_eq!(out.stdout, b"hello from the bucket\n", "{version}");
        let copy = dir.join(format!("copy-{version}.bin"));
        let out = run("nfs-cp", &[&url(&server, "/data/big.bin"), copy.to_str().unwrap()]);
        assert!(out.status.success(), "{version} nfs-cp: {}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::read(&copy).unwrap() == want_big, "{version}: nfs-cp copy differs");

        // A missing file is an error, not a hang or an empty success.
        let out = run("nfs-cat", &[&url(&server, "/data/no-such-file")]);
        assert!(!out.status.success(), "{version}: reading a missing file succeeded");

        // Export policy: /elsewhere only admits 10.0.0.0/8.
        let out = run("nfs-ls", &[&url(&server, "/elsewhere")]);
        assert!(!out.status.success(), "{version}: a client outside the allow-list listed /elsewhere");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
