//! Server-side copy on S3: conditional on the source's ETag, and by parts above CopyObject's
//! 5 GiB limit.
//!
//! Every copy starts with a HEAD of the source (its size picks the method; its metadata and
//! content type go to a multipart copy's destination). With `if_match`, a different ETag there
//! fails at once; the condition is also sent with the copy itself
//! (`x-amz-copy-source-if-match`), so a write to the source between the HEAD and the copy is
//! caught by the server where it honours the header (SeaweedFS does; Ceph Pacific ignores it,
//! leaving the HEAD-then-copy window there).
//!
//! - Up to [`MultipartCopy::threshold_bytes`]: one CopyObject (metadata copied by the server).
//! - Above: CreateMultipartUpload on the destination with the source's metadata, then
//!   UploadPartCopy of `part_bytes` ranges, `parts_in_flight_max` at a time, each conditional
//!   on the source ETag (the caller's, or the one the HEAD saw: so the parts never mix two
//!   versions of the source), then CompleteMultipartUpload. Any failure aborts the upload.
//!   A source that changes during an unconditional copy is a `Transient` error (a retry copies
//!   the new version); with the caller's `if_match` it is `Precondition`.
//! - A directory marker (a key ending in `/`, empty) is copied by writing an empty destination
//!   with the source's metadata: SeaweedFS answers NoSuchKey to a CopyObject whose source ends
//!   in `/`, and an empty object has nothing to copy server-side.

use std::ops::Range;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::Method;

use super::error::with_context;
use super::objects::HeadResult;
use super::sigv4::encode_path;
use super::xml::{self, CopyResult};
use super::{RawRequest, S3Raw};
use crate::object::store::{check_etag, rename_op};
use crate::object::{ObjectError, ObjectResult, PutMode, PutOptions};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
/// S3's limits: smallest part but the last, largest part, largest CopyObject.
const PART_BYTES_MIN: u64 = 5 * MIB;
const PART_BYTES_MAX: u64 = 5 * GIB;
const COPY_OBJECT_BYTES_MAX: u64 = 5 * GIB;

/// How S3 copies large objects (see [`StoreClient::with_multipart_copy`](crate::object::store::StoreClient::with_multipart_copy)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartCopy {
    /// Objects larger than this are copied by parts. At most 5 GiB (CopyObject's limit).
    pub threshold_bytes: u64,
    /// Bytes per part: at least 5 MiB, at most 5 GiB, and raised as needed so an object fits
    /// in 10,000 parts. Each UploadPartCopy must finish within the request timeout
    /// (`HttpTimeouts::request_timeout_ms`), which bounds it from above in practice.
    pub part_bytes: u64,
    /// Parts copied at the same time (at least 1).
    pub parts_in_flight_max: usize,
}

impl Default for MultipartCopy {
    fn default() -> Self {
        MultipartCopy { threshold_bytes: COPY_OBJECT_BYTES_MAX, part_bytes: 512 * MIB, parts_in_flight_max: 8 }
    }
}

impl MultipartCopy {
    /// Within S3's limits.
    pub(crate) fn clamped(self) -> MultipartCopy {
        MultipartCopy {
            threshold_bytes: self.threshold_bytes.min(COPY_OBJECT_BYTES_MAX),
            part_bytes: self.part_bytes.clamp(PART_BYTES_MIN, PART_BYTES_MAX),
            parts_in_flight_max: self.parts_in_flight_max.max(1),
        }
    }

    /// The byte ranges of the parts of an object of `size` bytes.
    pub(crate) fn part_ranges(&self, size: u64) -> Option<Vec<Range<u64>>> {
        let part_bytes = self.part_bytes.max(size.div_ceil(super::multipart::PARTS_MAX));
        if part_bytes > PART_BYTES_MAX {
            return None;
        }
        Some((0..size.div_ceil(part_bytes)).map(|i| i * part_bytes..((i + 1) * part_bytes).min(size)).collect())
    }
}

impl S3Raw {
    /// `x-amz-copy-source` for `key` in this bucket.
    fn copy_source(&self, key: &str) -> String {
        format!("/{}/{}", self.bucket, encode_path(key))
    }

    /// Server-side copy of `from` to `to` (overwriting `to`), only if `from` has ETag `if_match`.
    pub(crate) async fn copy(&self, from: &str, to: &str, if_match: Option<&str>) -> ObjectResult<()> {
        let op = "copy";
        let source = self.head_full(op, from).await?;
        if let Some(want) = if_match {
            check_etag(op, from, source.meta.etag.as_deref(), want)?;
        }
        if from.ends_with('/') && source.meta.size == 0 {
            let opts = PutOptions {
                mode: PutMode::Overwrite,
                user_metadata: source.meta.user_metadata.clone().unwrap_or_default(),
            };
            let written = self.put(to, Bytes::new(), &opts).await;
            return written.map(|_| ()).map_err(|e| rename_op(with_context(e, &format!("write marker {to}")), op));
        }
        if source.meta.size <= self.multipart_copy.threshold_bytes {
            return self.copy_object(from, to, if_match).await;
        }
        self.copy_multipart(from, to, &source, if_match).await
    }

    async fn copy_object(&self, from: &str, to: &str, if_match: Option<&str>) -> ObjectResult<()> {
        let op = "copy";
        let mut req = RawRequest::object(Method::PUT, to).header("x-amz-copy-source", &self.copy_source(from));
        if let Some(etag) = if_match {
            req = req.header("x-amz-copy-source-if-match", etag);
        }
        self.send_read(op, from, req).await.map(|_| ()).map_err(|e| with_context(e, &format!("CopyObject to {to}")))
    }

    async fn copy_multipart(
        &self,
        from: &str,
        to: &str,
        source: &HeadResult,
        if_match: Option<&str>,
    ) -> ObjectResult<()> {
        let op = "copy";
        let size = source.meta.size;
        let ranges = self.multipart_copy.part_ranges(size).ok_or_else(|| ObjectError::Unsupported {
            op,
            key: from.into(),
            detail: format!("{size} bytes is more than S3's 10,000 parts of 5 GiB"),
        })?;
        let Some(source_etag) = if_match.or(source.meta.etag.as_deref()) else {
            return Err(ObjectError::Other {
                op,
                key: from.into(),
                detail: "the source has no ETag to copy by".into(),
            });
        };
        let user_metadata = source.meta.user_metadata.clone().unwrap_or_default();
        let upload_id = self.initiate_upload(op, to, &user_metadata, source.content_type.as_deref()).await?;
        let count = ranges.len();
        let parts = futures::stream::iter(ranges.into_iter().enumerate())
            .map(|(i, range)| self.upload_part_copy(from, to, &upload_id, (i + 1, count), range, source_etag))
            .buffered(self.multipart_copy.parts_in_flight_max)
            .try_collect::<Vec<String>>()
            .await;
        let done = match parts {
            Ok(etags) => self.complete_upload(op, to, &upload_id, &etags, &PutMode::Overwrite).await.map(|_| ()),
            Err(e) => Err(e),
        };
        let Err(e) = done else { return Ok(()) };
        // Best effort: the error that stopped the copy is the one to report.
        let _ = self.abort_upload(op, to, &upload_id).await;
        Err(match e {
            ObjectError::Precondition { key, detail, .. } if if_match.is_none() => ObjectError::Transient {
                op,
                key,
                detail: format!(
                    "the source changed during the copy (ETag no longer {source_etag}); a retry copies the new \
                     version: {detail}"
                ),
            },
            e => e,
        })
    }

    async fn upload_part_copy(
        &self,
        from: &str,
        to: &str,
        upload_id: &str,
        (number, count): (usize, usize),
        range: Range<u64>,
        source_etag: &str,
    ) -> ObjectResult<String> {
        let op = "copy";
        let context = format!("UploadPartCopy {number} of {count} (bytes {range:?}) to {to}");
        let req = RawRequest::object(Method::PUT, to)
            .query("partNumber", &number.to_string())
            .query("uploadId", upload_id)
            .header("x-amz-copy-source", &self.copy_source(from))
            .header("x-amz-copy-source-range", &format!("bytes={}-{}", range.start, range.end - 1))
            .header("x-amz-copy-source-if-match", source_etag);
        let (_, body) = self.send_read(op, from, req).await.map_err(|e| with_context(e, &context))?;
        let r: CopyResult = xml::parse(&body).map_err(|detail| ObjectError::Other {
            op,
            key: from.into(),
            detail: format!("{context}: {detail}"),
        })?;
        r.etag.map(|e| e.trim().to_string()).ok_or_else(|| ObjectError::Other {
            op,
            key: from.into(),
            detail: format!("{context}: the answer has no ETag"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::seaweed_raw;
    use super::*;
    use crate::object::conformance::pattern;

    #[test]
    fn limits_are_clamped_to_s3s() {
        let c = MultipartCopy { threshold_bytes: 10 * GIB, part_bytes: 1, parts_in_flight_max: 0 }.clamped();
        assert_eq!(c, MultipartCopy { threshold_bytes: 5 * GIB, part_bytes: 5 * MIB, parts_in_flight_max: 1 });
        assert_eq!(MultipartCopy::default().clamped(), MultipartCopy::default());
    }

    #[test]
    fn parts_cover_the_object_and_fit_in_10000() {
        let c = MultipartCopy { part_bytes: 5 * MIB, ..Default::default() };
        let ranges = c.part_ranges(20 * MIB + 3).expect("fits");
        assert_eq!(ranges.len(), 5);
        assert_eq!(ranges[4], 20 * MIB..20 * MIB + 3);
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        // 5 TiB (S3's largest object) in 512 MiB parts would be 10,240 parts: parts grow.
        let big = MultipartCopy::default().part_ranges(5 * 1024 * GIB).expect("fits");
        assert!(big.len() <= 10_000);
        assert_eq!(big.last().map(|r| r.end), Some(5 * 1024 * GIB));
        assert!(MultipartCopy::default().part_ranges(10_000 * 5 * GIB + 1).is_none());
    }

    /// The server, not only our HEAD, enforces the source ETag: a copy started from a HEAD that
    /// has gone stale is refused by SeaweedFS, and nothing is left behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seaweedfs_enforces_the_source_etag_on_every_copy_request() {
        let mut raw = seaweed_raw("copy-cond").await;
        raw.set_multipart_copy(MultipartCopy { threshold_bytes: 6 * MIB, part_bytes: 5 * MIB, parts_in_flight_max: 2 });
        let len = 12 * MIB as usize;
        raw.put("src", pattern(len, 1), &PutOptions::default()).await.expect("put v1");
        let stale = raw.head_full("copy", "src").await.expect("head v1");
        raw.put("src", pattern(len, 2), &PutOptions::default()).await.expect("put v2");
        let stale_etag = stale.meta.etag.clone().expect("etag");
        // CopyObject with x-amz-copy-source-if-match.
        let e = raw.copy_object("src", "dst-small", Some(&stale_etag)).await.expect_err("stale");
        assert!(e.is_precondition(), "{e:?}");
        // UploadPartCopy with the caller's condition: Precondition; with the HEAD's: Transient.
        let e = raw.copy_multipart("src", "dst", &stale, Some(&stale_etag)).await.expect_err("stale");
        assert!(e.is_precondition() && e.to_string().contains("UploadPartCopy"), "{e:?}");
        let e = raw.copy_multipart("src", "dst", &stale, None).await.expect_err("source changed");
        assert!(matches!(e, ObjectError::Transient { .. }) && e.to_string().contains("source changed"), "{e:?}");
        for key in ["dst-small", "dst"] {
            assert!(raw.head(key).await.expect_err("nothing copied").is_not_found(), "{key}");
        }
        // The refused uploads were aborted.
        let (_, body) = raw
            .send_read("list uploads", "", RawRequest::bucket(Method::GET).query("uploads", ""))
            .await
            .expect("list uploads");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("<UploadId>"), "uploads left behind: {text}");
        // The current ETag copies by parts, bytes and metadata intact.
        let current = raw.head_full("copy", "src").await.expect("head v2");
        raw.copy("src", "dst", current.meta.etag.as_deref()).await.expect("copy");
        let head = raw.head("dst").await.expect("head dst");
        assert_eq!(head.size, len as u64);
        let mut body = Vec::with_capacity(len);
        let mut stream = raw.get_range("dst", 0..len as u64, None).await.expect("get dst");
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.expect("chunk"));
        }
        assert!(body == pattern(len, 2), "copied bytes differ");
    }
}
