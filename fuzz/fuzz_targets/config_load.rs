//! The mock-profile and gateway-file loaders never panic, whatever the text.
#![no_main]

use gauntlet::config::Source;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let src = Source::new("fuzz.toml", text);
    let _ = gauntlet::mock::Profile::parse(&src);
    let _ = gauntlet::gateway::Config::from_source(&src);
});
