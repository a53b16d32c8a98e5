//! What one row of the option table says about an option, and the macro
//! that turns the table (`table.rs`) into `SocketOptions` and `OPTIONS`.

use std::io;
use std::time::Duration;

use socket2::Socket;

use super::{Keepalive, OptValue, Proto, SocketOptions};
use crate::error::{Error, Result};

/// Which sockets an option applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applies {
    pub tcp: bool,
    pub udp: bool,
    /// Only IPv6 sockets have it (IPV6_V6ONLY).
    pub ipv6_only: bool,
}

pub const TCP: Applies = Applies {
    tcp: true,
    udp: false,
    ipv6_only: false,
};
pub const UDP: Applies = Applies {
    tcp: false,
    udp: true,
    ipv6_only: false,
};
pub const BOTH: Applies = Applies {
    tcp: true,
    udp: true,
    ipv6_only: false,
};
pub const IPV6: Applies = Applies {
    tcp: true,
    udp: true,
    ipv6_only: true,
};

impl Applies {
    pub fn to(self, proto: Proto) -> bool {
        match proto {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
        }
    }

    /// "TCP", "UDP", "TCP, UDP", "TCP, UDP (IPv6)": for the docs.
    pub fn label(self) -> &'static str {
        match (self.tcp, self.udp, self.ipv6_only) {
            (true, false, _) => "TCP",
            (false, true, _) => "UDP",
            (_, _, true) => "TCP, UDP (IPv6)",
            _ => "TCP, UDP",
        }
    }
}

/// The largest buffer size the kernel takes (an `int` in setsockopt).
pub const SIZE_MAX: i64 = i32::MAX as i64;

/// The kind of value an option takes, with its range: what the Python
/// layer accepts, what validation checks and what the docs and stubs say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int {
        lo: i64,
        hi: i64,
    },
    Seconds,
    /// Seconds, or `None` for "off".
    SecondsOrNone,
    /// A network interface name.
    Interface,
    /// `True`/`False` or `Keepalive(idle=, interval=, retries=)`.
    Keepalive,
}

impl Kind {
    /// The Python type of the option's keyword argument (the stub's).
    pub fn python_type(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Int { .. } => "int",
            Kind::Seconds => "float",
            Kind::SecondsOrNone => "float | None",
            Kind::Interface => "str",
            Kind::Keepalive => "bool | Keepalive",
        }
    }

    /// What a user may pass, in words.
    pub fn describe(self) -> String {
        match self {
            Kind::Bool => "True or False".into(),
            Kind::Int { lo, hi: SIZE_MAX } => format!("int >= {lo}"),
            Kind::Int { lo, hi } => format!("int {lo}-{hi}"),
            Kind::Seconds => "seconds".into(),
            Kind::SecondsOrNone => "seconds or None".into(),
            Kind::Interface => "interface name".into(),
            Kind::Keepalive => "True, False or Keepalive(idle=, interval=, retries=)".into(),
        }
    }

    /// Refuse a value outside the kind's range (the Python layer checks
    /// types and ranges first, with its own messages; this guards callers
    /// of the core).
    pub fn check(self, name: &'static str, v: &Value) -> Result<()> {
        match (self, v) {
            (Kind::Int { lo, hi }, Value::Int(i)) if !(lo..=hi).contains(i) => {
                Err(Error::invalid(name, format!("must be {lo}-{hi}, got {i}")))
            }
            (Kind::Interface, Value::Text(dev))
                if dev.is_empty() || dev.len() >= libc::IFNAMSIZ || dev.contains('\0') =>
            {
                Err(Error::invalid(
                    name,
                    format!("not an interface name: {dev:?}"),
                ))
            }
            (Kind::Bool, Value::Bool(_))
            | (Kind::Int { .. }, Value::Int(_))
            | (Kind::Seconds, Value::Seconds(_))
            | (Kind::SecondsOrNone, Value::SecondsOrNone(_))
            | (Kind::Interface, Value::Text(_))
            | (Kind::Keepalive, Value::Keepalive(_)) => Ok(()),
            _ => Err(Error::invalid(
                name,
                format!("expected {}, got {v:?}", self.describe()),
            )),
        }
    }
}

/// An option's value as the user gives it, independent of the field type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Seconds(Duration),
    SecondsOrNone(Option<Duration>),
    Text(String),
    Keepalive(Keepalive),
}

/// A `SocketOptions` field type, to and from [`Value`].
pub trait FieldValue: Sized {
    fn from_value(v: Value) -> Option<Self>;
    fn to_value(&self) -> Value;
}

impl FieldValue for bool {
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    Value::Int(i) => <$t>::try_from(i).ok(),
                    _ => None,
                }
            }
            fn to_value(&self) -> Value {
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_field!(u32, usize);

impl FieldValue for Duration {
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Seconds(d) => Some(d),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Seconds(*self)
    }
}

impl FieldValue for Option<Duration> {
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::SecondsOrNone(d) => Some(d),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::SecondsOrNone(*self)
    }
}

impl FieldValue for String {
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl FieldValue for Keepalive {
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Keepalive(k) => Some(k),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Keepalive(*self)
    }
}

/// Reads one value back from the kernel; `bool` is true on an IPv6 socket.
pub type Reader = fn(&Socket, bool) -> io::Result<OptValue>;

/// One row of the option table.
pub struct Spec {
    /// The keyword argument, the `SocketOptions` field and the `options()` key.
    pub name: &'static str,
    /// What the kernel does with it (the field's doc comment).
    pub(super) doc: &'static str,
    pub applies: Applies,
    pub kind: Kind,
    /// The value `opts` holds for this option, if set.
    pub(super) value: fn(&SocketOptions) -> Option<Value>,
    /// Put a value of `kind` into `opts`; false if the value is of another kind.
    pub(super) store: fn(&mut SocketOptions, Value) -> bool,
    /// Apply the option to a socket, if `opts` sets it.
    pub(super) apply: fn(&SocketOptions, &Socket, bool) -> io::Result<()>,
    /// The value the kernel holds.
    pub(super) read: Reader,
    /// Values read back under their own names besides `name` (the
    /// keepalive timers).
    pub(super) also: &'static [(&'static str, Reader)],
}

impl Spec {
    /// One line: what the kernel does with the option.
    pub fn doc(&self) -> &'static str {
        self.doc.trim()
    }
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("applies", &self.applies)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Makes `SocketOptions` (a field per row, `None` = kernel default) and
/// `OPTIONS` (the rows, in the order `options()` reports them) from the
/// table. `set` gets the socket, whether it is IPv6, and the field's value;
/// `get` the socket and whether it is IPv6.
macro_rules! socket_options {
    (@also) => { &[] };
    (@also $also:expr) => { $also };
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $ty:ty {
            applies: $applies:expr,
            kind: $kind:expr,
            set: $set:expr,
            get: $get:expr,
            $(also: $also:expr,)?
        }
    )*) => {
        /// Every option a socket can be made with. `None` leaves the kernel
        /// default. Generated from the table in `options/table.rs`.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct SocketOptions {
            $( $(#[doc = $doc])+ pub $name: Option<$ty>, )*
        }

        /// The option table, in the order `options()` reports the options.
        pub static OPTIONS: &[$crate::options::Spec] = &[$(
            $crate::options::Spec {
                name: stringify!($name),
                doc: concat!($($doc),+),
                applies: $applies,
                kind: $kind,
                value: |o| o.$name.as_ref().map($crate::options::FieldValue::to_value),
                store: |o, v| match $crate::options::FieldValue::from_value(v) {
                    Some(v) => {
                        o.$name = Some(v);
                        true
                    }
                    None => false,
                },
                apply: |o, s, v6| match &o.$name {
                    Some(v) => {
                        const SET: fn(&::socket2::Socket, bool, &$ty) -> ::std::io::Result<()> = $set;
                        SET(s, v6, v)
                    }
                    None => Ok(()),
                },
                read: $get,
                also: socket_options!(@also $($also)?),
            },
        )*];
    };
}
pub(super) use socket_options;
