//! `bucketfs format` and `bucketfs inspect`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use blockstore::{DeviceSpec, FormatOptions, Store, StoreConfig};
use clap::Args;

use bucketfs::size::parse_bytes;

#[derive(Args)]
pub struct FormatArgs {
    /// Device or file: /dev/ngXnY (NVMe passthrough), a block device, or a file.
    #[arg(long)]
    device: PathBuf,
    /// Create (or resize) the file to this size first, e.g. 1GiB. Files only.
    #[arg(long, value_parser = parse_bytes)]
    size: Option<u64>,
    /// Segment size, e.g. 64MiB (the unit of eviction).
    #[arg(long, value_parser = parse_bytes, default_value = "64MiB")]
    segment: u64,
    /// Number of shards (one per core that serves I/O); default: the number of cores.
    #[arg(long)]
    shards: Option<u32>,
    /// Use polled completions (IOPOLL) when the device has poll queues.
    #[arg(long)]
    iopoll: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(long)]
    device: PathBuf,
    #[arg(long)]
    iopoll: bool,
}

fn spec(path: &std::path::Path, iopoll: bool) -> DeviceSpec {
    match DeviceSpec::from_path(path) {
        DeviceSpec::Nvme { path, .. } => DeviceSpec::Nvme { path, iopoll },
        DeviceSpec::File { path, .. } => DeviceSpec::File { path, iopoll },
        other => other,
    }
}

pub fn format(args: &FormatArgs) -> anyhow::Result<()> {
    if let Some(size) = args.size {
        if size % 4096 != 0 {
            bail!("--size must be a multiple of 4096 bytes");
        }
        let is_device = args.device.starts_with("/dev");
        if is_device {
            bail!("--size is for files; {} is a device", args.device.display());
        }
        if let Some(parent) = args.device.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&args.device)
            .with_context(|| format!("creating {}", args.device.display()))?;
        file.set_len(size).with_context(|| format!("sizing {} to {size} bytes", args.device.display()))?;
    }
    let mut opts = FormatOptions { segment_bytes: args.segment, ..FormatOptions::default() };
    if let Some(shards) = args.shards {
        opts.shard_count = shards;
    }
    let sb = blockstore::format(&spec(&args.device, args.iopoll), &opts)?;
    println!(
        "formatted {}: {} bytes, {} segments of {} MiB in {} shards, data from byte {}, format version {}",
        args.device.display(),
        sb.device_bytes,
        sb.segment_count,
        sb.segment_bytes >> 20,
        sb.shard_count,
        sb.data_start,
        sb.format_version
    );
    Ok(())
}

pub fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let spec = spec(&args.device, args.iopoll);
    let started = Instant::now();
    let store = Store::open(&spec, StoreConfig::default())?;
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    let sb = store.superblock().clone();
    let uuid: String = sb.uuid.iter().map(|b| format!("{b:02x}")).collect();
    println!("device      {}", args.device.display());
    println!("uuid        {uuid}");
    println!("format      version {}", sb.format_version);
    println!(
        "geometry    {} bytes, {} segments x {} MiB, {} shards",
        sb.device_bytes,
        sb.segment_count,
        sb.segment_bytes >> 20,
        sb.shard_count
    );
    println!("opened in   {open_ms:.1} ms (recovery included)");
    println!("shard  extents   data_bytes  dirty_bytes  free_segs/total  recovery_ms  poisoned");
    for s in store.stats()? {
        println!(
            "{:>5}  {:>7}  {:>11}  {:>11}  {:>7}/{:<7}  {:>11.1}  {}",
            s.shard,
            s.extents,
            s.data_bytes,
            s.dirty_bytes,
            s.segments_free,
            s.segments_total,
            s.recovery_us as f64 / 1e3,
            s.poisoned.as_deref().unwrap_or("no")
        );
    }
    store.close();
    Ok(())
}
