//! `bucketfs`: the appliance binary. Thin: parses the command line and calls the crates.

mod config_cmd;
mod device_cmd;
mod human;
mod nfs_server;
mod preload_cmd;
mod serve_cmd;
mod stats_cmd;
mod wiring;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bucketfs",
    version,
    about = "A caching storage appliance: object storage served over NFS and SMB from NVMe"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Format a cache device (NVMe namespace /dev/ngXnY, block device, or file) for the block store.
    Format(device_cmd::FormatArgs),
    /// Open a cache device, recover its index, and print its layout and contents.
    Inspect(device_cmd::InspectArgs),
    /// Run the appliance (no --config: the embedded default, a local directory bucket and a file cache).
    Serve(serve_cmd::ServeArgs),
    /// Print the running server's counters: hits, misses, bucket requests, latency, cache use.
    Stats(stats_cmd::StatsArgs),
    /// Pull BUCKET[/PREFIX] (or a manifest of keys) into the cache of the running server.
    Preload(preload_cmd::PreloadArgs),
    /// Print the configured buckets.
    Buckets(config_cmd::ConfigArgs),
    /// Print the configured exports.
    Exports(config_cmd::ConfigArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Format(args) => device_cmd::format(&args),
        Command::Inspect(args) => device_cmd::inspect(&args),
        Command::Serve(args) => serve_cmd::serve(&args),
        Command::Stats(args) => stats_cmd::stats(&args),
        Command::Preload(args) => preload_cmd::preload(&args),
        Command::Buckets(args) => config_cmd::buckets(&args),
        Command::Exports(args) => config_cmd::exports(&args),
    }
}
