//! `bucketfs preload`: asks the running server to pull a prefix (or a manifest of keys) into the
//! cache, and follows it: a progress bar on a terminal (a spinner while the listing goes on),
//! plain lines every few seconds otherwise; skipped keys as they come; the final report.
//! Exits non-zero if the preload failed. Runs on the main thread (indicatif ticks on its own).

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bucketfs::admin_client::AdminClient;
use clap::Args;
use engine::preload::{PreloadEvent, PreloadProgress, PreloadReport, PreloadRequest, PreloadSkip};
use indicatif::{ProgressBar, ProgressStyle};

use crate::human::{bytes, millis};
use crate::stats_cmd::ADMIN_DEFAULT;

/// With no event for this long, the server is taken for stuck.
const SILENCE_MAX: Duration = Duration::from_secs(600);
/// Without a terminal, one progress line at most this often.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct PreloadArgs {
    /// BUCKET or BUCKET/PREFIX (the bucket's name in the configuration).
    target: String,
    /// Load exactly these keys: one per line; blank lines and lines starting with # are ignored,
    /// spaces around a key are trimmed.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Keep the loaded data in the cache until it is deleted.
    #[arg(long)]
    pin: bool,
    /// At most N requests to the bucket per second.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rate: Option<u32>,
    /// The admin endpoint of the running server.
    #[arg(long, env = "BUCKETFS_ADMIN", default_value = ADMIN_DEFAULT)]
    admin: String,
}

/// Keys of a manifest file's text.
pub fn manifest_keys(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

fn request(args: &PreloadArgs) -> anyhow::Result<PreloadRequest> {
    let (bucket, prefix) = args.target.split_once('/').unwrap_or((&args.target, ""));
    if bucket.is_empty() {
        bail!("name a bucket: bucketfs preload BUCKET[/PREFIX]");
    }
    let manifest = match &args.manifest {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let keys = manifest_keys(&text);
            if keys.is_empty() {
                bail!("{} lists no keys", path.display());
            }
            Some(keys)
        }
        None => None,
    };
    Ok(PreloadRequest {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        manifest,
        pin: args.pin,
        requests_per_sec_max: args.rate,
    })
}

pub fn preload(args: &PreloadArgs) -> anyhow::Result<()> {
    let req = request(args)?;
    let client = AdminClient::new(&args.admin).with_timeout(SILENCE_MAX);
    let mut events = client.post_ndjson("/v1/preload", &serde_json::to_vec(&req)?)?;
    let mut view = View::new(&args.target, std::io::stderr().is_terminal());
    loop {
        let Some(event) = events.next_value::<PreloadEvent>()? else {
            view.abandon();
            bail!("the server closed the preload stream before it finished (see its log)");
        };
        match event {
            PreloadEvent::Progress(p) => view.progress(&p),
            PreloadEvent::Skipped(skip) => view.skipped(&skip),
            PreloadEvent::Done(report) => {
                view.finish();
                view.report(&report);
                return Ok(());
            }
            PreloadEvent::Failed { error } => {
                view.abandon();
                bail!("preload of {} failed: {error}", args.target);
            }
        }
    }
}

/// What the user sees while the preload runs.
struct View {
    target: String,
    bar: Option<ProgressBar>,
    listing: bool,
    plain_last: Option<Instant>,
    skipped_shown: HashSet<String>,
}

impl View {
    fn new(target: &str, terminal: bool) -> View {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(spinner_style());
            bar.set_message("starting");
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        View { target: target.to_string(), bar, listing: true, plain_last: None, skipped_shown: HashSet::new() }
    }

    fn progress(&mut self, p: &PreloadProgress) {
        let objects = format!("{}/{} objects", p.objects_done, p.objects_total);
        let Some(bar) = &self.bar else {
            let due = self.plain_last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY);
            if due {
                self.plain_last = Some(Instant::now());
                eprintln!("{}", plain_line(&self.target, p));
            }
            return;
        };
        if self.listing && p.listing_done {
            self.listing = false;
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_done);
            bar.set_message(objects.clone());
            bar.set_style(bar_style());
        }
        if self.listing {
            bar.set_message(format!(
                "listing: {} objects ({}) found, {objects} {} loaded",
                p.objects_total,
                bytes(p.bytes_total),
                bytes(p.bytes_done)
            ));
        } else {
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_done);
            bar.set_message(objects);
        }
    }

    fn skipped(&mut self, skip: &PreloadSkip) {
        self.skipped_shown.insert(skip.key.clone());
        self.print(&format!("skipped {}: {}", skip.key, skip.reason));
    }

    /// A line on stdout, above the bar if there is one.
    fn print(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }

    fn report(&mut self, r: &PreloadReport) {
        for skip in r.skipped.iter().filter(|s| !self.skipped_shown.contains(&s.key)) {
            println!("skipped {}: {}", skip.key, skip.reason);
        }
        print!("{}", render_report(&self.target, r));
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The progress line written when stderr is not a terminal.
pub fn plain_line(target: &str, p: &PreloadProgress) -> String {
    let rate = p.bytes_done.saturating_mul(1000).checked_div(p.elapsed_ms).unwrap_or(0);
    let listing = if p.listing_done { "" } else { ", still listing" };
    format!(
        "preload {target}: {}/{} objects, {} of {} at {}/s, {}{listing}",
        p.objects_done,
        p.objects_total,
        bytes(p.bytes_done),
        bytes(p.bytes_total),
        bytes(rate),
        millis(p.elapsed_ms)
    )
}

pub fn render_report(target: &str, r: &PreloadReport) -> String {
    let rate = r.fetched_bytes.saturating_mul(1000).checked_div(r.elapsed_ms).unwrap_or(0);
    let mut out = format!("preload of {target} done in {}\n", millis(r.elapsed_ms));
    out.push_str(&format!(
        "  fetched         {} objects, {} ({}/s)\n",
        r.fetched_objects,
        bytes(r.fetched_bytes),
        bytes(rate)
    ));
    out.push_str(&format!("  already cached  {} objects, {}\n", r.cached_objects, bytes(r.cached_bytes)));
    out.push_str(&format!("  skipped         {} objects\n", r.skipped.len()));
    out.push_str(&format!("  requests        {}\n", r.requests));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_skip_blanks_and_comments() {
        let text = "# epoch 1\na/b.tfrecord\n\n  c/d  \r\n   # indented comment\ne\n";
        assert_eq!(manifest_keys(text), vec!["a/b.tfrecord", "c/d", "e"]);
    }

    #[test]
    fn targets_split_into_bucket_and_prefix() {
        let args = |target: &str| PreloadArgs {
            target: target.into(),
            manifest: None,
            pin: true,
            rate: Some(50),
            admin: ADMIN_DEFAULT.into(),
        };
        let r = request(&args("train/epoch1/part")).expect("valid");
        assert_eq!((r.bucket.as_str(), r.prefix.as_str()), ("train", "epoch1/part"));
        assert!(r.pin && r.manifest.is_none());
        assert_eq!(r.requests_per_sec_max, Some(50));
        let r = request(&args("train")).expect("valid");
        assert_eq!((r.bucket.as_str(), r.prefix.as_str()), ("train", ""));
        assert!(request(&args("/x")).is_err());
    }

    #[test]
    fn lines_and_report() {
        let p = PreloadProgress {
            objects_done: 3,
            objects_total: 10,
            bytes_done: 3 << 20,
            bytes_total: 10 << 20,
            listing_done: false,
            elapsed_ms: 1000,
        };
        assert_eq!(
            plain_line("train/e1", &p),
            "preload train/e1: 3/10 objects, 3.0 MiB of 10.0 MiB at 3.0 MiB/s, 1.0 s, still listing"
        );
        let r = PreloadReport {
            fetched_objects: 8,
            fetched_bytes: 8 << 20,
            cached_objects: 2,
            cached_bytes: 2 << 20,
            skipped: vec![PreloadSkip { key: "x".into(), reason: "missing".into() }],
            requests: 9,
            elapsed_ms: 2000,
        };
        let text = render_report("train/e1", &r);
        assert!(text.contains("done in 2.0 s") && text.contains("8 objects, 8.0 MiB (4.0 MiB/s)"), "{text}");
        assert!(text.contains("already cached  2 objects") && text.contains("skipped         1 objects"), "{text}");
    }
}
