# Copyright: socketkit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the socketkit.net modules share: importing socketkit (with the one
message a host without it gets), the common options, arguments as the
Python functions take them, and the result every module returns."""

from __future__ import annotations

import sys
import time
import traceback

try:
    import socketkit

    IMPORT_ERROR = None
except ImportError:
    socketkit = None
    IMPORT_ERROR = traceback.format_exc()

#: Options every module takes (besides its own).
COMMON_SPEC = {
    "vantage": {"type": "str"},
    "fail_on_down": {"type": "bool", "default": True},
}

#: Address and service-check options of check, wait and tls.
ADDRESS_SPEC = {
    "family": {"type": "str", "choices": ["ipv4", "ipv6"]},
    "source_address": {"type": "str"},
}
SERVICE_SPEC = {
    "tls": {"type": "raw"},
    "starttls": {"type": "str"},
    "steps": {"type": "list", "elements": "dict"},
    "service": {"type": "str"},
}


def vantage(module):
    """Where this runs from: the option (the action plugin passes the
    inventory host name), else this machine's host name."""
    name = module.params.get("vantage")
    if name:
        return name
    import socket

    return socket.gethostname()


def require_socketkit(module):
    """Fail with one line saying how to fix it when socketkit is missing."""
    if socketkit is None:
        module.fail_json(
            msg=f"socketkit is not installed for {sys.executable} on this host: "
            "run 'pip install socketkit' on that host (or point ansible_python_interpreter "
            "at a Python that has it)",
            vantage=vantage(module),
            ok=False,
            results=[],
            exception=IMPORT_ERROR,
        )


def with_port(targets, port):
    """``targets`` as ``host:port`` strings, ``port`` added where one has none."""
    out = []
    for t in targets:
        t = str(t)
        if port is not None:
            try:
                socketkit._probe_core._parse_target(t)
            except ValueError:
                t = f"[{t}]:{port}" if ":" in t and not t.startswith("[") else f"{t}:{port}"
        out.append(t)
    return out


def tls_config(value):
    """``tls``: true/false, or a dict of ``socketkit.TlsConfig`` arguments."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.lower()
        if low in ("yes", "true", "on", "1"):
            return True
        if low in ("no", "false", "off", "0"):
            return False
        raise ValueError(f"tls: expected a boolean or a dict, got {value!r}")
    if isinstance(value, dict):
        return socketkit.TlsConfig(**value)
    raise ValueError(f"tls: expected a boolean or a dict, got {type(value).__name__}")


def _data(v):
    return v if isinstance(v, bytes) else str(v).encode()


def steps(value):
    """``steps``: a list of ``{send: DATA}``, ``{expect: TEXT, regex: bool,
    timeout: S}`` and ``{starttls: PROTO}`` (``starttls: null`` for TLS)."""
    if not value:
        return None
    out = []
    for i, step in enumerate(value):
        if "send" in step:
            out.append(socketkit.Send(_data(step["send"])))
        elif "expect" in step:
            out.append(
                socketkit.Expect(
                    _data(step["expect"]), regex=bool(step.get("regex", False)), timeout=step.get("timeout")
                )
            )
        elif "starttls" in step:
            out.append(socketkit.StartTls(step["starttls"]))
        else:
            raise ValueError(f"steps[{i}]: expected one of the keys send, expect, starttls")
    return out


def address_kwargs(params):
    return {"family": params.get("family"), "source_address": params.get("source_address")}


def service_kwargs(params):
    """steps/service/tls/starttls for the probes, None-valued ones left out."""
    kw = {
        "steps": steps(params.get("steps")),
        "service": params.get("service"),
        "tls": tls_config(params.get("tls")),
        "starttls": params.get("starttls"),
    }
    return {k: v for k, v in kw.items() if v is not None}


def udp_many(targets, timeout, concurrency, **kw):
    """UDP probes at once, in input order (each releases the GIL while it waits)."""
    from concurrent.futures import ThreadPoolExecutor

    if not targets:
        return []
    with ThreadPoolExecutor(max(1, min(concurrency, 256, len(targets)))) as pool:
        return list(pool.map(lambda t: socketkit.check(t, timeout=timeout, proto="udp", **kw), targets))


def one_line(text):
    return " ".join(str(text).split())


def finish(module, results, ok, what, down, started, **extra):
    """Exit the module: ``{changed: false, ok, results, vantage, msg,
    elapsed}``, failed (one-line msg) when something is down and
    ``fail_on_down`` is true."""
    where = vantage(module)
    for r in results:
        r.setdefault("vantage", where)
    out = {
        "changed": False,
        "ok": ok,
        "results": results,
        "vantage": where,
        "elapsed": round(time.monotonic() - started, 3),
        **extra,
    }
    if ok:
        module.exit_json(msg=f"{what} from {where}", **out)
    msg = one_line(module.params.get("msg") or f"{what} from {where}: {'; '.join(down)}")
    if module.params["fail_on_down"]:
        module.fail_json(msg=msg, **out)
    module.exit_json(msg=msg, **out)


def run(module, body):
    """Run ``body()`` and turn a bad argument into a one-line failure."""
    require_socketkit(module)
    try:
        body()
    except (ValueError, TypeError) as e:
        module.fail_json(msg=one_line(e), vantage=vantage(module), ok=False, results=[])
    except OSError as e:
        module.fail_json(msg=one_line(e.strerror or e), vantage=vantage(module), ok=False, results=[])
