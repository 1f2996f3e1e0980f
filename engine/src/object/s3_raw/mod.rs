//! Raw S3 requests: what `object_store` 0.14 cannot send, used only by the S3 backend of
//! [`StoreClient`](super::store::StoreClient).
//!
//! - Keys `object_store::path::Path` cannot hold (a trailing `/`: directory markers; empty
//!   segments): HEAD, GET, PUT (plain or conditional, with user metadata), DELETE
//!   ([`objects`]).
//! - ListObjectsV2 with every key exactly as stored (`encoding-type=url`), markers included
//!   ([`objects`]).
//! - Multipart uploads completed with `If-None-Match: *` / `If-Match` ([`multipart`]).
//! - Server-side copy conditional on the source ETag (`x-amz-copy-source-if-match`), and
//!   above a threshold (5 GiB, S3's CopyObject limit) by UploadPartCopy in parallel
//!   ([`copy`]).
//!
//! Requests are signed with our own SigV4 signer ([`sigv4`]) using the credentials of the
//! `AmazonS3` store the client built (static keys, environment, instance metadata, web identity:
//! whatever `object_store` resolved; a session token is sent as `x-amz-security-token`). They
//! go through `object_store`'s own `HttpClient` built from the same `ClientOptions` (reqwest,
//! rustls, HTTP/2, the configured connect and request timeouts, `allow_http`), to the same
//! bucket endpoint `object_store` uses (path-style `endpoint/bucket`, or the endpoint itself
//! when virtual-hosted). No retries here either: every failure reaches the engine, mapped by
//! [`error`]. XML documents are in [`xml`].
//!
//! Not supported here: S3 Express One Zone sessions, server-side encryption headers and
//! request checksums (the config does not set them today).
//!
//! Runs on: the backfill runtime, like the rest of the client.

pub(crate) mod copy;
pub(crate) mod error;
pub(crate) mod multipart;
pub(crate) mod objects;
pub(crate) mod sigv4;
#[cfg(test)]
pub(crate) mod test_support;
pub(crate) mod xml;

use std::fmt;

use bytes::Bytes;
use chrono::Utc;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Method, Uri};
use object_store::aws::AwsCredentialProvider;
use object_store::client::{HttpClient, HttpRequestBody, HttpResponse};

use self::error::{status_error, transport_error};
use self::sigv4::{SignableRequest, SigningCredentials, SigningScope};
use super::store::map_store_error;
use super::{ObjectError, ObjectResult, UserMetadata};

pub use self::copy::MultipartCopy;

/// A client for the raw requests of one bucket. Cheap to clone (the HTTP client and the
/// credential provider are shared).
#[derive(Clone)]
pub(crate) struct S3Raw {
    http: HttpClient,
    credentials: AwsCredentialProvider,
    bucket: String,
    region: String,
    /// `http://127.0.0.1:8333`: scheme and authority of the bucket endpoint.
    origin: String,
    /// The `Host` header the HTTP client will send for `origin` (port only when not the
    /// scheme's default), which is what gets signed.
    host: String,
    /// Path of the bucket endpoint: `/bucket` path-style, empty virtual-hosted.
    base_path: String,
    multipart_copy: MultipartCopy,
}

impl fmt::Debug for S3Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Raw")
            .field("bucket", &self.bucket)
            .field("origin", &self.origin)
            .field("base_path", &self.base_path)
            .field("region", &self.region)
            .field("multipart_copy", &self.multipart_copy)
            .finish_non_exhaustive()
    }
}

/// One request to send: object-level (`key`) or bucket-level (`None`).
#[derive(Debug, Clone)]
pub(crate) struct RawRequest {
    method: Method,
    key: Option<String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl RawRequest {
    pub(crate) fn object(method: Method, key: &str) -> RawRequest {
        RawRequest { method, key: Some(key.to_string()), query: Vec::new(), headers: Vec::new(), body: Bytes::new() }
    }

    pub(crate) fn bucket(method: Method) -> RawRequest {
        RawRequest { method, key: None, query: Vec::new(), headers: Vec::new(), body: Bytes::new() }
    }

    pub(crate) fn query(mut self, name: &str, value: &str) -> RawRequest {
        self.query.push((name.to_string(), value.to_string()));
        self
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> RawRequest {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// `x-amz-meta-<name>` for every entry.
    pub(crate) fn user_metadata(mut self, meta: &UserMetadata) -> RawRequest {
        for (name, value) in meta {
            self = self.header(&format!("x-amz-meta-{name}"), value);
        }
        self
    }

    pub(crate) fn body(mut self, body: Bytes) -> RawRequest {
        self.body = body;
        self
    }
}

/// The `Host` header hyper derives from a URI: the host, plus the port unless it is the
/// scheme's default.
fn host_header(uri: &Uri) -> Option<String> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    Some(match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_string(),
    })
}

impl S3Raw {
    /// A client for the bucket at `bucket_endpoint` (as `object_store` computes it).
    pub(crate) fn new(
        http: HttpClient,
        credentials: AwsCredentialProvider,
        bucket: &str,
        region: &str,
        bucket_endpoint: &str,
    ) -> Result<S3Raw, String> {
        let uri: Uri = bucket_endpoint.parse().map_err(|e| format!("bucket endpoint {bucket_endpoint:?}: {e}"))?;
        let scheme = uri.scheme_str().ok_or_else(|| format!("bucket endpoint {bucket_endpoint:?} has no scheme"))?;
        let authority = uri.authority().ok_or_else(|| format!("bucket endpoint {bucket_endpoint:?} has no host"))?;
        let host = host_header(&uri).ok_or_else(|| format!("bucket endpoint {bucket_endpoint:?} has no host"))?;
        Ok(S3Raw {
            http,
            credentials,
            bucket: bucket.to_string(),
            region: region.to_string(),
            origin: format!("{scheme}://{authority}"),
            host,
            base_path: uri.path().trim_end_matches('/').to_string(),
            multipart_copy: MultipartCopy::default(),
        })
    }

    pub(crate) fn set_multipart_copy(&mut self, limits: MultipartCopy) {
        self.multipart_copy = limits.clamped();
    }

    fn path_of(&self, key: Option<&str>) -> String {
        match key {
            Some(k) => format!("{}/{}", self.base_path, sigv4::encode_path(k)),
            None if self.base_path.is_empty() => "/".to_string(),
            None => self.base_path.clone(),
        }
    }

    /// Signs and sends `req`. A non-2xx answer is read and mapped to an error naming `op` and
    /// `key`; a 2xx answer is returned with its body unread.
    pub(crate) async fn send(&self, op: &'static str, key: &str, req: RawRequest) -> ObjectResult<HttpResponse> {
        let bad = |detail: String| ObjectError::Other { op, key: key.into(), detail };
        let credential = self.credentials.get_credential().await.map_err(|e| map_store_error(op, key, e))?;
        let at = Utc::now();
        let payload_sha256 = sigv4::sha256_hex(&req.body);
        let path = self.path_of(req.key.as_deref());
        let mut headers = req.headers;
        headers.push(("host".into(), self.host.clone()));
        headers.push(("x-amz-date".into(), sigv4::amz_date(at)));
        headers.push(("x-amz-content-sha256".into(), payload_sha256.clone()));
        if let Some(token) = &credential.token {
            headers.push(("x-amz-security-token".into(), token.clone()));
        }
        let signable = SignableRequest {
            method: req.method.as_str(),
            path: &path,
            query: &req.query,
            headers: &headers,
            payload_sha256: &payload_sha256,
        };
        let signing =
            SigningCredentials { access_key_id: &credential.key_id, secret_access_key: &credential.secret_key };
        let authorization =
            sigv4::authorization(&signable, &signing, &SigningScope { region: &self.region, service: "s3", at });
        let query = sigv4::canonical_query(&req.query);
        let uri =
            if query.is_empty() { format!("{}{path}", self.origin) } else { format!("{}{path}?{query}", self.origin) };
        let mut map = HeaderMap::with_capacity(headers.len() + 1);
        // `host` is signed but left to the HTTP client to send (as `:authority` on HTTP/2).
        for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(format!("header {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value).map_err(|e| bad(format!("value of header {name}: {e}")))?;
            map.append(name, value);
        }
        let authorization = HeaderValue::from_str(&authorization).map_err(|e| bad(format!("authorization: {e}")))?;
        map.insert(AUTHORIZATION, authorization);
        let mut request = http::Request::builder()
            .method(req.method)
            .uri(&uri)
            .body(HttpRequestBody::from(req.body))
            .map_err(|e| bad(format!("request {uri}: {e}")))?;
        *request.headers_mut() = map;
        let response = self.http.execute(request).await.map_err(|e| transport_error(op, key, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // The error document is small; if even it cannot be read, the status says enough.
        let body = response.into_body().bytes().await.unwrap_or_default();
        Err(status_error(op, key, status, &body))
    }

    /// Sends `req` and reads the whole answer; an `<Error>` document in a 2xx answer is an
    /// error too.
    pub(crate) async fn send_read(
        &self,
        op: &'static str,
        key: &str,
        req: RawRequest,
    ) -> ObjectResult<(http::response::Parts, Bytes)> {
        let (parts, body) = self.send(op, key, req).await?.into_parts();
        let body = body.bytes().await.map_err(|e| transport_error(op, key, &e))?;
        if xml::root_name(&body).as_deref() == Some("Error") {
            return Err(error::document_error(op, key, &body));
        }
        Ok((parts, body))
    }
}

/// The value of header `name`, if present and text.
pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::test_support::{fake_server, raw_client, Reply};
    use super::*;
    use crate::object::PutOptions;

    #[test]
    fn host_header_drops_default_ports_only() {
        let host = |s: &str| host_header(&s.parse::<Uri>().expect("uri"));
        assert_eq!(host("http://127.0.0.1:8333/b").as_deref(), Some("127.0.0.1:8333"));
        assert_eq!(host("http://h:80/b").as_deref(), Some("h"));
        assert_eq!(host("https://h:443").as_deref(), Some("h"));
        assert_eq!(host("https://h:80").as_deref(), Some("h:80"));
        assert_eq!(host("https://b.s3.us-east-1.amazonaws.com").as_deref(), Some("b.s3.us-east-1.amazonaws.com"));
        assert_eq!(host("http://[::1]:9000/b").as_deref(), Some("[::1]:9000"));
    }

    const SLOW_DOWN: &str = "<Error><Code>SlowDown</Code><Message>Please reduce</Message></Error>";

    #[tokio::test]
    async fn raw_answers_map_to_their_kinds() {
        type Check = fn(&ObjectError) -> bool;
        let cases: &[(u16, &str, Check)] = &[
            (404, "<Error><Code>NoSuchKey</Code></Error>", |e| e.is_not_found()),
            (412, "<Error><Code>PreconditionFailed</Code></Error>", |e| e.is_precondition()),
            (403, "<Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error>", |e| {
                matches!(e, ObjectError::Denied { .. }) && e.to_string().contains("secret access key")
            }),
            (503, SLOW_DOWN, |e| matches!(e, ObjectError::Throttled { .. })),
            (429, "", |e| matches!(e, ObjectError::Throttled { .. })),
            (500, "<Error><Code>InternalError</Code></Error>", |e| matches!(e, ObjectError::Transient { .. })),
            (502, "", |e| matches!(e, ObjectError::Transient { .. })),
            (400, "<Error><Code>InvalidArgument</Code></Error>", |e| matches!(e, ObjectError::Other { .. })),
            // A 200 with an error document (what S3 may send to a copy or a complete).
            (200, "<Error><Code>InternalError</Code></Error>", |e| matches!(e, ObjectError::Transient { .. })),
        ];
        for (status, body, check) in cases {
            let (endpoint, _) = fake_server(Reply::Status(*status, body)).await;
            let raw = raw_client(&endpoint, "AK", "SK", None);
            let e = raw.list("p/", true, None, 10).await.expect_err("the server only fails");
            assert!(check(&e), "{status} {body} mapped to {e:?}");
            assert_eq!((e.key(), e.to_string().starts_with("list p/")), ("p/", true), "{e}");
            let e = raw
                .complete_upload("complete multipart", "d/", "u", &["\"e\"".into()], &crate::object::PutMode::Create)
                .await
                .expect_err("the server only fails");
            assert!(check(&e), "complete: {status} {body} mapped to {e:?}");
        }
        // A HEAD has no body to say why.
        let (endpoint, _) = fake_server(Reply::Status(403, "")).await;
        let e = raw_client(&endpoint, "AK", "SK", None).head("d/").await.expect_err("denied");
        assert!(matches!(e, ObjectError::Denied { op: "head", .. }) && e.to_string().contains("403"), "{e}");
    }

    #[tokio::test]
    async fn raw_transport_failures_are_transient() {
        for reply in [Reply::Close, Reply::Stall] {
            let (endpoint, _) = fake_server(reply).await;
            let raw = raw_client(&endpoint, "AK", "SK", None);
            let e = raw.put("d/", Bytes::new(), &PutOptions::default()).await.expect_err("no answer");
            assert!(matches!(e, ObjectError::Transient { op: "put", .. }) && e.is_retryable(), "{reply:?}: {e:?}");
            let e = get_range_bytes_raw(&raw).await;
            assert!(matches!(e, ObjectError::Transient { op: "get", .. }), "{reply:?}: {e:?}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let raw = raw_client(&format!("http://127.0.0.1:{port}"), "AK", "SK", None);
        let e = raw.delete("d/").await.expect_err("refused");
        assert!(matches!(e, ObjectError::Transient { op: "delete", .. }), "{e:?}");
    }

    async fn get_range_bytes_raw(raw: &S3Raw) -> ObjectError {
        match raw.get_range("d//x", 0..10, None).await {
            Err(e) => e,
            Ok(mut stream) => {
                use futures::StreamExt;
                while let Some(chunk) = stream.next().await {
                    if let Err(e) = chunk {
                        return e;
                    }
                }
                panic!("a GET from a server that never answers succeeded")
            }
        }
    }

    #[tokio::test]
    async fn requests_are_signed_with_the_session_token_and_exact_path() {
        let (endpoint, seen) = fake_server(Reply::Status(200, "")).await;
        let raw = raw_client(&endpoint, "AKID", "SECRET", Some("the-token"));
        let opts =
            PutOptions { user_metadata: [("mode".to_string(), "040755".to_string())].into(), ..Default::default() };
        raw.put("a dir/ü/", Bytes::new(), &opts).await.expect("put");
        let head = seen.lock().unwrap_or_else(|p| p.into_inner()).pop().expect("one request");
        let lower = head.to_ascii_lowercase();
        assert!(head.starts_with("PUT /b/a%20dir/%C3%BC/ HTTP/1.1\r\n"), "{head}");
        assert!(lower.contains("\r\nx-amz-security-token: the-token\r\n"), "{head}");
        assert!(lower.contains("\r\nx-amz-meta-mode: 040755\r\n"), "{head}");
        assert!(
            lower.contains(
                "\r\nx-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n"
            ),
            "{head}"
        );
        assert!(
            lower.contains("signedheaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-mode;x-amz-security-token,"),
            "{head}"
        );
        assert!(lower.contains("credential=akid/"), "{head}");
        // The secret never goes out.
        assert!(!head.contains("SECRET"), "{head}");
    }
}
