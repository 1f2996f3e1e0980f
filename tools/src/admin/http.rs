//! The little HTTP/1.1 the admin endpoint speaks: parsing a request head, and writing a response
//! head. Pure functions on bytes, so they are fuzzed directly (random bytes must give a head or an
//! error, never a panic).
//!
//! API: `head_end(buf)` finds the end of a head; `parse_head(bytes)` reads the request line and
//! the headers that matter (Content-Length, Transfer-Encoding, Expect); `Status`; `response_head`.
//! Every response says `Connection: close`: one request per connection.

use std::fmt::Write as _;

/// Headers a request may carry, at most.
const HEADERS_MAX: usize = 100;

/// What the server needs from a request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The target's path, without the query string.
    pub path: String,
    pub content_length: Option<u64>,
    /// `Expect: 100-continue`: the client waits for a 100 before it sends the body.
    pub expect_continue: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 200,
    Continue = 100,
    BadRequest = 400,
    NotFound = 404,
    MethodNotAllowed = 405,
    RequestTimeout = 408,
    LengthRequired = 411,
    PayloadTooLarge = 413,
    HeaderFieldsTooLarge = 431,
    InternalError = 500,
    NotImplemented = 501,
    Unavailable = 503,
    VersionNotSupported = 505,
}

impl Status {
    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Continue => "Continue",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::LengthRequired => "Length Required",
            Status::PayloadTooLarge => "Payload Too Large",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
            Status::Unavailable => "Service Unavailable",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// A request the server refuses: the status and a one-line reason for the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: Status,
    pub message: String,
    /// The methods the path does allow (the `Allow` header of a 405).
    pub allow: Option<&'static str>,
}

impl Refusal {
    pub fn new(status: Status, message: impl Into<String>) -> Refusal {
        Refusal { status, message: message.into(), allow: None }
    }
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal::new(Status::BadRequest, message)
}

/// The length of the head (through its blank line) if `buf` holds a whole one. A bare `\n` ends
/// a line as well as `\r\n`.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let rest = buf.get(nl + 1..)?;
        if rest.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a request head (the bytes `head_end` delimited).
pub fn parse_head(bytes: &[u8]) -> Result<RequestHead, Refusal> {
    let text = std::str::from_utf8(bytes).map_err(|_| bad("the request head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the request line must be METHOD TARGET HTTP/1.1"));
    };
    if !is_token(method) {
        return Err(bad("the method is not a token"));
    }
    if !version.starts_with("HTTP/") {
        return Err(bad("the request line must end with the HTTP version"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Refusal::new(Status::VersionNotSupported, format!("{version} is not supported; use HTTP/1.1")));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad("the target must be a path starting with '/'"));
    }
    let path = target.split(['?', '#']).next().unwrap_or_default().to_string();
    let mut head = RequestHead { method: method.to_string(), path, content_length: None, expect_continue: false };
    let mut count = 0;
    for line in lines.take_while(|l| !l.is_empty()) {
        count += 1;
        if count > HEADERS_MAX {
            return Err(Refusal::new(Status::HeaderFieldsTooLarge, format!("more than {HEADERS_MAX} headers")));
        }
        read_header(&mut head, line)?;
    }
    Ok(head)
}

fn read_header(head: &mut RequestHead, line: &str) -> Result<(), Refusal> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(bad(format!("a header line has no ':' ({:.40})", line)));
    };
    if !is_token(name) {
        return Err(bad("a header name is not a token (no spaces before ':', no folded lines)"));
    }
    let value = value.trim_matches([' ', '\t']);
    if name.eq_ignore_ascii_case("content-length") {
        let n = value
            .parse::<u64>()
            .ok()
            .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| bad("Content-Length is not a number"))?;
        if head.content_length.is_some_and(|m| m != n) {
            return Err(bad("two different Content-Length headers"));
        }
        head.content_length = Some(n);
    } else if name.eq_ignore_ascii_case("transfer-encoding") {
        return Err(Refusal::new(Status::NotImplemented, "Transfer-Encoding is not supported; send Content-Length"));
    } else if name.eq_ignore_ascii_case("expect") {
        if !value.eq_ignore_ascii_case("100-continue") {
            return Err(Refusal::new(Status::BadRequest, "only Expect: 100-continue is understood"));
        }
        head.expect_continue = true;
    }
    Ok(())
}

/// A response head; `content_length` None means the body ends when the connection closes.
pub fn response_head(
    status: Status,
    content_type: &str,
    content_length: Option<usize>,
    extra: &[(&str, &str)],
) -> String {
    let mut head = format!("HTTP/1.1 {} {}\r\n", status.code(), status.reason());
    // Writing to a String cannot fail.
    let _ = write!(head, "Content-Type: {content_type}\r\nCache-Control: no-store\r\nConnection: close\r\n");
    if let Some(n) = content_length {
        let _ = write!(head, "Content-Length: {n}\r\n");
    }
    for (name, value) in extra {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_the_end_of_a_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b""), None);
        assert_eq!(head_end(b"\n"), None);
        assert_eq!(head_end(b"\n\n"), Some(2));
    }

    #[test]
    fn parses_a_request() {
        let head = parse_head(
            b"POST /v1/preload?x=1 HTTP/1.1\r\nHost: a\r\ncontent-length: 12\r\nExpect: 100-continue\r\n\r\n",
        )
        .expect("valid");
        assert_eq!(head.method, "POST");
        assert_eq!(head.path, "/v1/preload");
        assert_eq!(head.content_length, Some(12));
        assert!(head.expect_continue);
        let head = parse_head(b"GET /metrics HTTP/1.0\n\n").expect("valid");
        assert_eq!((head.path.as_str(), head.content_length), ("/metrics", None));
    }

    #[test]
    fn refuses_bad_heads() {
        let status = |bytes: &[u8]| parse_head(bytes).map(|_| ()).map_err(|r| r.status);
        assert_eq!(status(b"GET /\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status(b"GET / HTTP/1.1 x\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status(b"GET / HTTP/2\r\n\r\n"), Err(Status::VersionNotSupported));
        assert_eq!(status(b"GET http://x/ HTTP/1.1\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status(b"G@T / HTTP/1.1\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status(b"GET / HTTP/1.1\r\n folded: x\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"), Ok(()));
        assert_eq!(status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Err(Status::NotImplemented));
        assert_eq!(status(b"GET / HTTP/1.1\r\n\xff: x\r\n\r\n"), Err(Status::BadRequest));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(101));
        assert_eq!(status(many.as_bytes()), Err(Status::HeaderFieldsTooLarge));
    }

    #[test]
    fn writes_a_response_head() {
        let head = response_head(Status::MethodNotAllowed, "text/plain", Some(3), &[("Allow", "GET")]);
        assert!(head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(head.contains("Content-Length: 3\r\n") && head.contains("Allow: GET\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = head_end(&bytes);
            let _ = parse_head(&bytes);
        }

        #[test]
        fn mangled_requests_never_panic(
            prefix in "(GET|POST|PUT|get|G ET)? ?(/[a-z/?#%]{0,12})? ?(HTTP/1\\.[01]|HTTP/9)?",
            headers in proptest::collection::vec("[A-Za-z-]{0,16}:? ?[ -~]{0,24}", 0..6),
            ends in "(\r\n|\n|\r){1,3}",
        ) {
            let text = format!("{prefix}{ends}{}{ends}", headers.join(&ends));
            let bytes = text.as_bytes();
            if let Some(end) = head_end(bytes) {
                prop_assert!(end <= bytes.len());
                let _ = parse_head(bytes.get(..end).unwrap_or_default());
            }
        }
    }
}
