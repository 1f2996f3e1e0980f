//! `bucketfs serve`: the appliance. With no configuration, the embedded default: the directory
//! `var/bucket` as the bucket, the file `var/cache.img` (1 GiB, formatted on first start) as the
//! cache, metadata in `var/meta`, everything on loopback.
//!
//! Threads: the blockstore's shard threads, the engine's backfill runtime, and a one-thread
//! control runtime for the admin endpoint and signals, and the NFS server's core threads
//! (`nfs_server`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use blockstore::{DeviceSpec, FormatOptions, Store, StoreConfig};
use bucketfs::admin::{self, AdminBackend};
use bucketfs::config::Config;
use clap::Args;
use engine::preload::{PreloadEvent, PreloadRequest};
use engine::stats::EngineStats;
use engine::{Engine, EngineConfig, ExportSpec};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::nfs_server::{NfsListen, NfsServer};
use crate::wiring;

#[derive(Args)]
pub struct ServeArgs {
    /// The configuration file (TOML); without it, the embedded default under the current
    /// directory.
    #[arg(long, env = "BUCKETFS_CONFIG")]
    config: Option<PathBuf>,
    /// Listen for the admin endpoint here instead of the configured address.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Pin each cache shard's thread to its own core.
    #[arg(long)]
    pin_cores: bool,
    /// Serve NFS here instead of the configured address (port 0: any free port).
    #[arg(long)]
    nfs: Option<SocketAddr>,
    /// Serve MOUNT here instead of the configured address.
    #[arg(long)]
    mount: Option<SocketAddr>,
    /// Serve a portmapper here (for NFSv3 clients that ask one).
    #[arg(long)]
    portmap: Option<SocketAddr>,
}

/// The engine as the admin endpoint sees it.
struct EngineBackend {
    engine: Arc<Engine>,
}

impl AdminBackend for EngineBackend {
    fn stats(&self) -> EngineStats {
        self.engine.stats()
    }

    fn preload(&self, req: PreloadRequest, events: mpsc::Sender<PreloadEvent>) -> BoxFuture<'static, ()> {
        let engine = self.engine.clone();
        Box::pin(async move { engine.preload(req, events).await })
    }
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            let here = std::env::current_dir().context("finding the current directory")?;
            Config::embedded_default(&here)
        }
    };
    config.ensure_local_dirs()?;
    let spec = DeviceSpec::from_path(&config.cache.device);
    prepare_cache(&config, &spec)?;
    let store_config = StoreConfig { pin_cores: args.pin_cores, ..StoreConfig::default() };
    let store = Store::open(&spec, store_config)
        .with_context(|| format!("opening the cache {}", config.cache.device.display()))?;
    let buckets = config.buckets.iter().map(wiring::bucket_spec).collect::<anyhow::Result<Vec<_>>>()?;
    let exports: Vec<ExportSpec> = config.exports.iter().map(|e| wiring::export_spec(e, &config)).collect();
    let engine_config = EngineConfig {
        block_bytes: config.engine.block_bytes.0,
        fetch_bytes: config.engine.fetch_bytes.0,
        read_ahead_bytes_max: config.engine.read_ahead_bytes_max.0,
        write: wiring::write_config(&config.write),
        ..EngineConfig::default()
    };
    let engine = Arc::new(
        Engine::new(engine_config, store, &config.cache.metadata_dir, buckets, exports)
            .context("starting the engine")?,
    );
    engine.start_write_back().context("starting the write-back")?;
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("control")
        .build()
        .context("starting the control runtime")?;
    let listen = NfsListen {
        nfs: args.nfs.unwrap_or(config.nfs.listen),
        mount: args.mount.or(config.nfs.mount_listen),
        portmap: args.portmap.or(config.nfs.portmap_listen),
    };
    let nfs = NfsServer::start(&config, engine.clone(), listen)?;
    let admin_addr = args.admin.unwrap_or(config.admin.listen);
    control.block_on(async {
        let listener = tokio::net::TcpListener::bind(admin_addr)
            .await
            .with_context(|| format!("listening for the admin endpoint on {admin_addr}"))?;
        let bound = listener.local_addr().unwrap_or(admin_addr);
        let admin_task = admin::serve(listener, Arc::new(EngineBackend { engine: engine.clone() }));
        announce(&config, &engine, bound);
        eprintln!("bucketfs: {}", nfs.describe());
        wait_for_stop().await?;
        eprintln!("bucketfs: stopping");
        admin_task.abort();
        anyhow::Ok(())
    })?;
    drop(control);
    nfs.shutdown();
    if let Some(rt) = engine.runtime().cloned() {
        let published = rt.block_on(engine.publish_all(config.write.upload_on_stop));
        let left = engine.write_stats();
        if !published {
            eprintln!(
                "bucketfs: {} upload(s) and {} bucket operation(s) still pending; they are durable in the cache and resume at the next start",
                left.pending_uploads, left.pending_bucket_ops
            );
        }
        // Let what is running finish (bounded by the bucket's retries), start nothing new.
        engine.stop_write_back();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while engine.write_back_busy() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        while Arc::strong_count(&engine) > 1 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    match Arc::try_unwrap(engine) {
        Ok(engine) => engine.shutdown().context("flushing the cache")?,
        Err(engine) => engine.store().flush().context("flushing the cache")?,
    }
    eprintln!("bucketfs: stopped");
    Ok(())
}

/// Creates and formats the cache file on first start; refuses a device that is not formatted.
fn prepare_cache(config: &Config, spec: &DeviceSpec) -> anyhow::Result<()> {
    let device = &config.cache.device;
    let is_file = !device.starts_with("/dev");
    if is_file && !device.exists() {
        let Some(size) = config.cache.size else {
            bail!("the cache file {} does not exist and [cache] size is not set", device.display());
        };
        create_file(device, size.0)?;
        let sb = match blockstore::format(spec, &FormatOptions::default()) {
            Ok(sb) => sb,
            Err(e) => {
                // Leave nothing half-made behind: the next start would find an unformatted file.
                let _ = std::fs::remove_file(device);
                return Err(e).with_context(|| format!("formatting the new cache file {}", device.display()));
            }
        };
        eprintln!(
            "bucketfs: created the cache {} ({} MiB, {} shards)",
            device.display(),
            sb.device_bytes >> 20,
            sb.shard_count
        );
        return Ok(());
    }
    blockstore::read_superblock(spec).with_context(|| {
        format!("the cache {} is not formatted (run `bucketfs format --device {}`)", device.display(), device.display())
    })?;
    Ok(())
}

fn create_file(path: &Path, bytes: u64) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.set_len(bytes).with_context(|| format!("sizing {} to {bytes} bytes", path.display()))?;
    Ok(())
}

fn announce(config: &Config, engine: &Engine, admin_addr: SocketAddr) {
    for bucket in &config.buckets {
        let described = engine.bucket(&bucket.name).map(|b| b.client().describe()).unwrap_or_default();
        eprintln!("bucketfs: bucket {} = {described}", bucket.name);
    }
    for export in engine.exports() {
        let spec = export.spec();
        eprintln!("bucketfs: export {} = bucket {} prefix {:?}", spec.name, spec.bucket, spec.prefix);
    }
    eprintln!(
        "bucketfs: serving; admin on http://{admin_addr} (`bucketfs stats`, `bucketfs preload BUCKET/PREFIX`, /metrics)"
    );
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
