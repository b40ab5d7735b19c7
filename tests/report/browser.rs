//! The report in a real browser: headless Chromium opens `index.html` offline, logs no console
//! errors, and takes a full-page screenshot that is not blank.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs Chromium on `html` and returns its stderr log; the screenshot lands at `png`.
pub fn screenshot(html: &Path, png: &Path, profile: &Path, log: &Path) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install the Debian `chromium` package (apt-get install -y chromium); \
         the browser test needs it"
    );
    let log_file = std::fs::File::create(log).unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within 60 s; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Console errors and failed loads, as Chromium logs them.
pub fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("Uncaught")
                || l.contains("ERROR:CONSOLE")
                || (l.contains("CONSOLE") && l.to_lowercase().contains("error"))
                || l.contains("Failed to load resource")
        })
        .collect()
}

#[test]
fn report_renders_in_headless_chromium_without_console_errors() {
    let dir = tempfile::tempdir().unwrap();
    gauntlet::report::write_all(&super::fixture::quickstart(), dir.path()).unwrap();
    let png = dir.path().join("report.png");
    let log = screenshot(
        &dir.path().join("index.html"),
        &png,
        &dir.path().join("profile"),
        &dir.path().join("chromium.log"),
    );
    let errors = console_errors(&log);
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot ({e}); log:\n{log}"));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 4000));
    // A blank page compresses to a few KB; tables and charts do not.
    assert!(
        bytes.len() > 60_000,
        "screenshot is {} bytes: looks empty",
        bytes.len()
    );
}
