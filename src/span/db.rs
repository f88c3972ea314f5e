//! Facts about one database query, recorded by the postgres route and
//! rendered into OpenTelemetry database semantic-convention attributes at
//! export time (`export::tags`).
//!
//! Every text here is already sanitised: the query text has its literals
//! replaced by `?` (`postgres::query`), and nothing else comes from the
//! query or its parameters, which are user data.

use std::sync::Arc;

/// What a database span says about its query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbFacts {
    /// `db.system.name` (`postgresql`).
    pub system: &'static str,
    /// `db.namespace`: the database named in the startup message.
    pub namespace: Option<Arc<str>>,
    /// `db.operation.name`, upper case (`SELECT`).
    pub operation: Option<Arc<str>>,
    /// `db.collection.name`, when the statement names exactly one table.
    pub collection: Option<Arc<str>>,
    /// `db.query.text`, sanitised.
    pub query_text: Arc<str>,
    /// `db.response.status_code`: the SQLSTATE of an `ErrorResponse`.
    pub status_code: Option<[u8; 5]>,
    /// `db.response.returned_rows`, from `CommandComplete` of a `SELECT`/`FETCH`.
    pub returned_rows: Option<u64>,
    /// `server.address` and `server.port` of the database.
    pub server: (Arc<str>, u16),
}

impl DbFacts {
    /// The SQLSTATE as text, when it is one (five ASCII characters).
    pub fn status_text(&self) -> Option<&str> {
        self.status_code
            .as_ref()
            .and_then(|code| std::str::from_utf8(code).ok())
    }
}
