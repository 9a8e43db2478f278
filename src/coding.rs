//! `Content-Encoding` for comparison and redaction (docs/src/design/threat-model.md): a captured
//! body in `gzip`, `deflate` or `br` is decoded (to at most the store's cap)
//! before it is compared, redacted and stored, so two identical JSON answers
//! compressed differently compare equal and a compressed secret is redacted
//! like any other. The client always gets the bytes the upstream sent.

use bytes::Bytes;
use http::HeaderMap;
use std::io::Read;

/// A content coding we can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Br,
}

impl Coding {
    /// The body's coding from its `Content-Encoding`: `None` for none,
    /// `identity`, or a coding (or chain of codings) we do not decode.
    pub fn of(headers: &HeaderMap) -> Option<Coding> {
        let value = headers.get(http::header::CONTENT_ENCODING)?.to_str().ok()?;
        match value.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Br),
            _ => None,
        }
    }
}

/// What decoding a captured body gave.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    pub body: Bytes,
    /// Decoded output passed `cap`, or the compressed input ended early
    /// (itself cut at the cap): what came out first is kept.
    pub truncated: bool,
}

/// Decodes `body` to at most `cap` bytes; `None` when not a byte of it
/// decodes (then the caller keeps the raw bytes).
pub fn decode(body: &[u8], coding: Coding, cap: usize) -> Option<Decoded> {
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    let read = match coding {
        Coding::Gzip => flate2::read::MultiGzDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out),
        Coding::Deflate => {
            // RFC 9110's deflate is zlib-wrapped; some servers send raw deflate.
            let zlib = flate2::read::ZlibDecoder::new(body)
                .take(limit)
                .read_to_end(&mut out);
            if zlib.is_err() && out.is_empty() {
                flate2::read::DeflateDecoder::new(body)
                    .take(limit)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        Coding::Br => brotli_decompressor::Decompressor::new(body, 4096)
            .take(limit)
            .read_to_end(&mut out),
    };
    if read.is_err() && out.is_empty() {
        return None;
    }
    let over = out.len() > cap;
    out.truncate(cap);
    Some(Decoded {
        body: Bytes::from(out),
        truncated: over || read.is_err(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const JSON: &[u8] = br#"{"score": 0.9, "email": "ann@example.com"}"#;

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn br(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
        drop(w);
        out
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn each_coding_decodes_to_the_same_body() {
        for (coding, encoded) in [
            (Coding::Gzip, gzip(JSON)),
            (Coding::Br, br(JSON)),
            (Coding::Deflate, zlib(JSON)),
            (Coding::Deflate, raw_deflate(JSON)),
        ] {
            let d = decode(&encoded, coding, 1024).unwrap();
            assert_eq!((&d.body[..], d.truncated), (JSON, false), "{coding:?}");
        }
    }

    #[test]
    fn output_is_capped_and_a_cut_input_keeps_what_decoded() {
        // A bomb: 10 MB of zeros in a few KB, decoded only to the cap.
        let bomb = gzip(&vec![b'0'; 10_000_000]);
        let d = decode(&bomb, Coding::Gzip, 1000).unwrap();
        assert_eq!((d.body.len(), d.truncated), (1000, true));
        // Compressed input cut at a capture cap: the prefix that decoded.
        let long: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let z = gzip(&long);
        let d = decode(&z[..z.len() / 2], Coding::Gzip, usize::MAX).unwrap();
        assert!(d.truncated && !d.body.is_empty() && long.starts_with(&d.body));
        assert_eq!(decode(b"not gzip", Coding::Gzip, 100), None);
    }

    #[test]
    fn codings_are_read_from_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(Coding::of(&h), None);
        for (v, c) in [
            ("gzip", Some(Coding::Gzip)),
            ("BR", Some(Coding::Br)),
            ("identity", None),
            ("gzip, br", None),
        ] {
            h.insert("content-encoding", v.parse().unwrap());
            assert_eq!(Coding::of(&h), c, "{v}");
        }
    }
}
