//! The option table against real sockets. socket2's habit: one
//! table-driven test sets every option and reads it back.

use super::*;
use socket2::{SockAddr, Type};

/// What `options()` must report after a sample is applied.
enum Want {
    Is(OptValue),
    /// Linux doubles buffer sizes.
    AtLeast(u64),
}

/// Values to set each option to, and what must then be read back. Bool
/// options get True and False from their kind; every other row needs an
/// entry here (the test fails until it has one).
fn samples(spec: &Spec) -> Vec<(Value, Vec<(&'static str, Want)>)> {
    use OptValue as O;
    use Want::{AtLeast, Is};
    let n = spec.name;
    let secs = Duration::from_secs;
    let one = |v: Value, want: Want| (v, vec![(n, want)]);
    if spec.kind == Kind::Bool {
        return vec![
            one(Value::Bool(true), Is(O::Bool(true))),
            one(Value::Bool(false), Is(O::Bool(false))),
        ];
    }
    match n {
        "keepalive" => vec![
            one(Value::Keepalive(Keepalive::On), Is(O::Bool(true))),
            one(Value::Keepalive(Keepalive::Off), Is(O::Bool(false))),
            (
                Value::Keepalive(Keepalive::Tuned {
                    idle: Some(secs(30)),
                    interval: Some(secs(5)),
                    retries: Some(4),
                }),
                vec![
                    (n, Is(O::Bool(true))),
                    ("keepalive_idle", Is(O::Seconds(30.0))),
                    ("keepalive_interval", Is(O::Seconds(5.0))),
                    ("keepalive_retries", Is(O::Int(4))),
                ],
            ),
        ],
        "linger" => vec![
            one(Value::SecondsOrNone(Some(secs(2))), Is(O::Seconds(2.0))),
            one(Value::SecondsOrNone(Some(secs(0))), Is(O::Seconds(0.0))),
            one(Value::SecondsOrNone(None), Is(O::Unset)),
        ],
        "user_timeout" => vec![one(
            Value::Seconds(Duration::from_millis(1500)),
            Is(O::Seconds(1.5)),
        )],
        "recv_buffer" | "send_buffer" => vec![one(Value::Int(65536), AtLeast(65536))],
        "ttl" => vec![one(Value::Int(17), Is(O::Int(17)))],
        // No ECN bits: Linux keeps those of a TCP socket to itself.
        "tos" => vec![one(Value::Int(0x20), Is(O::Int(0x20)))],
        "bind_device" => vec![one(Value::Text("lo".into()), Is(O::Text("lo".into())))],
        "multicast_ttl" => vec![
            one(Value::Int(3), Is(O::Int(3))),
            one(Value::Int(0), Is(O::Int(0))),
        ],
        _ => vec![],
    }
}

fn sock_type(proto: Proto) -> Type {
    match proto {
        Proto::Tcp => Type::STREAM,
        Proto::Udp => Type::DGRAM,
    }
}

#[test]
fn every_option_of_the_table_sets_and_reads_back() {
    for spec in OPTIONS {
        let samples = samples(spec);
        assert!(
            !samples.is_empty(),
            "no sample for {}: add one to samples()",
            spec.name
        );
        for proto in [Proto::Tcp, Proto::Udp] {
            if !spec.applies.to(proto) {
                continue;
            }
            for domain in [Domain::IPV4, Domain::IPV6] {
                for (value, want) in &samples {
                    let case = format!("{} = {value:?} on {proto:?}/{domain:?}", spec.name);
                    // A kernel without IPv6 cannot test the v6 variants.
                    let Ok(s) = Socket::new(domain, sock_type(proto), None) else {
                        continue;
                    };
                    let mut o = SocketOptions::default();
                    o.set(spec, value.clone()).unwrap();
                    o.validate(proto).unwrap();
                    if spec.applies.ipv6_only && domain == Domain::IPV4 {
                        let e = o.apply(&s, domain).unwrap_err();
                        assert!(
                            matches!(e, Error::Unsupported { option, .. } if option == spec.name),
                            "{case}: {e}"
                        );
                        let v = read_back(&s, proto, domain).unwrap();
                        assert!(v.iter().all(|(k, _)| *k != spec.name), "{case}");
                        continue;
                    }
                    match o.apply(&s, domain) {
                        Err(Error::Io { source, .. })
                            if spec.kind == Kind::Interface
                                && source.kind() == io::ErrorKind::PermissionDenied =>
                        {
                            eprintln!("{case}: skipped, needs CAP_NET_RAW");
                            continue;
                        }
                        r => r.unwrap_or_else(|e| panic!("{case}: {e}")),
                    }
                    let v = read_back(&s, proto, domain).unwrap();
                    for (key, w) in want {
                        let got = &v
                            .iter()
                            .find(|(k, _)| k == key)
                            .unwrap_or_else(|| panic!("{case}: {key} not read back"))
                            .1;
                        match w {
                            Want::Is(x) => assert_eq!(got, x, "{case}: {key}"),
                            Want::AtLeast(min) => assert!(
                                matches!(got, OptValue::Int(i) if i >= min),
                                "{case}: {key} = {got:?}"
                            ),
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn every_option_is_refused_on_the_other_protocol() {
    for spec in OPTIONS {
        for proto in [Proto::Tcp, Proto::Udp] {
            if spec.applies.to(proto) {
                continue;
            }
            let mut o = SocketOptions::default();
            o.set(spec, samples(spec).remove(0).0).unwrap();
            let msg = o.validate(proto).unwrap_err().to_string();
            assert!(msg.contains(spec.name), "{msg}");
            assert!(msg.contains("applies only to"), "{msg}");
        }
    }
}

#[test]
fn ranges_come_from_the_table() {
    for spec in OPTIONS {
        let Kind::Int { lo, hi } = spec.kind else {
            continue;
        };
        let mut o = SocketOptions::default();
        for bad in [lo - 1, hi + 1] {
            let msg = o.set(spec, Value::Int(bad)).unwrap_err().to_string();
            assert!(msg.contains(spec.name), "{msg}");
        }
        o.set(spec, Value::Int(lo)).unwrap();
        o.set(spec, Value::Int(hi)).unwrap();
    }
    // A field set directly is checked too.
    let o = SocketOptions {
        ttl: Some(0),
        ..Default::default()
    };
    assert!(o
        .validate(Proto::Tcp)
        .unwrap_err()
        .to_string()
        .contains("ttl"));
    let o = SocketOptions {
        bind_device: Some(String::new()),
        ..Default::default()
    };
    assert!(o
        .validate(Proto::Udp)
        .unwrap_err()
        .to_string()
        .contains("bind_device"));
}

#[test]
fn a_value_of_the_wrong_kind_is_an_error_not_a_panic() {
    let mut o = SocketOptions::default();
    for spec in OPTIONS {
        let wrong = if spec.kind == Kind::Bool {
            Value::Int(1)
        } else {
            Value::Bool(true)
        };
        assert!(o.set(spec, wrong).is_err(), "{}", spec.name);
    }
    assert_eq!(o, SocketOptions::default());
}

#[test]
fn misspelled_names_get_a_suggestion() {
    assert_eq!(suggest("nodelai"), Some("nodelay"));
    assert_eq!(suggest("reuseaddress"), Some("reuse_address"));
    assert_eq!(suggest("tl"), Some("ttl"));
    assert_eq!(suggest("timeout"), None);
    assert_eq!(names().count(), OPTIONS.len());
    assert_eq!(
        spec("tos").map(|s| s.kind),
        Some(Kind::Int { lo: 0, hi: 255 })
    );
}

fn get<'a>(v: &'a [(&'static str, OptValue)], name: &str) -> &'a OptValue {
    &v.iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .1
}

#[test]
fn tcp_options_set_and_read_back() {
    let opts = SocketOptions {
        nodelay: Some(true),
        keepalive: Some(Keepalive::Tuned {
            idle: Some(Duration::from_secs(30)),
            interval: Some(Duration::from_secs(5)),
            retries: Some(4),
        }),
        linger: Some(Some(Duration::from_secs(2))),
        user_timeout: Some(Duration::from_millis(1500)),
        recv_buffer: Some(65536),
        send_buffer: Some(65536),
        reuse_address: Some(true),
        ttl: Some(17),
        tos: Some(0x10),
        ..Default::default()
    };
    opts.validate(Proto::Tcp).unwrap();
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    opts.apply(&s, Domain::IPV4).unwrap();
    let v = read_back(&s, Proto::Tcp, Domain::IPV4).unwrap();
    assert_eq!(get(&v, "nodelay"), &OptValue::Bool(true));
    assert_eq!(get(&v, "keepalive"), &OptValue::Bool(true));
    assert_eq!(get(&v, "keepalive_idle"), &OptValue::Seconds(30.0));
    assert_eq!(get(&v, "keepalive_interval"), &OptValue::Seconds(5.0));
    assert_eq!(get(&v, "keepalive_retries"), &OptValue::Int(4));
    assert_eq!(get(&v, "linger"), &OptValue::Seconds(2.0));
    assert_eq!(get(&v, "user_timeout"), &OptValue::Seconds(1.5));
    assert_eq!(get(&v, "recv_buffer"), &OptValue::Int(131072));
    assert_eq!(get(&v, "ttl"), &OptValue::Int(17));
    assert_eq!(get(&v, "tos"), &OptValue::Int(0x10));
}

#[test]
fn udp_options_on_v6() {
    let opts = SocketOptions {
        broadcast: Some(true),
        multicast_ttl: Some(3),
        multicast_loop: Some(false),
        only_v6: Some(true),
        ttl: Some(9),
        ..Default::default()
    };
    opts.validate(Proto::Udp).unwrap();
    let s = Socket::new(Domain::IPV6, Type::DGRAM, None).unwrap();
    opts.apply(&s, Domain::IPV6).unwrap();
    let v = read_back(&s, Proto::Udp, Domain::IPV6).unwrap();
    assert_eq!(get(&v, "broadcast"), &OptValue::Bool(true));
    assert_eq!(get(&v, "multicast_ttl"), &OptValue::Int(3));
    assert_eq!(get(&v, "multicast_loop"), &OptValue::Bool(false));
    assert_eq!(get(&v, "only_v6"), &OptValue::Bool(true));
    assert_eq!(get(&v, "ttl"), &OptValue::Int(9));
    s.bind(&SockAddr::from(
        "[::1]:0".parse::<std::net::SocketAddr>().unwrap(),
    ))
    .unwrap();
}

#[test]
fn wrong_protocol_options_are_refused() {
    let o = SocketOptions {
        nodelay: Some(true),
        ..Default::default()
    };
    assert!(o
        .validate(Proto::Udp)
        .unwrap_err()
        .to_string()
        .contains("nodelay"));
    let o = SocketOptions {
        broadcast: Some(true),
        ..Default::default()
    };
    assert!(o
        .validate(Proto::Tcp)
        .unwrap_err()
        .to_string()
        .contains("broadcast"));
    let o = SocketOptions {
        only_v6: Some(true),
        ..Default::default()
    };
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    assert!(matches!(
        o.apply(&s, Domain::IPV4),
        Err(Error::Unsupported {
            option: "only_v6",
            ..
        })
    ));
}
