//! HTTPS end to end, on loopback: a team's staging gateway speaks TLS with a private CA, maybe
//! asks for a client certificate, and may pick HTTP/2 by ALPN. gauntlet's load, its mocks, its
//! gateway (both sides) and its control client speak it, and a certificate problem stops the
//! run at once with a reason a person can act on.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gauntlet::engine::{self, RunOptions};
use gauntlet::gateway::{Config, GatewayTls};
use gauntlet::mock;
use gauntlet::tls::{ALPN_H2, ALPN_HTTP1, ClientSettings, SelfSigned, ServerFiles, server_config};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;

use crate::support::{class, closed_load, completion_json, instant_profile, open_load, scenario};

fn never_stop() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    rx
}

fn trusting(ca: &Path) -> RunOptions {
    RunOptions {
        quiet: true,
        tls: ClientSettings {
            ca_certs: vec![ca.to_path_buf()],
            identity: None,
        },
        ..RunOptions::default()
    }
}

/// A TLS mock named `alpha` serving model `m`, with a certificate from `server`.
async fn tls_mock(server: &ServerFiles) -> mock::MockHandle {
    let config = server_config(server, &[ALPN_HTTP1]).unwrap();
    mock::start_tls(
        instant_profile(""),
        "alpha",
        "127.0.0.1:0".parse().unwrap(),
        None,
        config,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_gateway_in_front_of_an_https_provider_is_measured_like_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let pki = SelfSigned::generate(dir.path()).unwrap();
    let m = tls_mock(&pki.server).await;
    assert!(m.url().starts_with("https://127.0.0.1:"), "{}", m.url());
    let toml = format!(
        "[[upstreams]]\nname = \"alpha\"\nurl = \"{}\"\n\n[[routes]]\nmodel = \"m\"\n\
         targets = [\"alpha\"]\n",
        m.url()
    );
    let config = Config::from_source(&gauntlet::config::Source::new("gw.toml", toml)).unwrap();
    let tls = GatewayTls {
        serve: Some(server_config(&pki.server, &[ALPN_H2, ALPN_HTTP1]).unwrap()),
        upstreams: ClientSettings {
            ca_certs: vec![pki.ca.clone()],
            identity: None,
        },
    };
    let gw = gauntlet::gateway::start_with(config, "127.0.0.1:0".parse().unwrap(), tls)
        .await
        .unwrap();
    assert!(gw.url().starts_with("https://"), "{}", gw.url());

    // Open model (shared connections) and closed model (each user's own), streamed and not.
    for (load, stream) in [
        (open_load(50.0, Duration::from_secs(2)), true),
        (
            closed_load(4, Duration::from_secs(2), Duration::ZERO),
            false,
        ),
    ] {
        let sc = scenario(&gw.url(), load, vec![class("c", 1, "m", stream)]);
        let run = engine::run_scenario(&sc, &trusting(&pki.ca), never_stop())
            .await
            .unwrap();
        let s = &run.summary.overall;
        assert!(s.requests > 0);
        assert_eq!(s.successes, s.requests, "stream={stream}: {:?}", s.errors);
        assert_eq!(s.served_by.get("alpha"), Some(&s.requests));
    }
    // And straight to the TLS mock, which offers HTTP/1.1 only.
    let sc = scenario(
        &m.url(),
        open_load(50.0, Duration::from_secs(1)),
        vec![class("c", 1, "m", true)],
    );
    let run = engine::run_scenario(&sc, &trusting(&pki.ca), never_stop())
        .await
        .unwrap();
    assert_eq!(run.summary.overall.successes, run.summary.overall.requests);
    assert!(m.stats().requests_total > 0);
}

/// A TLS server offering h2 and http/1.1 that answers every request with a completion and
/// notes the HTTP version it arrived in.
async fn version_recorder(server: &ServerFiles) -> (String, Arc<Mutex<Vec<http::Version>>>) {
    let config = server_config(server, &[ALPN_H2, ALPN_HTTP1]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let noted = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let noted = noted.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    noted.lock().unwrap().push(req.version());
                    async move {
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(completion_json("alpha"))))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_picks_http2_when_the_server_offers_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = SelfSigned::generate(dir.path()).unwrap();
    let (url, seen) = version_recorder(&pki.server).await;
    for load in [
        open_load(40.0, Duration::from_secs(1)),
        closed_load(3, Duration::from_secs(1), Duration::ZERO),
    ] {
        let sc = scenario(&url, load, vec![class("c", 1, "m", false)]);
        let run = engine::run_scenario(&sc, &trusting(&pki.ca), never_stop())
            .await
            .unwrap();
        assert_eq!(run.summary.overall.successes, run.summary.overall.requests);
    }
    let seen = seen.lock().unwrap();
    // The preflight's probe is one of them; every request went over HTTP/2.
    assert!(seen.len() > 10, "{}", seen.len());
    assert!(
        seen.iter().all(|v| *v == http::Version::HTTP_2),
        "{:?}",
        seen.iter().filter(|v| **v != http::Version::HTTP_2).count()
    );
}

// ---- The command line: `gauntlet mock --tls-self-signed`, `gauntlet run --ca-cert`. ----

fn gauntlet(args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .env_remove("GITHUB_STEP_SUMMARY")
        .args(args)
        .output()
        .unwrap();
    (out, t.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `gauntlet mock` with extra args, and the first provider's JSON line; killed on drop.
struct MockProcess {
    child: std::process::Child,
    line: serde_json::Value,
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mock_process(dir: &Path, tls: &[&str]) -> MockProcess {
    use std::io::BufRead;
    let fleet = dir.join("fleet.toml");
    let profile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mock-upstreams/deepseek-v4-flash.toml"
    );
    std::fs::write(
        &fleet,
        format!("[[providers]]\nname = \"deepseek\"\nprofile = \"{profile}\"\nport = 0\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["mock", "--config", fleet.to_str().unwrap()])
        .args(tls)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let line = lines.next().unwrap().unwrap();
    MockProcess {
        child,
        line: serde_json::from_str(&line).unwrap(),
    }
}

/// A scenario sending a short, light mix straight to `url`.
fn direct_scenario(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let path = dir.join("https.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"https\"\n{extra}\n[target]\nurl = \"{url}\"\n\n[load]\nstages = [{{ \
             duration = \"2s\", rate = 20 }}]\n\n[[requests]]\nname = \"c\"\nmodel = \
             \"deepseek-v4-flash\"\nprompt = \"hi\"\nmax_tokens = 8\nstream = true\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_run_trusts_a_private_ca_given_by_flag_or_by_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("pki");
    let m = mock_process(
        dir.path(),
        &["--tls-self-signed", tls_dir.to_str().unwrap()],
    );
    let url = m.line["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = m.line["ca_cert"].as_str().unwrap().to_string();
    assert_eq!(
        Path::new(&ca),
        tls_dir.canonicalize().unwrap().join("ca.pem")
    );

    let sc = direct_scenario(dir.path(), &url, "");
    let out_dir = dir.path().join("run1");
    let (out, _) = gauntlet(&[
        "run",
        sc.to_str().unwrap(),
        "--ca-cert",
        &ca,
        "-q",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let overall = &summary["overall"];
    assert!(overall["requests"].as_u64().unwrap() > 10, "{overall}");
    assert_eq!(overall["successes"], overall["requests"]);

    // The same CA named in the scenario, relative to its folder.
    std::fs::copy(&ca, dir.path().join("private-ca.pem")).unwrap();
    let sc = direct_scenario(dir.path(), &url, "[tls]\nca_cert = \"private-ca.pem\"\n");
    let out_dir = dir.path().join("run2");
    let (out, _) = gauntlet(&[
        "run",
        sc.to_str().unwrap(),
        "-q",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn an_untrusted_or_misnamed_certificate_stops_the_run_at_once_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("pki");
    let m = mock_process(
        dir.path(),
        &["--tls-self-signed", tls_dir.to_str().unwrap()],
    );
    let url = m.line["url"].as_str().unwrap().to_string();

    // Nobody told gauntlet about the private CA.
    let sc = direct_scenario(dir.path(), &url, "");
    let (out, took) = gauntlet(&[
        "run",
        sc.to_str().unwrap(),
        "-q",
        "--out",
        dir.path().join("r").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("unknown issuer") && err.contains("--ca-cert"),
        "{err}"
    );
    assert!(err.contains(&url), "{err}");
    assert!(
        took < Duration::from_secs(30),
        "failed fast, not after the plan: {took:?}"
    );

    // A certificate for another name, from a CA the run does trust.
    let (ca, cert, key) = gauntlet::tls::generate_pems("other CA", &["example.test"]).unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    for (name, text) in [("ca.pem", &ca), ("cert.pem", &cert), ("key.pem", &key)] {
        std::fs::write(other.join(name), text).unwrap();
    }
    let misnamed = mock_process(
        &other,
        &[
            "--tls-cert",
            other.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            other.join("key.pem").to_str().unwrap(),
        ],
    );
    let url = misnamed.line["url"].as_str().unwrap().to_string();
    let sc = direct_scenario(&other, &url, "");
    let (out, _) = gauntlet(&[
        "run",
        sc.to_str().unwrap(),
        "-q",
        "--ca-cert",
        other.join("ca.pem").to_str().unwrap(),
        "--out",
        other.join("r").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong name"), "{}", stderr(&out));
}

#[test]
fn a_server_that_asks_for_a_client_certificate_gets_one_from_client_cert() {
    let dir = tempfile::tempdir().unwrap();
    let pki = SelfSigned::generate(&dir.path().join("server")).unwrap();
    let (client_ca, client_cert, client_key) =
        gauntlet::tls::generate_pems("client CA", &["load-generator"]).unwrap();
    let files = dir.path().join("client");
    std::fs::create_dir_all(&files).unwrap();
    for (name, text) in [
        ("ca.pem", &client_ca),
        ("cert.pem", &client_cert),
        ("key.pem", &client_key),
    ] {
        std::fs::write(files.join(name), text).unwrap();
    }
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let m = mock_process(
        dir.path(),
        &[
            "--tls-cert",
            &path(&pki.server.cert),
            "--tls-key",
            &path(&pki.server.key),
            "--tls-client-ca",
            &path(&files.join("ca.pem")),
        ],
    );
    let url = m.line["url"].as_str().unwrap().to_string();
    let sc = direct_scenario(dir.path(), &url, "");
    let run = |extra: &[&str], out: &str| {
        let mut args = vec![
            "run".to_string(),
            path(&sc),
            "-q".into(),
            "--ca-cert".into(),
            path(&pki.ca),
            "--out".into(),
            path(&dir.path().join(out)),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gauntlet(&args).0
    };
    let without = run(&[], "without");
    assert_eq!(without.status.code(), Some(3), "{}", stderr(&without));
    assert!(
        stderr(&without).contains("client certificate"),
        "{}",
        stderr(&without)
    );
    let with = run(
        &[
            "--client-cert",
            &path(&files.join("cert.pem")),
            "--client-key",
            &path(&files.join("key.pem")),
        ],
        "with",
    );
    assert_eq!(with.status.code(), Some(0), "{}", stderr(&with));
}

#[test]
fn certificate_files_that_are_wrong_are_input_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a certificate\n").unwrap();
    let sc = direct_scenario(dir.path(), "https://127.0.0.1:9", "");
    let (out, _) = gauntlet(&[
        "run",
        sc.to_str().unwrap(),
        "--ca-cert",
        notes.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--ca-cert") && stderr(&out).contains("notes.txt"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("holds no certificate"),
        "{}",
        stderr(&out)
    );

    let (out, _) = gauntlet(&[
        "run",
        sc.to_str().unwrap(),
        "--client-cert",
        notes.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--client-key"), "{}", stderr(&out));

    // In the scenario: the error points at the line and names the key and the file.
    let sc = direct_scenario(
        dir.path(),
        "https://127.0.0.1:9",
        "[tls]\nca_cert = \"missing.pem\"\n",
    );
    let (out, _) = gauntlet(&["validate", sc.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("https.toml:3:"), "{err}");
    assert!(
        err.contains("tls.ca_cert") && err.contains("missing.pem"),
        "{err}"
    );

    // Keys go in `api_key`, never in a URL.
    let sc = direct_scenario(dir.path(), "https://user:secret@127.0.0.1:9", "");
    let (out, _) = gauntlet(&["validate", sc.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("credentials in a URL"),
        "{}",
        stderr(&out)
    );
}

/// `gauntlet gateway` with the CLI's TLS flags: HTTPS in with a generated CA, HTTPS out to a
/// TLS mock it trusts by `--ca-cert`.
#[test]
fn the_reference_gateway_serves_https_and_reaches_https_providers() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let m = mock_process(
        dir.path(),
        &["--tls-self-signed", dir.path().join("up").to_str().unwrap()],
    );
    let up_url = m.line["url"].as_str().unwrap().to_string();
    let up_ca = m.line["ca_cert"].as_str().unwrap().to_string();
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "[[upstreams]]\nname = \"deepseek\"\nurl = \"{up_url}\"\n\n[[routes]]\nmodel = \
             \"deepseek-v4-flash\"\ntargets = [\"deepseek\"]\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw_pki = dir.path().join("gw");
    let mut gw = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["gateway", "--config", config.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--tls-self-signed",
            gw_pki.to_str().unwrap(),
            "--ca-cert",
            &up_ca,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    let mut lines = std::io::BufReader::new(gw.stderr.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        said.push_str(&line);
        if line.contains("listening on") {
            break;
        }
    }
    assert!(
        said.contains(&format!("https://127.0.0.1:{port}")),
        "{said}"
    );
    let url = format!("https://127.0.0.1:{port}");
    let sc = direct_scenario(dir.path(), &url, "");
    let out_dir = dir.path().join("run");
    let (out, _) = gauntlet(&[
        "run",
        sc.to_str().unwrap(),
        "-q",
        "--ca-cert",
        gw_pki.join("ca.pem").to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let _ = gw.kill();
    let _ = gw.wait();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let overall = &summary["overall"];
    assert_eq!(overall["successes"], overall["requests"], "{overall}");
    assert_eq!(
        overall["served_by"]["deepseek"], overall["requests"],
        "{overall}"
    );
}

/// A TLS server (HTTP/1.1) that answers one completion per connection and closes it, as a
/// gateway without keep-alive does.
async fn closing_server(server: &ServerFiles) -> String {
    let config = server_config(server, &[ALPN_HTTP1]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(|_req: http::Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/json")
                            .header("connection", "close")
                            .body(Full::new(Bytes::from(completion_json("alpha"))))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_closes_its_connections_shows_up_as_handshakes_and_sessions_resume() {
    let dir = tempfile::tempdir().unwrap();
    let pki = SelfSigned::generate(dir.path()).unwrap();
    let m = tls_mock(&pki.server).await;
    let closing = closing_server(&pki.server).await;
    let run = |url: String| {
        let ca = pki.ca.clone();
        async move {
            let load = closed_load(4, Duration::from_secs(2), Duration::ZERO);
            let sc = scenario(&url, load, vec![class("c", 1, "m", false)]);
            engine::run_scenario(&sc, &trusting(&ca), never_stop())
                .await
                .unwrap()
                .summary
        }
    };

    let kept = run(m.url()).await;
    let c = kept.overall.connections;
    assert_eq!(kept.overall.successes, kept.overall.requests);
    assert!(kept.overall.requests > 40, "{:?}", kept.overall);
    assert!(
        (4..=8).contains(&c.opened),
        "four users, one kept-alive connection each: {c:?}"
    );
    assert_eq!(c.tls_full + c.tls_resumed, c.opened, "{c:?}");

    let closed = run(closing).await;
    let c2 = closed.overall.connections;
    let requests = closed.overall.requests;
    assert_eq!(
        closed.overall.successes, requests,
        "{:?}",
        closed.overall.errors
    );
    assert!(
        c2.opened * 10 >= requests * 9,
        "nearly every request opened a connection: {c2:?} of {requests}"
    );
    assert!(
        c2.tls_resumed > c2.tls_full,
        "one TLS configuration for the run: later handshakes resume: {c2:?}"
    );
    let (share_kept, share_closed) = (c.handshake_share.unwrap(), c2.handshake_share.unwrap());
    assert!(
        share_closed > share_kept,
        "connecting costs a share of the time: {share_closed} vs {share_kept}"
    );
    // And per interval, where a report can show when it started.
    let busy = closed
        .intervals
        .iter()
        .filter(|iv| iv.overall.requests > 0)
        .collect::<Vec<_>>();
    assert!(!busy.is_empty());
    assert!(
        busy.iter()
            .all(|iv| iv.overall.connections.opened * 10 >= iv.overall.requests * 8),
        "every interval shows it"
    );
}

/// The shipped external-https scenario, as its comment says to run it: the mocks, the
/// reference gateway over HTTPS with a self-made CA, and `gauntlet run --ca-cert`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_external_https_scenario_passes_against_the_reference_gateway_over_tls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let pki = SelfSigned::generate(&dir.path().join("pki")).unwrap();
    let mut mocks = Vec::new();
    for (name, profile) in [
        ("deepseek", "deepseek-v4-flash.toml"),
        ("qwen", "qwen3-32b.toml"),
        ("premium", "deepseek-r1.toml"),
    ] {
        let p = gauntlet::mock::Profile::load(&root.join("mock-upstreams").join(profile)).unwrap();
        mocks.push(
            mock::start(p, name, "127.0.0.1:0".parse().unwrap(), None)
                .await
                .unwrap(),
        );
    }
    let mut gw_text = std::fs::read_to_string(root.join("examples/gateway.toml")).unwrap();
    let mut sc_text = std::fs::read_to_string(root.join("scenarios/external-https.toml")).unwrap();
    for (i, m) in mocks.iter().enumerate() {
        let fixed = format!("http://127.0.0.1:800{}", i + 1);
        gw_text = gw_text.replace(&fixed, &m.url());
        sc_text = sc_text.replace(&fixed, &m.url());
    }
    let config = Config::from_source(&gauntlet::config::Source::new("gw.toml", gw_text)).unwrap();
    let tls = GatewayTls {
        serve: Some(server_config(&pki.server, &[ALPN_H2, ALPN_HTTP1]).unwrap()),
        upstreams: ClientSettings::default(),
    };
    let gw = gauntlet::gateway::start_with(config, "127.0.0.1:0".parse().unwrap(), tls)
        .await
        .unwrap();
    let sc_text = sc_text.replace("https://127.0.0.1:8443", &gw.url());
    let scenario = dir.path().join("external-https.toml");
    std::fs::write(&scenario, sc_text).unwrap();
    let out = dir.path().join("run");
    let done = tokio::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("run")
        .arg(&scenario)
        .args(["-q", "--duration", "12s", "--rate", "60", "--ca-cert"])
        .arg(&pki.ca)
        .arg("--out")
        .arg(&out)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(done.status.code(), Some(0), "{stderr}\n{}", summary["sla"]);
    assert!(summary["target"].as_str().unwrap().starts_with("https://"));
    let c = &summary["overall"]["connections"];
    // The preflight's handshake was the full one: measured connections resume its session.
    assert!(c["tls_resumed"].as_u64().unwrap() >= 1, "{c}");
    assert_eq!(
        c["opened"].as_u64().unwrap(),
        c["tls_full"].as_u64().unwrap() + c["tls_resumed"].as_u64().unwrap(),
        "every connection to an https target is a TLS one: {c}"
    );
}
