//! A body as an SQLite column value, for every table that stores one
//! (`exchanges`, `approvals`).

use bytes::Bytes;
use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, ValueRef};

/// A body column: TEXT when it is valid UTF-8 (readable with the `sqlite3`
/// shell and `json_extract`), BLOB otherwise. Borrowed, never copied.
pub(crate) struct Body<'a>(pub(crate) Option<&'a Bytes>);

impl ToSql for Body<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            None => ValueRef::Null,
            Some(b) if std::str::from_utf8(b).is_ok() => ValueRef::Text(b),
            Some(b) => ValueRef::Blob(b),
        }))
    }
}
