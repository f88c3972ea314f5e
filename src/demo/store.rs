//! Where user-service reads its users: the seeded in-memory list, or a
//! PostgreSQL database (`tracehop demo --postgres URL`, `demo-app
//! user-service --postgres URL`) reached as any app reaches its database,
//! here through its sidecar's postgres route.
//!
//! Plain SQL through `tokio-postgres`: the table is created and seeded from
//! [`USERS`] when missing. Each query carries the incoming request's
//! `traceparent` in a sqlcommenter comment (`/*traceparent='…'*/`), the
//! database counterpart of [`super::copy_trace_headers`]: it is what ties
//! the query's span to the request it serves.

use std::future::Future;

use http::HeaderMap;
use serde::Serialize;
use tokio_postgres::{Client, NoTls};

use super::data::{USERS, User};

/// The users table, created and seeded when missing.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS users (\
     id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL)";
const SEED: &str =
    "INSERT INTO users (id, name, email) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING";

/// A user as the database returns it (the same JSON as [`User`]).
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct UserRow {
    pub id: u32,
    pub name: String,
    pub email: String,
}

impl From<&User> for UserRow {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            name: user.name.to_owned(),
            email: user.email.to_owned(),
        }
    }
}

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("user-service database: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("user-service database: the connection closed while seeding")]
    Closed,
}

/// user-service's data.
#[derive(Debug)]
pub enum Users {
    /// The seeded list ([`USERS`]).
    Seeded,
    Postgres(Client),
}

impl Users {
    /// Connects to `url`, creates and seeds the table when missing; the
    /// returned future drives the connection and must be polled while the
    /// store is used.
    pub async fn connect(
        url: &tokio_postgres::Config,
    ) -> Result<(Self, impl Future<Output = ()> + Send + use<>), StoreError> {
        let (client, connection) = url.connect(NoTls).await?;
        let connection = async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "user-service database connection ended");
            }
        };
        let seeding = async {
            client.batch_execute(SCHEMA).await?;
            let seed = client.prepare(SEED).await?;
            for user in USERS {
                let id = i32::try_from(user.id).unwrap_or(i32::MAX);
                client
                    .execute(&seed, &[&id, &user.name, &user.email])
                    .await?;
            }
            Ok::<_, StoreError>(())
        };
        // The connection must be driven while seeding.
        let mut connection = Box::pin(connection);
        tokio::select! {
            seeded = seeding => seeded?,
            () = &mut connection => return Err(StoreError::Closed),
        }
        Ok((Users::Postgres(client), connection))
    }

    /// Every user, by id.
    pub async fn all(&self, request: &HeaderMap) -> Result<Vec<UserRow>, StoreError> {
        match self {
            Users::Seeded => Ok(USERS.iter().map(UserRow::from).collect()),
            Users::Postgres(client) => {
                let sql = format!(
                    "SELECT id, name, email FROM users ORDER BY id{}",
                    comment(request)
                );
                let rows = client.query(&sql, &[]).await?;
                rows.iter().map(row).collect()
            }
        }
    }

    /// The user with `id`, if any.
    pub async fn by_id(&self, id: u32, request: &HeaderMap) -> Result<Option<UserRow>, StoreError> {
        match self {
            Users::Seeded => Ok(super::data::user(id).map(UserRow::from)),
            Users::Postgres(client) => {
                let Ok(id) = i32::try_from(id) else {
                    return Ok(None);
                };
                let sql = format!(
                    "SELECT id, name, email FROM users WHERE id = $1{}",
                    comment(request)
                );
                let rows = client.query(&sql, &[&id]).await?;
                rows.first().map(row).transpose()
            }
        }
    }
}

fn row(row: &tokio_postgres::Row) -> Result<UserRow, StoreError> {
    let id: i32 = row.try_get(0)?;
    Ok(UserRow {
        id: u32::try_from(id).unwrap_or_default(),
        name: row.try_get(1)?,
        email: row.try_get(2)?,
    })
}

/// ` /*traceparent='…'*/` from the incoming request (sqlcommenter), or
/// nothing. Only a value made of the characters a `traceparent` has is
/// copied: the comment must not be a way into the SQL text.
fn comment(request: &HeaderMap) -> String {
    let traceparent = request
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    match traceparent {
        Some(value) => format!(" /*traceparent='{value}'*/"),
        None => String::new(),
    }
}
