//! How the raw S3 requests' failures become [`ObjectError`]s: an HTTP status with an S3 error
//! document, an error document inside a 200 (CopyObject, UploadPartCopy and
//! CompleteMultipartUpload may send one), or a transport failure.
//!
//! Status and code decide together: SlowDown / 503 / 429 → `Throttled`; 412 or
//! `PreconditionFailed` (and 409 `ConditionalRequestConflict`) → `Precondition`; `NoSuchBucket`
//! → `Other` (a configuration error, not a missing object); 404 / `NoSuchKey` → `NotFound`;
//! 401 / 403 → `Denied`; other 5xx, `InternalError` and `RequestTimeout` → `Transient`;
//! anything else → `Other`. Connection failures, timeouts and broken bodies are `Transient`.

use http::StatusCode;
use object_store::client::HttpError;

use super::xml::{self, ErrorDocument};
use crate::object::ObjectError;

/// A transport failure (connect, reset, timeout, body read).
pub(crate) fn transport_error(op: &'static str, key: &str, e: &HttpError) -> ObjectError {
    let mut detail = format!("{:?}: {e}", e.kind());
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let msg = s.to_string();
        if !detail.contains(&msg) {
            detail.push_str(": ");
            detail.push_str(&msg);
        }
        source = s.source();
    }
    ObjectError::Transient { op, key: key.into(), detail }
}

/// A non-2xx answer with `body` (an error document, or nothing for HEAD).
pub(crate) fn status_error(op: &'static str, key: &str, status: StatusCode, body: &[u8]) -> ObjectError {
    let doc = match xml::root_name(body).as_deref() {
        Some("Error") => xml::parse::<ErrorDocument>(body).unwrap_or_default(),
        _ => ErrorDocument::default(),
    };
    classify(op, key, Some(status), &doc)
}

/// An `<Error>` document in a 200 answer.
pub(crate) fn document_error(op: &'static str, key: &str, body: &[u8]) -> ObjectError {
    let doc = xml::parse::<ErrorDocument>(body).unwrap_or_default();
    classify(op, key, None, &doc)
}

fn hint(code: &str) -> &'static str {
    match code {
        "SignatureDoesNotMatch" => " (check the secret access key and the region)",
        "InvalidAccessKeyId" => " (check the access key id)",
        "ExpiredToken" | "InvalidToken" => " (the session token is expired or invalid)",
        _ => "",
    }
}

fn classify(op: &'static str, key: &str, status: Option<StatusCode>, doc: &ErrorDocument) -> ObjectError {
    let key = key.to_string();
    let code = doc.code.as_str();
    let mut detail = match status {
        Some(s) => s.to_string(),
        None => "200 OK with an error document".to_string(),
    };
    if !code.is_empty() {
        detail.push_str(": ");
        detail.push_str(code);
    }
    if !doc.message.is_empty() {
        detail.push_str(": ");
        detail.push_str(&doc.message);
    }
    detail.push_str(hint(code));
    let status = status.map(|s| s.as_u16()).unwrap_or(200);
    match (status, code) {
        (_, "SlowDown" | "RequestLimitExceeded" | "Throttling") | (429 | 503, _) => {
            ObjectError::Throttled { op, key, detail }
        }
        (412, _) | (_, "PreconditionFailed" | "ConditionalRequestConflict") => {
            ObjectError::Precondition { op, key, detail }
        }
        (_, "NoSuchBucket") => ObjectError::Other { op, key, detail },
        (404, _) | (_, "NoSuchKey") => ObjectError::NotFound { op, key },
        (401 | 403, _) | (_, "AccessDenied") => ObjectError::Denied { op, key, detail },
        (500..=599, _) | (_, "InternalError" | "ServiceUnavailable" | "RequestTimeout") => {
            ObjectError::Transient { op, key, detail }
        }
        _ => ObjectError::Other { op, key, detail },
    }
}

/// The same error with `context` (which step of a larger operation) before its detail.
pub(crate) fn with_context(e: ObjectError, context: &str) -> ObjectError {
    let add = |detail: String| format!("{context}: {detail}");
    match e {
        ObjectError::NotFound { op, key } => ObjectError::NotFound { op, key },
        ObjectError::Precondition { op, key, detail } => ObjectError::Precondition { op, key, detail: add(detail) },
        ObjectError::Denied { op, key, detail } => ObjectError::Denied { op, key, detail: add(detail) },
        ObjectError::Throttled { op, key, detail } => ObjectError::Throttled { op, key, detail: add(detail) },
        ObjectError::Transient { op, key, detail } => ObjectError::Transient { op, key, detail: add(detail) },
        ObjectError::Unsupported { op, key, detail } => ObjectError::Unsupported { op, key, detail: add(detail) },
        ObjectError::Other { op, key, detail } => ObjectError::Other { op, key, detail: add(detail) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(code: &str) -> String {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
    }

    #[test]
    fn statuses_and_codes_map_to_kinds() {
        type Check = fn(&ObjectError) -> bool;
        let cases: &[(u16, &str, Check)] = &[
            (404, "NoSuchKey", |e| e.is_not_found()),
            (404, "", |e| e.is_not_found()),
            (404, "NoSuchBucket", |e| matches!(e, ObjectError::Other { .. })),
            (412, "PreconditionFailed", |e| e.is_precondition()),
            (409, "ConditionalRequestConflict", |e| e.is_precondition()),
            (403, "SignatureDoesNotMatch", |e| matches!(e, ObjectError::Denied { .. })),
            (403, "", |e| matches!(e, ObjectError::Denied { .. })),
            (401, "", |e| matches!(e, ObjectError::Denied { .. })),
            (503, "SlowDown", |e| matches!(e, ObjectError::Throttled { .. })),
            (503, "", |e| matches!(e, ObjectError::Throttled { .. })),
            (429, "", |e| matches!(e, ObjectError::Throttled { .. })),
            (500, "InternalError", |e| matches!(e, ObjectError::Transient { .. })),
            (502, "", |e| matches!(e, ObjectError::Transient { .. })),
            (400, "RequestTimeout", |e| matches!(e, ObjectError::Transient { .. })),
            (400, "InvalidArgument", |e| matches!(e, ObjectError::Other { .. })),
        ];
        for (status, code, check) in cases {
            let body = if code.is_empty() { String::new() } else { doc(code) };
            let status = StatusCode::from_u16(*status).expect("status");
            let e = status_error("put", "k", status, body.as_bytes());
            assert!(check(&e), "{status} {code} mapped to {e:?}");
            assert_eq!(e.key(), "k");
        }
        let e = status_error("put", "k", StatusCode::FORBIDDEN, doc("SignatureDoesNotMatch").as_bytes());
        assert!(e.to_string().contains("check the secret access key"), "{e}");
    }

    #[test]
    fn error_documents_in_a_200_map_by_code() {
        let e = document_error("complete multipart", "k", doc("InternalError").as_bytes());
        assert!(matches!(e, ObjectError::Transient { .. }) && e.to_string().contains("200 OK"), "{e}");
        let e = document_error("copy", "k", doc("PreconditionFailed").as_bytes());
        assert!(e.is_precondition(), "{e:?}");
        let e = document_error("copy", "k", doc("SlowDown").as_bytes());
        assert!(e.is_retryable(), "{e:?}");
    }
}
