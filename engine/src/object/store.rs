//! `StoreClient`: the real [`ObjectClient`] for S3, GCS, Azure and a local directory, through the
//! `object_store` crate.
//!
//! API: build an [`ObjectStoreConfig`] (serde-deserialisable, e.g. from the TOML config) and call
//! [`StoreClient::new`]. Every call returns an [`ObjectError`] that names the operation and key;
//! [`map_store_error`] is the one place where `object_store` errors become ours.
//!
//! Retries: `object_store`'s own retry loop is off (`max_retries = 0`, including the silent retry
//! of interrupted GET bodies): the engine retries above the fault wrapper, with backoff and
//! jitter, and must see every failure. Timeouts stay on (connect and whole-request, configurable).
//!
//! What `object_store` 0.14 cannot express, and what this client does about it:
//! - Keys must survive `object_store::path::Path`: no empty segment (`a//b`, a leading `/`), no
//!   `.`/`..` segment, no control character, no trailing `/`. On S3 such keys (directory markers
//!   `dir/` above all) go through our raw S3 requests (`s3_raw`): HEAD, GET, PUT (conditional,
//!   with user metadata), DELETE. On GCS and Azure they fail with `Unsupported` rather than
//!   silently addressing another key.
//! - S3 listings go through `s3_raw` too (ListObjectsV2, keys exactly as stored): through `Path`
//!   a marker `a/b/` deeper than the listed directory would come back as `a/b`. GCS and Azure
//!   list through `object_store` (and keep that limitation, moot since they cannot write markers).
//! - Conditional multipart uploads (`If-None-Match: *` / `If-Match` on
//!   CompleteMultipartUpload) on S3 go through `s3_raw`; plain ones stay with `object_store`.
//!   On GCS and Azure a `PutMode` other than `Overwrite` is `Unsupported` for `put_multipart`.
//! - Copies on S3 go through `s3_raw`: the source ETag condition is sent to the server
//!   (`x-amz-copy-source-if-match`) and objects above [`MultipartCopy::threshold_bytes`] (5 GiB,
//!   CopyObject's limit) are copied by parts (UploadPartCopy). On GCS and Azure `copy` with
//!   `if_match` does a HEAD, compares, then copies: a write to the source between the two is
//!   copied although its ETag no longer matches.
//! - The local directory backend lives in `local_dir` (user metadata as xattrs, directory
//!   markers, `PutMode::Update`, conditional multipart uploads, paged listing).
//!
//! Runs on: the backfill runtime (a small tokio runtime of its own, see `mod.rs`). Local
//! directory I/O goes to tokio's blocking pool.

use std::error::Error as StdError;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use object_store::aws::AmazonS3ConfigKey;
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, ClientOptions, CopyOptions, GetOptions, GetRange, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutPayload, RetryConfig, UpdateVersion,
};
use serde::Deserialize;

use super::local_dir::LocalDir;
use super::s3_raw::S3Raw;
use super::{
    checked_length, ByteStream, ListPage, MultipartUpload, ObjectClient, ObjectError, ObjectMeta, ObjectResult,
    PutMode, PutOptions, PutOutcome, UserMetadata,
};

pub use super::s3_raw::MultipartCopy;

/// Where the objects are. Deserialises from e.g.
/// `{ kind = "s3", bucket = "b", endpoint = "http://127.0.0.1:8333", allow_http = true }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ObjectStoreConfig {
    S3(S3Config),
    Gcs(GcsConfig),
    Azure(AzureConfig),
    /// A directory on a local filesystem that supports user extended attributes.
    Local {
        root: PathBuf,
    },
}

/// HTTP timeouts of the remote backends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpTimeouts {
    pub connect_timeout_ms: u64,
    /// Whole request, body included (a ranged GET of one cache extent must fit in it).
    pub request_timeout_ms: u64,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts { connect_timeout_ms: 5_000, request_timeout_ms: 120_000 }
    }
}

/// Static keys, or the provider's usual environment variables (and, for S3, the instance
/// metadata service / web identity that `object_store` supports).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum S3Credentials {
    Static {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...
    Environment,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// A custom endpoint (`http://127.0.0.1:8333`); `None` means AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    /// `http://host/bucket/key` rather than `http://bucket.host/key`.
    #[serde(default = "default_true")]
    pub path_style: bool,
    #[serde(default = "default_s3_credentials")]
    pub credentials: S3Credentials,
    #[serde(default)]
    pub allow_http: bool,
    #[serde(default)]
    pub timeouts: HttpTimeouts,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsConfig {
    pub bucket: String,
    /// A service account JSON file; `None`: `GOOGLE_SERVICE_ACCOUNT*` / application default.
    #[serde(default)]
    pub service_account_path: Option<String>,
    #[serde(default)]
    pub timeouts: HttpTimeouts,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    pub account: String,
    pub container: String,
    /// The storage account key; `None`: `AZURE_STORAGE_*` environment variables.
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub timeouts: HttpTimeouts,
}

impl S3Config {
    /// An S3-compatible server at `endpoint` (path-style; plain http allowed) with static keys:
    /// the usual shape of an on-premises store, and of the tests' SeaweedFS.
    pub fn static_keys(
        bucket: &str,
        endpoint: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> S3Config {
        S3Config {
            bucket: bucket.to_string(),
            endpoint: Some(endpoint.to_string()),
            region: region.to_string(),
            path_style: true,
            credentials: S3Credentials::Static {
                access_key_id: access_key_id.to_string(),
                secret_access_key: secret_access_key.to_string(),
                session_token: None,
            },
            allow_http: endpoint.starts_with("http://"),
            timeouts: HttpTimeouts::default(),
        }
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_true() -> bool {
    true
}

fn default_s3_credentials() -> S3Credentials {
    S3Credentials::Environment
}

/// The `object_store`-backed client. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct StoreClient {
    backend: Backend,
    /// S3 only: the raw requests `object_store` cannot send (markers, listings, conditional
    /// multipart, copies).
    s3: Option<S3Raw>,
    describe: String,
}

#[derive(Debug)]
enum Backend {
    Remote(Arc<dyn RemoteStore>),
    Local(Arc<LocalDir>),
}

/// A cloud store: the `ObjectStore` calls plus real paged listing.
trait RemoteStore: ObjectStore + PaginatedListStore {}
impl<T: ObjectStore + PaginatedListStore> RemoteStore for T {}

fn client_options(t: &HttpTimeouts, allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_millis(t.connect_timeout_ms))
        .with_timeout(Duration::from_millis(t.request_timeout_ms))
        .with_allow_http(allow_http)
}

/// No retries inside `object_store`: the engine retries (and must see every failure).
fn no_retry() -> RetryConfig {
    RetryConfig { max_retries: 0, ..RetryConfig::default() }
}

impl StoreClient {
    /// Builds the client. Checks the configuration, not the service: the first request does that.
    /// A local root must exist and support user extended attributes.
    pub fn new(config: &ObjectStoreConfig) -> ObjectResult<StoreClient> {
        let op = "open";
        match config {
            ObjectStoreConfig::S3(c) => {
                let mut b = match &c.credentials {
                    S3Credentials::Environment => object_store::aws::AmazonS3Builder::from_env(),
                    S3Credentials::Static { access_key_id, secret_access_key, session_token } => {
                        let b = object_store::aws::AmazonS3Builder::new()
                            .with_access_key_id(access_key_id)
                            .with_secret_access_key(secret_access_key);
                        match session_token {
                            Some(t) => b.with_token(t),
                            None => b,
                        }
                    }
                };
                let options = client_options(&c.timeouts, c.allow_http);
                b = b
                    .with_bucket_name(&c.bucket)
                    .with_region(&c.region)
                    .with_virtual_hosted_style_request(!c.path_style)
                    .with_allow_http(c.allow_http)
                    .with_retry(no_retry())
                    .with_client_options(options.clone());
                if let Some(e) = &c.endpoint {
                    b = b.with_endpoint(e);
                }
                let describe =
                    format!("s3://{} at {}", c.bucket, c.endpoint.as_deref().unwrap_or("AWS").trim_end_matches('/'));
                let bucket_endpoint = s3_bucket_endpoint(&b, &c.bucket, &c.region);
                let store = b.build().map_err(|e| map_store_error(op, &describe, e))?;
                let http =
                    ReqwestConnector::default().connect(&options).map_err(|e| map_store_error(op, &describe, e))?;
                let raw = S3Raw::new(http, store.credentials().clone(), &c.bucket, &c.region, &bucket_endpoint)
                    .map_err(|detail| ObjectError::Other { op, key: describe.clone(), detail })?;
                Ok(StoreClient { backend: Backend::Remote(Arc::new(store)), s3: Some(raw), describe })
            }
            ObjectStoreConfig::Gcs(c) => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&c.bucket)
                    .with_retry(no_retry())
                    .with_client_options(client_options(&c.timeouts, false));
                if let Some(p) = &c.service_account_path {
                    b = b.with_service_account_path(p);
                }
                let describe = format!("gs://{}", c.bucket);
                Ok(StoreClient {
                    backend: Backend::Remote(Arc::new(b.build().map_err(|e| map_store_error(op, &describe, e))?)),
                    s3: None,
                    describe,
                })
            }
            ObjectStoreConfig::Azure(c) => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_account(&c.account)
                    .with_container_name(&c.container)
                    .with_retry(no_retry())
                    .with_client_options(client_options(&c.timeouts, false));
                if let Some(k) = &c.access_key {
                    b = b.with_access_key(k);
                }
                let describe = format!("az://{}/{}", c.account, c.container);
                Ok(StoreClient {
                    backend: Backend::Remote(Arc::new(b.build().map_err(|e| map_store_error(op, &describe, e))?)),
                    s3: None,
                    describe,
                })
            }
            ObjectStoreConfig::Local { root } => {
                let local = LocalDir::open(root)?;
                let describe = format!("file://{}", local.root().display());
                Ok(StoreClient { backend: Backend::Local(Arc::new(local)), s3: None, describe })
            }
        }
    }

    /// Sets how S3 copies large objects (threshold and part size; see [`MultipartCopy`], whose
    /// values are clamped to S3's limits). Other backends ignore it.
    pub fn with_multipart_copy(mut self, limits: MultipartCopy) -> StoreClient {
        if let Some(raw) = &mut self.s3 {
            raw.set_multipart_copy(limits);
        }
        self
    }

    /// The raw S3 client when `key` is one `object_store` cannot address (S3 only). An empty
    /// key is nobody's: `store_path` refuses it.
    fn raw_for(&self, key: &str) -> Option<&S3Raw> {
        self.s3.as_ref().filter(|_| !key.is_empty() && store_path("address", key).is_err())
    }
}

/// The bucket endpoint `object_store` will use for this builder (its own rule, which it does not
/// expose): the endpoint itself when virtual-hosted, `endpoint/bucket` path-style, AWS's
/// regional endpoints without one.
fn s3_bucket_endpoint(b: &object_store::aws::AmazonS3Builder, bucket: &str, region: &str) -> String {
    let endpoint =
        b.get_config_value(&AmazonS3ConfigKey::S3Endpoint).or_else(|| b.get_config_value(&AmazonS3ConfigKey::Endpoint));
    let virtual_hosted = b.get_config_value(&AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref() == Some("true");
    match (endpoint, virtual_hosted) {
        (Some(endpoint), true) => endpoint,
        (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
    }
}

/// The `object_store` path of `key`, or `Unsupported` when `Path` would change the key (and so
/// address another object).
pub(super) fn store_path(op: &'static str, key: &str) -> ObjectResult<Path> {
    if key.is_empty() {
        return Err(ObjectError::Unsupported { op, key: key.into(), detail: "an empty key".into() });
    }
    let path = Path::parse(key).map_err(|e| ObjectError::Unsupported {
        op,
        key: key.into(),
        detail: format!("not a key object_store can address: {e}"),
    })?;
    if path.as_ref() != key {
        return Err(ObjectError::Unsupported {
            op,
            key: key.into(),
            detail: "object_store cannot address a key with an empty segment or a trailing '/' (directory \
                     markers need the S3 or the local-directory backend)"
                .into(),
        });
    }
    Ok(path)
}

pub(super) fn to_attributes(meta: &UserMetadata) -> Attributes {
    let mut attributes = Attributes::with_capacity(meta.len());
    for (k, v) in meta {
        attributes.insert(Attribute::Metadata(k.clone().into()), AttributeValue::from(v.clone()));
    }
    attributes
}

fn from_attributes(attributes: &Attributes) -> UserMetadata {
    attributes
        .iter()
        .filter_map(|(k, v)| match k {
            Attribute::Metadata(name) => Some((name.to_ascii_lowercase(), v.to_string())),
            _ => None,
        })
        .collect()
}

pub(super) fn to_store_opts(opts: &PutOptions) -> object_store::PutOptions {
    let mode = match &opts.mode {
        PutMode::Overwrite => object_store::PutMode::Overwrite,
        PutMode::Create => object_store::PutMode::Create,
        PutMode::Update { etag } => {
            object_store::PutMode::Update(UpdateVersion { e_tag: Some(etag.clone()), version: None })
        }
    };
    object_store::PutOptions { mode, attributes: to_attributes(&opts.user_metadata), ..Default::default() }
}

pub(super) fn from_store_meta(m: object_store::ObjectMeta, key: String) -> ObjectMeta {
    ObjectMeta {
        key,
        size: m.size,
        mtime: SystemTime::from(m.last_modified),
        etag: m.e_tag,
        version: m.version,
        user_metadata: None,
    }
}

/// Turns an `object_store` error into ours, naming `op` and `key`.
///
/// `object_store` classifies 404, 304, 409, 412, 401 and 403 itself. Everything else arrives as
/// `Generic` wrapping its `RetryError`, which 0.14 does not export (a `pub` type in a private
/// module), so it cannot be downcast. Transport failures are found as the public
/// `object_store::client::HttpError` in the source chain (typed); an HTTP status is read from
/// the message of the chain (`... status code: 503 Service Unavailable: <body>`), and an S3
/// error in a 200 body by its `<Code>`. The unit tests below pin this against real responses.
pub fn map_store_error(op: &'static str, key: &str, e: object_store::Error) -> ObjectError {
    use object_store::Error as E;
    let key = key.to_string();
    let detail = chain_text(&e);
    match e {
        E::NotFound { .. } => ObjectError::NotFound { op, key },
        E::Precondition { .. } | E::NotModified { .. } | E::AlreadyExists { .. } => {
            ObjectError::Precondition { op, key, detail }
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => ObjectError::Denied { op, key, detail },
        E::NotSupported { .. } | E::NotImplemented { .. } => ObjectError::Unsupported { op, key, detail },
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => ObjectError::Other { op, key, detail },
        other => classify_generic(op, key, &other, detail),
    }
}

/// The messages of `e` and all its sources, joined.
fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut current = e.source();
    while let Some(s) = current {
        let msg = s.to_string();
        if !text.contains(&msg) {
            text.push_str(": ");
            text.push_str(&msg);
        }
        current = s.source();
    }
    text
}

fn classify_generic(op: &'static str, key: String, e: &(dyn StdError + 'static), detail: String) -> ObjectError {
    // Transport failure (connect, reset, timeout, body read): typed.
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(h) = err.downcast_ref::<object_store::client::HttpError>() {
            let detail = format!("{:?}: {detail}", h.kind());
            return ObjectError::Transient { op, key, detail };
        }
        current = err.source();
    }
    if let Some(status) = status_in(&detail) {
        return match status {
            404 => ObjectError::NotFound { op, key },
            304 | 409 | 412 => ObjectError::Precondition { op, key, detail },
            401 | 403 => ObjectError::Denied { op, key, detail },
            429 | 503 => ObjectError::Throttled { op, key, detail },
            500..=599 => ObjectError::Transient { op, key, detail },
            _ => ObjectError::Other { op, key, detail },
        };
    }
    // An error document in a 200 response (S3 CompleteMultipartUpload, CopyObject).
    match s3_code_in(&detail) {
        Some("SlowDown") | Some("RequestLimitExceeded") => ObjectError::Throttled { op, key, detail },
        Some("InternalError") | Some("ServiceUnavailable") | Some("RequestTimeout") => {
            ObjectError::Transient { op, key, detail }
        }
        Some("NoSuchKey") => ObjectError::NotFound { op, key },
        Some("PreconditionFailed") => ObjectError::Precondition { op, key, detail },
        Some("AccessDenied") => ObjectError::Denied { op, key, detail },
        _ => ObjectError::Other { op, key, detail },
    }
}

/// The HTTP status in `object_store`'s "Server returned non-2xx status code: 503 ..." message.
fn status_in(text: &str) -> Option<u16> {
    const MARK: &str = "status code: ";
    let at = text.find(MARK)? + MARK.len();
    let digits = text.get(at..at + 3)?;
    digits.parse().ok().filter(|s| (100..=599).contains(s))
}

fn s3_code_in(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

/// Maps the stream of a GET: errors name the operation and key.
pub(super) fn map_body(
    op: &'static str,
    key: &str,
    want: u64,
    stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
) -> ByteStream {
    let k = key.to_string();
    let mapped = stream.map(move |r| r.map_err(|e| map_store_error(op, &k, e))).boxed();
    checked_length(op, key, want, mapped)
}

#[async_trait]
impl ObjectClient for StoreClient {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn head(&self, key: &str) -> ObjectResult<ObjectMeta> {
        let store = match &self.backend {
            Backend::Local(l) => return l.head(key).await,
            Backend::Remote(store) => store,
        };
        if let Some(raw) = self.raw_for(key) {
            return raw.head(key).await;
        }
        let op = "head";
        let path = store_path(op, key)?;
        let r = store
            .get_opts(&path, GetOptions { head: true, ..Default::default() })
            .await
            .map_err(|e| map_store_error(op, key, e))?;
        let user = from_attributes(&r.attributes);
        let mut meta = from_store_meta(r.meta, key.to_string());
        meta.user_metadata = Some(user);
        Ok(meta)
    }

    async fn get_range(&self, key: &str, range: Range<u64>, if_match: Option<&str>) -> ObjectResult<ByteStream> {
        let store = match &self.backend {
            Backend::Local(l) => return l.get_range(key, range, if_match).await,
            Backend::Remote(store) => store,
        };
        let op = "get";
        if range.start > range.end {
            return Err(ObjectError::Other { op, key: key.into(), detail: format!("bad range {range:?}") });
        }
        if range.start == range.end {
            // HTTP cannot ask for zero bytes: check existence, ETag and bounds with a HEAD.
            let meta = self.head(key).await.map_err(|e| rename_op(e, op))?;
            check_empty_range(op, key, &meta, &range, if_match)?;
            return Ok(futures::stream::empty().boxed());
        }
        if let Some(raw) = self.raw_for(key) {
            return raw.get_range(key, range, if_match).await;
        }
        let path = store_path(op, key)?;
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            if_match: if_match.map(str::to_string),
            ..Default::default()
        };
        let r = store.get_opts(&path, opts).await.map_err(|e| map_store_error(op, key, e))?;
        Ok(map_body(op, key, range.end - range.start, r.into_stream()))
    }

    async fn list(
        &self,
        prefix: &str,
        delimiter: bool,
        token: Option<&str>,
        page_keys_max: usize,
    ) -> ObjectResult<ListPage> {
        let pager = match &self.backend {
            Backend::Local(l) => return l.list(prefix, delimiter, token, page_keys_max).await,
            Backend::Remote(store) => store,
        };
        if let Some(raw) = &self.s3 {
            return raw.list(prefix, delimiter, token, page_keys_max).await;
        }
        let op = "list";
        let opts = PaginatedListOptions {
            delimiter: delimiter.then_some("/".into()),
            max_keys: Some(page_keys_max.clamp(1, 1000)),
            page_token: token.map(str::to_string),
            ..Default::default()
        };
        let r = pager
            .list_paginated((!prefix.is_empty()).then_some(prefix), opts)
            .await
            .map_err(|e| map_store_error(op, prefix, e))?;
        let mut objects: Vec<ObjectMeta> = r
            .result
            .objects
            .into_iter()
            .map(|m| {
                let loc = m.location.to_string();
                // `Path` strips a trailing '/': the listed directory's own marker is the only
                // object that then no longer starts with the prefix.
                let key = if loc.starts_with(prefix) { loc } else { format!("{loc}/") };
                from_store_meta(m, key)
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let mut prefixes: Vec<String> = r.result.common_prefixes.iter().map(|p| format!("{p}/")).collect();
        prefixes.sort();
        Ok(ListPage { objects, prefixes, next_token: r.page_token })
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> ObjectResult<PutOutcome> {
        let store = match &self.backend {
            Backend::Local(l) => return l.put(key, body, opts).await,
            Backend::Remote(store) => store,
        };
        if let Some(raw) = self.raw_for(key) {
            return raw.put(key, body, opts).await;
        }
        let op = "put";
        let path = store_path(op, key)?;
        let r = store
            .put_opts(&path, PutPayload::from(body), to_store_opts(opts))
            .await
            .map_err(|e| map_store_error(op, key, e))?;
        Ok(PutOutcome { etag: r.e_tag, version: r.version })
    }

    async fn put_multipart(&self, key: &str, opts: &PutOptions) -> ObjectResult<Box<dyn MultipartUpload>> {
        let op = "create multipart";
        let store = match &self.backend {
            Backend::Local(l) => return l.put_multipart(key, opts).await,
            Backend::Remote(store) => store,
        };
        if let Some(raw) = &self.s3 {
            if opts.mode != PutMode::Overwrite || self.raw_for(key).is_some() {
                return Ok(Box::new(raw.create_multipart(key, opts).await?));
            }
        } else if opts.mode != PutMode::Overwrite {
            return Err(ObjectError::Unsupported {
                op,
                key: key.into(),
                detail: "conditional multipart uploads need the S3 or the local-directory backend (object_store \
                         has no If-None-Match / If-Match on complete)"
                    .into(),
            });
        }
        let path = store_path(op, key)?;
        let mopts = PutMultipartOptions { attributes: to_attributes(&opts.user_metadata), ..Default::default() };
        let inner = store.put_multipart_opts(&path, mopts).await.map_err(|e| map_store_error(op, key, e))?;
        Ok(Box::new(StoreUpload::new(key, inner)))
    }

    async fn copy(&self, from: &str, to: &str, if_match: Option<&str>) -> ObjectResult<()> {
        let store = match &self.backend {
            Backend::Local(l) => return l.copy(from, to, if_match).await,
            Backend::Remote(store) => store,
        };
        if let Some(raw) = &self.s3 {
            return raw.copy(from, to, if_match).await;
        }
        let op = "copy";
        let (src, dst) = (store_path(op, from)?, store_path(op, to)?);
        if let Some(want) = if_match {
            // No conditional copy in object_store: HEAD, compare, copy (a window; see the header).
            let meta = self.head(from).await.map_err(|e| rename_op(e, op))?;
            check_etag(op, from, meta.etag.as_deref(), want)?;
        }
        store.copy_opts(&src, &dst, CopyOptions::default()).await.map_err(|e| map_store_error(op, from, e))
    }

    async fn delete(&self, key: &str) -> ObjectResult<()> {
        let store = match &self.backend {
            Backend::Local(l) => return l.delete(key).await,
            Backend::Remote(store) => store,
        };
        if let Some(raw) = self.raw_for(key) {
            return raw.delete(key).await;
        }
        let op = "delete";
        let path = store_path(op, key)?;
        match store.delete(&path).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_store_error(op, key, e)),
        }
    }
}

/// The same error, reported as `op` (a HEAD done on behalf of a GET or a copy).
pub(super) fn rename_op(e: ObjectError, op: &'static str) -> ObjectError {
    match e {
        ObjectError::NotFound { key, .. } => ObjectError::NotFound { op, key },
        ObjectError::Precondition { key, detail, .. } => ObjectError::Precondition { op, key, detail },
        ObjectError::Denied { key, detail, .. } => ObjectError::Denied { op, key, detail },
        ObjectError::Throttled { key, detail, .. } => ObjectError::Throttled { op, key, detail },
        ObjectError::Transient { key, detail, .. } => ObjectError::Transient { op, key, detail },
        ObjectError::Unsupported { key, detail, .. } => ObjectError::Unsupported { op, key, detail },
        ObjectError::Other { key, detail, .. } => ObjectError::Other { op, key, detail },
    }
}

pub(super) fn check_etag(op: &'static str, key: &str, have: Option<&str>, want: &str) -> ObjectResult<()> {
    if have != Some(want) {
        return Err(ObjectError::Precondition {
            op,
            key: key.into(),
            detail: format!("ETag is {}, not {want}", have.unwrap_or("(none)")),
        });
    }
    Ok(())
}

pub(super) fn check_empty_range(
    op: &'static str,
    key: &str,
    meta: &ObjectMeta,
    range: &Range<u64>,
    if_match: Option<&str>,
) -> ObjectResult<()> {
    if let Some(want) = if_match {
        check_etag(op, key, meta.etag.as_deref(), want)?;
    }
    if range.start > meta.size {
        return Err(ObjectError::Other {
            op,
            key: key.into(),
            detail: format!("range {range:?} outside the object's {} bytes", meta.size),
        });
    }
    Ok(())
}

type PartFuture = Shared<BoxFuture<'static, ObjectResult<()>>>;

/// An `object_store` multipart upload behind our trait. Part futures are shared so `complete`
/// can wait for every part, whoever polls them.
struct StoreUpload {
    key: String,
    inner: Box<dyn object_store::MultipartUpload>,
    parts: Vec<PartFuture>,
}

impl std::fmt::Debug for StoreUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreUpload").field("key", &self.key).field("parts", &self.parts.len()).finish()
    }
}

impl StoreUpload {
    fn new(key: &str, inner: Box<dyn object_store::MultipartUpload>) -> StoreUpload {
        StoreUpload { key: key.to_string(), inner, parts: Vec::new() }
    }
}

#[async_trait]
impl MultipartUpload for StoreUpload {
    fn put_part(&mut self, data: Bytes) -> BoxFuture<'static, ObjectResult<()>> {
        let key = self.key.clone();
        let part = self.inner.put_part(PutPayload::from(data));
        let fut = async move { part.await.map_err(|e| map_store_error("upload part", &key, e)) }.boxed().shared();
        self.parts.push(fut.clone());
        fut.boxed()
    }

    async fn complete(&mut self) -> ObjectResult<PutOutcome> {
        let op = "complete multipart";
        for part in std::mem::take(&mut self.parts) {
            part.await?;
        }
        let r = self.inner.complete().await.map_err(|e| map_store_error(op, &self.key, e))?;
        Ok(PutOutcome { etag: r.e_tag, version: r.version })
    }

    async fn abort(&mut self) -> ObjectResult<()> {
        self.parts.clear();
        self.inner.abort().await.map_err(|e| map_store_error("abort multipart", &self.key, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::get_range_bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[derive(Clone, Copy)]
    enum Reply {
        Status(u16, &'static str),
        /// Close the connection after reading the request (a reset before any byte).
        Close,
        /// Headers promise 100 bytes, 10 are sent, then the connection closes.
        ShortBody,
        /// Never answer.
        Stall,
    }

    /// A one-trick HTTP server on loopback: every request gets `reply`.
    async fn server(reply: Reply) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let response = match reply {
                        Reply::Status(code, body) => format!(
                            "HTTP/1.1 {code} X\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        ),
                        Reply::Close => return,
                        Reply::ShortBody => "HTTP/1.1 206 Partial Content\r\ncontent-length: 100\r\n\
                             content-range: bytes 0-99/1000\r\netag: \"e\"\r\n\
                             last-modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n0123456789"
                            .to_string(),
                        Reply::Stall => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    };
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn s3_client(endpoint: &str) -> StoreClient {
        let config = ObjectStoreConfig::S3(S3Config {
            bucket: "b".into(),
            endpoint: Some(endpoint.into()),
            region: default_region(),
            path_style: true,
            credentials: S3Credentials::Static {
                access_key_id: "AK".into(),
                secret_access_key: "SK".into(),
                session_token: None,
            },
            allow_http: true,
            timeouts: HttpTimeouts { connect_timeout_ms: 1_000, request_timeout_ms: 500 },
        });
        StoreClient::new(&config).expect("client")
    }

    async fn get_error(reply: Reply) -> ObjectError {
        let client = s3_client(&server(reply).await);
        get_range_bytes(&client, "k", 0..100, None).await.expect_err("the server only fails")
    }

    const SLOW_DOWN: &str = "<Error><Code>SlowDown</Code><Message>Please reduce</Message></Error>";

    #[tokio::test]
    async fn http_statuses_map_to_their_kinds() {
        type Check = fn(&ObjectError) -> bool;
        let cases: &[(u16, &str, Check)] = &[
            (404, "<Error><Code>NoSuchKey</Code></Error>", |e| matches!(e, ObjectError::NotFound { .. })),
            (412, "<Error><Code>PreconditionFailed</Code></Error>", |e| e.is_precondition()),
            (403, "<Error><Code>AccessDenied</Code></Error>", |e| matches!(e, ObjectError::Denied { .. })),
            (401, "", |e| matches!(e, ObjectError::Denied { .. })),
            (503, SLOW_DOWN, |e| matches!(e, ObjectError::Throttled { .. })),
            (429, "", |e| matches!(e, ObjectError::Throttled { .. })),
            (500, "<Error><Code>InternalError</Code></Error>", |e| matches!(e, ObjectError::Transient { .. })),
            (502, "", |e| matches!(e, ObjectError::Transient { .. })),
            (400, "<Error><Code>InvalidArgument</Code></Error>", |e| matches!(e, ObjectError::Other { .. })),
        ];
        for (status, body, ok) in cases {
            let e = get_error(Reply::Status(*status, body)).await;
            assert!(ok(&e), "{status} mapped to {e:?}");
            assert_eq!(e.key(), "k");
            assert!(e.to_string().starts_with("get k"), "{e}");
        }
    }

    #[tokio::test]
    async fn transport_failures_are_transient() {
        for reply in [Reply::Close, Reply::ShortBody, Reply::Stall] {
            let e = get_error(reply).await;
            assert!(matches!(e, ObjectError::Transient { .. }), "{e:?}");
            assert!(e.is_retryable());
        }
        // Nothing listens on a port just freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let client = s3_client(&format!("http://127.0.0.1:{port}"));
        let e = client.head("k").await.expect_err("refused");
        assert!(matches!(e, ObjectError::Transient { op: "head", .. }), "{e:?}");
    }

    #[test]
    fn error_variants_map_without_a_server() {
        let boxed = || -> Box<dyn StdError + Send + Sync> { "x".into() };
        let cases = [
            (object_store::Error::NotFound { path: "k".into(), source: boxed() }, "NotFound"),
            (object_store::Error::AlreadyExists { path: "k".into(), source: boxed() }, "Precondition"),
            (object_store::Error::NotModified { path: "k".into(), source: boxed() }, "Precondition"),
            (object_store::Error::Precondition { path: "k".into(), source: boxed() }, "Precondition"),
            (object_store::Error::Unauthenticated { path: "k".into(), source: boxed() }, "Denied"),
            (object_store::Error::PermissionDenied { path: "k".into(), source: boxed() }, "Denied"),
            (object_store::Error::NotSupported { source: boxed() }, "Unsupported"),
            (object_store::Error::Generic { store: "S3", source: boxed() }, "Other"),
        ];
        for (e, want) in cases {
            let got = map_store_error("put", "k", e);
            assert!(format!("{got:?}").starts_with(want), "{got:?} is not {want}");
            assert_eq!(got.key(), "k");
        }
        let slow = object_store::Error::Generic { store: "S3", source: format!("error response: {SLOW_DOWN}").into() };
        assert!(matches!(map_store_error("complete multipart", "k", slow), ObjectError::Throttled { .. }));
    }

    #[test]
    fn keys_object_store_would_change_are_refused() {
        for key in ["a/", "/a", "a//b", "a/./b", "a/../b", ""] {
            assert!(matches!(store_path("put", key), Err(ObjectError::Unsupported { .. })), "{key:?}");
        }
        assert_eq!(store_path("put", "a/b c/d.txt").expect("fine").as_ref(), "a/b c/d.txt");
    }

    #[test]
    fn config_deserialises() {
        let c: ObjectStoreConfig = serde_json::from_str(
            r#"{"kind":"s3","bucket":"b","endpoint":"http://127.0.0.1:8333","allow_http":true,
                "credentials":{"from":"static","access_key_id":"a","secret_access_key":"s"},
                "timeouts":{"connect_timeout_ms":100}}"#,
        )
        .expect("s3 config");
        let ObjectStoreConfig::S3(s3) = &c else { panic!("{c:?}") };
        assert!(s3.path_style);
        assert_eq!(s3.timeouts.request_timeout_ms, HttpTimeouts::default().request_timeout_ms);
        assert_eq!(StoreClient::new(&c).expect("client").describe(), "s3://b at http://127.0.0.1:8333");
        let c: ObjectStoreConfig = serde_json::from_str(r#"{"kind":"local","root":"/tmp"}"#).expect("local");
        assert_eq!(c, ObjectStoreConfig::Local { root: "/tmp".into() });
        assert!(serde_json::from_str::<ObjectStoreConfig>(r#"{"kind":"s3","bucket":"b","bogus":1}"#).is_err());
    }
}
