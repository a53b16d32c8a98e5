"""Every socket option of DESIGN.md section 2, set as a keyword argument and
read back from the kernel through options()."""

from __future__ import annotations

import errno
import socket

import pytest
from peers import echo_handler, has_ipv6_loopback

import socketkit

KA = socketkit.Keepalive(idle=30, interval=5, retries=4)

# (protocol, host, options given, what options() must report)
# A callable expectation is a predicate on the value read back.
CASES = [
    ("tcp", "127.0.0.1", {"nodelay": True}, {"nodelay": True}),
    ("tcp", "127.0.0.1", {"nodelay": False}, {"nodelay": False}),
    ("tcp", "127.0.0.1", {"keepalive": True}, {"keepalive": True}),
    ("tcp", "127.0.0.1", {"keepalive": False}, {"keepalive": False}),
    (
        "tcp",
        "127.0.0.1",
        {"keepalive": KA},
        {"keepalive": True, "keepalive_idle": 30.0, "keepalive_interval": 5.0, "keepalive_retries": 4},
    ),
    ("tcp", "127.0.0.1", {"linger": 2}, {"linger": 2.0}),
    ("tcp", "127.0.0.1", {"linger": 0}, {"linger": 0.0}),
    ("tcp", "127.0.0.1", {"linger": None}, {"linger": None}),
    ("tcp", "127.0.0.1", {"user_timeout": 1.5}, {"user_timeout": 1.5}),
    # Linux doubles SO_RCVBUF/SO_SNDBUF for bookkeeping: at least what was asked.
    ("tcp", "127.0.0.1", {"recv_buffer": 65536}, {"recv_buffer": lambda v: v >= 65536}),
    ("tcp", "127.0.0.1", {"send_buffer": 65536}, {"send_buffer": lambda v: v >= 65536}),
    ("tcp", "127.0.0.1", {"reuse_address": True}, {"reuse_address": True}),
    ("tcp", "127.0.0.1", {"reuse_port": True}, {"reuse_port": True}),
    ("tcp", "127.0.0.1", {"ttl": 17}, {"ttl": 17}),
    ("tcp", "127.0.0.1", {"tos": 0x10}, {"tos": 0x10}),
    ("tcp", "::1", {"only_v6": True}, {"only_v6": True}),
    ("tcp", "::1", {"ttl": 9, "tos": 0x20}, {"ttl": 9, "tos": 0x20}),
    ("tcp", "127.0.0.1", {"bind_device": "lo"}, {"bind_device": "lo"}),
    (
        "tcp",
        "127.0.0.1",
        {"nodelay": True, "keepalive": True, "linger": 1, "ttl": 33},
        {"nodelay": True, "keepalive": True, "linger": 1.0, "ttl": 33},
    ),
    ("udp", "127.0.0.1", {"broadcast": True}, {"broadcast": True}),
    ("udp", "127.0.0.1", {"multicast_ttl": 4}, {"multicast_ttl": 4}),
    ("udp", "127.0.0.1", {"multicast_loop": False}, {"multicast_loop": False}),
    ("udp", "127.0.0.1", {"multicast_loop": True}, {"multicast_loop": True}),
    ("udp", "127.0.0.1", {"recv_buffer": 32768}, {"recv_buffer": lambda v: v >= 32768}),
    ("udp", "127.0.0.1", {"send_buffer": 32768}, {"send_buffer": lambda v: v >= 32768}),
    (
        "udp",
        "127.0.0.1",
        {"reuse_address": True, "reuse_port": True},
        {"reuse_address": True, "reuse_port": True},
    ),
    ("udp", "127.0.0.1", {"ttl": 3, "tos": 0x08}, {"ttl": 3, "tos": 0x08}),
    ("udp", "127.0.0.1", {"bind_device": "lo"}, {"bind_device": "lo"}),
    ("udp", "::1", {"only_v6": True}, {"only_v6": True}),
    # Linux sets IPV6_V6ONLY itself when a socket binds a specific IPv6 address,
    # so only_v6=False reads back as False only on a connect()ed (autobound) socket.
    ("tcp", "::1", {"only_v6": False}, {"only_v6": False}),
    ("udp", "::1", {"multicast_ttl": 2, "multicast_loop": False}, {"multicast_ttl": 2}),
]


def case_id(case) -> str:
    proto, host, given, _ = case
    return f"{proto}-{'v6' if ':' in host else 'v4'}-" + ",".join(f"{k}={v!r}" for k, v in given.items())


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_option_set_and_read_back(case, tcp_peer):
    proto, host, given, expected = case
    if ":" in host and not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    try:
        if proto == "tcp":
            srv = tcp_peer(echo_handler, host)
            obj = socketkit.TcpClient(srv.address, timeout=5, **given)
        else:
            obj = socketkit.UdpSocket((host, 0), timeout=5, **given)
    except PermissionError:
        assert "bind_device" in given, "only bind_device may need privileges"
        pytest.skip("SO_BINDTODEVICE needs CAP_NET_RAW")
    with obj:
        got = obj.options()
        for name, want in expected.items():
            assert name in got, f"options() lacks {name}: {got}"
            if callable(want):
                assert want(got[name]), f"{name}={got[name]!r}"
            else:
                assert got[name] == want, f"{name}: set {given}, read back {got[name]!r}"
                assert type(got[name]) is type(want), name
        if proto == "tcp":  # the connection works with the options on
            assert obj.request(b"ok\n") == b"ok\n"


def test_options_reports_every_name_of_its_protocol(echo_server):
    tcp_names = {"nodelay", "keepalive", "linger", "user_timeout"}
    udp_names = {"broadcast", "multicast_ttl", "multicast_loop"}
    common = {"recv_buffer", "send_buffer", "reuse_address", "reuse_port", "ttl", "tos", "bind_device"}
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        keys = set(c.options())
        assert tcp_names | common <= keys
        assert not keys & udp_names
    with socketkit.UdpSocket(("127.0.0.1", 0)) as u:
        keys = set(u.options())
        assert udp_names | common <= keys
        assert not keys & tcp_names


def test_options_reads_the_kernel_not_a_copy(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5, nodelay=False) as c:
        assert c.options()["nodelay"] is False
        with socket.socket(fileno=c.fileno()) as view:
            view.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            view.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 42)
            assert c.options()["nodelay"] is True
            assert c.options()["ttl"] == 42
            view.detach()  # the fd stays socketkit's


@pytest.mark.parametrize("name", ["broadcast", "multicast_ttl", "multicast_loop"])
def test_udp_options_on_tcp_raise_value_error(name, echo_server):
    value = 2 if name == "multicast_ttl" else True
    with pytest.raises(ValueError, match=name):
        socketkit.TcpClient(echo_server.address, timeout=5, **{name: value})


@pytest.mark.parametrize("name", ["nodelay", "keepalive", "linger", "user_timeout"])
def test_tcp_options_on_udp_raise_value_error(name):
    value = 1 if name in ("linger", "user_timeout") else True
    with pytest.raises(ValueError, match=name):
        socketkit.UdpSocket(("127.0.0.1", 0), **{name: value})
    with pytest.raises(ValueError, match=name):
        socketkit.UdpClient("127.0.0.1:9", **{name: value})


def test_only_v6_on_an_ipv4_socket_is_refused_by_name(echo_server):
    with pytest.raises(OSError, match="only_v6") as ei:
        socketkit.TcpClient(echo_server.address, timeout=5, only_v6=True)
    assert ei.value.errno == errno.ENOPROTOOPT
    with pytest.raises(OSError, match="only_v6"):
        socketkit.UdpSocket(("127.0.0.1", 0), only_v6=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: socketkit.TcpClient("127.0.0.1:9", timeout=1, **kw),
        lambda **kw: socketkit.UdpSocket(("127.0.0.1", 0), **kw),
        lambda **kw: socketkit.UdpClient("127.0.0.1:9", **kw),
    ],
    ids=["TcpClient", "UdpSocket", "UdpClient"],
)
def test_unknown_keyword_raises_type_error_naming_it(make):
    with pytest.raises(TypeError, match="nodelai"):
        make(nodelai=True)


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"nodelay": 1}, TypeError, "nodelay"),
        ({"keepalive": "yes"}, TypeError, "keepalive"),
        ({"ttl": 0}, ValueError, "ttl"),
        ({"ttl": 256}, ValueError, "ttl"),
        ({"ttl": "64"}, TypeError, "ttl"),
        ({"tos": -1}, ValueError, "tos"),
        ({"recv_buffer": 0}, ValueError, "recv_buffer"),
        ({"send_buffer": 1.5}, TypeError, "send_buffer"),
        ({"linger": -1}, ValueError, "linger"),
        ({"user_timeout": "1"}, TypeError, "user_timeout"),
        ({"bind_device": 3}, TypeError, "bind_device"),
        ({"bind_device": ""}, ValueError, "bind_device"),
        ({"bind_device": "x" * 40}, ValueError, "bind_device"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_option_values_name_the_option(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        socketkit.TcpClient("127.0.0.1:9", timeout=1, **kwargs)


def test_keepalive_object():
    ka = socketkit.Keepalive(idle=60, interval=10, retries=5)
    assert (ka.idle, ka.interval, ka.retries) == (60.0, 10.0, 5)
    assert ka == socketkit.Keepalive(idle=60.0, interval=10, retries=5)
    assert ka != socketkit.Keepalive(idle=61, interval=10, retries=5)
    assert repr(ka) == "Keepalive(idle=60, interval=10, retries=5)"
    assert socketkit.Keepalive().idle is None
    with pytest.raises(ValueError, match="idle"):
        socketkit.Keepalive(idle=0.5)
    with pytest.raises(ValueError, match="interval"):
        socketkit.Keepalive(interval=-3)
    with pytest.raises(ValueError, match="retries"):
        socketkit.Keepalive(retries=0)
    with pytest.raises(TypeError, match="retries"):
        socketkit.Keepalive(retries=2.5)


def test_bind_device_nonexistent_interface_is_an_error_naming_it(echo_server):
    with pytest.raises(OSError, match="bind_device") as ei:
        socketkit.TcpClient(echo_server.address, timeout=5, bind_device="nosuchif0")
    assert ei.value.errno == errno.ENODEV
    assert ei.value.phase == "option"
    with pytest.raises(OSError, match="bind_device"):
        socketkit.UdpSocket(("127.0.0.1", 0), bind_device="nosuchif0")
