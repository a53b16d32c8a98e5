//! TCP clients: connecting under one deadline, and the connected stream
//! (plain or TLS: `transport`).
pub mod connect;
mod info;
pub mod inline;
pub mod stream;
mod transport;

pub use connect::{connect, connect_until};
pub use info::{socket_tcp_info, TcpInfo, TCP_STATES};
pub use inline::{Attempt, SendAll};
pub use stream::{Reply, Start, TcpConnection};

#[cfg(test)]
mod transport_tests;
