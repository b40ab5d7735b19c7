//! Starting gauntlet's real servers on port 0 for tests, and reading what they saw.
//! Every helper returns a handle with the address; dropping it shuts the server down.

use std::net::SocketAddr;
use std::time::Duration;

use gauntlet::config::Source;
use gauntlet::mock::{self, MockHandle, Profile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A profile from TOML text; panics with the located errors if the text is wrong.
pub fn profile(toml: &str) -> Profile {
    Profile::parse(&Source::new("test-profile.toml", toml)).unwrap_or_else(|e| panic!("{e}"))
}

/// A one-model profile (`m`) answering at once, with extra TOML appended (tables only).
pub fn instant_profile(extra: &str) -> Profile {
    profile(&format!(
        "name = \"test\"\nseed = 5\n[[models]]\nname = \"m\"\ninput_price_per_m = 1\n\
         output_price_per_m = 2\ncontext_window = 1000\n{extra}"
    ))
}

/// Starts a mock on 127.0.0.1 with a free port.
pub async fn start_mock(profile: Profile) -> MockHandle {
    start_mock_named(profile, "test", None).await
}

pub async fn start_mock_named(profile: Profile, name: &str, token: Option<&str>) -> MockHandle {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    mock::start(profile, name, addr, token.map(str::to_string))
        .await
        .unwrap()
}

/// What a raw HTTP/1.0 exchange produced: the bytes read before the server closed, or the
/// error the socket reported (a reset shows up here).
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    pub error: Option<std::io::Error>,
}

impl RawReply {
    pub fn status(&self) -> Option<u16> {
        let text = std::str::from_utf8(&self.bytes).ok()?;
        text.split(' ').nth(1)?.parse().ok()
    }

    pub fn head(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        text.split("\r\n\r\n").next().unwrap_or("").to_string()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head().lines().find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            k.eq_ignore_ascii_case(name).then(|| v.to_string())
        })
    }

    pub fn body(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    /// The `data:` payloads of an event stream body.
    pub fn events(&self) -> Vec<String> {
        let mut d = gauntlet::openai::SseDecoder::new();
        let mut out = Vec::new();
        d.feed(self.body().as_bytes(), |e| out.push(e.data))
            .unwrap();
        out
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body()))
    }
}

/// Sends one HTTP/1.0 request (so the server closes when done: no chunking, no keep-alive)
/// and reads until the connection ends, at most `limit` long.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> RawReply {
    raw_timed(addr, method, path, headers, body, Duration::from_secs(20)).await
}

pub async fn raw_timed(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    limit: Duration,
) -> RawReply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nhost: test\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut reply = RawReply {
        bytes: Vec::new(),
        error: None,
    };
    if let Err(e) = s.write_all(req.as_bytes()).await {
        reply.error = Some(e);
        return reply;
    }
    let read = async {
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return None,
                Ok(n) => reply.bytes.extend_from_slice(&buf[..n]),
                Err(e) => return Some(e),
            }
        }
    };
    match tokio::time::timeout(limit, read).await {
        Ok(err) => reply.error = err,
        Err(_) => panic!("no end of reply within {limit:?}"),
    }
    reply
}

/// A chat request body for model `m`.
pub fn chat_body(model: &str, max_tokens: u32, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Generate a product description"}],
        "max_tokens": max_tokens,
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
    .to_string()
}

pub async fn post_chat(addr: SocketAddr, body: &str) -> RawReply {
    raw(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        body,
    )
    .await
}
