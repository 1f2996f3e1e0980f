//! Multipart uploads through raw requests, so CompleteMultipartUpload can carry the upload's
//! precondition: `If-None-Match: *` for `PutMode::Create`, `If-Match: <etag>` for
//! `PutMode::Update`. A 412 there is `Precondition` and nothing is published; the upload is then
//! aborted (S3 would let it be completed again).
//!
//! Parts are numbered in `put_part` call order and sent in parallel; each part's future is
//! shared so `complete` waits for all of them whoever polls them. A `complete` that fails
//! transiently can be called again (the parts' ETags are kept). An upload dropped without
//! `complete` or `abort` leaves its parts to the bucket's lifecycle rule for incomplete uploads.
//!
//! The initiate / complete / abort requests here also serve the multipart copy (`copy.rs`).

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use http::Method;

use super::objects::{put_outcome, with_put_mode};
use super::xml::{self, CompleteMultipartUploadResult, InitiateMultipartUploadResult};
use super::{header_text, RawRequest, S3Raw};
use crate::object::{MultipartUpload, ObjectError, ObjectResult, PutMode, PutOptions, PutOutcome, UserMetadata};

/// S3's limit on the parts of one upload.
pub(crate) const PARTS_MAX: u64 = 10_000;

type PartFuture = Shared<BoxFuture<'static, ObjectResult<String>>>;

impl S3Raw {
    /// Starts an upload of `key`; returns its upload id.
    pub(crate) async fn initiate_upload(
        &self,
        op: &'static str,
        key: &str,
        user_metadata: &UserMetadata,
        content_type: Option<&str>,
    ) -> ObjectResult<String> {
        let mut req = RawRequest::object(Method::POST, key).query("uploads", "").user_metadata(user_metadata);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let (_, body) = self.send_read(op, key, req).await?;
        let r: InitiateMultipartUploadResult =
            xml::parse(&body).map_err(|detail| ObjectError::Other { op, key: key.into(), detail })?;
        Ok(r.upload_id)
    }

    /// Publishes parts `1..=etags.len()` of upload `upload_id`, if `mode`'s condition holds.
    pub(crate) async fn complete_upload(
        &self,
        op: &'static str,
        key: &str,
        upload_id: &str,
        etags: &[String],
        mode: &PutMode,
    ) -> ObjectResult<PutOutcome> {
        let body = Bytes::from(xml::complete_multipart_body(etags));
        let req = RawRequest::object(Method::POST, key).query("uploadId", upload_id).body(body);
        let (parts, body) = self.send_read(op, key, with_put_mode(req, mode)).await?;
        let r: CompleteMultipartUploadResult =
            xml::parse(&body).map_err(|detail| ObjectError::Other { op, key: key.into(), detail })?;
        let mut outcome = put_outcome(&parts.headers);
        if let Some(etag) = r.etag {
            outcome.etag = Some(xml::quoted_etag(&etag));
        }
        Ok(outcome)
    }

    /// Drops upload `upload_id` and its parts; an upload already gone is fine.
    pub(crate) async fn abort_upload(&self, op: &'static str, key: &str, upload_id: &str) -> ObjectResult<()> {
        let req = RawRequest::object(Method::DELETE, key).query("uploadId", upload_id);
        match self.send(op, key, req).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Opens a multipart upload of `key` whose completion honours `opts.mode`.
    pub(crate) async fn create_multipart(&self, key: &str, opts: &PutOptions) -> ObjectResult<RawUpload> {
        let upload_id = self.initiate_upload("create multipart", key, &opts.user_metadata, None).await?;
        Ok(RawUpload {
            raw: self.clone(),
            key: key.to_string(),
            upload_id,
            mode: opts.mode.clone(),
            parts: Vec::new(),
            finished: false,
        })
    }
}

/// An open raw multipart upload.
pub(crate) struct RawUpload {
    raw: S3Raw,
    key: String,
    upload_id: String,
    mode: PutMode,
    parts: Vec<PartFuture>,
    /// Completed or aborted: no more requests.
    finished: bool,
}

impl std::fmt::Debug for RawUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawUpload")
            .field("key", &self.key)
            .field("upload_id", &self.upload_id)
            .field("mode", &self.mode)
            .field("parts", &self.parts.len())
            .finish()
    }
}

impl RawUpload {
    fn send_part(&mut self, data: Bytes) -> PartFuture {
        let op = "upload part";
        let number = self.parts.len() as u64 + 1;
        let (raw, key, upload_id) = (self.raw.clone(), self.key.clone(), self.upload_id.clone());
        let fut = async move {
            if number > PARTS_MAX {
                return Err(ObjectError::Other {
                    op,
                    key,
                    detail: format!("part {number}: S3 allows at most {PARTS_MAX} parts"),
                });
            }
            let req = RawRequest::object(Method::PUT, &key)
                .query("partNumber", &number.to_string())
                .query("uploadId", &upload_id)
                .body(data);
            let response = raw.send(op, &key, req).await?;
            header_text(response.headers(), "etag").ok_or_else(|| ObjectError::Other {
                op,
                key: key.clone(),
                detail: format!("part {number}: the answer has no ETag"),
            })
        }
        .boxed()
        .shared();
        self.parts.push(fut.clone());
        fut
    }
}

#[async_trait]
impl MultipartUpload for RawUpload {
    fn put_part(&mut self, data: Bytes) -> BoxFuture<'static, ObjectResult<()>> {
        self.send_part(data).map(|r| r.map(|_| ())).boxed()
    }

    async fn complete(&mut self) -> ObjectResult<PutOutcome> {
        let op = "complete multipart";
        if self.finished {
            return Err(ObjectError::Other { op, key: self.key.clone(), detail: "upload already finished".into() });
        }
        if self.parts.is_empty() {
            // S3 needs at least one part: an empty object is one empty part.
            // Kept in `parts`, awaited just below.
            drop(self.send_part(Bytes::new()));
        }
        let etags = futures::future::join_all(self.parts.iter().cloned())
            .await
            .into_iter()
            .collect::<ObjectResult<Vec<String>>>()?;
        match self.raw.complete_upload(op, &self.key, &self.upload_id, &etags, &self.mode).await {
            Ok(outcome) => {
                self.finished = true;
                Ok(outcome)
            }
            Err(e) if e.is_precondition() => {
                // Nothing was published; the upload would stay open (and billable) otherwise.
                self.finished = true;
                let _ = self.raw.abort_upload("abort multipart", &self.key, &self.upload_id).await;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn abort(&mut self) -> ObjectResult<()> {
        self.parts.clear();
        self.finished = true;
        self.raw.abort_upload("abort multipart", &self.key, &self.upload_id).await
    }
}
