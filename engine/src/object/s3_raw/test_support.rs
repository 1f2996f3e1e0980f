//! Test support for the raw S3 requests: a one-trick HTTP server on loopback that records the
//! requests it gets, and raw clients for it or for the shared SeaweedFS server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::aws::AwsCredential;
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::{ClientOptions, StaticCredentialProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::S3Raw;

/// What the fake server answers to every request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reply {
    Status(u16, &'static str),
    /// Close the connection after reading the request head.
    Close,
    /// Never answer.
    Stall,
}

/// Request heads (request line and headers) the fake server saw, in order.
pub(crate) type Seen = Arc<Mutex<Vec<String>>>;

/// Starts the fake server; returns its endpoint and what it saw.
pub(crate) async fn fake_server(reply: Reply) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                log.lock().unwrap_or_else(|p| p.into_inner()).push(String::from_utf8_lossy(&buf).into_owned());
                let response = match reply {
                    Reply::Status(code, body) => format!(
                        "HTTP/1.1 {code} X\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    ),
                    Reply::Close => return,
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
    (format!("http://{addr}"), seen)
}

/// A raw client for bucket `b` at `endpoint` (path-style), 500 ms request timeout.
pub(crate) fn raw_client(endpoint: &str, key_id: &str, secret: &str, token: Option<&str>) -> S3Raw {
    let options = ClientOptions::new()
        .with_allow_http(true)
        .with_connect_timeout(Duration::from_millis(1_000))
        .with_timeout(Duration::from_millis(500));
    let http = ReqwestConnector::default().connect(&options).expect("http client");
    let credential =
        AwsCredential { key_id: key_id.into(), secret_key: secret.into(), token: token.map(str::to_string) };
    let provider = Arc::new(StaticCredentialProvider::new(credential));
    S3Raw::new(http, provider, "b", "us-east-1", &format!("{endpoint}/b")).expect("raw client")
}

/// A raw client for a fresh bucket on the shared SeaweedFS server (30 s request timeout).
pub(crate) async fn seaweed_raw(name: &str) -> S3Raw {
    let server = testkit::S3Server::shared().unwrap_or_else(|e| panic!("S3 server: {e}"));
    let bucket = server.new_bucket(name).await.unwrap_or_else(|e| panic!("{e}"));
    let options = ClientOptions::new().with_allow_http(true).with_timeout(Duration::from_secs(30));
    let http = ReqwestConnector::default().connect(&options).expect("http client");
    let credential =
        AwsCredential { key_id: server.access_key().into(), secret_key: server.secret_key().into(), token: None };
    let provider = Arc::new(StaticCredentialProvider::new(credential));
    let endpoint = format!("{}/{bucket}", server.endpoint());
    S3Raw::new(http, provider, &bucket, server.region(), &endpoint).expect("raw client")
}
