//! A tiny blocking HTTP/1.1 client for the admin endpoint, used by `bucketfs stats` and
//! `bucketfs preload`: one request per connection, `Content-Length` bodies, and NDJSON streams
//! read a line at a time.
//!
//! API: `AdminClient::new(addr)`, `get_json`, `post_ndjson` (returns a `JsonLines` reader).
//! Runs on the calling thread (the CLI's main thread); no runtime needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::de::DeserializeOwned;

/// A reply head or body larger than these is not from our server.
const HEAD_BYTES_MAX: u64 = 64 << 10;
const BODY_BYTES_MAX: u64 = 256 << 20;
const LINE_BYTES_MAX: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no bucketfs server answering on {addr} (is `bucketfs serve` running?)")]
    NotRunning { addr: String },
    #[error("talking to the bucketfs server on {addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("the bucketfs server on {addr} answered {status}: {message}")]
    Status { addr: String, status: u16, message: String },
    #[error("the bucketfs server on {addr} sent something unexpected: {what}")]
    BadReply { addr: String, what: String },
}

pub struct AdminClient {
    addr: String,
    timeout: Duration,
}

impl AdminClient {
    /// `addr` is `host:port`. Requests time out after 30 s without progress.
    pub fn new(addr: &str) -> AdminClient {
        AdminClient { addr: addr.to_string(), timeout: Duration::from_secs(30) }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> AdminClient {
        self.timeout = timeout;
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `GET path`, the body parsed as JSON.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.get(path)?;
        serde_json::from_slice(&body).map_err(|e| self.bad(format!("JSON from {path}: {e}")))
    }

    /// `GET path`, the body as bytes.
    pub fn get(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let mut reader = self.request("GET", path, None)?;
        let length = reader.content_length;
        let mut body = Vec::new();
        let limit = length.unwrap_or(BODY_BYTES_MAX).min(BODY_BYTES_MAX);
        (&mut reader.inner).take(limit).read_to_end(&mut body).map_err(|e| self.io(e))?;
        if length.is_some_and(|n| n != body.len() as u64) {
            return Err(self.bad("the reply ended early".to_string()));
        }
        Ok(body)
    }

    /// `POST path` with a JSON body; the reply is read one JSON value per line.
    pub fn post_ndjson(&self, path: &str, body: &[u8]) -> Result<JsonLines, ClientError> {
        let reply = self.request("POST", path, Some(body))?;
        Ok(JsonLines { reader: reply.inner, addr: self.addr.clone(), line: Vec::new() })
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io { addr: self.addr.clone(), source }
    }

    fn bad(&self, what: String) -> ClientError {
        ClientError::BadReply { addr: self.addr.clone(), what }
    }

    fn connect(&self) -> Result<TcpStream, ClientError> {
        let addrs = self.addr.to_socket_addrs().map_err(|e| self.io(e))?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err(ClientError::NotRunning { addr: self.addr.clone() })
            }
            Some(e) => Err(self.io(e)),
            None => Err(self.bad("the address resolves to nothing".to_string())),
        }
    }

    /// Sends a request and reads the reply head; a status other than 200 is an error carrying the
    /// server's message.
    fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Reply, ClientError> {
        let stream = self.connect()?;
        stream.set_read_timeout(Some(self.timeout)).map_err(|e| self.io(e))?;
        stream.set_write_timeout(Some(self.timeout)).map_err(|e| self.io(e))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        if let Some(body) = body {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut writer = &stream;
        writer.write_all(head.as_bytes()).map_err(|e| self.io(e))?;
        writer.write_all(body.unwrap_or_default()).map_err(|e| self.io(e))?;
        let mut reader = BufReader::new(stream);
        let (status, content_length) = self.read_head(&mut reader)?;
        if status != 200 {
            let mut message = String::new();
            let _ = (&mut reader).take(64 << 10).read_to_string(&mut message);
            return Err(ClientError::Status { addr: self.addr.clone(), status, message: message.trim().to_string() });
        }
        Ok(Reply { inner: reader, content_length })
    }

    fn read_head(&self, reader: &mut BufReader<TcpStream>) -> Result<(u16, Option<u64>), ClientError> {
        let mut head = reader.take(HEAD_BYTES_MAX);
        let mut line = String::new();
        head.read_line(&mut line).map_err(|e| self.io(e))?;
        let status = line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| self.bad(format!("not an HTTP reply: {:.60}", line.trim_end())))?;
        let mut content_length = None;
        loop {
            line.clear();
            if head.read_line(&mut line).map_err(|e| self.io(e))? == 0 {
                return Err(self.bad("the reply head ended early".to_string()));
            }
            let header = line.trim_end();
            if header.is_empty() {
                return Ok((status, content_length));
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().ok();
                }
            }
        }
    }
}

struct Reply {
    inner: BufReader<TcpStream>,
    content_length: Option<u64>,
}

/// A reply body read one JSON value per line.
pub struct JsonLines {
    reader: BufReader<TcpStream>,
    addr: String,
    line: Vec<u8>,
}

impl JsonLines {
    /// The next value; None at the end of the stream.
    pub fn next_value<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ClientError> {
        loop {
            self.line.clear();
            let n = (&mut self.reader)
                .take(LINE_BYTES_MAX)
                .read_until(b'\n', &mut self.line)
                .map_err(|source| ClientError::Io { addr: self.addr.clone(), source })?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return serde_json::from_slice(&self.line).map(Some).map_err(|e| ClientError::BadReply {
                addr: self.addr.clone(),
                what: format!("a line that is not the JSON expected: {e}"),
            });
        }
    }
}
