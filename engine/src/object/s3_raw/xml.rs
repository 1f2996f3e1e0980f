//! The S3 XML documents the raw requests read and write: error documents, the results of
//! InitiateMultipartUpload, UploadPartCopy / CopyObject, CompleteMultipartUpload and
//! ListObjectsV2, and the CompleteMultipartUpload request body.
//!
//! Parsing uses `quick-xml`'s serde support (already in the build through `object_store`).
//! [`root_name`] tells an `<Error>` apart from a result: S3 may answer 200 with an error document
//! to a copy or a complete.

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::Deserialize;

/// `<Error><Code>..</Code><Message>..</Message></Error>`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ErrorDocument {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct InitiateMultipartUploadResult {
    pub upload_id: String,
}

/// `CopyObjectResult` and `CopyPartResult`.
#[derive(Debug, Deserialize)]
pub(crate) struct CopyResult {
    #[serde(rename = "ETag", default)]
    pub etag: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompleteMultipartUploadResult {
    #[serde(rename = "ETag", default)]
    pub etag: Option<String>,
}

/// `ListBucketResult` of ListObjectsV2.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListBucketResult {
    #[serde(default)]
    pub contents: Vec<ListedObject>,
    #[serde(default)]
    pub common_prefixes: Vec<ListedPrefix>,
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub next_continuation_token: Option<String>,
    /// `url` when keys and prefixes come URL-encoded (the request asked for it and the server
    /// honoured it).
    #[serde(default)]
    pub encoding_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListedObject {
    pub key: String,
    pub size: u64,
    pub last_modified: String,
    #[serde(rename = "ETag", default)]
    pub etag: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListedPrefix {
    pub prefix: String,
}

/// The name of the first element of `body`, if it is XML.
pub(crate) fn root_name(body: &[u8]) -> Option<String> {
    let mut reader = Reader::from_reader(body);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                return Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => buf.clear(),
        }
    }
}

/// Parses `body` as `T`; the error is a readable sentence.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("response is not UTF-8: {e}"))?;
    quick_xml::de::from_str(text).map_err(|e| format!("cannot read the XML response ({e}): {}", excerpt(text)))
}

/// The first 200 characters of a document, for messages.
pub(crate) fn excerpt(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The body of CompleteMultipartUpload for parts `1..=etags.len()`.
pub(crate) fn complete_multipart_body(etags: &[String]) -> String {
    let mut body = String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (i, etag) in etags.iter().enumerate() {
        body.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1, escape(etag)));
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// An ETag in the quoted form S3 puts in headers (some servers leave the quotes out of XML).
pub(crate) fn quoted_etag(etag: &str) -> String {
    let etag = etag.trim();
    if etag.starts_with('"') || etag.starts_with("W/\"") {
        etag.to_string()
    } else {
        format!("\"{etag}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse() {
        let e = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Key>k</Key></Error>"#;
        assert_eq!(root_name(e).as_deref(), Some("Error"));
        let doc: ErrorDocument = parse(e).expect("error document");
        assert_eq!(doc.code, "PreconditionFailed");
        let list = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>e/</Prefix><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><Contents><Key>e/a+b%2Bc</Key><ETag>&#34;c4ca&#34;</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass><LastModified>2026-11-23T20:07:31Z</LastModified></Contents><CommonPrefixes><Prefix>e/a/</Prefix></CommonPrefixes><NextContinuationToken>e/a b&amp;</NextContinuationToken><EncodingType>url</EncodingType><KeyCount>2</KeyCount></ListBucketResult>"#;
        assert_eq!(root_name(list).as_deref(), Some("ListBucketResult"));
        let r: ListBucketResult = parse(list).expect("list");
        assert!(r.is_truncated);
        assert_eq!(r.contents.len(), 1);
        assert_eq!(r.contents[0].etag.as_deref(), Some("\"c4ca\""));
        assert_eq!(r.common_prefixes[0].prefix, "e/a/");
        assert_eq!(r.next_continuation_token.as_deref(), Some("e/a b&"));
        assert_eq!(r.encoding_type.as_deref(), Some("url"));
        let empty: ListBucketResult =
            parse(b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>").expect("empty list");
        assert!(empty.contents.is_empty() && empty.common_prefixes.is_empty());
        let copy: CopyResult =
            parse(b"<CopyPartResult><LastModified>x</LastModified><ETag>abc-2</ETag></CopyPartResult>").expect("copy");
        assert_eq!(copy.etag.as_deref().map(quoted_etag).as_deref(), Some("\"abc-2\""));
        let init: InitiateMultipartUploadResult =
            parse(b"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u-1</UploadId></InitiateMultipartUploadResult>")
                .expect("initiate");
        assert_eq!(init.upload_id, "u-1");
        assert!(parse::<InitiateMultipartUploadResult>(b"<nonsense").is_err());
        assert_eq!(root_name(b"not xml"), None);
    }

    #[test]
    fn complete_body_escapes_etags() {
        assert_eq!(
            complete_multipart_body(&["\"a\"".into(), "b".into()]),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>"
        );
    }
}
