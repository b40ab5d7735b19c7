//! A misbehaving upstream on a raw TCP socket: it reads a request and writes exactly the
//! bytes a test chose (never-ending bodies, endless lines, gigantic bodies, wrong content
//! types), recording how much of each answer it managed to write before the peer hung up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::server::{TestServer, serve_raw};
use super::{completion_json, stream_body};

/// The longest any scripted answer keeps its connection, so no test can leave a task behind.
const GIVE_UP: Duration = Duration::from_secs(60);
const WRITE_SIZE: usize = 64 * 1024;

/// How the upstream answers the next requests.
#[derive(Debug, Clone)]
pub enum Act {
    /// A correct answer: a JSON completion, or a short stream ending in `[DONE]`.
    Normal,
    /// A 200 head, then `piece` every `every`, forever (a body that never ends).
    Trickle {
        content_type: &'static str,
        piece: &'static str,
        every: Duration,
    },
    /// A 200 head, then silence with the connection held open.
    Stall { content_type: &'static str },
    /// An event stream whose one `data:` line runs `len` bytes before its line end (then
    /// `[DONE]`), written as fast as the peer takes it.
    LongLine { len: usize },
    /// A 200 with a `content-length` of `len`: a JSON completion padded to that size.
    Huge { len: usize },
    /// A 200 with this content type and exactly this body.
    Fixed {
        content_type: &'static str,
        body: String,
    },
}

/// What happened to one answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Body bytes written before the answer ended.
    pub written: usize,
    /// The whole scripted answer was written (false: the peer hung up first).
    pub complete: bool,
}

/// A misbehaving upstream; dropping it stops it, answers in progress included.
pub struct Misbehaving {
    pub server: TestServer,
    act: Arc<Mutex<Act>>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl Misbehaving {
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn act(&self, act: Act) {
        *self.act.lock().unwrap() = act;
    }

    /// Answers that have ended so far, in the order they ended.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }

    /// Waits (up to `within`) until `n` answers have ended, and returns them.
    pub async fn ended(&self, n: usize, within: Duration) -> Vec<Exchange> {
        let t0 = Instant::now();
        loop {
            let seen = self.exchanges();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                t0.elapsed() < within,
                "only {} of {n} answers ended within {within:?}: {seen:?}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts a misbehaving upstream on 127.0.0.1:0, acting `act` until told otherwise.
pub async fn misbehaving(act: Act) -> Misbehaving {
    let act = Arc::new(Mutex::new(act));
    let exchanges = Arc::new(Mutex::new(Vec::new()));
    let (a, x) = (act.clone(), exchanges.clone());
    let server = serve_raw(move |tcp| {
        let (a, x) = (a.clone(), x.clone());
        async move {
            let _ = tokio::time::timeout(GIVE_UP, answer(tcp, a, x)).await;
        }
    })
    .await;
    Misbehaving {
        server,
        act,
        exchanges,
    }
}

/// Reads one request (head and `content-length` body); its body says whether it streams.
pub async fn read_request(tcp: &mut TcpStream) -> Option<bool> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: serde_json::Value = serde_json::from_slice(&buf[head_end..]).unwrap_or_default();
    Some(body["stream"].as_bool().unwrap_or(false))
}

fn head(content_type: &str, length: Option<usize>) -> String {
    let framing = match length {
        Some(n) => format!("content-length: {n}"),
        None => "transfer-encoding: chunked".into(),
    };
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n{framing}\r\nconnection: close\r\n\r\n"
    )
}

async fn chunk(tcp: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
    framed.extend_from_slice(data);
    framed.extend_from_slice(b"\r\n");
    tcp.write_all(&framed).await
}

async fn answer(mut tcp: TcpStream, act: Arc<Mutex<Act>>, exchanges: Arc<Mutex<Vec<Exchange>>>) {
    let Some(stream) = read_request(&mut tcp).await else {
        return;
    };
    let act = act.lock().unwrap().clone();
    let mut written = 0usize;
    let complete = match act {
        Act::Normal => {
            let (ct, body) = if stream {
                ("text/event-stream", stream_body("bad", 2, true, true))
            } else {
                ("application/json", completion_json("bad"))
            };
            let r = tcp.write_all(head(ct, Some(body.len())).as_bytes()).await;
            let r = r.and(tcp.write_all(body.as_bytes()).await);
            written = body.len();
            r.is_ok()
        }
        Act::Fixed { content_type, body } => {
            let r = tcp
                .write_all(head(content_type, Some(body.len())).as_bytes())
                .await;
            let r = r.and(tcp.write_all(body.as_bytes()).await);
            written = body.len();
            r.is_ok()
        }
        Act::Trickle {
            content_type,
            piece,
            every,
        } => {
            if tcp
                .write_all(head(content_type, None).as_bytes())
                .await
                .is_ok()
            {
                while chunk(&mut tcp, piece.as_bytes()).await.is_ok() {
                    written += piece.len();
                    tokio::time::sleep(every).await;
                }
            }
            false
        }
        Act::Stall { content_type } => {
            if tcp
                .write_all(head(content_type, None).as_bytes())
                .await
                .is_ok()
            {
                // Hold the connection until the peer gives up on it.
                let mut sink = [0u8; 1024];
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
            }
            false
        }
        Act::LongLine { len } => {
            let mut ok = tcp
                .write_all(head("text/event-stream", None).as_bytes())
                .await
                .is_ok()
                && chunk(&mut tcp, b"data: ").await.is_ok();
            let block = vec![b'x'; WRITE_SIZE];
            while ok && written < len {
                let n = WRITE_SIZE.min(len - written);
                ok = chunk(&mut tcp, &block[..n]).await.is_ok();
                if ok {
                    written += n;
                }
            }
            ok && chunk(&mut tcp, b"\n\ndata: [DONE]\n\n").await.is_ok()
                && tcp.write_all(b"0\r\n\r\n").await.is_ok()
        }
        Act::Huge { len } => {
            let open = br#"{"id":"chatcmpl-huge","object":"chat.completion","choices":[],"pad":""#;
            let close = br#""}"#;
            let pad = len.saturating_sub(open.len() + close.len());
            let mut ok = tcp
                .write_all(
                    head("application/json", Some(open.len() + pad + close.len())).as_bytes(),
                )
                .await
                .is_ok()
                && tcp.write_all(open).await.is_ok();
            let block = vec![b'x'; WRITE_SIZE];
            let mut padded = 0usize;
            while ok && padded < pad {
                let n = WRITE_SIZE.min(pad - padded);
                ok = tcp.write_all(&block[..n]).await.is_ok();
                if ok {
                    padded += n;
                }
            }
            written = open.len() + padded;
            ok && tcp.write_all(close).await.is_ok()
        }
    };
    let _ = tcp.shutdown().await;
    exchanges
        .lock()
        .unwrap()
        .push(Exchange { written, complete });
}
