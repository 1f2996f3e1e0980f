//! The appliance configuration file (TOML): the cache device, the admin endpoint, engine sizes,
//! the buckets and the exports.
//!
//! API: `Config::load(path)` reads and validates a file; `Config::parse(text, base_dir)` does the
//! same from a string; `Config::embedded_default(base_dir)` is the zero-config appliance (a local
//! directory `var/bucket` exported as `/` to loopback clients, a 1 GiB file cache);
//! `Config::ensure_local_dirs` creates the directories a configuration names (what `serve` does
//! before it opens anything). Relative paths are relative to the configuration file's directory
//! (to `base_dir` for the default). Unknown keys are rejected; every error names the field.
//! Runs once at start-up on the main thread; the values are plain data afterwards.
//!
//! The bucket section stays a tools-side type: the engine has its own configuration types and
//! `serve` converts.

mod units;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use nfs::cidr::Cidr;
pub use units::{display_duration, parse_duration, ByteSize, Mode};

/// The whole configuration, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub cache: CacheConfig,
    pub admin: AdminConfig,
    pub engine: EngineConfig,
    pub write: WriteConfig,
    pub nfs: NfsConfig,
    pub buckets: Vec<BucketConfig>,
    pub exports: Vec<ExportConfig>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// A file, a block device, or an NVMe generic device `/dev/ngXnY`.
    pub device: PathBuf,
    /// For a file that does not exist yet: create it with this size and format it.
    #[serde(default)]
    pub size: Option<ByteSize>,
    /// The durable metadata store (inode numbers, file handles).
    pub metadata_dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Stats JSON, Prometheus `/metrics`, preload.
    pub listen: SocketAddr,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// The cache block: the unit of lookup and of eviction bookkeeping.
    pub block_bytes: ByteSize,
    /// Bytes asked of the bucket per GET on a miss.
    pub fetch_bytes: ByteSize,
    /// The most a sequential reader is read ahead.
    pub read_ahead_bytes_max: ByteSize,
    /// How long a directory listing is trusted before the bucket is listed again.
    #[serde(deserialize_with = "units::duration")]
    pub listing_ttl: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            block_bytes: ByteSize(1 << 20),
            fetch_bytes: ByteSize(16 << 20),
            read_ahead_bytes_max: ByteSize(64 << 20),
            listing_ttl: Duration::from_secs(30),
        }
    }
}

/// The write path: when changed files go to the bucket and how.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriteConfig {
    /// A file is uploaded this long after its last close (a rename right after the close, as
    /// in write-temp-then-rename, then costs no second upload).
    #[serde(deserialize_with = "units::duration")]
    pub upload_after_close: Duration,
    /// A file left open (or written over NFSv3, which has no close) is uploaded this long after
    /// its last write.
    #[serde(deserialize_with = "units::duration")]
    pub upload_after_idle: Duration,
    /// Multipart part size; smaller files go in one PUT (S3: 5 MiB to 5 GiB).
    pub part_bytes: ByteSize,
    /// Parts of one upload in flight.
    pub parts_in_flight: usize,
    /// Files uploaded at once.
    pub uploads_in_flight: usize,
    /// Partial blocks of unstable writes held in memory at most.
    pub buffered_bytes_max: ByteSize,
    /// How long a write waits for room when the cache is full of data not yet uploaded,
    /// before failing with "no space".
    #[serde(deserialize_with = "units::duration")]
    pub full_cache_wait: Duration,
    /// On stop, how long to keep uploading what is due (the rest is durable in the cache and
    /// uploaded after the next start).
    #[serde(deserialize_with = "units::duration")]
    pub upload_on_stop: Duration,
}

impl Default for WriteConfig {
    fn default() -> Self {
        WriteConfig {
            upload_after_close: Duration::from_secs(2),
            upload_after_idle: Duration::from_secs(30),
            part_bytes: ByteSize(16 << 20),
            parts_in_flight: 4,
            uploads_in_flight: 4,
            buffered_bytes_max: ByteSize(256 << 20),
            full_cache_wait: Duration::from_secs(10),
            upload_on_stop: Duration::from_secs(5),
        }
    }
}

/// The NFS server: where it listens, on how many cores, and NFSv4 lease timing.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NfsConfig {
    /// NFSv3 and NFSv4 (program 100003); port 2049 is what clients assume.
    pub listen: SocketAddr,
    /// MOUNT v3 (program 100005), for NFSv3 clients.
    pub mount_listen: Option<SocketAddr>,
    /// A minimal portmapper (program 100000, port 111 by convention) answering for the ports
    /// above; leave it out when the host runs rpcbind, or when clients are told the ports.
    pub portmap_listen: Option<SocketAddr>,
    /// Network cores (reactor threads); 0 = one per CPU.
    pub cores: usize,
    /// Pin each network core's thread to its CPU.
    pub pin_cores: bool,
    /// NFSv4 lease: a client that is silent longer loses its state.
    #[serde(deserialize_with = "units::duration")]
    pub lease: Duration,
    /// NFSv4 grace period after a restart, for clients to reclaim their state.
    #[serde(deserialize_with = "units::duration")]
    pub grace: Duration,
}

const NFS_LISTEN_DEFAULT: ([u8; 4], u16) = ([127, 0, 0, 1], 2049);
const MOUNT_LISTEN_DEFAULT: ([u8; 4], u16) = ([127, 0, 0, 1], 20048);

impl Default for NfsConfig {
    fn default() -> Self {
        NfsConfig {
            listen: SocketAddr::from(NFS_LISTEN_DEFAULT),
            mount_listen: Some(SocketAddr::from(MOUNT_LISTEN_DEFAULT)),
            portmap_listen: None,
            cores: 0,
            pin_cores: false,
            lease: Duration::from_secs(90),
            grace: Duration::from_secs(90),
        }
    }
}

/// One bucket: its name in this configuration and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketConfig {
    pub name: String,
    /// GETs to this bucket in flight at most.
    pub gets_in_flight_max: u32,
    pub location: BucketLocation,
}

/// Where a bucket's objects are. Credentials left out are taken from the environment.
#[derive(Clone, Debug, PartialEq)]
pub enum BucketLocation {
    /// A local directory, served as a bucket.
    Local {
        path: PathBuf,
    },
    S3 {
        bucket: String,
        /// `http(s)://host:port` for S3-compatible servers; None: AWS.
        endpoint: Option<String>,
        region: String,
        path_style: bool,
        access_key_id: Option<String>,
        secret_access_key: Option<Secret>,
        allow_http: bool,
    },
    Gcs {
        bucket: String,
        service_account_path: Option<PathBuf>,
    },
    Azure {
        account: String,
        container: String,
        access_key: Option<Secret>,
    },
}

impl BucketLocation {
    pub fn kind(&self) -> &'static str {
        match self {
            BucketLocation::Local { .. } => "local",
            BucketLocation::S3 { .. } => "s3",
            BucketLocation::Gcs { .. } => "gcs",
            BucketLocation::Azure { .. } => "azure",
        }
    }
}

/// A credential: never printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One export: a bucket (or a prefix of it) served at a path, to some clients.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The NFS export path (`/data`); SMB shares it by its last component.
    pub path: String,
    pub bucket: String,
    /// Keys under this prefix; "" for the whole bucket.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub read_only: bool,
    /// Who may mount: address ranges.
    #[serde(default = "loopback_clients")]
    pub clients: Vec<Cidr>,
    /// Map client uid 0 to the export's uid/gid.
    #[serde(default = "yes")]
    pub root_squash: bool,
    #[serde(default = "file_mode_default")]
    pub file_mode: Mode,
    #[serde(default = "dir_mode_default")]
    pub dir_mode: Mode,
    /// Owner of every file and directory.
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

fn loopback_clients() -> Vec<Cidr> {
    ["127.0.0.0/8", "::1/128"].iter().filter_map(|c| c.parse().ok()).collect()
}

fn yes() -> bool {
    true
}

fn file_mode_default() -> Mode {
    Mode(0o644)
}

fn dir_mode_default() -> Mode {
    Mode(0o755)
}

const GETS_IN_FLIGHT_DEFAULT: u32 = 32;
const GETS_IN_FLIGHT_MAX: u32 = 4096;
const ADMIN_LISTEN_DEFAULT: &str = "127.0.0.1:9180";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// TOML syntax, an unknown key, a missing key or a value of the wrong type (the message
    /// carries the line and the key).
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// A value that parses but cannot work (the message names the field).
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cache: Option<CacheConfig>,
    admin: Option<AdminConfig>,
    #[serde(default)]
    engine: EngineConfig,
    #[serde(default)]
    write: WriteConfig,
    #[serde(default)]
    nfs: NfsConfig,
    #[serde(default, rename = "bucket")]
    buckets: Vec<RawBucket>,
    #[serde(default, rename = "export")]
    exports: Vec<ExportConfig>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
enum BucketKind {
    Local,
    S3,
    Gcs,
    Azure,
}

/// Every field any kind of bucket has; `into_bucket` checks which apply to the kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBucket {
    name: String,
    kind: BucketKind,
    gets_in_flight_max: Option<u32>,
    path: Option<PathBuf>,
    bucket: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    allow_http: Option<bool>,
    service_account_path: Option<PathBuf>,
    account: Option<String>,
    container: Option<String>,
    access_key: Option<Secret>,
}

impl RawBucket {
    /// The kind-specific fields that are set, by name.
    fn fields_set(&self) -> Vec<&'static str> {
        let set = [
            ("path", self.path.is_some()),
            ("bucket", self.bucket.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("region", self.region.is_some()),
            ("path_style", self.path_style.is_some()),
            ("access_key_id", self.access_key_id.is_some()),
            ("secret_access_key", self.secret_access_key.is_some()),
            ("allow_http", self.allow_http.is_some()),
            ("service_account_path", self.service_account_path.is_some()),
            ("account", self.account.is_some()),
            ("container", self.container.is_some()),
            ("access_key", self.access_key.is_some()),
        ];
        set.iter().filter(|(_, is_set)| *is_set).map(|(name, _)| *name).collect()
    }

    fn into_bucket(self, base_dir: &Path) -> Result<BucketConfig, String> {
        let (kind_name, applies): (&str, &[&str]) = match self.kind {
            BucketKind::Local => ("local", &["path"]),
            BucketKind::S3 => (
                "s3",
                &["bucket", "endpoint", "region", "path_style", "access_key_id", "secret_access_key", "allow_http"],
            ),
            BucketKind::Gcs => ("gcs", &["bucket", "service_account_path"]),
            BucketKind::Azure => ("azure", &["account", "container", "access_key"]),
        };
        let ctx = format!("[[bucket]] \"{}\" (kind = \"{kind_name}\")", self.name);
        if let Some(field) = self.fields_set().into_iter().find(|f| !applies.contains(f)) {
            return Err(format!(
                "{ctx}: `{field}` does not apply to a {kind_name} bucket (its fields: {})",
                applies.join(", ")
            ));
        }
        let required = |value: Option<String>, field: &str| match value {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(format!("{ctx}: `{field}` is empty")),
            None => Err(format!("{ctx}: `{field}` is missing")),
        };
        let location = match self.kind {
            BucketKind::Local => match self.path {
                Some(p) if !p.as_os_str().is_empty() => BucketLocation::Local { path: resolve(base_dir, p) },
                _ => return Err(format!("{ctx}: `path` is missing (the directory to serve as a bucket)")),
            },
            BucketKind::S3 => {
                let allow_http = self.allow_http.unwrap_or(false);
                if let Some(endpoint) = &self.endpoint {
                    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                        return Err(format!(
                            "{ctx}: `endpoint` must start with https:// or http:// (got \"{endpoint}\")"
                        ));
                    }
                    if endpoint.starts_with("http://") && !allow_http {
                        return Err(format!("{ctx}: `endpoint` is plain http://; set `allow_http = true` to allow it"));
                    }
                }
                if self.access_key_id.is_some() != self.secret_access_key.is_some() {
                    return Err(format!(
                        "{ctx}: give both `access_key_id` and `secret_access_key`, or neither (then the environment's)"
                    ));
                }
                BucketLocation::S3 {
                    bucket: required(self.bucket, "bucket")?,
                    endpoint: self.endpoint,
                    region: required(self.region, "region")?,
                    path_style: self.path_style.unwrap_or(false),
                    access_key_id: self.access_key_id,
                    secret_access_key: self.secret_access_key,
                    allow_http,
                }
            }
            BucketKind::Gcs => BucketLocation::Gcs {
                bucket: required(self.bucket, "bucket")?,
                service_account_path: self.service_account_path.map(|p| resolve(base_dir, p)),
            },
            BucketKind::Azure => BucketLocation::Azure {
                account: required(self.account, "account")?,
                container: required(self.container, "container")?,
                access_key: self.access_key,
            },
        };
        let gets_in_flight_max = self.gets_in_flight_max.unwrap_or(GETS_IN_FLIGHT_DEFAULT);
        if !(1..=GETS_IN_FLIGHT_MAX).contains(&gets_in_flight_max) {
            return Err(format!(
                "{ctx}: `gets_in_flight_max` must be 1 to {GETS_IN_FLIGHT_MAX} (got {gets_in_flight_max})"
            ));
        }
        Ok(BucketConfig { name: self.name, gets_in_flight_max, location })
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        Config::parse_with_origin(&text, base_dir, &path.display().to_string())
    }

    /// Parses and validates configuration text; relative paths are taken relative to `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Config::parse_with_origin(text, base_dir, "configuration")
    }

    fn parse_with_origin(text: &str, base_dir: &Path, origin: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { origin: origin.to_string(), message: e.to_string() })?;
        let invalid = |message: String| ConfigError::Invalid { origin: origin.to_string(), message };
        let default = Config::embedded_default(base_dir);
        let cache = match raw.cache {
            Some(c) => CacheConfig {
                device: resolve(base_dir, c.device),
                metadata_dir: resolve(base_dir, c.metadata_dir),
                size: c.size,
            },
            None => default.cache,
        };
        let buckets = raw.buckets.into_iter().map(|b| b.into_bucket(base_dir)).collect::<Result<Vec<_>, _>>();
        let config = Config {
            cache,
            admin: raw.admin.unwrap_or(default.admin),
            engine: raw.engine,
            write: raw.write,
            nfs: raw.nfs,
            buckets: buckets.map_err(invalid)?,
            exports: raw.exports,
        };
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// The zero-config appliance: the directory `base_dir/var/bucket` served as bucket `local`,
    /// exported as `/` to loopback clients; a 1 GiB file cache `var/cache.img`; metadata in
    /// `var/meta`; the admin endpoint on 127.0.0.1:9180. Creates nothing (`ensure_local_dirs`).
    pub fn embedded_default(base_dir: &Path) -> Config {
        let var = base_dir.join("var");
        Config {
            cache: CacheConfig {
                device: var.join("cache.img"),
                size: Some(ByteSize(1 << 30)),
                metadata_dir: var.join("meta"),
            },
            admin: AdminConfig {
                // Invariant: a constant that parses; checked by the `embedded_default_is_valid` test.
                listen: ADMIN_LISTEN_DEFAULT.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9180))),
            },
            engine: EngineConfig::default(),
            write: WriteConfig::default(),
            nfs: NfsConfig::default(),
            buckets: vec![BucketConfig {
                name: "local".to_string(),
                gets_in_flight_max: GETS_IN_FLIGHT_DEFAULT,
                location: BucketLocation::Local { path: var.join("bucket") },
            }],
            exports: vec![ExportConfig {
                path: "/".to_string(),
                bucket: "local".to_string(),
                prefix: String::new(),
                read_only: false,
                clients: loopback_clients(),
                root_squash: true,
                file_mode: file_mode_default(),
                dir_mode: dir_mode_default(),
                uid: 0,
                gid: 0,
            }],
        }
    }

    /// Creates the local buckets' directories, the metadata directory and the cache file's
    /// directory if they are missing.
    pub fn ensure_local_dirs(&self) -> std::io::Result<()> {
        let mut dirs = vec![self.cache.metadata_dir.clone()];
        if let Some(parent) = self.cache.device.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !self.cache.device.starts_with("/dev") {
                dirs.push(parent.to_path_buf());
            }
        }
        for bucket in &self.buckets {
            if let BucketLocation::Local { path } = &bucket.location {
                dirs.push(path.clone());
            }
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir)
                .map_err(|e| std::io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
        }
        Ok(())
    }

    pub fn bucket(&self, name: &str) -> Option<&BucketConfig> {
        self.buckets.iter().find(|b| b.name == name)
    }

    /// Checks what each section cannot check alone; the message names the field.
    fn validate(&self) -> Result<(), String> {
        validate_cache(&self.cache)?;
        validate_engine(&self.engine)?;
        validate_write(&self.write)?;
        if self.buckets.is_empty() {
            return Err("no [[bucket]]: configure at least one bucket".to_string());
        }
        let mut names = BTreeSet::new();
        for b in &self.buckets {
            validate_bucket_name(&b.name)?;
            if !names.insert(b.name.as_str()) {
                return Err(format!("[[bucket]] name \"{}\" is used twice", b.name));
            }
        }
        if self.exports.is_empty() {
            return Err("no [[export]]: configure at least one export".to_string());
        }
        if self.exports.len() > 1 && self.exports.iter().any(|e| e.path == "/") {
            return Err(
                "[[export]] path \"/\" must be the only export (the others would be hidden under it)".to_string()
            );
        }
        validate_nfs(&self.nfs)?;
        let mut paths = BTreeSet::new();
        for e in &self.exports {
            validate_export(e, &names)?;
            if !paths.insert(e.path.as_str()) {
                return Err(format!("[[export]] path \"{}\" is used twice", e.path));
            }
        }
        Ok(())
    }
}

/// `path` relative to `base_dir`; an empty path stays empty (so validation can name it).
fn resolve(base_dir: &Path, path: PathBuf) -> PathBuf {
    if path.as_os_str().is_empty() {
        path
    } else {
        base_dir.join(path)
    }
}

fn validate_cache(cache: &CacheConfig) -> Result<(), String> {
    if cache.device.as_os_str().is_empty() {
        return Err("[cache] `device` is empty".to_string());
    }
    if cache.metadata_dir.as_os_str().is_empty() {
        return Err("[cache] `metadata_dir` is empty".to_string());
    }
    if let Some(size) = cache.size {
        if cache.device.starts_with("/dev") {
            return Err(format!("[cache] `size` is for a file; {} is a device", cache.device.display()));
        }
        if size.0 == 0 || size.0 % 4096 != 0 {
            return Err(format!("[cache] `size` must be a nonzero multiple of 4096 bytes (got {size})"));
        }
    }
    Ok(())
}

fn validate_engine(engine: &EngineConfig) -> Result<(), String> {
    let block = engine.block_bytes.0;
    if !block.is_power_of_two() || !(4096..=64 << 20).contains(&block) {
        return Err(format!(
            "[engine] `block_bytes` must be a power of two from 4KiB to 64MiB (got {})",
            engine.block_bytes
        ));
    }
    if engine.fetch_bytes.0 == 0 || !engine.fetch_bytes.0.is_multiple_of(block) {
        return Err(format!(
            "[engine] `fetch_bytes` must be a nonzero multiple of `block_bytes` ({}) (got {})",
            engine.block_bytes, engine.fetch_bytes
        ));
    }
    if !engine.read_ahead_bytes_max.0.is_multiple_of(block) {
        return Err(format!(
            "[engine] `read_ahead_bytes_max` must be a multiple of `block_bytes` ({}); 0 turns read-ahead off (got {})",
            engine.block_bytes, engine.read_ahead_bytes_max
        ));
    }
    Ok(())
}

fn validate_write(w: &WriteConfig) -> Result<(), String> {
    if !(5 << 20..=5 << 30).contains(&w.part_bytes.0) {
        return Err(format!("[write] `part_bytes` must be 5MiB to 5GiB, as S3 requires (got {})", w.part_bytes));
    }
    if !(1..=64).contains(&w.parts_in_flight) {
        return Err(format!("[write] `parts_in_flight` must be 1 to 64 (got {})", w.parts_in_flight));
    }
    if !(1..=256).contains(&w.uploads_in_flight) {
        return Err(format!("[write] `uploads_in_flight` must be 1 to 256 (got {})", w.uploads_in_flight));
    }
    if w.buffered_bytes_max.0 < 1 << 20 {
        return Err(format!("[write] `buffered_bytes_max` must be at least 1MiB (got {})", w.buffered_bytes_max));
    }
    if w.upload_after_idle < w.upload_after_close {
        return Err(format!(
            "[write] `upload_after_idle` ({}) must not be shorter than `upload_after_close` ({})",
            display_duration(w.upload_after_idle),
            display_duration(w.upload_after_close)
        ));
    }
    if w.full_cache_wait > Duration::from_secs(600) {
        return Err(format!(
            "[write] `full_cache_wait` must be at most 10m (got {})",
            display_duration(w.full_cache_wait)
        ));
    }
    Ok(())
}

/// Bucket names appear in `bucketfs preload <bucket>/<prefix>` and in metric labels.
fn validate_bucket_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 63 || !name.chars().all(ok_char) {
        return Err(format!("[[bucket]] name \"{name}\": use 1 to 63 of the characters A-Z a-z 0-9 - _ ."));
    }
    Ok(())
}

fn validate_nfs(n: &NfsConfig) -> Result<(), String> {
    let mut seen = vec![n.listen];
    for (field, addr) in [("mount_listen", n.mount_listen), ("portmap_listen", n.portmap_listen)] {
        if let Some(a) = addr {
            if a.port() != 0 && seen.iter().any(|s| s.port() == a.port() && s.ip() == a.ip()) {
                return Err(format!("[nfs] `{field}` {a} is already used by another [nfs] listener"));
            }
            seen.push(a);
        }
    }
    if n.cores > 1024 {
        return Err(format!("[nfs] `cores` must be 0 (one per CPU) to 1024 (got {})", n.cores));
    }
    if n.lease < Duration::from_secs(5) || n.lease > Duration::from_secs(3600) {
        return Err(format!("[nfs] `lease` must be 5s to 1h (got {})", display_duration(n.lease)));
    }
    if n.grace > Duration::from_secs(3600) {
        return Err(format!("[nfs] `grace` must be at most 1h (got {})", display_duration(n.grace)));
    }
    Ok(())
}

fn validate_export(e: &ExportConfig, bucket_names: &BTreeSet<&str>) -> Result<(), String> {
    let ctx = format!("[[export]] \"{}\"", e.path);
    let bad_component = e.path.split('/').skip(1).any(|c| c == "." || c == ".." || (c.is_empty() && e.path != "/"));
    if !e.path.starts_with('/') || bad_component || e.path.contains('\0') {
        return Err(format!("{ctx}: `path` must be absolute and normal, like \"/data\" or \"/\""));
    }
    if !bucket_names.contains(e.bucket.as_str()) {
        let known: Vec<&str> = bucket_names.iter().copied().collect();
        return Err(format!(
            "{ctx}: `bucket` \"{}\" is not a configured bucket (configured: {})",
            e.bucket,
            known.join(", ")
        ));
    }
    if e.prefix.starts_with('/') {
        return Err(format!("{ctx}: `prefix` \"{}\" must not start with '/' (keys have no leading slash)", e.prefix));
    }
    if e.clients.is_empty() {
        return Err(format!("{ctx}: `clients` is empty, so no one could mount it"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
