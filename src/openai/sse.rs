//! Server-sent events: an encoder for `data:` events and an incremental decoder whose output
//! does not depend on how the bytes were split across reads.

use bytes::{BufMut, Bytes, BytesMut};

/// What starts every `data:` line gauntlet writes (the space is optional when reading).
pub const DATA_PREFIX: &[u8] = b"data: ";
/// The data of the event that ends an OpenAI stream.
pub const DONE_DATA: &str = "[DONE]";
/// That event as written: `DATA_PREFIX`, `DONE_DATA`, a blank line.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// Encodes one event; data with newlines becomes several `data:` lines, as the spec requires.
pub fn encode_event(data: &[u8], out: &mut BytesMut) {
    out.reserve(data.len() + 8);
    for line in data.split(|&b| b == b'\n') {
        out.put_slice(DATA_PREFIX);
        out.put_slice(line);
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
}

/// Serialises `value` as JSON into one `data:` event.
pub fn encode_json<T: serde::Serialize>(value: &T) -> Result<Bytes, serde_json::Error> {
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(DATA_PREFIX);
    let mut w = out.writer();
    serde_json::to_writer(&mut w, value)?;
    let mut out = w.into_inner();
    out.put_slice(b"\n\n");
    Ok(out.freeze())
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if the server named one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    pub fn is_done(&self) -> bool {
        self.data == DONE_DATA
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("server-sent event larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("server-sent event data is not valid UTF-8")]
    InvalidUtf8,
}

/// Default bound on one line or one event's data, so an endless line cannot eat memory.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Incremental decoder following the WHATWG event-stream rules: LF, CRLF or CR line ends,
/// multi-line `data:`, comments, `event:`; unknown fields ignored.
#[derive(Debug)]
pub struct SseDecoder {
    /// A line not yet terminated, carried to the next feed.
    partial: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    /// The previous feed ended on CR: a leading LF in the next one belongs to it.
    after_cr: bool,
    limit: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }

    pub fn with_limit(limit: usize) -> Self {
        Self {
            partial: Vec::new(),
            data: Vec::new(),
            has_data: false,
            event: None,
            after_cr: false,
            limit,
        }
    }

    /// Feeds bytes, calling `on_event` for every event they complete.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        mut on_event: impl FnMut(SseEvent),
    ) -> Result<(), SseError> {
        // An empty read says nothing about whether an LF follows the CR: keep waiting.
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(i) = memchr::memchr2(b'\n', b'\r', bytes) {
            if self.partial.is_empty() {
                // The same bound as a line split across reads, so the answer never depends on
                // how the stream happened to be chunked.
                self.check(i)?;
                self.line(&bytes[..i], &mut on_event)?;
            } else {
                self.check(self.partial.len() + i)?;
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&bytes[..i]);
                self.line(&line, &mut on_event)?;
                line.clear();
                self.partial = line;
            }
            let mut next = i + 1;
            if bytes[i] == b'\r' {
                match bytes.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            bytes = &bytes[next..];
        }
        if !bytes.is_empty() {
            self.check(self.partial.len() + bytes.len())?;
            self.partial.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// The stream has ended: a last event without its blank line is still delivered.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        let mut last = None;
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, &mut |e| last = Some(e))?;
        }
        if last.is_none() && self.has_data {
            last = Some(self.dispatch()?);
        }
        self.after_cr = false;
        Ok(last)
    }

    fn check(&self, len: usize) -> Result<(), SseError> {
        if len > self.limit {
            Err(SseError::TooLarge { limit: self.limit })
        } else {
            Ok(())
        }
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent)) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                let ev = self.dispatch()?;
                on_event(ev);
            } else {
                self.event = None;
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.check(self.data.len() + value.len())?;
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                let name = std::str::from_utf8(value).map_err(|_| SseError::InvalidUtf8)?;
                self.event = Some(name.to_string());
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) -> Result<SseEvent, SseError> {
        self.has_data = false;
        let data = std::mem::take(&mut self.data);
        let event = self.event.take();
        let data = String::from_utf8(data).map_err(|_| SseError::InvalidUtf8)?;
        Ok(SseEvent { event, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_is_the_prefix_and_the_marker() {
        assert_eq!(DONE, [DATA_PREFIX, DONE_DATA.as_bytes(), b"\n\n"].concat());
        let ev = decode_all(&[DONE]);
        assert!(ev.len() == 1 && ev[0].is_done());
    }

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, |e| out.push(e)).unwrap();
        }
        out.extend(d.finish().unwrap());
        out
    }

    #[test]
    fn crlf_split_between_reads() {
        let ev = decode_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\r"]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data, "a");
        assert_eq!(ev[1].data, "b");
    }

    #[test]
    fn empty_read_between_cr_and_lf() {
        let ev = decode_all(&[b"event: x\r", b"", b"\ndata: a\r\n\r\n"]);
        assert_eq!(ev[0].event.as_deref(), Some("x"));
    }

    #[test]
    fn multiline_comments_event_names_and_final_event() {
        let ev = decode_all(&[b": keepalive\nevent: x\ndata: one\ndata:two\n\ndata: last"]);
        assert_eq!(ev[0].event.as_deref(), Some("x"));
        assert_eq!(ev[0].data, "one\ntwo");
        assert_eq!(ev[1].data, "last");
        assert_eq!(ev[1].event, None);
    }

    #[test]
    fn endless_line_is_bounded() {
        let mut d = SseDecoder::with_limit(16);
        let r = d
            .feed(&[b'x'; 10], |_| {})
            .and_then(|_| d.feed(&[b'x'; 10], |_| {}));
        assert_eq!(r, Err(SseError::TooLarge { limit: 16 }));
    }

    #[test]
    fn encoder_round_trips_newlines() {
        let mut out = BytesMut::new();
        encode_event(b"a\nb", &mut out);
        assert_eq!(&out[..], b"data: a\ndata: b\n\n");
        assert_eq!(decode_all(&[&out])[0].data, "a\nb");
    }
}
