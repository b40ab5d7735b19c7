//! Scraping a `/metrics` endpoint: a GET with a deadline, and the samples of its Prometheus
//! (or OpenMetrics) text. The text format is a few rules, parsed here in full (label values
//! with escapes, commas and `=` inside quotes, `+Inf`/`NaN`, optional timestamps), which the
//! crates offered for it split naively.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

/// One sample line: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapedSample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Every sample of an exposition; comments and blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<ScrapedSample>, ParseError> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(line, l)| sample(l).map_err(|reason| ParseError { line, reason }))
        .collect()
}

fn sample(line: &str) -> Result<ScrapedSample, String> {
    let end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or("a sample without a value")?;
    let (name, mut rest) = line.split_at(end);
    if name.is_empty() {
        return Err("a sample without a name".into());
    }
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let value = rest
        .split_ascii_whitespace()
        .next()
        .ok_or_else(|| format!("`{name}` has no value"))?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .map_err(|_| format!("`{name}` has value {v:?}, not a number"))?,
    };
    Ok(ScrapedSample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Reads `name="value",...}` into `out`; returns what follows the closing brace.
fn parse_labels<'a>(mut s: &'a str, out: &mut BTreeMap<String, String>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("a label without `=`")?;
        let key = s[..eq].trim();
        s = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| format!("label `{key}`'s value is not quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let close = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("label `{key}`'s value ends in `\\`")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("label `{key}`'s value is not closed")),
            }
        };
        out.insert(key.to_string(), value);
        s = s[close + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// GETs a metrics URL; each scrape is one request with its own deadline.
#[derive(Clone)]
pub struct Scraper {
    uri: http::Uri,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Scraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraper").field("uri", &self.uri).finish()
    }
}

impl Scraper {
    /// A scraper trusting what the run's clients trust (`tls`), so an https:// endpoint
    /// behind the scenario's private CA is read too.
    pub fn new(url: &str, tls: &crate::tls::ClientTls, timeout: Duration) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let mut http = HttpConnector::new();
        // The TLS layer above takes https:// itself.
        http.enforce_http(false);
        let client =
            Client::builder(hyper_util::rt::TokioExecutor::new()).build(tls.connector(http));
        Ok(Self {
            uri,
            client,
            timeout,
        })
    }

    pub fn url(&self) -> String {
        self.uri.to_string()
    }

    /// One scrape: the samples, or why there are none this time.
    pub async fn scrape(&self) -> Result<Vec<ScrapedSample>, String> {
        let get = async {
            let resp = self
                .client
                .get(self.uri.clone())
                .await
                .map_err(|e| format!("GET failed: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("answered {}", resp.status()));
            }
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e}"))?
                .to_bytes();
            let text = std::str::from_utf8(&body).map_err(|_| "the body is not UTF-8")?;
            parse(text).map_err(|e| format!("not Prometheus text: {e}"))
        };
        match tokio::time::timeout(self.timeout, get).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_labels_and_special_values_are_read() {
        let text = "# HELP gateway_attempts Attempts.\n\
                    # TYPE gateway_attempts counter\n\
                    gateway_attempts_total{route=\"a,b=c\",outcome=\"ok\"} 42\n\
                    \n\
                    up 1 1700000000000\n\
                    odd{msg=\"say \\\"hi\\\"\\n\\\\\",} +Inf\n\
                    gone NaN\n\
                    # EOF\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name, "gateway_attempts_total");
        assert_eq!(s[0].labels["route"], "a,b=c");
        assert_eq!(s[0].labels["outcome"], "ok");
        assert_eq!(s[0].value, 42.0);
        assert_eq!(s[1].value, 1.0);
        assert!(s[1].labels.is_empty());
        assert_eq!(s[2].labels["msg"], "say \"hi\"\n\\");
        assert_eq!(s[2].value, f64::INFINITY);
        assert!(s[3].value.is_nan());
    }

    #[test]
    fn broken_lines_name_their_line() {
        let e = parse("ok 1\nbad{x=1} 2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("not quoted"), "{e}");
        assert!(
            parse("x{a=\"1\"} one\n")
                .unwrap_err()
                .reason
                .contains("not a number")
        );
        assert!(parse("x{a=\"1} 2\n").is_err());
        assert!(parse("<html>\n").is_err());
    }
}
