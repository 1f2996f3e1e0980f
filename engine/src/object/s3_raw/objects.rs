//! Single-request object operations on any key, and ListObjectsV2 with keys exactly as stored.
//!
//! Used for keys `object_store::path::Path` cannot hold (directory markers `dir/`, empty
//! segments) and for every S3 listing: `object_store` parses listed keys into `Path`, which
//! drops the `/` of a marker in a flat listing. Listings ask for `encoding-type=url` (so any
//! byte of a key survives XML) and decode only when the server says it encoded.

use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use chrono::DateTime;
use futures::StreamExt;
use http::{HeaderMap, Method, StatusCode};
use percent_encoding::percent_decode_str;

use super::error::transport_error;
use super::xml::{self, ListBucketResult};
use super::{header_text, RawRequest, S3Raw};
use crate::object::{
    checked_length, ByteStream, ListPage, ObjectError, ObjectMeta, ObjectResult, PutMode, PutOptions, PutOutcome,
    UserMetadata,
};

/// What a HEAD says, plus the content type (which a multipart copy carries over).
#[derive(Debug, Clone)]
pub(crate) struct HeadResult {
    pub meta: ObjectMeta,
    pub content_type: Option<String>,
}

fn other(op: &'static str, key: &str, detail: String) -> ObjectError {
    ObjectError::Other { op, key: key.into(), detail }
}

fn http_date(op: &'static str, key: &str, text: &str) -> ObjectResult<SystemTime> {
    DateTime::parse_from_rfc2822(text)
        .map(SystemTime::from)
        .map_err(|e| other(op, key, format!("bad Last-Modified {text:?}: {e}")))
}

fn user_metadata(headers: &HeaderMap) -> UserMetadata {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let short = name.as_str().strip_prefix("x-amz-meta-")?;
            Some((short.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        })
        .collect()
}

/// Adds the precondition of `mode` to a request that writes.
pub(crate) fn with_put_mode(req: RawRequest, mode: &PutMode) -> RawRequest {
    match mode {
        PutMode::Overwrite => req,
        PutMode::Create => req.header("if-none-match", "*"),
        PutMode::Update { etag } => req.header("if-match", etag),
    }
}

/// ETag and version of a write, from its answer's headers.
pub(crate) fn put_outcome(headers: &HeaderMap) -> PutOutcome {
    PutOutcome { etag: header_text(headers, "etag"), version: header_text(headers, "x-amz-version-id") }
}

fn decode_listed(op: &'static str, prefix: &str, text: &str, url_encoded: bool) -> ObjectResult<String> {
    if !url_encoded {
        return Ok(text.to_string());
    }
    // S3's URL encoding writes a space as '+' (and a '+' as %2B).
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|e| other(op, prefix, format!("listed key {text:?} is not UTF-8 once decoded: {e}")))
}

impl S3Raw {
    pub(crate) async fn head_full(&self, op: &'static str, key: &str) -> ObjectResult<HeadResult> {
        let response = self.send(op, key, RawRequest::object(Method::HEAD, key)).await?;
        let headers = response.headers();
        let size = header_text(headers, "content-length")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| other(op, key, "HEAD answer without a Content-Length".into()))?;
        let mtime = match header_text(headers, "last-modified") {
            Some(text) => http_date(op, key, &text)?,
            None => return Err(other(op, key, "HEAD answer without a Last-Modified".into())),
        };
        let meta = ObjectMeta {
            key: key.to_string(),
            size,
            mtime,
            etag: header_text(headers, "etag"),
            version: header_text(headers, "x-amz-version-id"),
            user_metadata: Some(user_metadata(headers)),
        };
        Ok(HeadResult { meta, content_type: header_text(headers, "content-type") })
    }

    pub(crate) async fn head(&self, key: &str) -> ObjectResult<ObjectMeta> {
        Ok(self.head_full("head", key).await?.meta)
    }

    /// A non-empty range of `key`, streamed (the caller handles empty ranges with a HEAD).
    pub(crate) async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        if_match: Option<&str>,
    ) -> ObjectResult<ByteStream> {
        let op = "get";
        if range.start >= range.end {
            return Err(other(op, key, format!("empty or reversed range {range:?}")));
        }
        let mut req =
            RawRequest::object(Method::GET, key).header("range", &format!("bytes={}-{}", range.start, range.end - 1));
        if let Some(etag) = if_match {
            req = req.header("if-match", etag);
        }
        let response = match self.send(op, key, req).await {
            Err(ObjectError::Other { detail, .. }) if detail.starts_with("416") => {
                return Err(other(op, key, format!("range {range:?} outside the object: {detail}")))
            }
            sent => sent?,
        };
        // A 200 is the whole object: right only if the range starts at 0 (and then the
        // length check below refuses a longer body).
        if response.status() != StatusCode::PARTIAL_CONTENT && range.start != 0 {
            return Err(other(op, key, format!("asked bytes {range:?}, the server answered {}", response.status())));
        }
        let k = key.to_string();
        let body = response.into_body().bytes_stream().map(move |r| r.map_err(|e| transport_error(op, &k, &e))).boxed();
        Ok(checked_length(op, key, range.end - range.start, body))
    }

    pub(crate) async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> ObjectResult<PutOutcome> {
        let req = RawRequest::object(Method::PUT, key).user_metadata(&opts.user_metadata).body(body);
        let response = self.send("put", key, with_put_mode(req, &opts.mode)).await?;
        Ok(put_outcome(response.headers()))
    }

    /// Deletes `key`; a missing key is fine.
    pub(crate) async fn delete(&self, key: &str) -> ObjectResult<()> {
        match self.send("delete", key, RawRequest::object(Method::DELETE, key)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One page of ListObjectsV2.
    pub(crate) async fn list(
        &self,
        prefix: &str,
        delimiter: bool,
        token: Option<&str>,
        page_keys_max: usize,
    ) -> ObjectResult<ListPage> {
        let op = "list";
        let mut req = RawRequest::bucket(Method::GET)
            .query("list-type", "2")
            .query("encoding-type", "url")
            .query("max-keys", &page_keys_max.clamp(1, 1000).to_string());
        if !prefix.is_empty() {
            req = req.query("prefix", prefix);
        }
        if delimiter {
            req = req.query("delimiter", "/");
        }
        if let Some(t) = token {
            req = req.query("continuation-token", t);
        }
        let (_, body) = self.send_read(op, prefix, req).await?;
        let r: ListBucketResult = xml::parse(&body).map_err(|e| other(op, prefix, e))?;
        let encoded = r.encoding_type.as_deref() == Some("url");
        let mut objects = Vec::with_capacity(r.contents.len());
        for o in r.contents {
            let mtime = DateTime::parse_from_rfc3339(&o.last_modified)
                .map(SystemTime::from)
                .map_err(|e| other(op, prefix, format!("bad LastModified {:?}: {e}", o.last_modified)))?;
            objects.push(ObjectMeta {
                key: decode_listed(op, prefix, &o.key, encoded)?,
                size: o.size,
                mtime,
                etag: o.etag,
                version: None,
                user_metadata: None,
            });
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let mut prefixes = r
            .common_prefixes
            .iter()
            .map(|p| decode_listed(op, prefix, &p.prefix, encoded))
            .collect::<ObjectResult<Vec<String>>>()?;
        prefixes.sort();
        let next_token = match (r.is_truncated, r.next_continuation_token) {
            (true, Some(t)) => Some(t),
            (true, None) => return Err(other(op, prefix, "a truncated listing without a continuation token".into())),
            (false, _) => None,
        };
        Ok(ListPage { objects, prefixes, next_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_keys_decode_only_when_encoded() {
        let d = |t: &str, e: bool| decode_listed("list", "p", t, e).expect("decodes");
        assert_eq!(d("e/a+b%2Bc%25d%26e", true), "e/a b+c%d&e");
        assert_eq!(d("e/%C3%BC/", true), "e/ü/");
        assert_eq!(d("e/a+b%2B", false), "e/a+b%2B");
        assert!(decode_listed("list", "p", "%FF", true).is_err());
    }

    #[test]
    fn metadata_headers_lose_their_prefix() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-meta-mode", "040755".parse().expect("value"));
        h.insert("x-amz-meta-uid", "1000".parse().expect("value"));
        h.insert("etag", "\"e\"".parse().expect("value"));
        let meta = user_metadata(&h);
        assert_eq!(meta.len(), 2);
        assert_eq!(meta.get("mode").map(String::as_str), Some("040755"));
        assert_eq!(put_outcome(&h).etag.as_deref(), Some("\"e\""));
        assert!(http_date("head", "k", "Mon, 23 Nov 2026 20:06:43 GMT").is_ok());
    }
}
