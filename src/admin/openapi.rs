//! The admin API's OpenAPI 3.1 document, served at `GET /api/v1/openapi.json`
//! without a token (it holds nothing but the API's shape).
//!
//! Written by hand in `openapi.json` beside this file, and kept true by
//! tests: every endpoint of [`super::endpoint::TABLE`] is in it and every
//! path in it is served, real answers validate against its schemas, and the
//! copy in `docs/src/reference/openapi.json` is the same text.

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");
