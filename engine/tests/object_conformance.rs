//! The object-client conformance suite against every implementation: in memory, a local
//! directory, the fault wrapper (plan empty), and a real SeaweedFS S3 server on loopback (one per
//! test process, a bucket per test). Plus: injected faults surface as the right error kinds; bad
//! credentials are `Denied`; markers written by another S3 client are read exactly.

use std::time::Duration;

use bytes::Bytes;
use engine::object::conformance::{self, Capabilities};
use engine::object::fault::{FaultPlan, FaultRule, FaultyClient, OpKind, Trigger};
use engine::object::memory::MemoryClient;
use engine::object::store::{MultipartCopy, ObjectStoreConfig, S3Config, S3Credentials, StoreClient};
use engine::object::{get_range_bytes, ObjectClient, ObjectError, PutMode, PutOptions};
use testkit::S3Server;

/// The local directory (see local_dir.rs).
const STORE_CAPS: Capabilities = Capabilities::ALL;
/// S3 through `StoreClient` (object_store plus s3_raw), against SeaweedFS 4.48, which drops the
/// user metadata of a `dir/` marker.
const S3_CAPS: Capabilities = Capabilities { dir_marker_metadata: false, ..Capabilities::ALL };

const MIB: u64 = 1024 * 1024;

/// Copies above 8 MiB go by 5 MiB parts, so `conformance::large_copy` (20 MiB) takes the
/// multipart-copy path and the small copies take CopyObject.
const LOWERED_COPY: MultipartCopy =
    MultipartCopy { threshold_bytes: 8 * MIB, part_bytes: 5 * MIB, parts_in_flight_max: 3 };

fn seaweed_config(bucket: &str, secret_key: &str) -> ObjectStoreConfig {
    let server = S3Server::shared().unwrap_or_else(|e| panic!("S3 server: {e}"));
    ObjectStoreConfig::S3(S3Config::static_keys(
        bucket,
        server.endpoint(),
        server.region(),
        server.access_key(),
        secret_key,
    ))
}

async fn seaweed_client() -> StoreClient {
    let server = S3Server::shared().unwrap_or_else(|e| panic!("S3 server: {e}"));
    let bucket = server.new_bucket("conformance").await.unwrap_or_else(|e| panic!("{e}"));
    StoreClient::new(&seaweed_config(&bucket, server.secret_key()))
        .expect("S3 client")
        .with_multipart_copy(LOWERED_COPY)
}

fn local_client(dir: &tempfile::TempDir) -> StoreClient {
    StoreClient::new(&ObjectStoreConfig::Local { root: dir.path().into() }).expect("local client")
}

async fn run(client: &dyn ObjectClient, caps: Capabilities) {
    if let Err(e) = conformance::run_all(client, "scratch", caps).await {
        panic!("{}: {e}", client.describe());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_client_conforms() {
    run(&MemoryClient::new().with_chunk_bytes(4096), Capabilities::ALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = local_client(&dir);
    assert_eq!(client.describe(), format!("file://{}", dir.path().canonicalize().expect("path").display()));
    run(&client, STORE_CAPS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_client_without_faults_conforms() {
    let client = FaultyClient::new(MemoryClient::new(), FaultPlan::default());
    run(&client, Capabilities::ALL).await;
    assert_eq!(client.counts(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_s3_conforms() {
    let client = seaweed_client().await;
    assert!(client.describe().starts_with("s3://conformance-"), "{}", client.describe());
    run(&client, S3_CAPS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_s3_markers_made_by_other_tools() {
    // The engine meets `dir/` markers written by other S3 clients: one written with curl's
    // SigV4 signing is read, listed and deleted like ours.
    let server = S3Server::shared().unwrap_or_else(|e| panic!("S3 server: {e}"));
    let client = seaweed_client().await;
    let bucket = client.describe().trim_start_matches("s3://").split(' ').next().expect("bucket").to_string();
    let status = std::process::Command::new("curl")
        .args(["-sf", "-X", "PUT", "--data-binary", "", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
        .arg(format!("{}:{}", server.access_key(), server.secret_key()))
        .arg(format!("{}/{bucket}/m/dir/", server.endpoint()))
        .status()
        .expect("curl (apt-get install curl)");
    assert!(status.success(), "curl PUT of the marker: {status}");
    client.put("m/dir/file", Bytes::from_static(b"x"), &PutOptions::default()).await.expect("put");
    // Listing the directory itself: the marker comes back exactly, '/' restored.
    let own = client.list("m/dir/", true, None, 100).await.expect("list");
    let keys: Vec<&str> = own.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["m/dir/", "m/dir/file"]);
    // Listing the parent: a common prefix.
    let parent = client.list("m/", true, None, 100).await.expect("list parent");
    assert_eq!(parent.prefixes, ["m/dir/"]);
    // Without a delimiter the marker keeps its '/' (raw ListObjectsV2, not object_store's Path).
    let flat = client.list("m/", false, None, 100).await.expect("flat list");
    let keys: Vec<&str> = flat.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["m/dir/", "m/dir/file"]);
    let head = client.head("m/dir/").await.expect("head marker");
    assert_eq!((head.size, head.key.as_str()), (0, "m/dir/"));
    client.delete("m/dir/").await.expect("delete marker");
    let own = client.list("m/dir/", true, None, 100).await.expect("list after delete");
    let keys: Vec<&str> = own.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["m/dir/file"]);
    // SeaweedFS 4.48 answers a HEAD of `dir/` with 200 (size 0, ETag "<md5 of nothing>-0")
    // whenever its filer has a directory `dir`: keys below it, marker or not, and even after
    // the last key below is deleted. Only listings tell a marker apart there.
    let head = client.head("m/dir/").await.expect("SeaweedFS: HEAD of an implicit directory");
    assert_eq!(head.etag.as_deref(), Some("\"d41d8cd98f00b204e9800998ecf8427e-0\""));
    client.delete("m/dir/file").await.expect("delete file");
    let gone = client.list("m/dir/", false, None, 100).await.expect("list after deletes");
    assert!(gone.objects.is_empty() && gone.prefixes.is_empty(), "{gone:?}");
    // Keys with characters that need encoding, in paths and in listings.
    for key in ["m/odd/a b+c%d&e=f", "m/odd/ü/", "m/odd/x<y>"] {
        client.put(key, Bytes::new(), &PutOptions::default()).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
        assert_eq!(client.head(key).await.unwrap_or_else(|e| panic!("head {key}: {e}")).key, key);
    }
    let odd = client.list("m/odd/", false, None, 100).await.expect("list odd");
    let keys: Vec<&str> = odd.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["m/odd/a b+c%d&e=f", "m/odd/x<y>", "m/odd/ü/"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_s3_wrong_secret_is_denied_clearly() {
    let server = S3Server::shared().unwrap_or_else(|e| panic!("S3 server: {e}"));
    let bucket = server.new_bucket("denied").await.unwrap_or_else(|e| panic!("{e}"));
    let good = StoreClient::new(&seaweed_config(&bucket, server.secret_key())).expect("client");
    good.put("k", Bytes::from_static(b"x"), &PutOptions::default()).await.expect("put with the right key");
    let bad = StoreClient::new(&seaweed_config(&bucket, "not-the-secret")).expect("client");
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    // object_store's requests and the raw ones alike; answered at once, not after a timeout.
    let started = std::time::Instant::now();
    let results: Vec<(&str, Result<(), ObjectError>)> = vec![
        ("head", bad.head("k").await.map(|_| ())),
        ("get", get_range_bytes(&bad, "k", 0..1, None).await.map(|_| ())),
        ("put", bad.put("k2", Bytes::from_static(b"x"), &PutOptions::default()).await.map(|_| ())),
        ("head marker", bad.head("d/").await.map(|_| ())),
        ("put marker", bad.put("d/", Bytes::new(), &PutOptions::default()).await.map(|_| ())),
        ("delete marker", bad.delete("d/").await),
        ("list", bad.list("", true, None, 10).await.map(|_| ())),
        ("copy", bad.copy("k", "k3", None).await),
        ("conditional multipart", bad.put_multipart("k4", &create).await.map(|_| ())),
    ];
    assert!(started.elapsed() < Duration::from_secs(20), "refusals took {:?}", started.elapsed());
    for (what, r) in results {
        match r {
            Err(e @ ObjectError::Denied { .. }) => {
                let text = e.to_string();
                assert!(text.contains("access denied") && text.contains("403"), "{what}: {text}");
            }
            other => panic!("{what} with a wrong secret key: {other:?}"),
        }
    }
    // The raw requests say what is wrong.
    let e = bad.put("d/", Bytes::new(), &PutOptions::default()).await.expect_err("denied");
    assert!(e.to_string().contains("SignatureDoesNotMatch") && e.to_string().contains("secret access key"), "{e}");
}

fn rule(f: impl FnOnce(&mut FaultRule)) -> FaultRule {
    let mut r = FaultRule::default();
    f(&mut r);
    r
}

/// Every fault, on every kind of request, surfaces as the error kind the engine's retry loop
/// expects, and a retried request then succeeds with the right data.
async fn faults_map_to_retryable_kinds(inner: impl ObjectClient) {
    let body = conformance::pattern(64 * 1024, 5);
    inner.put("f/k", body.clone(), &PutOptions::default()).await.expect("setup put");
    let client = FaultyClient::new(inner, FaultPlan::default());
    type Check = fn(&ObjectError) -> bool;
    type SetFault = fn(&mut FaultRule);
    let faults: [(SetFault, Check); 3] = [
        (|r| r.error_500 = Trigger::EveryNth(2), |e| matches!(e, ObjectError::Transient { .. })),
        (|r| r.slow_down_503 = Trigger::EveryNth(2), |e| matches!(e, ObjectError::Throttled { .. })),
        (|r| r.reset = Trigger::EveryNth(2), |e| matches!(e, ObjectError::Transient { .. })),
    ];
    for (set, check) in faults {
        let plan = [OpKind::Head, OpKind::Get, OpKind::List, OpKind::Put, OpKind::Copy, OpKind::Delete]
            .into_iter()
            .fold(FaultPlan::default(), |p, op| p.with_rule(op, rule(set)));
        client.set_plan(plan);
        // Odd calls pass, even calls fail.
        for attempt in 1..=2 {
            let results: Vec<Result<(), ObjectError>> = vec![
                client.head("f/k").await.map(|_| ()),
                get_range_bytes(&client, "f/k", 100..200, None).await.map(|_| ()),
                client.list("f/", true, None, 10).await.map(|_| ()),
                client.put("f/p", Bytes::from_static(b"p"), &PutOptions::default()).await.map(|_| ()),
                client.copy("f/k", "f/c", None).await,
                client.delete("f/c").await,
            ];
            for r in results {
                match (attempt, r) {
                    (1, Ok(())) => {}
                    (2, Err(e)) if check(&e) && e.is_retryable() => {}
                    (a, other) => panic!("attempt {a}: {other:?}"),
                }
            }
        }
    }
    // Short bodies: every GET is cut, the error is Transient; a retry after switching off reads
    // the right bytes.
    client.set_plan(FaultPlan::default().with_rule(OpKind::Get, rule(|r| r.short_body = Trigger::EveryNth(1))));
    for _ in 0..5 {
        let e = get_range_bytes(&client, "f/k", 1000..60_000, None).await.expect_err("short body");
        assert!(matches!(e, ObjectError::Transient { op: "get", .. }) && e.to_string().contains("short body"), "{e}");
    }
    client.set_plan(FaultPlan::default());
    let got = get_range_bytes(&client, "f/k", 1000..60_000, None).await.expect("after faults");
    assert_eq!(got, body.slice(1000..60_000));
    let counts = client.counts();
    assert_eq!((counts.error_500, counts.slow_down_503, counts.reset, counts.short_body), (6, 6, 6, 5));
    // A random mix with latency, retried until it succeeds, never returns wrong data.
    client.set_plan(FaultPlan {
        seed: 42,
        default: rule(|r| {
            r.latency_jitter = Duration::from_millis(3);
            r.error_500 = Trigger::Probability(0.2);
            r.slow_down_503 = Trigger::Probability(0.1);
            r.reset = Trigger::Probability(0.1);
            r.short_body = Trigger::Probability(0.2);
        }),
        ..Default::default()
    });
    for i in 0..20u64 {
        let range = i * 1000..i * 1000 + 3000;
        let mut tries = 0;
        let got = loop {
            tries += 1;
            match get_range_bytes(&client, "f/k", range.clone(), None).await {
                Ok(b) => break b,
                Err(e) if e.is_retryable() && tries < 50 => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(got, body.slice(range.start as usize..range.end as usize));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_have_the_right_kinds_over_memory() {
    faults_map_to_retryable_kinds(MemoryClient::new().with_chunk_bytes(1000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_have_the_right_kinds_over_seaweedfs() {
    faults_map_to_retryable_kinds(seaweed_client().await).await;
}

const ENV_ENDPOINT: &str = "BUCKETFS_TEST_S3_ENDPOINT";
const ENV_BUCKET: &str = "BUCKETFS_TEST_S3_BUCKET";

/// `S3Credentials::Environment` reaches the raw requests too. The client runs in a child process
/// (this test binary running the ignored test below) so no other test's environment changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_s3_environment_credentials() {
    let server = S3Server::shared().unwrap_or_else(|e| panic!("S3 server: {e}"));
    let bucket = server.new_bucket("env").await.unwrap_or_else(|e| panic!("{e}"));
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"));
    child
        .args(["--ignored", "--exact", "environment_credentials_child", "--test-threads=1"])
        .env("AWS_ACCESS_KEY_ID", server.access_key())
        .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
        .env("AWS_REGION", server.region())
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT")
        .env(ENV_ENDPOINT, server.endpoint())
        .env(ENV_BUCKET, &bucket);
    let out =
        tokio::task::spawn_blocking(move || child.output()).await.expect("blocking task").expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by seaweedfs_s3_environment_credentials in a child process with the keys in its environment"]
async fn environment_credentials_child() {
    let (Ok(endpoint), Ok(bucket)) = (std::env::var(ENV_ENDPOINT), std::env::var(ENV_BUCKET)) else {
        eprintln!("{ENV_ENDPOINT} / {ENV_BUCKET} not set: nothing to do outside seaweedfs_s3_environment_credentials");
        return;
    };
    let config = ObjectStoreConfig::S3(S3Config {
        bucket,
        endpoint: Some(endpoint),
        region: std::env::var("AWS_REGION").expect("AWS_REGION"),
        path_style: true,
        credentials: S3Credentials::Environment,
        allow_http: true,
        timeouts: Default::default(),
    });
    let client = StoreClient::new(&config).expect("client").with_multipart_copy(LOWERED_COPY);
    let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
    client.put("e/dir/", Bytes::new(), &opts).await.expect("put marker");
    assert_eq!(client.head("e/dir/").await.expect("head marker").size, 0);
    client.put("e/k", Bytes::from_static(b"x"), &PutOptions::default()).await.expect("put");
    let mut up = client.put_multipart("e/m", &opts).await.expect("conditional multipart");
    up.put_part(Bytes::from_static(b"y")).await.expect("part");
    up.complete().await.expect("complete");
    client.copy("e/k", "e/k2", None).await.expect("copy");
    let page = client.list("e/", false, None, 100).await.expect("list");
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["e/dir/", "e/k", "e/k2", "e/m"]);
    client.delete("e/dir/").await.expect("delete marker");
}
