//! Email over SMTP with `lettre`: each message as `multipart/alternative` (the text part and the
//! HTML part made from it), `Content-Language` set to its locale, and a `Message-ID` made from
//! [`Notification::id`] (`<event id>.email@<domain>`), so the same event always mails the same
//! Message-ID and a mail client or archive that de-duplicates by it shows a repeat once.
//!
//! Plain SMTP (a relay on localhost, the test server), STARTTLS or implicit TLS (rustls with the
//! web's root certificates), with optional credentials. Replies are sorted the way SMTP means
//! them: 4xx, timeouts and connection failures are worth retrying, 5xx (no such mailbox, relay
//! refused) and an address that does not parse are not.

use std::time::Duration;

use futures::future::BoxFuture;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::channel::{Accepted, Channel, SendError};
use super::email_html::email_html;
use super::render::Notification;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS: only for a relay on the same host or network (and the test server).
    Plain,
    /// Upgrade with STARTTLS, refusing a server that does not offer it.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl SmtpSecurity {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "plain" | "none" => Some(Self::Plain),
            "starttls" => Some(Self::StartTls),
            "tls" => Some(Self::Tls),
            _ => None,
        }
    }
}

/// Where and as whom email is sent.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sender, e.g. `Waybill <orders@shop.example>`.
    pub from: String,
    /// The right-hand side of Message-IDs (the sender's domain).
    pub message_id_domain: String,
    /// One SMTP conversation's time limit.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error("the sender address {0:?} is not a mailbox")]
    From(String),
    #[error("SMTP relay {host}: {source}")]
    Relay {
        host: String,
        source: lettre::transport::smtp::Error,
    },
}

/// The email [`Channel`].
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig) -> Result<Self, SmtpSetupError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| SmtpSetupError::From(config.from.clone()))?;
        let relay = |e| SmtpSetupError::Relay {
            host: config.host.clone(),
            source: e,
        };
        let builder = match config.security {
            SmtpSecurity::Plain => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(relay)?
            }
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(relay)?
            }
        };
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            domain: config.message_id_domain.clone(),
        })
    }

    /// `<event id>.email@<domain>`.
    pub fn message_id(&self, message: &Notification) -> String {
        format!("<{}@{}>", message.id(), self.domain)
    }

    /// The email as it goes on the wire.
    pub fn email(&self, message: &Notification) -> Result<lettre::Message, SendError> {
        let to: Mailbox = message.to.parse().map_err(|e| {
            SendError::Permanent(format!("{:?} is not an email address: {e}", message.to))
        })?;
        let subject = message.subject.clone().unwrap_or_default();
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(self.message_id(message)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Content-Language"),
                message.locale.as_str().to_owned(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Waybill-Order"),
                message.order_id.to_string(),
            ))
            .multipart(MultiPart::alternative_plain_html(
                message.body.clone(),
                email_html(message),
            ))
            .map_err(|e| SendError::Permanent(format!("the email cannot be built: {e}")))
    }
}

impl Channel for SmtpMailer {
    fn send<'a>(&'a self, message: &'a Notification) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move {
            let email = self.email(message)?;
            match self.transport.send(email).await {
                Ok(_) => Ok(Accepted {
                    provider_id: self.message_id(message),
                }),
                Err(error) if error.is_permanent() => Err(SendError::Permanent(error.to_string())),
                Err(error) => Err(SendError::Transient(error.to_string())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::notifications::render::{test_draft, Locale, Medium, NotificationKind};
    use uuid::Uuid;
    use waybill_schemas::OrderId;

    fn mailer() -> SmtpMailer {
        SmtpMailer::new(&SmtpConfig {
            host: "127.0.0.1".into(),
            port: 2525,
            security: SmtpSecurity::Plain,
            username: None,
            password: None,
            from: "Waybill <orders@shop.example>".into(),
            message_id_domain: "shop.example".into(),
            timeout: Duration::from_secs(1),
        })
        .expect("mailer")
    }

    fn message(to: &str) -> Notification {
        let order = OrderId::new_v7();
        Notification {
            event_id: Uuid::now_v7(),
            order_id: order,
            kind: NotificationKind::OrderConfirmed,
            medium: Medium::Email,
            to: to.into(),
            locale: Locale::De,
            subject: Some("Ihre Bestellung WEB-1 ist bestätigt".into()),
            body: "Hallo Ada,\n\nbestätigt.\n".into(),
            occurred_at: chrono::Utc::now(),
            requested: false,
            draft: test_draft(order),
        }
    }

    /// (The pooled transport needs a runtime, even only to be dropped.)
    #[tokio::test]
    async fn the_email_carries_its_stable_message_id_language_and_both_parts() {
        let mailer = mailer();
        let message = message("ada@example.com");
        let wire =
            String::from_utf8(mailer.email(&message).expect("builds").formatted()).expect("utf-8");
        assert!(
            wire.contains(&format!(
                "Message-ID: <{}.email@shop.example>",
                message.event_id
            )),
            "{wire}"
        );
        assert!(wire.contains("Content-Language: de"), "{wire}");
        assert!(wire.contains("multipart/alternative"), "{wire}");
        assert!(wire.contains("text/plain"), "{wire}");
        assert!(wire.contains("text/html"), "{wire}");
        assert!(wire.contains(&format!("X-Waybill-Order: {}", message.order_id)));
    }

    #[tokio::test]
    async fn a_recipient_that_is_no_address_is_refused_for_good() {
        let outcome = mailer().send(&message("not an address")).await;
        assert!(
            matches!(outcome, Err(SendError::Permanent(_))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_worth_retrying() {
        let mut config = SmtpConfig {
            host: "127.0.0.1".into(),
            port: 1,
            security: SmtpSecurity::Plain,
            username: None,
            password: None,
            from: "orders@shop.example".into(),
            message_id_domain: "shop.example".into(),
            timeout: Duration::from_secs(1),
        };
        config.port = 1;
        let outcome = SmtpMailer::new(&config)
            .expect("mailer")
            .send(&message("ada@example.com"))
            .await;
        assert!(
            matches!(outcome, Err(SendError::Transient(_))),
            "{outcome:?}"
        );
    }
}
