//! UDP sockets.
pub mod batch;
pub mod gro;
pub mod gso;
pub mod socket;

pub use socket::UdpSock;

/// The largest datagram (UDP's 16-bit length): a bigger bufsize bounds
/// nothing more, so no receive buffer is allocated past it.
pub const MAX_DATAGRAM: usize = 65536;
