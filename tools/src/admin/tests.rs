//! The admin endpoint over real TCP on loopback, against a scripted test backend (a test double:
//! it only plays back events chosen by the bucket name of the request).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::preload::{PreloadEvent, PreloadProgress, PreloadReport, PreloadRequest, PreloadSkip};
use engine::stats::EngineStats;
use futures::future::BoxFuture;
use futures::FutureExt;
use proptest::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

use super::*;

#[derive(Default)]
struct ScriptedBackend {
    stats: EngineStats,
    requests: Mutex<Vec<PreloadRequest>>,
    /// Released by the test to let the `gated` preload finish.
    gate: Arc<Notify>,
    /// Set when the `endless` preload saw its receiver go.
    endless_stopped: Arc<AtomicBool>,
}

fn progress(done: u64) -> PreloadEvent {
    PreloadEvent::Progress(PreloadProgress {
        objects_done: done,
        objects_total: 2,
        bytes_done: done << 20,
        ..Default::default()
    })
}

fn report() -> PreloadReport {
    PreloadReport { fetched_objects: 2, fetched_bytes: 2 << 20, requests: 3, elapsed_ms: 5, ..Default::default() }
}

impl AdminBackend for ScriptedBackend {
    fn stats(&self) -> EngineStats {
        self.stats.clone()
    }

    fn preload(&self, req: PreloadRequest, events: mpsc::Sender<PreloadEvent>) -> BoxFuture<'static, ()> {
        let bucket = req.bucket.clone();
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(req);
        }
        let gate = self.gate.clone();
        let stopped = self.endless_stopped.clone();
        async move {
            match bucket.as_str() {
                "plain" => {
                    let _ = events.send(progress(1)).await;
                    let skip = PreloadSkip { key: "bad\\name".into(), reason: "not a valid file name".into() };
                    let _ = events.send(PreloadEvent::Skipped(skip)).await;
                    let _ = events.send(PreloadEvent::Done(report())).await;
                }
                "gated" => {
                    let _ = events.send(progress(1)).await;
                    gate.notified().await;
                    let _ = events.send(PreloadEvent::Done(report())).await;
                }
                "endless" => {
                    let mut n = 0;
                    while events.send(progress(n)).await.is_ok() {
                        n += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    stopped.store(true, Ordering::SeqCst);
                }
                "silent" => {}
                "panics" => panic!("scripted panic"),
                other => {
                    let _ = events.send(PreloadEvent::Failed { error: format!("no bucket {other}") }).await;
                }
            }
        }
        .boxed()
    }
}

struct Server {
    addr: std::net::SocketAddr,
    backend: Arc<ScriptedBackend>,
    handle: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

fn test_limits() -> AdminLimits {
    AdminLimits {
        head_bytes_max: 1024,
        body_bytes_max: 4096,
        head_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_secs(2),
        ..AdminLimits::default()
    }
}

async fn start(limits: AdminLimits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let backend =
        Arc::new(ScriptedBackend { stats: super::metrics::tests::sample_stats(), ..ScriptedBackend::default() });
    let handle = serve_with(listener, backend.clone(), limits);
    Server { addr, backend, handle }
}

/// Sends `request`, reads the whole reply (the server closes).
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
        .await
        .expect("reply in time")
        .expect("read");
    String::from_utf8_lossy(&reply).into_owned()
}

fn status_of(reply: &str) -> u16 {
    reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn body_of(reply: &str) -> &str {
    reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn preload_json(bucket: &str) -> String {
    let req = PreloadRequest { bucket: bucket.into(), prefix: "p/".into(), ..Default::default() };
    serde_json::to_string(&req).expect("json")
}

fn events_of(reply: &str) -> Vec<PreloadEvent> {
    body_of(reply).lines().map(|l| serde_json::from_str(l).expect("an event per line")).collect()
}

#[tokio::test]
async fn health_stats_and_metrics() {
    let server = start(test_limits()).await;
    let reply = exchange(server.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((status_of(&reply), body_of(&reply)), (200, "ok\n"), "{reply}");
    assert!(reply.contains("Connection: close\r\n"));

    let reply = exchange(server.addr, b"GET /v1/stats HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert!(reply.contains("Content-Type: application/json\r\n"));
    let stats: EngineStats = serde_json::from_str(body_of(&reply)).expect("stats JSON");
    assert_eq!(stats, server.backend.stats);

    let reply = exchange(server.addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert!(reply.contains(&format!("Content-Type: {}\r\n", metrics::CONTENT_TYPE)));
    assert!(body_of(&reply).contains("bucketfs_bucket_requests_total{bucket=\"train\",kind=\"get\"} 7\n"));
    assert!(body_of(&reply).ends_with("# EOF\n"));
}

#[tokio::test]
async fn preload_streams_events_until_done() {
    let server = start(test_limits()).await;
    let body = r#"{"bucket":"plain","prefix":"","manifest":["a","b"],"pin":true,"requests_per_sec_max":10}"#;
    let reply = exchange(server.addr, &post("/v1/preload", body)).await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert!(reply.contains("Content-Type: application/x-ndjson\r\n"));
    let events = events_of(&reply);
    assert_eq!(events.len(), 3);
    assert!(matches!(&events[1], PreloadEvent::Skipped(s) if s.key == "bad\\name"));
    assert_eq!(events[2], PreloadEvent::Done(report()));
    let requests = server.backend.requests.lock().expect("lock").clone();
    assert_eq!(requests[0].manifest, Some(vec!["a".to_string(), "b".to_string()]));
    assert!(requests[0].pin);
    assert_eq!(requests[0].requests_per_sec_max, Some(10));
}

#[tokio::test]
async fn preload_events_arrive_as_they_are_produced() {
    let server = start(test_limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(&post("/v1/preload", &preload_json("gated"))).await.expect("write");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await.expect("read");
        if line == "\r\n" {
            break;
        }
    }
    // The first event comes while the preload is still waiting at the gate.
    line.clear();
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await.expect("in time").expect("read");
    assert_eq!(serde_json::from_str::<PreloadEvent>(&line).expect("event"), progress(1));
    server.backend.gate.notify_one();
    line.clear();
    reader.read_line(&mut line).await.expect("read");
    assert_eq!(serde_json::from_str::<PreloadEvent>(&line).expect("event"), PreloadEvent::Done(report()));
    line.clear();
    assert_eq!(reader.read_line(&mut line).await.expect("eof"), 0, "nothing after done");
}

#[tokio::test]
async fn preload_failures_end_the_stream() {
    let server = start(test_limits()).await;
    let events = events_of(&exchange(server.addr, &post("/v1/preload", &preload_json("nope"))).await);
    assert_eq!(events, vec![PreloadEvent::Failed { error: "no bucket nope".into() }]);
    for bucket in ["silent", "panics"] {
        let events = events_of(&exchange(server.addr, &post("/v1/preload", &preload_json(bucket))).await);
        assert!(
            matches!(&events[..], [PreloadEvent::Failed { error }] if error.contains("without a report")),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn a_client_going_away_stops_the_preload() {
    let server = start(test_limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(&post("/v1/preload", &preload_json("endless"))).await.expect("write");
    let mut first = [0u8; 256];
    let _ = stream.read(&mut first).await.expect("some reply");
    drop(stream);
    for _ in 0..200 {
        if server.backend.endless_stopped.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the preload went on after its client left");
}

#[tokio::test]
async fn bad_preload_requests_are_refused() {
    let server = start(test_limits()).await;
    let reply = exchange(server.addr, &post("/v1/preload", "{not json")).await;
    assert_eq!(status_of(&reply), 400, "{reply}");
    assert!(body_of(&reply).contains("not a preload request"), "{reply}");
    let reply = exchange(server.addr, &post("/v1/preload", &preload_json(""))).await;
    assert_eq!(status_of(&reply), 400, "{reply}");
    let reply = exchange(server.addr, b"POST /v1/preload HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&reply), 411, "{reply}");
    let reply = exchange(server.addr, b"POST /v1/preload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").await;
    assert_eq!(status_of(&reply), 501, "{reply}");
    let big = format!("{{\"bucket\":\"plain\",\"prefix\":\"{}\"}}", "x".repeat(5000));
    let reply = exchange(server.addr, &post("/v1/preload", &big)).await;
    assert_eq!(status_of(&reply), 413, "{reply}");
    // A body that never comes.
    let reply = exchange(server.addr, b"POST /v1/preload HTTP/1.1\r\nContent-Length: 100\r\n\r\n{").await;
    assert_eq!(status_of(&reply), 408, "{reply}");
}

#[tokio::test]
async fn expect_continue_gets_a_100_first() {
    let server = start(test_limits()).await;
    let body = preload_json("plain");
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!("POST /v1/preload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut interim = vec![0u8; 25];
    stream.read_exact(&mut interim).await.expect("100");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body.as_bytes()).await.expect("body");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("reply");
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert_eq!(events_of(&reply).last(), Some(&PreloadEvent::Done(report())));
}

#[tokio::test]
async fn wrong_paths_methods_and_heads() {
    let server = start(test_limits()).await;
    let reply = exchange(server.addr, b"GET /nope HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&reply), 404, "{reply}");
    let reply = exchange(server.addr, b"DELETE /v1/stats HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&reply), 405, "{reply}");
    assert!(reply.contains("Allow: GET\r\n"), "{reply}");
    let reply = exchange(server.addr, b"hello\r\n\r\n").await;
    assert_eq!(status_of(&reply), 400, "{reply}");
    let long = format!("GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(2000));
    let reply = exchange(server.addr, long.as_bytes()).await;
    assert_eq!(status_of(&reply), 431, "{reply}");
    let endless = "X: y\r\n".repeat(400);
    let reply = exchange(server.addr, format!("GET /healthz HTTP/1.1\r\n{endless}").as_bytes()).await;
    assert_eq!(status_of(&reply), 431, "{reply}");
    // A head that never ends.
    let reply = exchange(server.addr, b"GET /healthz HTTP/1.1\r\n").await;
    assert_eq!(status_of(&reply), 408, "{reply}");
    let reply = exchange(server.addr, b"").await;
    assert_eq!(status_of(&reply), 408, "{reply}");
}

#[tokio::test]
async fn connections_over_the_limit_get_503() {
    let server = start(AdminLimits { connections_max: 1, head_timeout: Duration::from_secs(5), ..test_limits() }).await;
    let idle = TcpStream::connect(server.addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reply = exchange(server.addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&reply), 503, "{reply}");
    drop(idle);
    for _ in 0..100 {
        let reply = exchange(server.addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
        if status_of(&reply) == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the slot was never given back");
}

/// Random bytes, and random mutations of real requests, on a connection handled directly so a
/// panic shows: every reply is a well-formed refusal (or nothing), and the server lives on.
#[test]
fn garbage_never_panics_the_server() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener = Arc::new(listener);
    let backend: Arc<dyn AdminBackend> =
        Arc::new(ScriptedBackend { stats: super::metrics::tests::sample_stats(), ..ScriptedBackend::default() });
    let limits = Arc::new(test_limits());
    let one = |bytes: Vec<u8>| {
        let (listener, backend, limits) = (listener.clone(), backend.clone(), limits.clone());
        rt.block_on(async move {
            let server = tokio::spawn(async move {
                let (stream, _) = listener.accept().await.expect("accept");
                conn::handle(stream, backend, &limits).await;
            });
            let mut client = TcpStream::connect(addr).await.expect("connect");
            let _ = client.write_all(&bytes).await;
            let _ = client.shutdown().await;
            let mut reply = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut reply)).await;
            let outcome = server.await;
            (outcome.map_err(|e| e.is_panic()), String::from_utf8_lossy(&reply).into_owned())
        })
    };
    let requests = [
        post("/v1/preload", &preload_json("plain")),
        b"GET /v1/stats HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\n\r\n".to_vec(),
    ];
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        (0..requests.len(), proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)).prop_map(
            move |(which, edits)| {
                let mut bytes = requests[which].clone();
                for (at, byte) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                bytes
            }
        ),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 200, ..ProptestConfig::default() });
    runner
        .run(&strategy, |bytes| {
            let (outcome, reply) = one(bytes);
            prop_assert_eq!(outcome, Ok(()), "the connection task panicked");
            if !reply.is_empty() {
                prop_assert!(reply.starts_with("HTTP/1.1 "), "{}", reply);
                let status = status_of(&reply);
                prop_assert!([200, 400, 404, 405, 408, 411, 413, 431, 501, 505].contains(&status), "{}", reply);
            }
            Ok(())
        })
        .expect("no failing case");
    let (outcome, reply) = one(b"GET /healthz HTTP/1.1\r\n\r\n".to_vec());
    assert_eq!((outcome, status_of(&reply)), (Ok(()), 200));
}

/// The CLI's blocking client against the server: stats, a preload stream, refusals, no server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_client_talks_to_the_server() {
    use crate::admin_client::{AdminClient, ClientError};
    let server = start(test_limits()).await;
    let addr = server.addr.to_string();
    let expected = server.backend.stats.clone();
    tokio::task::spawn_blocking(move || {
        let client = AdminClient::new(&addr);
        let stats: EngineStats = client.get_json("/v1/stats").expect("stats");
        assert_eq!(stats, expected);
        let body = serde_json::to_vec(&PreloadRequest { bucket: "plain".into(), ..Default::default() }).expect("json");
        let mut lines = client.post_ndjson("/v1/preload", &body).expect("stream");
        let mut events = Vec::new();
        while let Some(event) = lines.next_value::<PreloadEvent>().expect("event") {
            events.push(event);
        }
        assert_eq!(events.len(), 3);
        assert_eq!(events.last(), Some(&PreloadEvent::Done(report())));
        match client.get("/v2/nothing") {
            Err(ClientError::Status { status: 404, message, .. }) => assert!(message.contains("no such path")),
            other => panic!("{other:?}"),
        }
    })
    .await
    .expect("client thread");

    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed_addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let err = tokio::task::spawn_blocking(move || AdminClient::new(&closed_addr).get("/healthz"))
        .await
        .expect("client thread")
        .expect_err("nobody listens");
    let text = err.to_string();
    assert!(
        text.starts_with("no bucketfs server answering on 127.0.0.1:") && text.contains("bucketfs serve"),
        "{text}"
    );
}
