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
            "[cache]\ndevice = \"cache.img\"\nsize = \"1GiB\"\nmetadata_dir = \"meta\"\n\
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

/// Runs fio on a job file, its output (a file, not a pipe: a job process left behind must not
/// hold the test). fio's nfs engine sometimes never returns from `nfs_umount` at the end of a
/// job (perf/README.md, against ganesha too): fio and its job processes (their own process
/// group) are killed after a minute and the run is tried again, three times at most.
fn run_fio(fio: &Path, job: &Path) -> Result<String, String> {
    use std::os::unix::process::CommandExt;
    let log = job.with_extension("out");
    let mut last = String::new();
    for attempt in 1..=3 {
        let out = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(fio)
            .arg(job)
            .current_dir(job.parent().unwrap_or(Path::new("/")))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{} cannot run: {e}", fio.display()))?;
        let until = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() >= until {
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if status.is_none() {
            // fio and its job processes: the process group fio leads.
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
        }
        last = std::fs::read_to_string(&log).unwrap_or_default();
        match status {
            Some(s) if s.success() => return Ok(last),
            Some(s) => return Err(format!("exited with {s}: {last}")),
            None => eprintln!("fio attempt {attempt} hung (libnfs nfs_umount?), killed: {last}"),
        }
    }
    Err(format!("hung three times: {last}"))
}

/// How long the server may take to publish an upload: `upload_after_idle` (1 s here) plus the
/// upload itself, with room for a slow machine.
const PUBLISH_WAIT: Duration = Duration::from_secs(20);

/// Waits until the bucket's `key` holds `want`; what it holds at the end otherwise.
fn wait_for_object(bucket: &Path, key: &str, want: &[u8]) -> Result<(), String> {
    let until = std::time::Instant::now() + PUBLISH_WAIT;
    loop {
        let got = std::fs::read(bucket.join(key));
        match &got {
            Ok(bytes) if bytes == want => return Ok(()),
            _ if std::time::Instant::now() >= until => {
                return Err(match got {
                    Ok(bytes) => format!("{key} holds {} bytes that differ after {PUBLISH_WAIT:?}", bytes.len()),
                    Err(e) => format!("{key} not in the bucket after {PUBLISH_WAIT:?}: {e}"),
                })
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Uploads over NFSv3: `nfs-cp` of a local 5 MiB file into a writable export (CREATE, WRITE,
/// COMMIT), `nfs-cat` reads it back, and the server publishes it to the bucket once idle. The
/// export belongs to uid 1000 and squashes root, so the upload runs as uid 1000 and root is
/// refused. Then, when fio with the nfs engine is installed, a fio write job with verification
/// over the same file (fio opens existing files read-write), and the bucket follows again.
#[test]
fn libnfs_uploads_over_v3() {
    let dir = std::env::temp_dir().join(format!("bucketfs-nfs-upload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let config = dir.join("bucketfs.toml");
    std::fs::write(
        &config,
        format!(
            "[cache]\ndevice = \"cache.img\"\nsize = \"1GiB\"\nmetadata_dir = \"meta\"\n\
             [write]\nupload_after_close = \"1s\"\nupload_after_idle = \"1s\"\n\
             [[bucket]]\nname = \"local\"\nkind = \"local\"\npath = \"{}\"\n\
             [[export]]\npath = \"/up\"\nbucket = \"local\"\nread_only = false\nroot_squash = true\n\
             uid = 1000\ngid = 1000\n",
            bucket.display()
        ),
    )
    .unwrap();
    let server = Server::start(&config);
    let as_owner = |path: &str| format!("{}&uid=1000&gid=1000", server.url_v3(path));
    let data = pattern(5 << 20, 3);
    let src = dir.join("src.bin");
    std::fs::write(&src, &data).unwrap();

    let out = run("nfs-cp", &[src.to_str().unwrap(), &as_owner("/up/up.bin")]);
    assert!(out.status.success(), "nfs-cp upload: {}", String::from_utf8_lossy(&out.stderr));
    let out = run("nfs-cat", &[&as_owner("/up/up.bin")]);
    assert!(out.status.success(), "nfs-cat: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == data, "nfs-cat returned {} bytes that differ from the upload", out.stdout.len());
    wait_for_object(&bucket, "up.bin", &data).unwrap();

    // Root is squashed to nobody, who may not write in uid 1000's 0755 export root.
    let out = run("nfs-cp", &[src.to_str().unwrap(), &format!("{}&uid=0&gid=0", server.url_v3("/up/denied.bin"))]);
    assert!(!out.status.success(), "a squashed root uploaded into a directory it may not write");
    assert!(!bucket.join("denied.bin").exists());

    let fio = Path::new("/opt/bucketfs-test/fio-nfs/bin/fio");
    if fio.exists() {
        // 64 KiB writes over the whole file with checksummed blocks, then a second run reads
        // every block back and checks it (fio's nfs engine cannot send the sync a write job
        // with verification does before verifying, hence two runs); the bucket then holds what
        // the server serves.
        for (name, mode) in [("write", "do_verify=0"), ("verify", "verify_only=1")] {
            let job = dir.join(format!("{name}.fio"));
            std::fs::write(
                &job,
                format!(
                    "[global]\nioengine=nfs\nnfs_url={}\nfilename=up.bin\nrw=write\nbs=64k\nsize=5m\n\
                     iodepth=4\nverify=crc32c\nverify_state_save=0\n[{name}]\n{mode}\n",
                    as_owner("/up")
                ),
            )
            .unwrap();
            let report = run_fio(fio, &job).unwrap_or_else(|e| panic!("fio {name} over NFSv3: {e}"));
            assert!(report.contains("err= 0"), "fio {name}: {report}");
        }
        let out = run("nfs-cat", &[&as_owner("/up/up.bin")]);
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 5 << 20);
        assert!(out.stdout != data, "fio's writes are not in the file");
        wait_for_object(&bucket, "up.bin", &out.stdout).unwrap();
    } else {
        eprintln!("fio with the nfs engine not installed (scripts/install-fio-nfs.sh): its write job skipped");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
