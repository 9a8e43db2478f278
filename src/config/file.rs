//! The file shape of `proxy.toml`: serde structs, `deny_unknown_fields`, documented defaults.
