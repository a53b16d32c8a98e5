//! The socket options, declared once. Each row gives the name (keyword
//! argument, field, `options()` key), what the kernel does with it (the doc
//! comment: it becomes the field's rustdoc, the stub's comment, the README
//! row and the TypedDict's doc), the sockets it applies to, the kind and
//! range of its value, how socket2 sets it (IPv4 and IPv6 variants) and how
//! it is read back. Validation, the keyword parser, error messages, the
//! stubs' `TcpOptions`/`UdpOptions` and the docs all follow from here; the
//! generated text is checked by `cargo test` (see `docgen.rs`).
//!
//! Adding an option: add a row, add a sample to `tests.rs` (the test fails
//! until you do), run `SOCKETKIT_REGEN=1 cargo test docgen`.

use std::time::Duration;

use super::spec::{socket_options, Kind, BOTH, IPV6, SIZE_MAX, TCP, UDP};
use super::{set_keepalive, Keepalive, OptValue};

fn secs(d: Duration) -> OptValue {
    OptValue::Seconds(d.as_secs_f64())
}

fn secs_or_unset(d: Option<Duration>) -> OptValue {
    d.map_or(OptValue::Unset, secs)
}

socket_options! {
    /// TCP_NODELAY: send small segments at once instead of holding them
    /// back to coalesce (Nagle's algorithm). On by default for every TCP
    /// connection socketkit makes or accepts; nodelay=False turns Nagle on.
    nodelay: bool {
        applies: TCP,
        kind: Kind::Bool,
        set: |s, _, v| s.set_tcp_nodelay(*v),
        get: |s, _| Ok(OptValue::Bool(s.tcp_nodelay()?)),
    }
    /// SO_KEEPALIVE (with TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT): probe
    /// a connection that has been idle, and drop it when the peer stops
    /// answering.
    keepalive: Keepalive {
        applies: TCP,
        kind: Kind::Keepalive,
        set: |s, _, v| set_keepalive(s, v),
        get: |s, _| Ok(OptValue::Bool(s.keepalive()?)),
        also: &[
            ("keepalive_idle", |s, _| Ok(secs(s.tcp_keepalive_time()?))),
            ("keepalive_interval", |s, _| Ok(secs(s.tcp_keepalive_interval()?))),
            ("keepalive_retries", |s, _| Ok(OptValue::Int(s.tcp_keepalive_retries()?.into()))),
        ],
    }
    /// SO_LINGER: how long close() waits for unsent data to go out; 0
    /// makes close() reset the connection, None turns lingering off.
    linger: Option<Duration> {
        applies: TCP,
        kind: Kind::SecondsOrNone,
        set: |s, _, v| s.set_linger(*v),
        get: |s, _| Ok(secs_or_unset(s.linger()?)),
    }
    /// TCP_USER_TIMEOUT: how long sent data may stay unacknowledged before
    /// the kernel drops the connection.
    user_timeout: Duration {
        applies: TCP,
        kind: Kind::Seconds,
        set: |s, _, v| s.set_tcp_user_timeout(Some(*v)),
        get: |s, _| Ok(secs_or_unset(s.tcp_user_timeout()?)),
    }
    /// SO_RCVBUF: the receive buffer size in bytes (Linux doubles the value
    /// for its bookkeeping, and reads back the doubled value).
    recv_buffer: usize {
        applies: BOTH,
        kind: Kind::Int { lo: 1, hi: SIZE_MAX },
        set: |s, _, v| s.set_recv_buffer_size(*v),
        get: |s, _| Ok(OptValue::Int(s.recv_buffer_size()? as u64)),
    }
    /// SO_SNDBUF: the send buffer size in bytes (Linux doubles it, as
    /// SO_RCVBUF).
    send_buffer: usize {
        applies: BOTH,
        kind: Kind::Int { lo: 1, hi: SIZE_MAX },
        set: |s, _, v| s.set_send_buffer_size(*v),
        get: |s, _| Ok(OptValue::Int(s.send_buffer_size()? as u64)),
    }
    /// SO_REUSEADDR: bind a local address that connections in TIME_WAIT
    /// still hold (servers default to True).
    reuse_address: bool {
        applies: BOTH,
        kind: Kind::Bool,
        set: |s, _, v| s.set_reuse_address(*v),
        get: |s, _| Ok(OptValue::Bool(s.reuse_address()?)),
    }
    /// SO_REUSEPORT: let several sockets bind the same address and port;
    /// the kernel spreads connections or datagrams across them.
    reuse_port: bool {
        applies: BOTH,
        kind: Kind::Bool,
        set: |s, _, v| s.set_reuse_port(*v),
        get: |s, _| Ok(OptValue::Bool(s.reuse_port()?)),
    }
    /// IP_TTL or IPV6_UNICAST_HOPS: how many hops an outgoing packet may
    /// travel.
    ttl: u32 {
        applies: BOTH,
        kind: Kind::Int { lo: 1, hi: 255 },
        set: |s, v6, v| if v6 { s.set_unicast_hops_v6(*v) } else { s.set_ttl_v4(*v) },
        get: |s, v6| Ok(OptValue::Int(if v6 { s.unicast_hops_v6()? } else { s.ttl_v4()? }.into())),
    }
    /// IP_TOS or IPV6_TCLASS: the type-of-service (traffic class) byte of
    /// outgoing packets, DSCP and ECN.
    tos: u32 {
        applies: BOTH,
        kind: Kind::Int { lo: 0, hi: 255 },
        set: |s, v6, v| if v6 { s.set_tclass_v6(*v) } else { s.set_tos_v4(*v) },
        get: |s, v6| Ok(OptValue::Int(if v6 { s.tclass_v6()? } else { s.tos_v4()? }.into())),
    }
    /// IPV6_V6ONLY: an IPv6 socket speaks IPv6 only, not IPv4 through
    /// IPv4-mapped addresses.
    only_v6: bool {
        applies: IPV6,
        kind: Kind::Bool,
        set: |s, _, v| s.set_only_v6(*v),
        get: |s, _| Ok(OptValue::Bool(s.only_v6()?)),
    }
    /// SO_BINDTODEVICE: send and receive only through this network
    /// interface (needs CAP_NET_RAW).
    bind_device: String {
        applies: BOTH,
        kind: Kind::Interface,
        set: |s, _, v| s.bind_device(Some(v.as_bytes())),
        get: |s, _| Ok(match s.device()? {
            Some(d) => OptValue::Text(String::from_utf8_lossy(&d).into_owned()),
            None => OptValue::Unset,
        }),
    }
    /// SO_BROADCAST: allow sending to a broadcast address.
    broadcast: bool {
        applies: UDP,
        kind: Kind::Bool,
        set: |s, _, v| s.set_broadcast(*v),
        get: |s, _| Ok(OptValue::Bool(s.broadcast()?)),
    }
    /// IP_MULTICAST_TTL or IPV6_MULTICAST_HOPS: how many hops outgoing
    /// multicast may travel (1: this network only).
    multicast_ttl: u32 {
        applies: UDP,
        kind: Kind::Int { lo: 0, hi: 255 },
        set: |s, v6, v| if v6 { s.set_multicast_hops_v6(*v) } else { s.set_multicast_ttl_v4(*v) },
        get: |s, v6| Ok(OptValue::Int(
            if v6 { s.multicast_hops_v6()? } else { s.multicast_ttl_v4()? }.into(),
        )),
    }
    /// IP_MULTICAST_LOOP or IPV6_MULTICAST_LOOP: deliver outgoing multicast
    /// to listeners on this host too.
    multicast_loop: bool {
        applies: UDP,
        kind: Kind::Bool,
        set: |s, v6, v| if v6 { s.set_multicast_loop_v6(*v) } else { s.set_multicast_loop_v4(*v) },
        get: |s, v6| Ok(OptValue::Bool(
            if v6 { s.multicast_loop_v6()? } else { s.multicast_loop_v4()? },
        )),
    }
}
