//! `gauntlet run --source-ips`: one generator's connections leave from several local
//! addresses, dealt out in turn, and a list that is not this machine's is refused up front.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::support::{CHAT, chat_server, completion_json, gauntlet_run, reply};

/// A closed-model scenario of `users` sending to `url` for two seconds.
fn scenario(dir: &Path, url: &str, users: usize) -> PathBuf {
    let path = dir.join("sources.toml");
    let text = format!(
        r#"name = "sources"
seed = 3
[target]
url = "{url}"
[load]
model = "closed"
concurrency = {users}
duration = "2s"
[[requests]]
name = "chat"
weight = 1
model = "m"
prompt = "hello"
max_tokens = 4
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_leaves_from_every_source_address_in_turn() {
    // Requests per source address, as the server saw them.
    let seen: Arc<Mutex<BTreeMap<IpAddr, usize>>> = Arc::default();
    let s = seen.clone();
    let server = chat_server(move |r| {
        if let Some(peer) = r.peer {
            *s.lock().unwrap().entry(peer.ip()).or_default() += 1;
        }
        reply(200, &[], completion_json("alpha"))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), &server.url(), 6);
    let out = dir.path().join("run");
    let (code, stderr) = gauntlet_run(
        &path,
        &out,
        &["--source-ips", "127.0.0.2,127.0.0.3-127.0.0.4"],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let seen = seen.lock().unwrap().clone();
    let sources: Vec<IpAddr> = seen.keys().copied().collect();
    let expected: Vec<IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    // Every load request came from a named address, and each address carried load: six
    // users' connections dealt out in turn over three addresses.
    assert_eq!(sources, expected, "requests per source address: {seen:?}");
    let total: usize = seen.values().sum();
    assert_eq!(total, server.hits(CHAT), "{seen:?}");
    for (addr, n) in &seen {
        assert!(*n * 10 >= total, "{addr} carried {n} of {total}: {seen:?}");
    }
    server.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_source_list_is_refused_naming_the_flag_and_value() {
    let server = chat_server(|_| reply(200, &[], completion_json("alpha"))).await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), &server.url(), 1);
    for (list, why) in [
        ("127.0.0.9-127.0.0.2", "runs backwards"),
        ("127.0.0.2,nope", "`nope` is not an IP address"),
        ("127.0.0.1-::1", "mixes IPv4 and IPv6"),
        // TEST-NET-1 (RFC 5737): no machine has it.
        ("192.0.2.1", "192.0.2.1 is not an address of this machine"),
    ] {
        let out = dir.path().join("run");
        let (code, stderr) = gauntlet_run(&path, &out, &["--source-ips", list]).await;
        assert_eq!(code, Some(2), "{list}: {stderr}");
        assert!(
            stderr.contains(&format!("--source-ips `{list}`")) && stderr.contains(why),
            "{list}: {stderr}"
        );
        assert!(!out.exists(), "{list}: refused before anything started");
    }
    assert_eq!(server.hits(CHAT), 0, "no load was sent");
    server.join().await;
}
