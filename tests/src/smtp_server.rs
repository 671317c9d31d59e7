//! A real SMTP server for the notifications tests: aiosmtpd (PyPI, installed by
//! `infra/scripts/ensure-smtp.sh` into `$WAYBILL_SMTP_VENV`, default
//! `<repo>/.waybill/venv-aiosmtpd`) with its Maildir handler, so every message the email
//! adapter delivers over SMTP lands as one file a test can read. Killed when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Ports this harness tries for the server (the notifications tests' own range).
const PORTS: std::ops::Range<u16> = 15_490..15_520;

/// One email as the server received it.
#[derive(Debug, Clone)]
pub struct ReceivedEmail {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub content_language: String,
    /// The whole message as received (headers and MIME parts).
    pub raw: String,
}

impl ReceivedEmail {
    /// The (unfolded) value of header `name`, empty when absent.
    fn header(raw: &str, name: &str) -> String {
        let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
        let head = head.split("\n\n").next().unwrap_or(head);
        let mut value: Option<String> = None;
        for line in head.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(current) = value.as_mut() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    current.push(' ');
                    current.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((key, rest)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    value = Some(rest.trim().to_owned());
                }
            }
        }
        value.unwrap_or_default()
    }
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    maildir: PathBuf,
    child: Child,
}

fn venv() -> PathBuf {
    std::env::var_os("WAYBILL_SMTP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(".waybill")
                .join("venv-aiosmtpd")
        })
}

impl SmtpServer {
    /// Starts aiosmtpd writing into `<dir>/maildir` and waits until it accepts connections.
    pub async fn start(dir: &Path) -> SmtpServer {
        let executable = venv().join("bin").join("aiosmtpd");
        assert!(
            executable.exists(),
            "{} is missing: run infra/scripts/ensure-smtp.sh",
            executable.display()
        );
        let maildir = dir.join("maildir");
        std::fs::create_dir_all(dir).expect("SMTP server directory");
        let addr = PORTS
            .clone()
            .find_map(|port| TcpListener::bind(("127.0.0.1", port)).ok())
            .and_then(|l| l.local_addr().ok())
            .expect("a free port in 15490-15519 for the SMTP server");
        let log = std::fs::File::create(dir.join("aiosmtpd.log")).expect("SMTP server log");
        let child = Command::new(&executable)
            .args([
                "-n",
                "-l",
                &addr.to_string(),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start aiosmtpd");
        let server = SmtpServer {
            addr,
            maildir,
            child,
        };
        crate::poll::eventually(
            "the SMTP server to accept connections",
            Duration::from_secs(20),
            || async {
                tokio::net::TcpStream::connect(addr)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .await;
        server
    }

    /// Every message received so far, in no particular order.
    pub fn received(&self) -> Vec<ReceivedEmail> {
        let mut all = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(raw) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                all.push(ReceivedEmail {
                    to: ReceivedEmail::header(&raw, "To"),
                    subject: ReceivedEmail::header(&raw, "Subject"),
                    message_id: ReceivedEmail::header(&raw, "Message-ID"),
                    content_language: ReceivedEmail::header(&raw, "Content-Language"),
                    raw,
                });
            }
        }
        all
    }

    /// Kills the server (it is also killed when dropped).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
