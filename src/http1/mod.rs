//! The one HTTP/1.1 wing: every HTTP/1.1 rule, and the connections that
//! speak it.
//!
//! - [`semantics`]: each rule of RFC 9110/9112 once, as a pure function
//!   (hop-by-hop fields, `Connection`, framing, bodiless responses, Host,
//!   `Expect`, upgrades, trailers, versions, limits). Everything below and
//!   everything that touches HTTP/1.1 elsewhere calls these.
//! - [`path`]: which implementation serves a request (this module's
//!   server connection, or hyper's), decided in one function that also
//!   says why.
//! - [`server`] (with `request` and `response`): the server side of a
//!   connection, serving plain requests in the connection's own task and
//!   handing the rest to hyper.
//! - [`client`] (with `connection` and `client_body`): the client side of
//!   an upstream connection, spoken by the task that serves the
//!   downstream request.
//! - [`fields`], [`message`]: field lines and chunk framing on the wire,
//!   the response head passed on as lines, and the request body type.

mod buffers;
pub mod client;
mod client_body;
mod connection;
pub mod fields;
pub mod message;
pub mod path;
mod request;
mod response;
pub mod semantics;
pub mod server;

pub use fields::{
    FieldLookup, RawFields, ResponseFields, encode_chunk_size, encode_field, encode_length,
};
pub use message::{BoxError, RequestBody};
