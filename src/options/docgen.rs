//! Text that follows from the option table, kept in the files that users
//! and type checkers read: the stub's `TcpOptions`/`UdpOptions`, the
//! README's option table, and the option lists of the TcpClient and
//! UdpSocket docstrings. Each lives between `BEGIN generated: ID` and
//! `END generated: ID` lines. This test fails when one is stale;
//! `SOCKETKIT_REGEN=1 cargo test docgen` rewrites them.

use std::path::Path;

use super::{Proto, OPTIONS};

const REGEN: &str = "SOCKETKIT_REGEN";

/// The TypedDicts of `_core.pyi`.
fn stub() -> String {
    let mut out = String::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        let (class, takers) = proto.typed_dict();
        out += &format!("class {class}(TypedDict, total=False):\n");
        out += &format!(
            "    \"\"\"Socket options of a {} socket: the ``**options`` of {takers}.\"\"\"\n\n",
            proto.name()
        );
        // One line per option: what each does is in the class docstring at
        // run time (`help(socketkit.TcpOptions)`) and in README's table.
        for spec in proto.options() {
            out += &format!("    {}: {}\n", spec.name, spec.kind.python_type());
        }
        // A blank line after each class, as ruff format wants in a stub.
        out += "\n";
    }
    out
}

/// The README's option table.
fn readme() -> String {
    let mut out = String::from(
        "| option | value | sockets | what the kernel does |\n| --- | --- | --- | --- |\n",
    );
    for spec in OPTIONS {
        out += &format!(
            "| `{}` | {} | {} | {} |\n",
            spec.name,
            spec.kind.describe().replace('|', "\\|"),
            spec.applies.label(),
            spec.doc().replace('|', "\\|"),
        );
    }
    out
}

/// A docstring's list of option names, as `///` lines.
fn docstring(proto: Proto) -> String {
    let names: Vec<String> = proto.options().map(|s| format!("``{}``", s.name)).collect();
    let mut out = String::new();
    let mut line = String::from("///");
    for (i, name) in names.iter().enumerate() {
        let sep = if i + 1 == names.len() { "." } else { "," };
        let word = format!(" {name}{sep}");
        if line.len() + word.len() > 80 {
            out += &line;
            out.push('\n');
            line = String::from("///");
        }
        line += &word;
    }
    out + &line + "\n"
}

/// Check (or rewrite) the section `id` of `file` against `want`.
fn section(file: &str, id: &str, want: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let begin = lines
        .iter()
        .position(|l| l.contains(&format!("BEGIN generated: {id} ")))
        .unwrap_or_else(|| panic!("{file}: no `BEGIN generated: {id}` line"));
    let end = begin
        + lines[begin..]
            .iter()
            .position(|l| l.contains(&format!("END generated: {id}")))
            .unwrap_or_else(|| panic!("{file}: no `END generated: {id}` line"));
    let have: String = lines[begin + 1..end].concat();
    if have == want {
        return None;
    }
    if std::env::var_os(REGEN).is_some() {
        let new = lines[..=begin].concat() + want + &lines[end..].concat();
        std::fs::write(&path, new).unwrap_or_else(|e| panic!("{file}: {e}"));
        return None;
    }
    Some(format!(
        "{file}: section `{id}` is stale.\n--- have\n{have}--- want\n{want}"
    ))
}

#[test]
fn docgen_sections_follow_the_table() {
    let stale: Vec<String> = [
        section("python/socketkit/_core.pyi", "options", &stub()),
        section("README.md", "options", &readme()),
        section("src/py/tcp.rs", "tcp-options", &docstring(Proto::Tcp)),
        section("src/py/udp.rs", "udp-options", &docstring(Proto::Udp)),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        stale.is_empty(),
        "{}\nRun `{REGEN}=1 cargo test docgen` to rewrite them.",
        stale.join("\n")
    );
}
