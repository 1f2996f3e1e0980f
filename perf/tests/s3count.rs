//! The counting proxy against a real SeaweedFS: every kind of request an S3 client sends is
//! counted exactly once and bodies pass through unchanged; and what the proxy costs in
//! throughput (printed, not asserted: speed belongs in benchmarks).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use engine::object::store::{ObjectStoreConfig, S3Config, StoreClient};
use engine::object::{get_range_bytes, ObjectClient, PutOptions};
use perf::s3count::{CountingProxy, RequestCounts};

fn client(s3: &testkit::S3Server, endpoint: &str, bucket: &str) -> Arc<dyn ObjectClient> {
    let config =
        ObjectStoreConfig::S3(S3Config::static_keys(bucket, endpoint, s3.region(), s3.access_key(), s3.secret_key()));
    Arc::new(StoreClient::new(&config).expect("S3 client"))
}

#[test]
fn counts_every_kind_of_request_through_the_proxy() -> anyhow::Result<()> {
    let s3 = testkit::S3Server::start().map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Runtime::new()?;
    let bucket = rt.block_on(s3.new_bucket("count")).map_err(anyhow::Error::msg)?;
    let proxy = CountingProxy::start(s3.endpoint(), None)?;
    let c = client(&s3, &proxy.endpoint(), &bucket);
    let direct = client(&s3, s3.endpoint(), &bucket);
    let small = Bytes::from(vec![7u8; 100_000]);
    let big: Bytes = (0..(20u32 << 20)).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    // Each operation's requests, as the proxy saw them.
    let step = |f: &dyn Fn() -> anyhow::Result<()>| -> anyhow::Result<RequestCounts> {
        let before = proxy.counts();
        f()?;
        Ok(proxy.counts().since(&before))
    };
    let kinds = |n: RequestCounts| RequestCounts { bytes_down: 0, bytes_up: 0, ..n };
    let n = step(&|| Ok(rt.block_on(c.put("dir/small", small.clone(), &PutOptions::default())).map(|_| ())?))?;
    assert_eq!(kinds(n), RequestCounts { put: 1, ..Default::default() }, "PUT: {}", n.describe());
    assert!(n.bytes_up >= small.len() as u64);
    let n = step(&|| {
        rt.block_on(async {
            let mut up = c.put_multipart("dir/big", &PutOptions::default()).await?;
            for part in big.chunks(8 << 20) {
                up.put_part(Bytes::copy_from_slice(part)).await?;
            }
            up.complete().await?;
            anyhow::Ok(())
        })
    })?;
    // Create + 3 parts + Complete.
    assert_eq!(kinds(n), RequestCounts { put: 3, post: 2, ..Default::default() }, "multipart: {}", n.describe());
    assert!(n.bytes_up >= big.len() as u64);
    let n = step(&|| {
        assert_eq!(rt.block_on(c.head("dir/small"))?.size, 100_000);
        Ok(())
    })?;
    assert_eq!(kinds(n), RequestCounts { head: 1, ..Default::default() }, "HEAD: {}", n.describe());
    let n = step(&|| {
        assert_eq!(rt.block_on(get_range_bytes(&*c, "dir/big", 0..big.len() as u64, None))?, big);
        assert_eq!(rt.block_on(get_range_bytes(&*c, "dir/big", 1000..5000, None))?, big.slice(1000..5000));
        Ok(())
    })?;
    assert_eq!(kinds(n), RequestCounts { get: 2, ..Default::default() }, "GET: {}", n.describe());
    assert!(n.bytes_down >= big.len() as u64 + 4000 && n.bytes_down < big.len() as u64 + 10_000, "{}", n.bytes_down);
    let n = step(&|| {
        assert_eq!(rt.block_on(c.list("dir/", true, None, 1000))?.objects.len(), 2);
        Ok(())
    })?;
    assert_eq!(kinds(n), RequestCounts { list: 1, ..Default::default() }, "LIST: {}", n.describe());
    let n = step(&|| Ok(rt.block_on(c.copy("dir/small", "dir/copy", None))?))?;
    // The engine's client checks the source first (HEAD), then copies.
    assert_eq!(kinds(n), RequestCounts { head: 1, copy: 1, ..Default::default() }, "copy: {}", n.describe());
    let n = step(&|| Ok(rt.block_on(c.delete("dir/copy"))?))?;
    // object_store deletes through DeleteObjects (a POST).
    assert_eq!(kinds(n), RequestCounts { post: 1, ..Default::default() }, "delete: {}", n.describe());
    // The copy really happened upstream (and was deleted); the direct client sees the same bucket.
    assert!(rt.block_on(direct.head("dir/copy")).is_err());
    assert_eq!(rt.block_on(direct.head("dir/big"))?.size, big.len() as u64);

    // curl with Expect: 100-continue (as rclone's and s3fs's SDKs send on PUTs), signed SigV4.
    let body = std::env::temp_dir().join(format!("s3count-{}.bin", std::process::id()));
    std::fs::write(&body, vec![1u8; 3 << 20])?;
    let before = proxy.counts();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "-H", "Expect: 100-continue"])
        .arg("--aws-sigv4")
        .arg(format!("aws:amz:{}:s3", s3.region()))
        .arg("--user")
        .arg(format!("{}:{}", s3.access_key(), s3.secret_key()))
        .arg("-T")
        .arg(&body)
        .arg(format!("{}/{bucket}/curl.bin", proxy.endpoint()))
        .output()?;
    let _ = std::fs::remove_file(&body);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(proxy.counts().since(&before).put, 1);
    assert_eq!(rt.block_on(direct.head("curl.bin"))?.size, 3 << 20);

    // What the hop costs: one 256 MiB object, 16 ranged GETs of 16 MiB in flight, both ways.
    let obj: Bytes = vec![3u8; 256 << 20].into();
    rt.block_on(direct.put("speed.bin", obj.clone(), &PutOptions::default()))?;
    let read = |cl: Arc<dyn ObjectClient>| -> anyhow::Result<f64> {
        let started = Instant::now();
        rt.block_on(async {
            use futures::StreamExt;
            let ranges: Vec<u64> = (0..16u64).map(|i| i << 24).collect();
            let results: Vec<_> = futures::stream::iter(ranges)
                .map(|at| {
                    let cl = cl.clone();
                    async move { get_range_bytes(&*cl, "speed.bin", at..at + (16 << 20), None).await }
                })
                .buffer_unordered(16)
                .collect()
                .await;
            for r in results {
                assert_eq!(r?.len(), 16 << 20);
            }
            anyhow::Ok(())
        })?;
        Ok(256.0 * 1.048576 / started.elapsed().as_secs_f64())
    };
    let (d, p) = (read(direct.clone())?, read(c.clone())?);
    eprintln!("256 MiB in 16 ranged GETs: direct {d:.0} MB/s, through the proxy {p:.0} MB/s");
    Ok(())
}
