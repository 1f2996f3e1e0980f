//! Configuration tests: a full file, the defaults, and every validation error.

use super::*;

const FULL: &str = r#"
[cache]
device = "var/cache.img"
size = "1GiB"
metadata_dir = "var/meta"

[admin]
listen = "127.0.0.1:9280"

[engine]
block_bytes = "1MiB"
fetch_bytes = "16MiB"
read_ahead_bytes_max = "64MiB"
listing_ttl = "500ms"

[[bucket]]
name = "local"
kind = "local"
path = "var/bucket"

[[bucket]]
name = "train"
kind = "s3"
bucket = "ml-train"
endpoint = "http://127.0.0.1:9000"
region = "us-east-1"
path_style = true
access_key_id = "minio"
secret_access_key = "minio123"
allow_http = true
gets_in_flight_max = 64

[[bucket]]
name = "g"
kind = "gcs"
bucket = "gbucket"
service_account_path = "/etc/bucketfs/sa.json"

[[bucket]]
name = "az"
kind = "azure"
account = "acct"
container = "cont"

[[export]]
path = "/data"
bucket = "local"

[[export]]
path = "/train"
bucket = "train"
prefix = "epoch1/"
read_only = true
clients = ["10.0.0.0/8", "fd00::/8", "192.168.1.7"]
root_squash = false
file_mode = "0444"
dir_mode = "0555"
uid = 1000
gid = 1000
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/srv/bfs"))
}

/// A minimal valid file with `extra` appended.
fn with(extra: &str) -> String {
    format!("[[bucket]]\nname = \"b\"\nkind = \"local\"\npath = \"/b\"\n\n[[export]]\npath = \"/x\"\nbucket = \"b\"\n{extra}")
}

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_error(text: &str, expect: &[&str]) {
    let err = error_of(text);
    for part in expect {
        assert!(err.contains(part), "error {err:?} does not mention {part:?}");
    }
}

#[test]
fn full_file_parses() {
    let c = parse(FULL).expect("ok");
    assert_eq!(c.cache.device, Path::new("/srv/bfs/var/cache.img"));
    assert_eq!(c.cache.size, Some(ByteSize(1 << 30)));
    assert_eq!(c.cache.metadata_dir, Path::new("/srv/bfs/var/meta"));
    assert_eq!(c.admin.listen, "127.0.0.1:9280".parse().expect("ok"));
    assert_eq!(c.engine.listing_ttl, Duration::from_millis(500));
    assert_eq!(c.engine.fetch_bytes, ByteSize(16 << 20));
    assert_eq!(c.buckets.len(), 4);
    assert_eq!(c.buckets[0].location, BucketLocation::Local { path: "/srv/bfs/var/bucket".into() });
    assert_eq!(c.buckets[0].gets_in_flight_max, 32);
    match &c.buckets[1].location {
        BucketLocation::S3 { bucket, endpoint, region, path_style, access_key_id, secret_access_key, allow_http } => {
            assert_eq!(bucket, "ml-train");
            assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:9000"));
            assert_eq!(region, "us-east-1");
            assert!(*path_style && *allow_http);
            assert_eq!(access_key_id.as_deref(), Some("minio"));
            assert_eq!(secret_access_key.as_ref().map(Secret::expose), Some("minio123"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.buckets[1].gets_in_flight_max, 64);
    assert_eq!(
        c.buckets[2].location,
        BucketLocation::Gcs { bucket: "gbucket".into(), service_account_path: Some("/etc/bucketfs/sa.json".into()) }
    );
    assert_eq!(
        c.buckets[3].location,
        BucketLocation::Azure { account: "acct".into(), container: "cont".into(), access_key: None }
    );
    let data = &c.exports[0];
    assert_eq!((data.prefix.as_str(), data.read_only, data.root_squash), ("", false, true));
    assert_eq!((data.file_mode, data.dir_mode, data.uid, data.gid), (Mode(0o644), Mode(0o755), 0, 0));
    assert_eq!(data.clients, loopback_clients());
    let train = &c.exports[1];
    assert_eq!(train.prefix, "epoch1/");
    assert!(train.read_only && !train.root_squash);
    assert_eq!((train.file_mode, train.dir_mode, train.uid, train.gid), (Mode(0o444), Mode(0o555), 1000, 1000));
    assert!(train.clients[2].contains("192.168.1.7".parse().expect("ok")));
    assert!(c.bucket("train").is_some() && c.bucket("nope").is_none());
}

#[test]
fn secrets_are_not_printed() {
    let c = parse(FULL).expect("ok");
    let debug = format!("{c:?}");
    assert!(!debug.contains("minio123"), "{debug}");
    assert!(debug.contains("Secret(***)"));
}

#[test]
fn sections_default() {
    let c = parse(&with("")).expect("ok");
    let d = Config::embedded_default(Path::new("/srv/bfs"));
    assert_eq!(c.cache, d.cache);
    assert_eq!(c.admin, d.admin);
    assert_eq!(c.engine, EngineConfig::default());
    let partial = parse(&with("[engine]\nlisting_ttl = \"2m\"\n")).expect("ok");
    assert_eq!(partial.engine.listing_ttl, Duration::from_secs(120));
    assert_eq!(partial.engine.block_bytes, ByteSize(1 << 20));
    let sized = parse(&with("[engine]\nblock_bytes = 65536\nfetch_bytes = \"128K\"\n")).expect("ok");
    assert_eq!((sized.engine.block_bytes, sized.engine.fetch_bytes), (ByteSize(65536), ByteSize(128 << 10)));
}

#[test]
fn embedded_default_is_valid() {
    let d = Config::embedded_default(Path::new("/srv/bfs"));
    d.validate().expect("ok");
    assert_eq!(d.admin.listen, "127.0.0.1:9180".parse().expect("ok"));
    assert_eq!(d.cache.device, Path::new("/srv/bfs/var/cache.img"));
    assert_eq!(d.cache.size, Some(ByteSize(1 << 30)));
    assert_eq!(d.cache.metadata_dir, Path::new("/srv/bfs/var/meta"));
    assert_eq!(d.buckets[0].location, BucketLocation::Local { path: "/srv/bfs/var/bucket".into() });
    assert_eq!(d.exports.len(), 1);
    assert_eq!((d.exports[0].path.as_str(), d.exports[0].bucket.as_str()), ("/", "local"));
    assert!(d.exports[0].clients.iter().any(|c| c.contains("127.0.0.1".parse().expect("ok"))));
    assert!(d.exports[0].clients.iter().any(|c| c.contains("::1".parse().expect("ok"))));
    assert!(!d.exports[0].clients.iter().any(|c| c.contains("10.0.0.1".parse().expect("ok"))));
}

#[test]
fn ensure_local_dirs_creates_them() {
    let base = std::env::temp_dir().join(format!("bucketfs-config-test-{}", std::process::id()));
    let d = Config::embedded_default(&base);
    d.ensure_local_dirs().expect("ok");
    assert!(base.join("var/bucket").is_dir() && base.join("var/meta").is_dir());
    assert!(!base.join("var/cache.img").exists(), "the cache file is for format, not for this");
    d.ensure_local_dirs().expect("ok");
    std::fs::remove_dir_all(&base).expect("ok");
}

#[test]
fn load_resolves_paths_relative_to_the_file() {
    let dir = std::env::temp_dir().join(format!("bucketfs-config-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("ok");
    let path = dir.join("bucketfs.toml");
    std::fs::write(&path, FULL).expect("ok");
    let c = Config::load(&path).expect("ok");
    assert_eq!(c.cache.device, dir.join("var/cache.img"));
    std::fs::write(&path, "[cache\n").expect("ok");
    let err = Config::load(&path).expect_err("must fail").to_string();
    assert!(err.contains("bucketfs.toml"), "{err}");
    std::fs::remove_dir_all(&dir).expect("ok");
    let err = Config::load(&dir.join("missing.toml")).expect_err("must fail").to_string();
    assert!(err.contains("cannot read") && err.contains("missing.toml"), "{err}");
}

#[test]
fn parse_errors_name_the_key() {
    assert_error(&with("[cache]\ndevice = \"x\"\nmetadata_dir = \"m\"\nsize = \"1GiB\"\ncolour = 1\n"), &["colour"]);
    assert_error(&with("[admin]\nlisten = \"localhost\"\n"), &["listen"]);
    assert_error(&with("[admin]\nlisten = \"127.0.0.1:1\"\nport = 2\n"), &["port"]);
    assert_error(&with("[engine]\nblock_bytes = \"1XB\"\n"), &["block_bytes", "unknown unit"]);
    assert_error(&with("[engine]\nlisting_ttl = \"30\"\n"), &["listing_ttl", "unit"]);
    assert_error(&with("[engine]\nblock_size = \"1MiB\"\n"), &["block_size"]);
    assert_error(&with("[cache]\ndevice = \"x\"\n"), &["metadata_dir"]);
    assert_error(&with("[[bucket]]\nname = \"c\"\nkind = \"ftp\"\n"), &["ftp", "local"]);
    assert_error(&with("[[bucket]]\nname = \"c\"\nkind = \"local\"\npath = \"/c\"\nflavour = 1\n"), &["flavour"]);
    assert_error(&with("[[bucket]]\nname = \"c\"\npath = \"/c\"\n"), &["kind"]);
    assert_error(&with("[[export]]\npath = \"/y\"\nbucket = \"b\"\nfile_mode = \"0999\"\n"), &["file_mode", "octal"]);
    assert_error(&with("[[export]]\npath = \"/y\"\nbucket = \"b\"\ndir_mode = 755\n"), &["dir_mode"]);
    assert_error(
        &with("[[export]]\npath = \"/y\"\nbucket = \"b\"\nclients = [\"10.0.0.1/8\"]\n"),
        &["clients", "10.0.0.0/8"],
    );
    assert_error(&with("[[export]]\npath = \"/y\"\nbucket = \"b\"\nsquash = true\n"), &["squash"]);
    assert_error(&with("[[export]]\npath = \"/y\"\nbucket = \"b\"\nuid = -1\n"), &["uid"]);
}

#[test]
fn cache_errors() {
    let cache = |body: &str| with(&format!("[cache]\ndevice = \"x.img\"\nmetadata_dir = \"m\"\n{body}"));
    assert_error(&cache("size = \"1000\"\n"), &["[cache] `size`", "4096"]);
    assert_error(&cache("size = 0\n"), &["[cache] `size`"]);
    assert_error(
        &with("[cache]\ndevice = \"/dev/ng0n1\"\nmetadata_dir = \"m\"\nsize = \"1GiB\"\n"),
        &["`size`", "device"],
    );
    assert_error(&with("[cache]\ndevice = \"\"\nmetadata_dir = \"m\"\n"), &["`device` is empty"]);
    assert!(parse(&with("[cache]\ndevice = \"/dev/ng0n1\"\nmetadata_dir = \"m\"\n")).is_ok());
}

#[test]
fn engine_errors() {
    assert_error(&with("[engine]\nblock_bytes = \"3000\"\n"), &["`block_bytes`", "power of two"]);
    assert_error(&with("[engine]\nblock_bytes = \"128MiB\"\n"), &["`block_bytes`"]);
    assert_error(&with("[engine]\nfetch_bytes = \"1536K\"\n"), &["`fetch_bytes`", "multiple of `block_bytes`"]);
    assert_error(&with("[engine]\nfetch_bytes = 0\n"), &["`fetch_bytes`"]);
    assert_error(&with("[engine]\nread_ahead_bytes_max = \"1536K\"\n"), &["`read_ahead_bytes_max`"]);
    assert!(parse(&with("[engine]\nread_ahead_bytes_max = 0\n")).is_ok());
}

#[test]
fn bucket_errors() {
    let bucket = |body: &str| format!("[[bucket]]\n{body}\n[[export]]\npath = \"/x\"\nbucket = \"b\"\n");
    assert_error(&bucket("name = \"b\"\nkind = \"local\"\n"), &["\"b\"", "`path` is missing"]);
    assert_error(
        &bucket("name = \"b\"\nkind = \"local\"\npath = \"/b\"\nregion = \"x\"\n"),
        &["`region` does not apply to a local"],
    );
    assert_error(&bucket("name = \"b\"\nkind = \"s3\"\nregion = \"r\"\n"), &["(kind = \"s3\")", "`bucket` is missing"]);
    assert_error(&bucket("name = \"b\"\nkind = \"s3\"\nbucket = \"x\"\n"), &["`region` is missing"]);
    assert_error(&bucket("name = \"b\"\nkind = \"s3\"\nbucket = \"\"\nregion = \"r\"\n"), &["`bucket` is empty"]);
    assert_error(
        &bucket("name = \"b\"\nkind = \"s3\"\nbucket = \"x\"\nregion = \"r\"\npath = \"/p\"\n"),
        &["`path` does not apply"],
    );
    assert_error(
        &bucket("name = \"b\"\nkind = \"s3\"\nbucket = \"x\"\nregion = \"r\"\nendpoint = \"http://h:9000\"\n"),
        &["`endpoint`", "allow_http = true"],
    );
    assert_error(
        &bucket("name = \"b\"\nkind = \"s3\"\nbucket = \"x\"\nregion = \"r\"\nendpoint = \"h:9000\"\n"),
        &["`endpoint` must start with https://"],
    );
    assert_error(
        &bucket("name = \"b\"\nkind = \"s3\"\nbucket = \"x\"\nregion = \"r\"\naccess_key_id = \"k\"\n"),
        &["`access_key_id` and `secret_access_key`"],
    );
    assert_error(&bucket("name = \"b\"\nkind = \"gcs\"\n"), &["(kind = \"gcs\")", "`bucket` is missing"]);
    assert_error(
        &bucket("name = \"b\"\nkind = \"gcs\"\nbucket = \"x\"\nregion = \"r\"\n"),
        &["`region` does not apply to a gcs"],
    );
    assert_error(&bucket("name = \"b\"\nkind = \"azure\"\ncontainer = \"c\"\n"), &["`account` is missing"]);
    assert_error(&bucket("name = \"b\"\nkind = \"azure\"\naccount = \"a\"\n"), &["`container` is missing"]);
    assert_error(
        &bucket("name = \"b\"\nkind = \"local\"\npath = \"/b\"\ngets_in_flight_max = 0\n"),
        &["`gets_in_flight_max`"],
    );
    assert_error(
        &bucket("name = \"b\"\nkind = \"local\"\npath = \"/b\"\ngets_in_flight_max = 5000\n"),
        &["`gets_in_flight_max`"],
    );
    assert_error(&bucket("name = \"a/b\"\nkind = \"local\"\npath = \"/b\"\n"), &["name \"a/b\""]);
    assert_error(&bucket("name = \"\"\nkind = \"local\"\npath = \"/b\"\n"), &["name \"\""]);
    assert_error(&with("[[bucket]]\nname = \"b\"\nkind = \"local\"\npath = \"/c\"\n"), &["name \"b\" is used twice"]);
    assert_error("[[export]]\npath = \"/x\"\nbucket = \"b\"\n", &["no [[bucket]]"]);
}

#[test]
fn export_errors() {
    let export = |body: &str| with(&format!("[[export]]\n{body}\n"));
    assert_error(
        &export("path = \"/y\"\nbucket = \"nope\""),
        &["[[export]] \"/y\"", "`bucket` \"nope\"", "configured: b"],
    );
    assert_error(&export("path = \"/x\"\nbucket = \"b\""), &["path \"/x\" is used twice"]);
    for bad in ["y", "/a/../b", "/a//b", "/a/", "/./a", ""] {
        assert_error(&export(&format!("path = \"{bad}\"\nbucket = \"b\"")), &["`path` must be absolute"]);
    }
    assert_error(&export("path = \"/y\"\nbucket = \"b\"\nprefix = \"/p\""), &["`prefix`"]);
    assert_error(&export("path = \"/y\"\nbucket = \"b\"\nclients = []"), &["`clients` is empty"]);
    assert_error(&export("bucket = \"b\""), &["path"]);
    assert_error("[[bucket]]\nname = \"b\"\nkind = \"local\"\npath = \"/b\"\n", &["no [[export]]"]);
    assert!(parse(&export("path = \"/a/b\"\nbucket = \"b\"\nprefix = \"p/\"")).is_ok());
}

#[test]
fn nfs_section_defaults_and_checks() {
    let base = Path::new("/etc/bucketfs");
    let minimal =
        "[[bucket]]\nname = \"b\"\nkind = \"local\"\npath = \"/srv/b\"\n[[export]]\npath = \"/data\"\nbucket = \"b\"\n";
    let c = Config::parse(minimal, base).expect("valid");
    assert_eq!(c.nfs, NfsConfig::default());
    assert_eq!(c.nfs.listen.to_string(), "127.0.0.1:2049");
    let with = format!("{minimal}[nfs]\nlisten = \"0.0.0.0:2049\"\nportmap_listen = \"0.0.0.0:111\"\ncores = 2\nlease = \"30s\"\ngrace = \"10s\"\n");
    let c = Config::parse(&with, base).expect("valid");
    assert_eq!((c.nfs.cores, c.nfs.lease, c.nfs.grace), (2, Duration::from_secs(30), Duration::from_secs(10)));
    assert_eq!(c.nfs.portmap_listen.map(|a| a.port()), Some(111));
    let err = |text: String| Config::parse(&text, base).expect_err("must fail").to_string();
    let e = err(format!("{minimal}[nfs]\nlease = \"1s\"\n"));
    assert!(e.contains("`lease` must be 5s to 1h"), "{e}");
    let e = err(format!("{minimal}[nfs]\nmount_listen = \"127.0.0.1:2049\"\n"));
    assert!(e.contains("`mount_listen` 127.0.0.1:2049 is already used"), "{e}");
    let e = err(format!("{minimal}[nfs]\nport = 1\n"));
    assert!(e.contains("unknown field `port`"), "{e}");
    let e = err(format!("{minimal}[[export]]\npath = \"/\"\nbucket = \"b\"\n"));
    assert!(e.contains("must be the only export"), "{e}");
}

#[test]
fn write_section_defaults_and_checks() {
    let base = Path::new("/etc/bucketfs");
    let minimal =
        "[[bucket]]\nname = \"b\"\nkind = \"local\"\npath = \"/srv/b\"\n[[export]]\npath = \"/data\"\nbucket = \"b\"\n";
    let c = Config::parse(minimal, base).expect("valid");
    assert_eq!(c.write, WriteConfig::default());
    let with = format!(
        "{minimal}[write]\nupload_after_close = \"500ms\"\nupload_after_idle = \"10s\"\npart_bytes = \"64MiB\"\nparts_in_flight = 8\nuploads_in_flight = 2\nbuffered_bytes_max = \"64MiB\"\nfull_cache_wait = \"30s\"\nupload_on_stop = \"1m\"\n"
    );
    let c = Config::parse(&with, base).expect("valid");
    assert_eq!(c.write.upload_after_close, Duration::from_millis(500));
    assert_eq!((c.write.part_bytes.0, c.write.parts_in_flight, c.write.uploads_in_flight), (64 << 20, 8, 2));
    assert_eq!(c.write.upload_on_stop, Duration::from_secs(60));
    let err = |text: String| Config::parse(&text, base).expect_err("must fail").to_string();
    let e = err(format!("{minimal}[write]\npart_bytes = \"1MiB\"\n"));
    assert!(e.contains("`part_bytes` must be 5MiB to 5GiB"), "{e}");
    let e = err(format!("{minimal}[write]\nparts_in_flight = 0\n"));
    assert!(e.contains("`parts_in_flight` must be 1 to 64"), "{e}");
    let e = err(format!("{minimal}[write]\nupload_after_close = \"1m\"\nupload_after_idle = \"10s\"\n"));
    assert!(e.contains("must not be shorter than `upload_after_close`"), "{e}");
    let e = err(format!("{minimal}[write]\nupload_after = \"1s\"\n"));
    assert!(e.contains("unknown field `upload_after`"), "{e}");
}
