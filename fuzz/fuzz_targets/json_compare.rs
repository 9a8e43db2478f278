//! JSON comparison of two hostile bodies under rules taken from the input:
//! never a panic, never unbounded work, and a document always matches itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use understudy::compare::json;
use understudy::config::JsonCompare;
use understudy::pointer::Pointer;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut it = rest.splitn(3, |b| *b == 0xff);
    let (incumbent, candidate, pointer) = (
        it.next().unwrap_or(&[]),
        it.next().unwrap_or(&[]),
        it.next().unwrap_or(&[]),
    );
    let pointers: Vec<Pointer> = std::str::from_utf8(pointer)
        .ok()
        .and_then(|p| Pointer::parse(p).ok())
        .into_iter()
        .collect();
    let (ignore, only) = if flags & 4 == 0 {
        (pointers, Vec::new())
    } else {
        (Vec::new(), pointers)
    };
    let spec = JsonCompare {
        ignore,
        only,
        tolerance: if flags & 1 == 0 { 0.0 } else { 0.05 },
        abs_tolerance: if flags & 8 == 0 { 0.0 } else { 1.0 },
        unordered_arrays: flags & 2 != 0,
        noise: None,
    };
    let out = json::compare(&spec, &[], incumbent, candidate);
    assert!(out.diffs.len() <= json::MAX_DIFFS + 1, "{out:?}");
    if serde_json::from_slice::<serde_json::Value>(incumbent).is_ok() {
        let same = json::compare(&spec, &[], incumbent, &incumbent.to_vec());
        assert!(same.is_match(), "{same:?}");
        let reparsed: serde_json::Value = serde_json::from_slice(incumbent).unwrap();
        let a = serde_json::to_vec(&reparsed).unwrap();
        let itself = json::compare(&spec, &[], incumbent, &a);
        assert!(itself.is_match(), "a document against its own re-encoding: {itself:?}");
    }
});
