//! Object clients: the one narrow boundary between the engine and object storage.
//!
//! [`ObjectClient`] is the contract every backend implements: ranged GET (streamed), HEAD with
//! user metadata, paged listing with or without a delimiter, PUT (plain or conditional),
//! multipart upload, server-side copy and delete. Keys are whole keys inside one bucket; prefixes
//! of exports are the namespace's business.
//!
//! Implementations:
//! - [`memory::MemoryClient`]: in memory, for unit tests.
//! - [`store::StoreClient`]: S3, GCS, Azure and a local directory through the `object_store` crate
//!   (the local directory's extras, user metadata as xattrs and directory markers, in
//!   `local_dir`; the S3 requests `object_store` cannot send, directory markers, conditional
//!   multipart uploads and conditional / multipart copies, in `s3_raw`).
//! - [`fault::FaultyClient`]: wraps any client and injects latency, 500, 503 SlowDown, connection
//!   resets and short bodies, seeded and switchable at run time, for tests.
//!
//! One conformance suite ([`conformance`]) runs against every implementation
//! (`engine/tests/object_conformance.rs`, with a real SeaweedFS S3 server from `testkit`).
//!
//! Runs on: the backfill runtime (tokio threads of its own), never on a data-path core.

pub mod conformance;
pub mod fault;
mod local_dir;
mod local_upload;
pub mod memory;
mod s3_raw;
pub mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

/// A stream of body chunks of one GET, in order.
pub type ByteStream = BoxStream<'static, ObjectResult<Bytes>>;

pub type ObjectResult<T> = Result<T, ObjectError>;

/// User metadata of an object (`x-amz-meta-*` on S3), keys in lower case without the prefix.
pub type UserMetadata = BTreeMap<String, String>;

/// What went wrong, with the operation and key it happened to. Says whether a retry can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("{op} {key}: no such object")]
    NotFound { op: &'static str, key: String },
    /// An If-Match / If-None-Match condition did not hold: the object changed (or exists).
    #[error("{op} {key}: precondition failed: {detail}")]
    Precondition { op: &'static str, key: String, detail: String },
    /// The service refused the credentials or the access.
    #[error("{op} {key}: access denied: {detail}")]
    Denied { op: &'static str, key: String, detail: String },
    /// 503 SlowDown / 429: back off and retry.
    #[error("{op} {key}: throttled: {detail}")]
    Throttled { op: &'static str, key: String, detail: String },
    /// 5xx, connection reset, timeout, short body: retry.
    #[error("{op} {key}: transient failure: {detail}")]
    Transient { op: &'static str, key: String, detail: String },
    /// The backend cannot do this operation.
    #[error("{op} {key}: not supported by this backend: {detail}")]
    Unsupported { op: &'static str, key: String, detail: String },
    /// Anything else: a bad request, a bad key, a client bug. Retrying will not help.
    #[error("{op} {key}: {detail}")]
    Other { op: &'static str, key: String, detail: String },
}

impl ObjectError {
    /// True when the same request may succeed later (throttling and transient failures).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ObjectError::Throttled { .. } | ObjectError::Transient { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ObjectError::NotFound { .. })
    }

    pub fn is_precondition(&self) -> bool {
        matches!(self, ObjectError::Precondition { .. })
    }

    /// The key the failed request was about.
    pub fn key(&self) -> &str {
        match self {
            ObjectError::NotFound { key, .. }
            | ObjectError::Precondition { key, .. }
            | ObjectError::Denied { key, .. }
            | ObjectError::Throttled { key, .. }
            | ObjectError::Transient { key, .. }
            | ObjectError::Unsupported { key, .. }
            | ObjectError::Other { key, .. } => key,
        }
    }
}

/// What an object is, as a HEAD or a listing tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub mtime: SystemTime,
    /// Entity tag as the service returns it (quotes included on S3), if it has one.
    pub etag: Option<String>,
    /// Object version id on versioned buckets.
    pub version: Option<String>,
    /// User metadata: `Some` after a HEAD (possibly empty), `None` from a listing (not returned
    /// by list calls).
    pub user_metadata: Option<UserMetadata>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects directly in this page, in key order.
    pub objects: Vec<ObjectMeta>,
    /// With a delimiter: the common prefixes ("sub-directories"), each ending in `/`.
    pub prefixes: Vec<String>,
    /// Pass back as `token` to get the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// How a PUT may replace what is there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    #[default]
    Overwrite,
    /// Only if no object exists (`If-None-Match: *`).
    Create,
    /// Only if the object still has this ETag (`If-Match`).
    Update { etag: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub mode: PutMode,
    pub user_metadata: UserMetadata,
}

/// What the service said about a written object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOutcome {
    pub etag: Option<String>,
    pub version: Option<String>,
}

/// An open multipart upload. Parts are sent in the order `put_part` is called and may be in
/// flight in parallel (each call returns its own future); `complete` waits for all of them.
#[async_trait]
pub trait MultipartUpload: Send + fmt::Debug {
    /// Starts sending the next part (every part but the last must be at least 5 MiB on S3).
    fn put_part(&mut self, data: Bytes) -> futures::future::BoxFuture<'static, ObjectResult<()>>;
    /// Publishes the object from the parts sent.
    async fn complete(&mut self) -> ObjectResult<PutOutcome>;
    /// Drops the parts sent; nothing is published.
    async fn abort(&mut self) -> ObjectResult<()>;
}

/// The contract with object storage. Every method names the key in its errors.
#[async_trait]
pub trait ObjectClient: Send + Sync + fmt::Debug + 'static {
    /// Where this client points, for logs and messages (`s3://bucket at http://127.0.0.1:8333`).
    fn describe(&self) -> String;

    /// Size, mtime, ETag, version and user metadata of `key`.
    async fn head(&self, key: &str) -> ObjectResult<ObjectMeta>;

    /// Bytes `range` of `key`, streamed. The range must lie within the object (callers clamp to
    /// the size they know). With `if_match`, fails with `Precondition` when the object's ETag
    /// differs. The stream yields exactly `range.end - range.start` bytes or ends with an error
    /// (a short body is `Transient`): see [`checked_length`].
    async fn get_range(&self, key: &str, range: Range<u64>, if_match: Option<&str>) -> ObjectResult<ByteStream>;

    /// One page of the keys under `prefix`. With `delimiter`, keys below the next `/` are rolled
    /// up into `prefixes`. `page_keys_max` bounds objects + prefixes in the page (the service may
    /// return fewer).
    async fn list(
        &self,
        prefix: &str,
        delimiter: bool,
        token: Option<&str>,
        page_keys_max: usize,
    ) -> ObjectResult<ListPage>;

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> ObjectResult<PutOutcome>;

    async fn put_multipart(&self, key: &str, opts: &PutOptions) -> ObjectResult<Box<dyn MultipartUpload>>;

    /// Server-side copy of `from` to `to` (overwriting `to`). With `if_match`, only if `from`
    /// still has that ETag.
    async fn copy(&self, from: &str, to: &str, if_match: Option<&str>) -> ObjectResult<()>;

    /// Deletes `key`; deleting a missing key succeeds.
    async fn delete(&self, key: &str) -> ObjectResult<()>;
}

/// Reads a whole ranged GET into one buffer.
pub async fn get_range_bytes(
    client: &dyn ObjectClient,
    key: &str,
    range: Range<u64>,
    if_match: Option<&str>,
) -> ObjectResult<Bytes> {
    let mut stream = client.get_range(key, range, if_match).await?;
    let mut chunks: Vec<Bytes> = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk?);
    }
    if chunks.len() == 1 {
        return Ok(chunks.pop().unwrap_or_default());
    }
    Ok(Bytes::from(chunks.concat()))
}

/// Wraps a body stream so it yields exactly `want` bytes: a body that ends early ends the stream
/// with a `Transient` "short body" error; extra bytes are an `Other` error.
pub fn checked_length(op: &'static str, key: &str, want: u64, inner: ByteStream) -> ByteStream {
    let key = key.to_string();
    let state = (inner, 0u64, false);
    futures::stream::unfold(state, move |(mut inner, got, done)| {
        let key = key.clone();
        async move {
            if done {
                return None;
            }
            match inner.next().await {
                Some(Ok(chunk)) => {
                    let got = got + chunk.len() as u64;
                    if got > want {
                        let e =
                            ObjectError::Other { op, key, detail: format!("body longer than the {want} bytes asked") };
                        return Some((Err(e), (inner, got, true)));
                    }
                    Some((Ok(chunk), (inner, got, false)))
                }
                Some(Err(e)) => Some((Err(e), (inner, got, true))),
                None if got < want => {
                    let e = ObjectError::Transient { op, key, detail: format!("short body: {got} of {want} bytes") };
                    Some((Err(e), (inner, got, true)))
                }
                None => None,
            }
        }
    })
    .boxed()
}

/// Joins `prefix` and `name` into a key (`prefix` may be empty or end in `/`).
pub fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        format!("{prefix}{name}")
    } else {
        format!("{prefix}/{name}")
    }
}
