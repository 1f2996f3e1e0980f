//! The exposition parsed back: every line well-formed, every sample in a declared family,
//! histograms cumulative and consistent, values where they belong.

use std::collections::BTreeMap;

use engine::stats::{BucketStats, CacheStats, EngineStats, LatencySummary};

use super::render;

pub(crate) fn sample_stats() -> EngineStats {
    let latency = |scale: u64| LatencySummary {
        bounds_us: vec![100, 1_000, 10_000],
        counts: vec![5 * scale, 3 * scale, 1, 1],
        count: 8 * scale + 2,
        sum_us: 12_345 * scale,
        p50_us: 90,
        p90_us: 900,
        p99_us: 9_000,
        p999_us: 20_000,
        max_us: 25_000,
    };
    let bucket = |name: &str, gets: u64| BucketStats {
        name: name.to_string(),
        describe: format!("s3://{name} at http://127.0.0.1:9000"),
        requests: [("get".to_string(), gets), ("list".to_string(), 2)].into_iter().collect(),
        errors: [("throttled".to_string(), 1)].into_iter().collect(),
        retries: 1,
        bytes_received: gets << 20,
        bytes_sent: 0,
        gets_in_flight: 3,
        get_latency: latency(gets),
    };
    EngineStats {
        uptime_ms: 61_500,
        reads: 1000,
        read_bytes: 4 << 30,
        block_hits: 900,
        block_misses: 100,
        block_joins: 7,
        read_ahead_blocks: 50,
        stale_objects: 1,
        read_latency: latency(100),
        cache: CacheStats {
            capacity_bytes: 1 << 30,
            data_bytes: 512 << 20,
            dirty_bytes: 1 << 20,
            pinned_bytes: 2 << 20,
            extents: 600,
            segments_total: 16,
            segments_free: 7,
            extents_evicted: 9,
            checksum_errors: 0,
            poisoned: vec!["shard 1: write failed: EIO".to_string()],
        },
        buckets: vec![bucket("train", 7), bucket("a\"b\\c", 1)],
        keys_skipped: 2,
        writes: Default::default(),
    }
}

#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses `name{k="v",...} value` (label values with `\"`, `\\`, `\n` escapes).
fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("a name");
    let name = line[..name_end].to_string();
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "{line}");
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(mut s) = rest.strip_prefix('{') {
        loop {
            let eq = s.find('=').expect("=");
            let key = s[..eq].to_string();
            assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
            let mut chars = s[eq + 1..].char_indices();
            assert_eq!(chars.next(), Some((0, '"')), "{line}");
            let mut value = String::new();
            let close = loop {
                match chars.next().expect("closing quote") {
                    (_, '\\') => match chars.next().expect("escape").1 {
                        'n' => value.push('\n'),
                        c @ ('"' | '\\') => value.push(c),
                        c => panic!("bad escape \\{c} in {line}"),
                    },
                    (i, '"') => break eq + 1 + i,
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key, value);
            let after = &s[close + 1..];
            if let Some(r) = after.strip_prefix(',') {
                s = r;
            } else if let Some(r) = after.strip_prefix('}') {
                rest = r;
                break;
            } else {
                panic!("unexpected text after a label in {line}");
            }
        }
    }
    let value = rest.strip_prefix(' ').expect("space before value");
    Sample { name, labels, value: parse_value(value, line) }
}

fn parse_value(text: &str, line: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        t => t.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    }
}

struct Exposition {
    types: BTreeMap<String, String>,
    units: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn parse(text: &str) -> Exposition {
    let mut types = BTreeMap::new();
    let mut units = BTreeMap::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "OpenMetrics ends with # EOF");
    for line in &lines[..lines.len() - 1] {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, family, rest) = (parts.next(), parts.next().expect("family"), parts.next().unwrap_or(""));
            match kind {
                Some("TYPE") => assert!(types.insert(family.to_string(), rest.to_string()).is_none(), "{line}"),
                Some("UNIT") => {
                    assert!(family.ends_with(&format!("_{rest}")), "unit suffix: {line}");
                    units.insert(family.to_string(), rest.to_string());
                }
                Some("HELP") => assert!(!rest.is_empty(), "{line}"),
                _ => panic!("unknown comment {line}"),
            }
        } else {
            samples.push(parse_sample(line));
        }
    }
    Exposition { types, units, samples }
}

impl Exposition {
    /// The family a sample belongs to, checked against its type.
    fn family_of(&self, sample: &str) -> (String, &str) {
        for (suffix, allowed) in
            [("_total", "counter"), ("_bucket", "histogram"), ("_sum", "histogram"), ("_count", "histogram")]
        {
            if let Some(family) = sample.strip_suffix(suffix) {
                if self.types.get(family).map(String::as_str) == Some(allowed) {
                    return (family.to_string(), allowed);
                }
            }
        }
        let kind = self.types.get(sample).unwrap_or_else(|| panic!("{sample} has no # TYPE"));
        assert_eq!(kind, "gauge", "{sample}");
        (sample.to_string(), "gauge")
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let found: Vec<&Sample> = self.samples.iter().filter(|s| s.name == name && s.labels == want).collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }
}

#[test]
fn every_line_parses_and_belongs_to_a_family() {
    let text = render(&sample_stats());
    // For checking with another parser (promtool, Python's prometheus_client).
    if let Some(path) = std::env::var_os("BUCKETFS_METRICS_SAMPLE_OUT") {
        std::fs::write(path, &text).expect("write the sample");
    }
    let exp = parse(&text);
    assert!(exp.samples.len() > 40, "{text}");
    for s in &exp.samples {
        let (family, _) = exp.family_of(&s.name);
        assert!(family.starts_with("bucketfs_"), "{family}");
    }
    for (family, unit) in &exp.units {
        assert!(["bytes", "seconds"].contains(&unit.as_str()), "{family}");
    }
    assert_eq!(exp.types.get("bucketfs_read_bytes").map(String::as_str), Some("counter"));
    assert_eq!(exp.types.get("bucketfs_read_latency_seconds").map(String::as_str), Some("histogram"));
}

#[test]
fn values_land_where_they_belong() {
    let exp = parse(&render(&sample_stats()));
    assert_eq!(exp.value("bucketfs_uptime_seconds", &[]), 61.5);
    assert_eq!(exp.value("bucketfs_reads_total", &[]), 1000.0);
    assert_eq!(exp.value("bucketfs_read_bytes_total", &[]), (4u64 << 30) as f64);
    assert_eq!(exp.value("bucketfs_block_hits_total", &[]), 900.0);
    assert_eq!(exp.value("bucketfs_block_misses_total", &[]), 100.0);
    assert_eq!(exp.value("bucketfs_cache_dirty_bytes", &[]), (1u64 << 20) as f64);
    assert_eq!(exp.value("bucketfs_cache_shards_poisoned", &[]), 1.0);
    assert_eq!(exp.value("bucketfs_bucket_requests_total", &[("bucket", "train"), ("kind", "get")]), 7.0);
    assert_eq!(exp.value("bucketfs_bucket_requests_total", &[("bucket", "a\"b\\c"), ("kind", "list")]), 2.0);
    assert_eq!(exp.value("bucketfs_bucket_errors_total", &[("bucket", "train"), ("kind", "throttled")]), 1.0);
    assert_eq!(exp.value("bucketfs_bucket_received_bytes_total", &[("bucket", "train")]), (7u64 << 20) as f64);
    assert_eq!(exp.value("bucketfs_bucket_gets_in_flight", &[("bucket", "train")]), 3.0);
    assert_eq!(exp.value("bucketfs_read_latency_seconds_sum", &[]), 1.2345);
    assert_eq!(exp.value("bucketfs_read_latency_seconds_bucket", &[("le", "0.0001")]), 500.0);
    assert_eq!(exp.value("bucketfs_read_latency_seconds_bucket", &[("le", "0.001")]), 800.0);
    assert_eq!(exp.value("bucketfs_bucket_get_latency_seconds_count", &[("bucket", "train")]), 58.0);
}

/// A histogram's family and its labels other than `le`.
type SeriesKey = (String, Vec<(String, String)>);

#[test]
fn histograms_are_cumulative_and_end_at_count() {
    let exp = parse(&render(&sample_stats()));
    let mut series: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
    for s in exp.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
        let mut labels = s.labels.clone();
        let le = parse_value(&labels.remove("le").expect("le"), &s.name);
        let family = s.name.trim_end_matches("_bucket").to_string();
        series.entry((family, labels.into_iter().collect())).or_default().push((le, s.value));
    }
    assert_eq!(series.len(), 3);
    for ((family, labels), buckets) in series {
        assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{family} {buckets:?}");
        let (last_le, last) = *buckets.last().expect("buckets");
        assert_eq!(last_le, f64::INFINITY);
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(exp.value(&format!("{family}_count"), &labels), last, "{family}");
    }
}

#[test]
fn empty_and_inconsistent_summaries_still_make_valid_histograms() {
    let inconsistent = LatencySummary { bounds_us: vec![10, 5], counts: vec![1, 1, 1], count: 2, ..Default::default() };
    let mut stats = EngineStats { read_latency: inconsistent, ..Default::default() };
    let exp = parse(&render(&stats));
    assert_eq!(exp.value("bucketfs_read_latency_seconds_bucket", &[("le", "+Inf")]), 3.0);
    assert_eq!(exp.value("bucketfs_read_latency_seconds_count", &[]), 3.0);
    stats.read_latency = LatencySummary { count: 4, ..Default::default() };
    let exp = parse(&render(&stats));
    assert_eq!(exp.value("bucketfs_read_latency_seconds_bucket", &[("le", "+Inf")]), 4.0);
    let exp = parse(&render(&EngineStats::default()));
    assert_eq!(exp.value("bucketfs_read_latency_seconds_count", &[]), 0.0);
}
