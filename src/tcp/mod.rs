//! TCP clients: connecting under one deadline, and the connected stream.
pub mod connect;
pub mod stream;

pub use connect::connect;
pub use stream::{Reply, TcpConnection, TcpInfo, TCP_STATES};
