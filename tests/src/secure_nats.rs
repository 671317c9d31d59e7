//! One nats-server 2.15 node (from `infra/scripts/ensure-nats-cluster.sh`) that accepts only TLS
//! clients presenting a user and password: a certificate authority and a server certificate for
//! 127.0.0.1 are made for it with the `openssl` command line, in the test's directory. Killed on
//! drop. Missing, the binary fails the test under CI and skips it elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::poll::eventually;

pub struct SecureNats {
    child: Child,
    port: u16,
    /// PEM of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
    pub user: String,
    pub password: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line is installed");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl SecureNats {
    /// Makes the certificates under `dir`, starts the server and waits until it listens.
    pub async fn start(dir: &Path) -> Option<SecureNats> {
        let binary = crate::nats_cluster::binary()?;
        std::fs::create_dir_all(dir).expect("create the server's directory");
        let days = ["-days", "2"];
        openssl(
            dir,
            &[
                &["req", "-x509", "-newkey", "rsa:2048", "-nodes"][..],
                &[
                    "-keyout",
                    "ca-key.pem",
                    "-out",
                    "ca.pem",
                    "-subj",
                    "/CN=waybill test CA",
                ],
                &days,
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server-key.pem",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
            .expect("write the certificate extensions");
        openssl(
            dir,
            &[
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca-key.pem",
                ][..],
                &[
                    "-CAcreateserial",
                    "-out",
                    "server.pem",
                    "-extfile",
                    "san.ext",
                ],
                &days,
            ]
            .concat(),
        );
        let port = crate::process::free_port().port();
        let (user, password) = (
            "waybill".to_owned(),
            format!("pw-{}", uuid::Uuid::now_v7().simple()),
        );
        let store = dir.join("store");
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .args(["--user", &user, "--pass", &password, "--tls", "--tlscert"])
            .arg(dir.join("server.pem"))
            .arg("--tlskey")
            .arg(dir.join("server-key.pem"))
            .arg("-l")
            .arg(dir.join("nats.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        eventually(
            "the TLS NATS server to listen",
            Duration::from_secs(30),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .await;
        Some(SecureNats {
            child,
            port,
            ca_file: dir.join("ca.pem"),
            user,
            password,
        })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for SecureNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
