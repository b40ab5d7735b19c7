//! The scenario loader never panics, whatever the text; errors stay located in the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    if let Err(errors) = gauntlet::scenario::load_str("fuzz.toml", text) {
        let shown = errors.to_string();
        assert!(shown.contains("fuzz.toml"), "unlocated error: {shown}");
    }
});
