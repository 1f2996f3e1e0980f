//! A request-counting HTTP proxy in front of the S3 server, so a benchmark can say how many
//! requests of each kind a system sent to the bucket and what they cost at S3 list prices, the
//! same way for every system (bucketfs, rclone, s3fs, a raw client).
//!
//! Transparent: the method, path, query and every header (Host included) go upstream unchanged,
//! so SigV4 signatures stay valid; bodies stream through in both directions (never buffered
//! whole); keep-alive, chunked bodies and `Expect: 100-continue` are hyper's. A request is
//! counted when its head arrives, classified by method and path-style URL (`/bucket/key` is an
//! object, `/bucket` a bucket) and the `x-amz-copy-source` header. An upstream that cannot be
//! reached gets the client a 502 with a text body, counted as `failed`, as are upstream 5xx.
//!
//! Runs on: its own thread with a tokio runtime (optionally pinned to CPUs), stopped on drop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Amazon S3 Standard request prices, us-east-1, USD per 1,000 requests
/// (<https://aws.amazon.com/s3/pricing/>, "Requests & data retrievals").
pub const PUT_COPY_POST_LIST_USD_PER_1000: f64 = 0.005;
pub const GET_HEAD_OTHER_USD_PER_1000: f64 = 0.0004;

/// Requests (and bytes) seen, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// GET of an object (ranged or whole).
    pub get: u64,
    /// HEAD of an object or a bucket.
    pub head: u64,
    /// GET on the bucket itself (ListObjects(V2), ListMultipartUploads...).
    pub list: u64,
    /// PUT of an object or a part (no `x-amz-copy-source`), or of a bucket.
    pub put: u64,
    /// PUT with `x-amz-copy-source` (CopyObject, UploadPartCopy).
    pub copy: u64,
    /// POST (CreateMultipartUpload, CompleteMultipartUpload, DeleteObjects).
    pub post: u64,
    /// DELETE (object, AbortMultipartUpload).
    pub delete: u64,
    /// Anything else (service-level GET such as ListBuckets, OPTIONS...).
    pub other: u64,
    /// Requests answered 5xx upstream, or that could not be forwarded (also counted by kind).
    pub failed: u64,
    /// Response body bytes sent to clients.
    pub bytes_down: u64,
    /// Request body bytes sent upstream.
    pub bytes_up: u64,
}

impl RequestCounts {
    /// Field-wise difference (saturating).
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get.saturating_sub(earlier.get),
            head: self.head.saturating_sub(earlier.head),
            list: self.list.saturating_sub(earlier.list),
            put: self.put.saturating_sub(earlier.put),
            copy: self.copy.saturating_sub(earlier.copy),
            post: self.post.saturating_sub(earlier.post),
            delete: self.delete.saturating_sub(earlier.delete),
            other: self.other.saturating_sub(earlier.other),
            failed: self.failed.saturating_sub(earlier.failed),
            bytes_down: self.bytes_down.saturating_sub(earlier.bytes_down),
            bytes_up: self.bytes_up.saturating_sub(earlier.bytes_up),
        }
    }

    /// Field-wise sum.
    pub fn plus(&self, o: &RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get + o.get,
            head: self.head + o.head,
            list: self.list + o.list,
            put: self.put + o.put,
            copy: self.copy + o.copy,
            post: self.post + o.post,
            delete: self.delete + o.delete,
            other: self.other + o.other,
            failed: self.failed + o.failed,
            bytes_down: self.bytes_down + o.bytes_down,
            bytes_up: self.bytes_up + o.bytes_up,
        }
    }

    /// Every request (each counted once, by kind).
    pub fn total(&self) -> u64 {
        self.get + self.head + self.list + self.put + self.copy + self.post + self.delete + self.other
    }

    /// Cost at S3 Standard list prices; DELETE is free, transfer within a region is free.
    pub fn cost_usd(&self) -> f64 {
        let write_class = (self.put + self.copy + self.post + self.list) as f64;
        let read_class = (self.get + self.head + self.other) as f64;
        write_class * PUT_COPY_POST_LIST_USD_PER_1000 / 1000.0 + read_class * GET_HEAD_OTHER_USD_PER_1000 / 1000.0
    }

    /// "123 GET, 4 HEAD" (non-zero kinds only; "none" when there is none).
    pub fn describe(&self) -> String {
        let kinds = [
            (self.get, "GET"),
            (self.head, "HEAD"),
            (self.list, "LIST"),
            (self.put, "PUT"),
            (self.copy, "COPY"),
            (self.post, "POST"),
            (self.delete, "DELETE"),
            (self.other, "other"),
            (self.failed, "failed"),
        ];
        let parts: Vec<String> = kinds.iter().filter(|(n, _)| *n > 0).map(|(n, k)| format!("{n} {k}")).collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Get,
    Head,
    List,
    Put,
    Copy,
    Post,
    Delete,
    Other,
}

/// A request's kind from its method, path (path-style) and whether it names a copy source.
fn classify(method: &Method, path: &str, copy_source: bool) -> Kind {
    let rest = path.trim_start_matches('/');
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let on_bucket = !bucket.is_empty() && key.is_empty();
    let service = bucket.is_empty();
    match *method {
        Method::HEAD => Kind::Head,
        Method::GET if service => Kind::Other,
        Method::GET if on_bucket => Kind::List,
        Method::GET => Kind::Get,
        Method::PUT if copy_source => Kind::Copy,
        Method::PUT => Kind::Put,
        Method::POST => Kind::Post,
        Method::DELETE => Kind::Delete,
        _ => Kind::Other,
    }
}

#[derive(Default)]
struct Counters {
    by_kind: [AtomicU64; 8],
    failed: AtomicU64,
    bytes_down: AtomicU64,
    bytes_up: AtomicU64,
}

impl Counters {
    fn count(&self, kind: Kind) {
        self.by_kind[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RequestCounts {
        let k = |kind: Kind| self.by_kind[kind as usize].load(Ordering::Relaxed);
        RequestCounts {
            get: k(Kind::Get),
            head: k(Kind::Head),
            list: k(Kind::List),
            put: k(Kind::Put),
            copy: k(Kind::Copy),
            post: k(Kind::Post),
            delete: k(Kind::Delete),
            other: k(Kind::Other),
            failed: self.failed.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
        }
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The proxy: forwards to one upstream, counts. Stopped on drop.
pub struct CountingProxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CountingProxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream` (`http://127.0.0.1:PORT`); `cpus` is
    /// a taskset-style list ("0", "0-1,3") its threads are pinned to.
    pub fn start(upstream: &str, cpus: Option<&str>) -> anyhow::Result<CountingProxy> {
        let upstream: hyper::Uri = upstream.parse().with_context(|| format!("upstream URL {upstream}"))?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            anyhow::bail!("upstream {upstream}: only http://host:port");
        }
        let cpu_set = cpus.map(parse_cpus).transpose()?;
        let workers = cpu_set.as_ref().map_or(2, |c| c.len().clamp(1, 4));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the proxy")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("s3count-proxy".into())
            .spawn(move || {
                if let Some(set) = cpu_set {
                    let mut s = rustix::thread::CpuSet::new();
                    for cpu in set {
                        s.set(cpu);
                    }
                    if let Err(e) = rustix::thread::sched_setaffinity(None, &s) {
                        let _ = ready_tx.send(Err(anyhow!("pinning the proxy: {e}")));
                        return;
                    }
                }
                let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("proxy runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(serve(std_listener, upstream, c, rx, ready_tx));
                rt.shutdown_background();
            })
            .context("starting the proxy thread")?;
        ready_rx.recv().map_err(|_| anyhow!("the proxy thread ended before it was ready"))??;
        Ok(CountingProxy { addr, counters, shutdown: Some(tx), thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything counted so far.
    pub fn counts(&self) -> RequestCounts {
        self.counters.snapshot()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn parse_cpus(list: &str) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (
            a.trim().parse().with_context(|| format!("CPU list {list}"))?,
            b.trim().parse().with_context(|| format!("CPU list {list}"))?,
        );
        out.extend(a..=b);
    }
    if out.is_empty() {
        anyhow::bail!("empty CPU list {list:?}");
    }
    Ok(out)
}

async fn serve(
    std_listener: std::net::TcpListener,
    upstream: hyper::Uri,
    counters: Arc<Counters>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<anyhow::Result<()>>,
) {
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(anyhow!("proxy listener: {e}")));
            return;
        }
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, ProxyBody> =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build(connector);
    let _ = ready.send(Ok(()));
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let counters = counters.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                forward(req, client.clone(), upstream.clone(), counters.clone())
            });
            // Errors here are a client that went away mid-request: nothing to count.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    req: Request<Incoming>,
    client: Client<HttpConnector, ProxyBody>,
    upstream: hyper::Uri,
    counters: Arc<Counters>,
) -> Result<Response<ProxyBody>, Infallible> {
    let copy_source = req.headers().contains_key("x-amz-copy-source");
    counters.count(classify(req.method(), req.uri().path(), copy_source));
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let (mut parts, body) = req.into_parts();
    let uri = format!("http://{}{path_and_query}", upstream.authority().map_or("", |a| a.as_str()));
    parts.uri = match uri.parse() {
        Ok(u) => u,
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            return Ok(text(StatusCode::BAD_REQUEST, format!("s3count proxy: bad URI {uri}: {e}")));
        }
    };
    let up = counters.clone();
    let body = body
        .map_frame(move |f| {
            if let Some(d) = f.data_ref() {
                up.bytes_up.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
            f
        })
        .boxed();
    match client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => {
            if resp.status().is_server_error() {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            let down = counters.clone();
            Ok(resp.map(|b| {
                b.map_frame(move |f| {
                    if let Some(d) = f.data_ref() {
                        down.bytes_down.fetch_add(d.len() as u64, Ordering::Relaxed);
                    }
                    f
                })
                .boxed()
            }))
        }
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            Ok(text(StatusCode::BAD_GATEWAY, format!("s3count proxy: upstream {upstream}: {e}")))
        }
    }
}

fn text(status: StatusCode, msg: String) -> Response<ProxyBody> {
    let mut r = Response::new(Full::new(Bytes::from(msg)).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_method_and_path() {
        let c = |m: Method, p: &str, copy: bool| classify(&m, p, copy);
        assert_eq!(c(Method::GET, "/b/k/x.bin", false), Kind::Get);
        assert_eq!(c(Method::GET, "/b", false), Kind::List);
        assert_eq!(c(Method::GET, "/b/", false), Kind::List);
        assert_eq!(c(Method::GET, "/", false), Kind::Other);
        assert_eq!(c(Method::HEAD, "/b/k", false), Kind::Head);
        assert_eq!(c(Method::HEAD, "/b", false), Kind::Head);
        assert_eq!(c(Method::PUT, "/b/k", false), Kind::Put);
        assert_eq!(c(Method::PUT, "/b/k", true), Kind::Copy);
        assert_eq!(c(Method::POST, "/b/k", false), Kind::Post);
        assert_eq!(c(Method::DELETE, "/b/k", false), Kind::Delete);
        assert_eq!(c(Method::OPTIONS, "/b/k", false), Kind::Other);
    }

    #[test]
    fn cost_at_list_prices() {
        let gets = RequestCounts { get: 1_000_000, ..Default::default() };
        assert!((gets.cost_usd() - 0.40).abs() < 1e-9);
        let puts = RequestCounts { put: 1000, list: 1000, delete: 5000, ..Default::default() };
        assert!((puts.cost_usd() - 0.01).abs() < 1e-12);
        assert_eq!(RequestCounts::default().describe(), "none");
        let mixed = RequestCounts { get: 3, head: 1, failed: 1, ..Default::default() };
        assert_eq!(mixed.describe(), "3 GET, 1 HEAD, 1 failed");
        assert_eq!(mixed.total(), 4);
        assert_eq!(mixed.since(&RequestCounts { get: 1, ..Default::default() }).get, 2);
        assert_eq!(mixed.plus(&mixed).head, 2);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0").unwrap(), vec![0]);
        assert_eq!(parse_cpus("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpus("x").is_err());
    }

    #[test]
    fn an_upstream_that_is_down_gets_502_counted_failed() -> anyhow::Result<()> {
        let port = crate::servers::free_port()?;
        let proxy = CountingProxy::start(&format!("http://127.0.0.1:{port}"), None)?;
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
            .arg(format!("{}/b/k", proxy.endpoint()))
            .output()?;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "502");
        let c = proxy.counts();
        assert_eq!((c.get, c.failed), (1, 1));
        Ok(())
    }
}
