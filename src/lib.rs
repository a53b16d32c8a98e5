//! socketkit: TCP and UDP clients and servers and network probes for Python.
//!
//! The core (everything but `py/`) is plain Rust with no pyo3 types, tested
//! by `cargo test`; `py/` converts arguments, results and errors.

pub mod addr;
pub mod aio;
pub mod defaults;
pub mod error;
pub mod framing;
pub mod options;
pub mod probe;
pub mod resolve;
pub mod server;
pub mod service;
pub mod sock;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod wait;

mod py;
