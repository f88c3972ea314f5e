//! Configuration (being written).
mod types;
pub use types::*;
