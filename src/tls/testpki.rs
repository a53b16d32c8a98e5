//! Test certificates made once per test process with the `openssl`
//! command, in a temporary directory removed at exit. `pki()` is `None`
//! when the command is missing; tests then skip with a message.
//!
//! Names (`NAME.pem` + `NAME.key` in `Pki::path`):
//! - `ca`: the trusted test CA (RSA); `other-ca`: a CA nobody trusts (EC).
//! - `rsa`: localhost/127.0.0.1/::1, RSA 2048, signed by `ca`, a serial
//!   with the high bit set; `rsa-chain.pem` is `rsa` + `ca`.
//! - `ec`: the same names, EC P-256, signed by `ca`.
//! - `expired` (2020), `notyet` (2090), `wrongname` (wrong.example),
//!   `unknown` (signed by `other-ca`), all with `leaf.key`.
//! - `selfsigned`: localhost, self-signed RSA.
//! - `ed25519`, `ec384`: self-signed, for the key and signature kinds.
//! - `client`: a client certificate signed by `ca`.
//! - `unicode`: self-signed, a subject that needs every kind of escaping.
//! - `leaf-pkcs1.key`, `ec-sec1.key`: the same keys in the older PEM forms.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Pki {
    dir: PathBuf,
}

static PKI: OnceLock<Option<Pki>> = OnceLock::new();
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// The test certificates, made on first use.
pub fn pki() -> Option<&'static Pki> {
    PKI.get_or_init(|| {
        if Command::new("openssl").arg("version").output().is_err() {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("socketkit-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = DIR.set(dir.clone());
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(remove_dir) };
        let pki = Pki { dir };
        pki.make_all();
        Some(pki)
    })
    .as_ref()
}

extern "C" fn remove_dir() {
    if let Some(d) = DIR.get() {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// `openssl x509 -hash` of a certificate file (the name in a CA directory).
pub fn openssl_hash(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-hash", "-noout", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

const LEAF_EXT: &str = "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
";

const WRONG_EXT: &str = "basicConstraints=critical,CA:FALSE
extendedKeyUsage=serverAuth
subjectAltName=DNS:wrong.example
";

const CLIENT_EXT: &str = "basicConstraints=critical,CA:FALSE
extendedKeyUsage=clientAuth
";

impl Pki {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn key(&self, name: &str, kind: &str) {
        let out = format!("{name}.key");
        match kind {
            "rsa" => self.openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &out,
            ]),
            "p256" | "p384" => {
                let curve = if kind == "p256" { "P-256" } else { "P-384" };
                self.openssl(&[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    &format!("ec_paramgen_curve:{curve}"),
                    "-out",
                    &out,
                ])
            }
            _ => self.openssl(&["genpkey", "-algorithm", "ed25519", "-out", &out]),
        }
    }

    fn self_signed(&self, name: &str, key: &str, subj: &str, extra: &[&str]) {
        let key = format!("{key}.key");
        let out = format!("{name}.pem");
        let mut args = vec![
            "req", "-x509", "-new", "-key", &key, "-subj", subj, "-days", "30", "-out", &out,
        ];
        args.extend_from_slice(extra);
        self.openssl(&args);
    }

    /// A leaf signed by `ca` with `openssl x509 -req`.
    fn signed(&self, name: &str, key: &str, subj: &str, ca: &str, ext: &str, serial: &str) {
        let csr = format!("{name}.csr");
        let key = format!("{key}.key");
        self.openssl(&["req", "-new", "-key", &key, "-subj", subj, "-out", &csr]);
        let extfile = format!("{name}.ext");
        self.write(&extfile, ext);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            serial,
            "-days",
            "30",
            "-sha256",
            "-extfile",
            &extfile,
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    /// A leaf signed by `ca` with explicit dates (`openssl ca`: this
    /// OpenSSL's `x509` has no `-not_before`).
    fn dated(&self, name: &str, key: &str, start: &str, end: &str) {
        let csr = format!("{name}.csr");
        let key = format!("{key}.key");
        self.openssl(&[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            "/CN=localhost",
            "-out",
            &csr,
        ]);
        let db = self.dir.join("ca-db");
        std::fs::create_dir_all(&db).unwrap();
        if !db.join("index.txt").exists() {
            std::fs::write(db.join("index.txt"), "").unwrap();
            std::fs::write(db.join("serial"), "1000\n").unwrap();
        }
        let conf = format!(
            "[ca]\ndefault_ca = test\n[test]\ndatabase = {db}/index.txt\n\
             new_certs_dir = {db}\nserial = {db}/serial\ndefault_md = sha256\n\
             policy = any\nunique_subject = no\n[any]\ncommonName = supplied\n",
            db = db.display()
        );
        self.write("ca.cnf", &conf);
        self.write(&format!("{name}.ext"), LEAF_EXT);
        self.openssl(&[
            "ca",
            "-batch",
            "-notext",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            &csr,
            "-startdate",
            start,
            "-enddate",
            end,
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    fn make_all(&self) {
        self.key("ca", "rsa");
        self.self_signed(
            "ca",
            "ca",
            "/O=socketkit/CN=socketkit test CA",
            &[
                "-sha256",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        self.key("other-ca", "p256");
        self.self_signed("other-ca", "other-ca", "/CN=untrusted CA", &[]);

        self.key("leaf", "rsa");
        std::fs::copy(self.path("leaf.key"), self.path("rsa.key")).unwrap();
        let subj = "/C=DE/O=socketkit test/CN=localhost";
        self.signed("rsa", "rsa", subj, "ca", LEAF_EXT, "0xF00DBEEF0123456789");
        let chain = std::fs::read_to_string(self.path("rsa.pem")).unwrap()
            + &std::fs::read_to_string(self.path("ca.pem")).unwrap();
        self.write("rsa-chain.pem", &chain);
        self.key("ec", "p256");
        self.signed("ec", "ec", "/CN=localhost", "ca", LEAF_EXT, "7");
        self.signed(
            "wrongname",
            "leaf",
            "/CN=wrong.example",
            "ca",
            WRONG_EXT,
            "8",
        );
        self.signed(
            "unknown",
            "leaf",
            "/CN=localhost",
            "other-ca",
            LEAF_EXT,
            "9",
        );
        self.key("client", "p256");
        self.signed(
            "client",
            "client",
            "/CN=socketkit client",
            "ca",
            CLIENT_EXT,
            "10",
        );
        self.dated("expired", "leaf", "20200101000000Z", "20200201000000Z");
        self.dated("notyet", "leaf", "20900101000000Z", "20900201000000Z");
        for name in ["wrongname", "unknown", "expired", "notyet"] {
            std::fs::copy(self.path("leaf.key"), self.path(&format!("{name}.key"))).unwrap();
        }
        std::fs::copy(self.path("leaf.key"), self.path("selfsigned.key")).unwrap();
        self.self_signed(
            "selfsigned",
            "selfsigned",
            "/CN=localhost",
            &["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        );
        self.key("ed25519", "ed25519");
        self.self_signed("ed25519", "ed25519", "/CN=ed25519.test", &[]);
        self.key("ec384", "p384");
        self.self_signed("ec384", "ec384", "/CN=ec384.test", &["-sha384"]);
        std::fs::copy(self.path("ec.key"), self.path("unicode.key")).unwrap();
        self.self_signed(
            "unicode",
            "unicode",
            "/DC=org/DC=example/O=Ünïcode, Inc./OU=R&D+UID=42/CN=#1 <lead>; \"q\"\\ /emailAddress=a@b.example",
            &["-utf8", "-addext", "subjectAltName=DNS:*.example.org,IP:10.0.0.1,email:a@b.example"],
        );
        self.openssl(&[
            "pkey",
            "-in",
            "leaf.key",
            "-traditional",
            "-out",
            "leaf-pkcs1.key",
        ]);
        self.openssl(&["ec", "-in", "ec.key", "-out", "ec-sec1.key"]);
    }
}
