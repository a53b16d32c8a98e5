//! UDP sockets.
pub mod batch;
pub mod socket;

pub use socket::UdpSock;
