//! One admin connection: read one request within the limits, answer it, close.
//!
//! API: `handle(stream, backend, limits)`, `refuse_busy(stream)`. Runs as one task per connection
//! on the admin runtime. Every wait has a deadline (`AdminLimits`); every refusal is a short
//! text/plain reply; afterwards the connection is closed gracefully (our FIN first, then what the
//! client still sends is read and dropped for a moment, so it sees the reply rather than a reset).

use std::sync::Arc;
use std::time::Duration;

use engine::preload::{PreloadEvent, PreloadRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, timeout_at, Instant};

use super::http::{head_end, parse_head, response_head, Refusal, RequestHead, Status};
use super::routes::{route, Route};
use super::{metrics, AdminBackend, AdminLimits};

/// How a request ended when it did not end with a response.
enum Stop {
    /// Answer with this refusal, then close.
    Refuse(Refusal),
    /// The client went away or stalled writing; just close.
    Gone,
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Stop {
        Stop::Refuse(r)
    }
}

/// After the reply, at most this long and this much is read from a client still sending.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES_MAX: usize = 1 << 20;

/// The reply to a connection over the limit, then a graceful close.
pub async fn refuse_busy(mut stream: TcpStream, limits: &AdminLimits) {
    let body = "the admin endpoint is busy; try again\n";
    let head =
        response_head(Status::Unavailable, "text/plain; charset=utf-8", Some(body.len()), &[("Retry-After", "1")]);
    if write_all(&mut stream, format!("{head}{body}").as_bytes(), limits).await.is_ok() {
        close_gracefully(stream).await;
    }
}

pub async fn handle(mut stream: TcpStream, backend: Arc<dyn AdminBackend>, limits: &AdminLimits) {
    let _ = stream.set_nodelay(true);
    match answer(&mut stream, backend, limits).await {
        Ok(()) => {}
        Err(Stop::Refuse(refusal)) => {
            let body = format!("{}\n", refusal.message);
            let allow = refusal.allow.map(|a| ("Allow", a));
            let head = response_head(refusal.status, "text/plain; charset=utf-8", Some(body.len()), allow.as_slice());
            if write_all(&mut stream, format!("{head}{body}").as_bytes(), limits).await.is_err() {
                return;
            }
        }
        Err(Stop::Gone) => return,
    }
    close_gracefully(stream).await;
}

async fn answer(stream: &mut TcpStream, backend: Arc<dyn AdminBackend>, limits: &AdminLimits) -> Result<(), Stop> {
    let (head, early_body) = read_head(stream, limits).await?;
    let route = route(&head.method, &head.path)?;
    match route {
        Route::Health => respond(stream, "text/plain; charset=utf-8", b"ok\n", limits).await,
        Route::Stats => {
            let stats = stats(backend).await?;
            let mut json = serde_json::to_vec(&stats).map_err(|e| internal(format!("encoding stats: {e}")))?;
            json.push(b'\n');
            respond(stream, "application/json", &json, limits).await
        }
        Route::Metrics => {
            let text = metrics::render(&stats(backend).await?);
            respond(stream, metrics::CONTENT_TYPE, text.as_bytes(), limits).await
        }
        Route::Preload => {
            let body = read_body(stream, &head, early_body, limits).await?;
            let request: PreloadRequest = serde_json::from_slice(&body)
                .map_err(|e| Refusal::new(Status::BadRequest, format!("the body is not a preload request: {e}")))?;
            if request.bucket.is_empty() {
                return Err(Refusal::new(Status::BadRequest, "the preload request names no bucket").into());
            }
            stream_preload(stream, backend, request, limits).await
        }
    }
}

fn internal(message: String) -> Stop {
    Stop::Refuse(Refusal::new(Status::InternalError, message))
}

async fn stats(backend: Arc<dyn AdminBackend>) -> Result<engine::stats::EngineStats, Stop> {
    tokio::task::spawn_blocking(move || backend.stats())
        .await
        .map_err(|e| internal(format!("collecting stats failed: {e}")))
}

/// Reads until the blank line; returns the head and any body bytes that came with it.
async fn read_head(stream: &mut TcpStream, limits: &AdminLimits) -> Result<(RequestHead, Vec<u8>), Stop> {
    let deadline = Instant::now() + limits.head_timeout;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = head_end(&buf) {
            if end > limits.head_bytes_max {
                break;
            }
            let rest = buf.split_off(end);
            return Ok((parse_head(&buf)?, rest));
        }
        if buf.len() >= limits.head_bytes_max {
            break;
        }
        match timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => {
                return Err(Refusal::new(Status::RequestTimeout, "the request head did not arrive in time").into())
            }
            Ok(Ok(0)) | Ok(Err(_)) => return Err(Stop::Gone),
            Ok(Ok(n)) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
    let message = format!("the request head is over {} bytes", limits.head_bytes_max);
    Err(Refusal::new(Status::HeaderFieldsTooLarge, message).into())
}

async fn read_body(
    stream: &mut TcpStream,
    head: &RequestHead,
    mut body: Vec<u8>,
    limits: &AdminLimits,
) -> Result<Vec<u8>, Stop> {
    let Some(len) = head.content_length else {
        return Err(Refusal::new(Status::LengthRequired, "send the body with a Content-Length").into());
    };
    if len > limits.body_bytes_max {
        let message = format!("the body of {len} bytes is over the limit of {} bytes", limits.body_bytes_max);
        return Err(Refusal::new(Status::PayloadTooLarge, message).into());
    }
    if head.expect_continue {
        let interim = format!("HTTP/1.1 {} {}\r\n\r\n", Status::Continue.code(), Status::Continue.reason());
        write_all(stream, interim.as_bytes(), limits).await?;
    }
    // `len` is at most `body_bytes_max`, which fits in memory by configuration.
    let len = usize::try_from(len).map_err(|_| Stop::Gone)?;
    body.truncate(len);
    body.reserve_exact(len - body.len());
    let remaining = (len - body.len()) as u64;
    let deadline = Instant::now() + limits.body_timeout;
    match timeout_at(deadline, (&mut *stream).take(remaining).read_to_end(&mut body)).await {
        Err(_) => Err(Refusal::new(Status::RequestTimeout, "the request body did not arrive in time").into()),
        Ok(Err(_)) => Err(Stop::Gone),
        Ok(Ok(_)) if body.len() < len => Err(Stop::Gone),
        Ok(Ok(_)) => Ok(body),
    }
}

async fn respond(stream: &mut TcpStream, content_type: &str, body: &[u8], limits: &AdminLimits) -> Result<(), Stop> {
    let head = response_head(Status::Ok, content_type, Some(body.len()), &[]);
    write_all(stream, head.as_bytes(), limits).await?;
    write_all(stream, body, limits).await
}

async fn write_all(stream: &mut TcpStream, bytes: &[u8], limits: &AdminLimits) -> Result<(), Stop> {
    match timeout(limits.write_timeout, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Stop::Gone),
    }
}

/// Runs the preload as its own task and writes each event as one line as soon as it comes.
async fn stream_preload(
    stream: &mut TcpStream,
    backend: Arc<dyn AdminBackend>,
    request: PreloadRequest,
    limits: &AdminLimits,
) -> Result<(), Stop> {
    let (events, mut received) = mpsc::channel(limits.preload_events_queued_max.max(1));
    let task = tokio::spawn(backend.preload(request, events));
    tokio::spawn(async move {
        if let Err(e) = task.await {
            tracing::error!("a preload task failed: {e}");
        }
    });
    let head = response_head(Status::Ok, "application/x-ndjson", None, &[]);
    write_all(stream, head.as_bytes(), limits).await?;
    loop {
        let event = received.recv().await.unwrap_or_else(|| PreloadEvent::Failed {
            error: "the preload ended without a report (see the server's log)".to_string(),
        });
        let last = matches!(event, PreloadEvent::Done(_) | PreloadEvent::Failed { .. });
        let mut line = serde_json::to_vec(&event).map_err(|e| {
            tracing::error!("encoding a preload event: {e}");
            Stop::Gone
        })?;
        line.push(b'\n');
        // On failure `received` is dropped with this frame: the backend's next send fails.
        write_all(stream, &line, limits).await?;
        if last {
            return Ok(());
        }
    }
}

/// Our FIN first, then drain what the client still sends for a moment, then close.
async fn close_gracefully(mut stream: TcpStream) {
    let _ = timeout(LINGER, stream.shutdown()).await;
    let drain = async {
        let mut chunk = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES_MAX {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = timeout(LINGER, drain).await;
}
