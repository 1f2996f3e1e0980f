//! AWS Signature Version 4 (header signing), for the raw S3 requests.
//!
//! API: [`authorization`] turns a [`SignableRequest`] (method, the path exactly as sent, the
//! query as decoded pairs, every header to sign, the payload's SHA-256) into the value of the
//! `Authorization` header. The caller must send the same path, the query as [`canonical_query`]
//! writes it, and every header it signed. [`encode_path`] and [`encode_component`] do S3's URI
//! encoding (RFC 3986 unreserved characters kept; `/` kept in paths, encoded once, as S3 wants:
//! no double encoding, no dot-segment normalisation).
//!
//! HMAC-SHA256 and SHA-256 come from `aws-lc-rs` (already in the build for TLS). Checked
//! against AWS's published test vectors (the SigV4 test suite and the S3 documentation's
//! worked examples) in the tests below.

use aws_lc_rs::{digest, hmac};
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// SHA-256 of an empty payload, hex.
#[cfg(test)]
const EMPTY_PAYLOAD_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Everything but RFC 3986's unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// The same, keeping `/` (object keys in paths).
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// Access key id and secret (and the session token, which is sent as a signed header).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SigningCredentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
}

/// One request as it will be sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignableRequest<'a> {
    pub method: &'a str,
    /// The path as sent, already encoded (see [`encode_path`]).
    pub path: &'a str,
    /// Query parameters, decoded (a parameter without value has `""`).
    pub query: &'a [(String, String)],
    /// Every header to sign, any case; `host` and `x-amz-date` must be among them.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body (or `UNSIGNED-PAYLOAD`).
    pub payload_sha256: &'a str,
}

/// Where and when a signature is valid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SigningScope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub at: DateTime<Utc>,
}

/// `20150830T123600Z`, the `x-amz-date` header of a request signed at `at`.
pub(crate) fn amz_date(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// A query name or value, or a path segment, encoded for S3.
pub(crate) fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// An object key encoded for a path (`/` kept).
pub(crate) fn encode_path(key: &str) -> String {
    utf8_percent_encode(key, PATH).to_string()
}

/// The query string as signed and as it must be sent: encoded, sorted by name then value.
pub(crate) fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(k, v)| (encode_component(k), encode_component(v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Lower-case names, values trimmed with inner runs of spaces collapsed, sorted by name;
/// repeated names joined with `,`. Returns the canonical header block and the signed names.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut sorted: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    // Stable: values of a repeated header keep their order.
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut block = String::new();
    let mut names: Vec<&str> = Vec::new();
    for (name, value) in &sorted {
        if names.last() == Some(&name.as_str()) {
            block.pop(); // the '\n'
            block.push(',');
        } else {
            names.push(name);
            block.push_str(name);
            block.push(':');
        }
        block.push_str(value);
        block.push('\n');
    }
    (block, names.join(";"))
}

/// The canonical request (step 1 of the signing process) and the signed header names.
pub(crate) fn canonical_request(req: &SignableRequest<'_>) -> (String, String) {
    let (headers, signed) = canonical_headers(req.headers);
    let path = if req.path.is_empty() { "/" } else { req.path };
    let text =
        format!("{}\n{path}\n{}\n{headers}\n{signed}\n{}", req.method, canonical_query(req.query), req.payload_sha256);
    (text, signed)
}

/// The value of the `Authorization` header.
pub(crate) fn authorization(
    req: &SignableRequest<'_>,
    credentials: &SigningCredentials<'_>,
    scope: &SigningScope<'_>,
) -> String {
    let (creq, signed) = canonical_request(req);
    let day = scope.at.format("%Y%m%d").to_string();
    let scope_text = format!("{day}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = format!("AWS4-HMAC-SHA256\n{}\n{scope_text}\n{}", amz_date(scope.at), sha256_hex(creq.as_bytes()));
    let mut key = hmac_sha256(format!("AWS4{}", credentials.secret_access_key).as_bytes(), day.as_bytes());
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac_sha256(key.as_ref(), part.as_bytes());
    }
    let signature = hex(hmac_sha256(key.as_ref(), to_sign.as_bytes()).as_ref());
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope_text}, SignedHeaders={signed}, Signature={signature}",
        credentials.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        headers(pairs)
    }

    /// The SigV4 test suite's credentials, scope and time.
    const SUITE: SigningCredentials<'static> = SigningCredentials {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    };

    fn suite_scope() -> SigningScope<'static> {
        let at = Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).single().expect("valid time");
        SigningScope { region: "us-east-1", service: "service", at }
    }

    fn suite_prefix(signed: &str) -> String {
        format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed}, Signature=")
    }

    #[test]
    fn suite_get_vanilla() {
        let h = headers(&[("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]);
        let req =
            SignableRequest { method: "GET", path: "/", query: &[], headers: &h, payload_sha256: EMPTY_PAYLOAD_SHA256 };
        let (creq, _) = canonical_request(&req);
        assert_eq!(
            creq,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(sha256_hex(creq.as_bytes()), "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
        assert_eq!(
            authorization(&req, &SUITE, &suite_scope()),
            suite_prefix("host;x-amz-date") + "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn suite_post_x_www_form_urlencoded() {
        let body = b"Param1=value1";
        let h = headers(&[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ]);
        let sha = sha256_hex(body);
        assert_eq!(sha, "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
        let req = SignableRequest { method: "POST", path: "/", query: &[], headers: &h, payload_sha256: &sha };
        assert_eq!(
            authorization(&req, &SUITE, &suite_scope()),
            suite_prefix("content-type;host;x-amz-date")
                + "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn suite_query_order_and_utf8_path_and_post() {
        let h = headers(&[("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]);
        let sign = |method: &str, path: &str, q: &[(String, String)]| {
            let req = SignableRequest { method, path, query: q, headers: &h, payload_sha256: EMPTY_PAYLOAD_SHA256 };
            authorization(&req, &SUITE, &suite_scope())
        };
        let prefix = suite_prefix("host;x-amz-date");
        // get-vanilla-query-order-key-case: parameters given out of order.
        assert_eq!(
            sign("GET", "/", &query(&[("Param2", "value2"), ("Param1", "value1")])),
            prefix.clone() + "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
        // get-utf8: the path `/ሴ`.
        assert_eq!(encode_path("/\u{1234}"), "/%E1%88%B4");
        assert_eq!(
            sign("GET", &encode_path("/\u{1234}"), &[]),
            prefix.clone() + "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"
        );
        // get-unreserved: nothing to encode.
        let unreserved = "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        assert_eq!(encode_path(unreserved), unreserved);
        assert_eq!(
            sign("GET", unreserved, &[]),
            prefix.clone() + "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"
        );
        // post-vanilla.
        assert_eq!(sign("POST", "/", &[]), prefix + "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
    }

    /// The worked example of the S3 documentation ("Signature calculations for the
    /// Authorization header"): GET of the first 10 bytes of `test.txt`.
    #[test]
    fn s3_documentation_get_object_example() {
        let at = Utc.with_ymd_and_hms(2013, 5, 24, 0, 0, 0).single().expect("valid time");
        let scope = SigningScope { region: "us-east-1", service: "s3", at };
        let credentials = SigningCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        };
        let h = headers(&[
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256),
            ("x-amz-date", &amz_date(at)),
        ]);
        let req = SignableRequest {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &h,
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        };
        assert_eq!(
            authorization(&req, &credentials, &scope),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn headers_are_trimmed_folded_and_joined() {
        let h = headers(&[("My-Header1", "  a   b  "), ("my-header1", "c"), ("Host", "h")]);
        let (block, signed) = canonical_headers(&h);
        assert_eq!(block, "host:h\nmy-header1:a b,c\n");
        assert_eq!(signed, "host;my-header1");
    }

    #[test]
    fn query_and_keys_are_encoded_once() {
        let q = query(&[("uploads", ""), ("prefix", "a b/+ü"), ("list-type", "2")]);
        assert_eq!(canonical_query(&q), "list-type=2&prefix=a%20b%2F%2B%C3%BC&uploads=");
        assert_eq!(encode_path("dir/a b+c%d&e=~"), "dir/a%20b%2Bc%25d%26e%3D~");
        assert_eq!(encode_path("dir/"), "dir/");
    }
}
