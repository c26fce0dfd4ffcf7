//! SPDY/3.1, as far as kubectl's streaming protocols need it (no maintained Rust crate exists).

pub(crate) mod frame;
pub(crate) mod session;

pub(crate) use session::{Limits, Session, Stream};
