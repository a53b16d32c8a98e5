//! UDP sockets.
pub mod socket;

pub use socket::UdpSock;
