//! A Postgres cluster of the test's own, with TLS from a certificate authority the test made:
//! for testing `sslmode=verify-full` without touching the machine's shared Postgres (whose
//! Debian cluster serves a self-signed "snakeoil" certificate nobody can verify).
//!
//! [`PrivatePostgres::start`] makes a CA, a server certificate for `localhost` signed by it and
//! a second, unrelated CA (openssl CLI), runs `initdb` and `pg_ctl start` from the Debian
//! packages on the given port with its data under `/tmp/<label>-*`, and stops the server and
//! removes the directory when dropped. As root the server runs as user `postgres`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PrivatePostgres {
    pub port: u16,
    pub dir: PathBuf,
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// A CA that signed nothing this server presents.
    pub other_ca: PathBuf,
    bin: PathBuf,
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    run(
        Command::new("openssl").args(args).current_dir(dir),
        &format!("openssl {}", args.join(" ")),
    );
}

/// The newest Debian Postgres server binaries.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's postgresql packages (/usr/lib/postgresql)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args` as the user that may run Postgres.
fn as_postgres(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

impl PrivatePostgres {
    /// Starts the cluster on `port` (pick it from the test's reserved range).
    pub fn start(label: &str, port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("{label}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("make the cluster directory");
        let d = dir.to_str().expect("utf-8 path").to_owned();

        // Two CAs; a server certificate for localhost signed by the first.
        for ca in ["ca", "other-ca"] {
            openssl(
                &dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=waybill test {ca}"),
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.crt"),
                ],
            );
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );

        if is_root() {
            run(
                Command::new("chown").args(["-R", "postgres:postgres", &d]),
                "chown the cluster directory",
            );
        }
        run(
            Command::new("chmod").args(["0600", &format!("{d}/server.key")]),
            "chmod server.key",
        );
        let bin = postgres_bin();
        let data = format!("{d}/data");
        run(
            &mut as_postgres(
                &bin.join("initdb"),
                &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync"],
            ),
            "initdb",
        );
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\n\
             ssl = on\nssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\n\
             fsync = off\ndefault_transaction_isolation = 'serializable'\n"
        );
        let conf_path = format!("{data}/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        // Only TLS connections over TCP.
        std::fs::write(
            format!("{data}/pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        run(
            &mut as_postgres(
                &bin.join("pg_ctl"),
                &[
                    "-D",
                    &data,
                    "-l",
                    &format!("{d}/server.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ),
            "pg_ctl start",
        );
        Self {
            port,
            ca: dir.join("ca.crt"),
            other_ca: dir.join("other-ca.crt"),
            dir,
            bin,
        }
    }

    /// A URL to database `database` as host `host` with `sslmode=verify-full` and `ca`.
    pub fn url(&self, host: &str, database: &str, ca: &Path) -> String {
        format!(
            "postgres://postgres@{host}:{}/{database}?sslmode=verify-full&sslrootcert={}",
            self.port,
            ca.display()
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
        .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
