//! An object client in memory, for unit tests. Behaves like S3 where the engine can tell: quoted
//! ETags that change on every write, conditional requests, delimiter listings paged by token,
//! user metadata. Counts requests by kind so tests can check what the engine sent.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{
    checked_length, ByteStream, ListPage, MultipartUpload, ObjectClient, ObjectError, ObjectMeta, ObjectResult,
    PutMode, PutOptions, PutOutcome,
};

#[derive(Debug, Clone)]
struct Stored {
    body: Bytes,
    etag: String,
    mtime: SystemTime,
    user_metadata: super::UserMetadata,
}

/// Requests seen, by kind.
#[derive(Debug, Default)]
pub struct MemoryCounts {
    pub head: AtomicU64,
    pub get: AtomicU64,
    pub get_bytes: AtomicU64,
    pub list: AtomicU64,
    pub put: AtomicU64,
    pub copy: AtomicU64,
    pub delete: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    objects: Mutex<BTreeMap<String, Stored>>,
    etag_next: AtomicU64,
    counts: MemoryCounts,
}

/// A bucket in memory. Clones share the bucket.
#[derive(Debug, Clone, Default)]
pub struct MemoryClient {
    inner: Arc<Inner>,
    /// Bytes per body chunk of a GET (small values exercise the engine's reassembly).
    chunk_bytes: usize,
}

impl MemoryClient {
    pub fn new() -> MemoryClient {
        MemoryClient { inner: Arc::default(), chunk_bytes: 256 * 1024 }
    }

    /// The same bucket, with GET bodies cut into chunks of `chunk_bytes`.
    pub fn with_chunk_bytes(&self, chunk_bytes: usize) -> MemoryClient {
        MemoryClient { inner: self.inner.clone(), chunk_bytes: chunk_bytes.max(1) }
    }

    pub fn counts(&self) -> &MemoryCounts {
        &self.inner.counts
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, Stored>> {
        // A panic while holding the lock leaves the map consistent (every change is one insert).
        self.inner.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_etag(&self) -> String {
        format!("\"mem-{}\"", self.inner.etag_next.fetch_add(1, Ordering::Relaxed))
    }

    /// Stores an object directly (test setup), returning its ETag.
    pub fn insert(&self, key: &str, body: impl Into<Bytes>) -> String {
        let etag = self.new_etag();
        let stored = Stored {
            body: body.into(),
            etag: etag.clone(),
            mtime: SystemTime::now(),
            user_metadata: Default::default(),
        };
        self.objects().insert(key.to_string(), stored);
        etag
    }

    /// Removes an object directly (test setup).
    pub fn delete_now(&self, key: &str) -> bool {
        self.objects().remove(key).is_some()
    }

    fn meta(key: &str, s: &Stored, with_user: bool) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size: s.body.len() as u64,
            mtime: s.mtime,
            etag: Some(s.etag.clone()),
            version: None,
            user_metadata: with_user.then(|| s.user_metadata.clone()),
        }
    }

    fn write(&self, op: &'static str, key: &str, body: Bytes, opts: &PutOptions) -> ObjectResult<PutOutcome> {
        let mut objects = self.objects();
        match (&opts.mode, objects.get(key)) {
            (PutMode::Create, Some(_)) => {
                return Err(ObjectError::Precondition { op, key: key.into(), detail: "object exists".into() })
            }
            (PutMode::Update { etag }, Some(s)) if s.etag != *etag => {
                return Err(ObjectError::Precondition {
                    op,
                    key: key.into(),
                    detail: format!("ETag is {}, not {etag}", s.etag),
                })
            }
            (PutMode::Update { .. }, None) => {
                return Err(ObjectError::Precondition { op, key: key.into(), detail: "no such object".into() })
            }
            _ => {}
        }
        let etag = self.new_etag();
        let stored =
            Stored { body, etag: etag.clone(), mtime: SystemTime::now(), user_metadata: opts.user_metadata.clone() };
        objects.insert(key.to_string(), stored);
        Ok(PutOutcome { etag: Some(etag), version: None })
    }
}

#[async_trait]
impl ObjectClient for MemoryClient {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn head(&self, key: &str) -> ObjectResult<ObjectMeta> {
        self.inner.counts.head.fetch_add(1, Ordering::Relaxed);
        let objects = self.objects();
        let s = objects.get(key).ok_or_else(|| ObjectError::NotFound { op: "head", key: key.into() })?;
        Ok(Self::meta(key, s, true))
    }

    async fn get_range(&self, key: &str, range: Range<u64>, if_match: Option<&str>) -> ObjectResult<ByteStream> {
        let op = "get";
        self.inner.counts.get.fetch_add(1, Ordering::Relaxed);
        let body = {
            let objects = self.objects();
            let s = objects.get(key).ok_or_else(|| ObjectError::NotFound { op, key: key.into() })?;
            if let Some(want) = if_match {
                if s.etag != want {
                    return Err(ObjectError::Precondition {
                        op,
                        key: key.into(),
                        detail: format!("ETag is {}, not {want}", s.etag),
                    });
                }
            }
            let size = s.body.len() as u64;
            if range.start > range.end || range.end > size {
                return Err(ObjectError::Other {
                    op,
                    key: key.into(),
                    detail: format!("range {}..{} outside the object's {size} bytes", range.start, range.end),
                });
            }
            // In range: both ends are at most the body's length, which is a usize.
            s.body.slice(range.start as usize..range.end as usize)
        };
        self.inner.counts.get_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        let chunk = self.chunk_bytes.max(1);
        let chunks: Vec<ObjectResult<Bytes>> =
            (0..body.len()).step_by(chunk).map(|at| Ok(body.slice(at..(at + chunk).min(body.len())))).collect();
        Ok(checked_length(op, key, range.end - range.start, futures::stream::iter(chunks).boxed()))
    }

    async fn list(
        &self,
        prefix: &str,
        delimiter: bool,
        token: Option<&str>,
        page_keys_max: usize,
    ) -> ObjectResult<ListPage> {
        self.inner.counts.list.fetch_add(1, Ordering::Relaxed);
        let page_keys_max = page_keys_max.clamp(1, 1000);
        let objects = self.objects();
        let mut page = ListPage::default();
        let start = token.unwrap_or(prefix).to_string();
        let mut last: Option<String> = None;
        for (key, s) in objects.range(start.clone()..) {
            if !key.starts_with(prefix) {
                break;
            }
            if token.is_some() && *key <= start {
                continue;
            }
            let entries = page.objects.len() + page.prefixes.len();
            let rest = &key[prefix.len()..];
            let rolled = if delimiter { rest.find('/').map(|i| format!("{prefix}{}", &rest[..=i])) } else { None };
            match rolled {
                Some(p) => {
                    if page.prefixes.last() == Some(&p) {
                        continue;
                    }
                    if entries >= page_keys_max {
                        page.next_token = last;
                        return Ok(page);
                    }
                    // The next page starts after every key under this prefix.
                    last = Some(format!("{p}\u{10FFFF}"));
                    page.prefixes.push(p);
                    continue;
                }
                None => {
                    if entries >= page_keys_max {
                        page.next_token = last;
                        return Ok(page);
                    }
                    page.objects.push(Self::meta(key, s, false));
                }
            }
            last = Some(key.clone());
        }
        Ok(page)
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> ObjectResult<PutOutcome> {
        self.inner.counts.put.fetch_add(1, Ordering::Relaxed);
        self.write("put", key, body, opts)
    }

    async fn put_multipart(&self, key: &str, opts: &PutOptions) -> ObjectResult<Box<dyn MultipartUpload>> {
        Ok(Box::new(MemoryUpload { client: self.clone(), key: key.to_string(), opts: opts.clone(), parts: Vec::new() }))
    }

    async fn copy(&self, from: &str, to: &str, if_match: Option<&str>) -> ObjectResult<()> {
        let op = "copy";
        self.inner.counts.copy.fetch_add(1, Ordering::Relaxed);
        let src = {
            let objects = self.objects();
            objects.get(from).cloned().ok_or_else(|| ObjectError::NotFound { op, key: from.into() })?
        };
        if let Some(want) = if_match {
            if src.etag != want {
                return Err(ObjectError::Precondition {
                    op,
                    key: from.into(),
                    detail: format!("ETag is {}, not {want}", src.etag),
                });
            }
        }
        let opts = PutOptions { mode: PutMode::Overwrite, user_metadata: src.user_metadata };
        self.write(op, to, src.body, &opts).map(|_| ())
    }

    async fn delete(&self, key: &str) -> ObjectResult<()> {
        self.inner.counts.delete.fetch_add(1, Ordering::Relaxed);
        self.objects().remove(key);
        Ok(())
    }
}

#[derive(Debug)]
struct MemoryUpload {
    client: MemoryClient,
    key: String,
    opts: PutOptions,
    parts: Vec<Bytes>,
}

#[async_trait]
impl MultipartUpload for MemoryUpload {
    fn put_part(&mut self, data: Bytes) -> futures::future::BoxFuture<'static, ObjectResult<()>> {
        self.parts.push(data);
        Box::pin(async { Ok(()) })
    }

    async fn complete(&mut self) -> ObjectResult<PutOutcome> {
        let body = Bytes::from(std::mem::take(&mut self.parts).concat());
        self.client.inner.counts.put.fetch_add(1, Ordering::Relaxed);
        self.client.write("complete multipart", &self.key, body, &self.opts)
    }

    async fn abort(&mut self) -> ObjectResult<()> {
        self.parts.clear();
        Ok(())
    }
}
