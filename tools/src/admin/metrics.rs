//! `GET /metrics`: an `EngineStats` snapshot rendered as OpenMetrics text with `prometheus-client`.
//!
//! API: `render(&EngineStats) -> String`, and `CONTENT_TYPE`. A fresh registry per scrape holds
//! one collector over the snapshot, so nothing here keeps state. Names are `bucketfs_…` with
//! the unit last (`_bytes`, `_seconds`, then `_total` for counters); latencies, kept in
//! microseconds by the engine, are exported in seconds. Per-bucket series carry `bucket="name"`,
//! request and error series `kind="get"` etc. Runs on the admin runtime's threads.

use std::fmt;

use engine::stats::{EngineStats, LatencySummary};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition of one snapshot.
pub fn render(stats: &EngineStats) -> String {
    let mut registry = Registry::with_prefix("bucketfs");
    registry.register_collector(Box::new(Snapshot(stats.clone())));
    let mut text = String::new();
    // Encoding into a String fails only if a collector fails, and ours fail only on a malformed
    // histogram, which `histogram_buckets` never produces.
    if let Err(fmt::Error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::error!("encoding /metrics failed; serving what was encoded");
    }
    text
}

#[derive(Debug)]
struct Snapshot(EngineStats);

type Labels<'a> = [(&'static str, &'a str)];

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, unit: Option<Unit>, v: u64) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
    m.encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    v: impl EncodeGaugeValue,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
    m.encode_gauge(&v)
}

/// One counter family with a series per label set.
fn counter_family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    series: impl Iterator<Item = (Vec<(&'static str, &'a str)>, u64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
    for (labels, v) in series {
        m.encode_family(&labels.as_slice())?.encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
    }
    Ok(())
}

fn gauge_family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    series: impl Iterator<Item = (Vec<(&'static str, &'a str)>, u64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
    for (labels, v) in series {
        m.encode_family(&labels.as_slice())?.encode_gauge(&v)?;
    }
    Ok(())
}

/// Histogram buckets in seconds (not cumulative: the encoder sums them), ending with +Inf, and
/// the count. Consistent even if the engine's summary is not: the +Inf bucket takes whatever
/// `count` exceeds the finite buckets by, and bounds that do not ascend fold into +Inf.
fn histogram_buckets(s: &LatencySummary) -> (Vec<(f64, u64)>, u64) {
    let ascending = s.bounds_us.windows(2).all(|w| matches!(w, [a, b] if a < b));
    let mut buckets: Vec<(f64, u64)> = if ascending {
        s.bounds_us.iter().zip(&s.counts).map(|(&b, &c)| (b as f64 / 1e6, c)).collect()
    } else {
        Vec::new()
    };
    let finite: u64 = buckets.iter().map(|(_, c)| c).sum();
    let listed: u64 = s.counts.iter().sum();
    let total = s.count.max(listed);
    buckets.push((f64::INFINITY, total - finite));
    (buckets, total)
}

fn histogram<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (Option<&'a Labels<'a>>, &'a LatencySummary)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, s) in series {
        let (buckets, count) = histogram_buckets(s);
        let sum = s.sum_us as f64 / 1e6;
        match labels {
            Some(labels) => m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?,
            None => m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?,
        }
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let e = &mut enc;
        gauge(e, "uptime", "Time since the engine started", Some(Unit::Seconds), s.uptime_ms as f64 / 1e3)?;
        counter(e, "reads", "Reads served (whole requests)", None, s.reads)?;
        counter(e, "read", "Bytes returned by reads", Some(Unit::Bytes), s.read_bytes)?;
        counter(e, "block_hits", "Cache blocks reads found in the cache", None, s.block_hits)?;
        counter(e, "block_misses", "Cache blocks reads did not find in the cache", None, s.block_misses)?;
        counter(e, "block_joins", "Blocks a read found already being fetched", None, s.block_joins)?;
        counter(e, "read_ahead_blocks", "Blocks fetched ahead of sequential readers", None, s.read_ahead_blocks)?;
        counter(e, "stale_objects", "Objects found changed in the bucket on revalidation", None, s.stale_objects)?;
        counter(e, "keys_skipped", "Keys skipped because they are not valid file names", None, s.keys_skipped)?;
        histogram(e, "read_latency", "From a read's arrival to its last byte", [(None, &s.read_latency)].into_iter())?;
        encode_cache(e, s)?;
        encode_writes(e, s)?;
        encode_buckets(e, s)
    }
}

fn encode_writes(e: &mut DescriptorEncoder, s: &EngineStats) -> fmt::Result {
    let w = &s.writes;
    counter(e, "writes", "Writes served (whole requests)", None, w.writes)?;
    counter(e, "written", "Bytes written by clients", Some(Unit::Bytes), w.write_bytes)?;
    counter(e, "commits", "Commits (fsync) served", None, w.commits)?;
    gauge(
        e,
        "write_buffered",
        "Partial blocks of unstable writes held in memory",
        Some(Unit::Bytes),
        w.buffered_bytes,
    )?;
    gauge(e, "uploads_pending", "Files waiting to be uploaded to the bucket", None, w.pending_uploads)?;
    gauge(e, "bucket_ops_pending", "Copies and deletes queued for the bucket", None, w.pending_bucket_ops)?;
    counter(e, "uploads", "Files uploaded to the bucket", None, w.uploads)?;
    counter(e, "uploaded", "Bytes uploaded to the bucket", Some(Unit::Bytes), w.upload_bytes)?;
    counter(e, "upload_failures", "Uploads that failed and will be retried", None, w.upload_failures)?;
    counter(e, "uploads_restarted", "Uploads started again because the file changed", None, w.uploads_restarted)?;
    counter(
        e,
        "upload_conflicts",
        "Objects changed in the bucket by someone else; local data kept",
        None,
        w.conflicts,
    )?;
    counter(e, "writes_no_space", "Writes refused because the cache was full of unpublished data", None, w.no_space)
}

fn encode_cache(e: &mut DescriptorEncoder, s: &EngineStats) -> fmt::Result {
    let c = &s.cache;
    gauge(e, "cache_capacity", "Cache device capacity for data", Some(Unit::Bytes), c.capacity_bytes)?;
    gauge(e, "cache_data", "Bytes of data in the cache", Some(Unit::Bytes), c.data_bytes)?;
    gauge(e, "cache_dirty", "Bytes in the cache not yet written to a bucket", Some(Unit::Bytes), c.dirty_bytes)?;
    gauge(e, "cache_pinned", "Bytes pinned in the cache", Some(Unit::Bytes), c.pinned_bytes)?;
    gauge(e, "cache_extents", "Extents in the cache", None, c.extents)?;
    gauge(e, "cache_segments", "Segments of the cache device", None, c.segments_total)?;
    gauge(e, "cache_segments_free", "Free segments of the cache device", None, c.segments_free)?;
    counter(e, "cache_extents_evicted", "Extents evicted from the cache", None, c.extents_evicted)?;
    counter(e, "cache_checksum_errors", "Cache reads that failed their checksum", None, c.checksum_errors)?;
    gauge(e, "cache_shards_poisoned", "Cache shards that stopped accepting writes", None, c.poisoned.len() as u64)
}

fn by_bucket(name: &str) -> Vec<(&'static str, &str)> {
    vec![("bucket", name)]
}

fn encode_buckets(e: &mut DescriptorEncoder, s: &EngineStats) -> fmt::Result {
    let b = &s.buckets;
    counter_family(
        e,
        "bucket_requests",
        "Requests sent to a bucket, by kind",
        None,
        b.iter().flat_map(|b| {
            b.requests.iter().map(|(k, v)| (vec![("bucket", b.name.as_str()), ("kind", k.as_str())], *v))
        }),
    )?;
    counter_family(
        e,
        "bucket_errors",
        "Failed requests to a bucket, by kind of failure",
        None,
        b.iter()
            .flat_map(|b| b.errors.iter().map(|(k, v)| (vec![("bucket", b.name.as_str()), ("kind", k.as_str())], *v))),
    )?;
    let per = |f: fn(&engine::stats::BucketStats) -> u64| b.iter().map(move |b| (by_bucket(&b.name), f(b)));
    counter_family(e, "bucket_retries", "Requests sent again after a retryable failure", None, per(|b| b.retries))?;
    counter_family(e, "bucket_received", "Bytes received from a bucket", Some(Unit::Bytes), per(|b| b.bytes_received))?;
    counter_family(e, "bucket_sent", "Bytes sent to a bucket", Some(Unit::Bytes), per(|b| b.bytes_sent))?;
    gauge_family(
        e,
        "bucket_gets_in_flight",
        "GETs to a bucket in flight",
        None,
        b.iter().map(|b| (by_bucket(&b.name), b.gets_in_flight)),
    )?;
    let labels: Vec<[(&'static str, &str); 1]> = b.iter().map(|b| [("bucket", b.name.as_str())]).collect();
    histogram(
        e,
        "bucket_get_latency",
        "From sending a GET to a bucket to its last body byte",
        labels.iter().zip(b).map(|(l, b)| (Some(l.as_slice()), &b.get_latency)),
    )
}

#[cfg(test)]
pub(crate) mod tests;
