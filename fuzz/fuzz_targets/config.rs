//! `proxy.toml` text → validated config: any text is an error with a
//! position or a config, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = understudy::config::parse(text) {
            // Rendering the error (line and column from a byte offset) must not panic either.
            let _rendered = e.to_string();
        }
    }
});
