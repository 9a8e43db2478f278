//! Header and JSON-pointer redaction, applied before a row is queued.
