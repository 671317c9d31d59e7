//! API keys and the tracking-token secret. Production passes them in (`WAYBILL_API_KEYS`,
//! `WAYBILL_TRACKING_SECRET`); on a developer machine they are generated once into the secrets
//! directory (`.waybill/`, gitignored) and reused, so separately started processes and the demo
//! agree on them. Secrets are never printed, only the path of the file that holds them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::RngCore;
use waybill_schemas::access::TrackingKeys;

use crate::config::Settings;

pub const DEV_API_KEY_FILE: &str = "dev-api-key";
pub const TRACKING_SECRET_FILE: &str = "tracking-secret";
pub const JWT_SECRET_FILE: &str = "jwt-secret";
pub const PAYMENT_API_KEY_FILE: &str = "payment-api-key";
const SMS_API_KEY_FILE: &str = "sms-api-key";
pub const PAYMENT_WEBHOOK_SECRET_FILE: &str = "payment-webhook-secret";
pub const LOGISTICS_WEBHOOK_SECRET_FILE: &str = "logistics-webhook-secret";
pub const WEBHOOK_SEALING_KEY_FILE: &str = "webhook-sealing-key";
pub const PII_MASTER_KEY_FILE: &str = "pii-master-key";

/// The keys and secret a process runs with.
#[derive(Clone)]
pub struct Secrets {
    /// `key:client_id:role,...` as the services parse it.
    pub api_keys: String,
    /// A key this process may use as a client (the first service/agent/admin key).
    pub client_key: Option<String>,
    /// Tracking token secrets (current and previous) and lifetime.
    pub tracking: TrackingKeys,
    /// HMAC secret of Bearer JWTs (both APIs).
    pub jwt_secret: Vec<u8>,
    /// The key Waybill presents to the payment gateway (and the sandbox expects).
    pub payment_api_key: String,
    /// The HMAC secret of the gateway's webhooks.
    pub payment_webhook_secret: Vec<u8>,
    /// The HMAC secret of node (WMS) and carrier webhooks.
    pub logistics_webhook_secret: Vec<u8>,
    /// The key Waybill presents to the SMS provider (and the SMS sandbox expects).
    pub sms_api_key: String,
    /// The key webhook subscriptions' secrets are sealed under.
    pub webhook_sealing_key: waybill_write_side::subscriptions::seal::SealingKey,
}

impl Secrets {
    /// From the settings, generating whatever is unset into the secrets directory.
    pub fn resolve(settings: &Settings) -> anyhow::Result<Self> {
        let dir = &settings.secrets_dir;
        let api_keys = match settings.api_keys.as_deref().map(str::trim) {
            Some(keys) if !keys.is_empty() => keys.to_owned(),
            _ => {
                let (key, path, created) = read_or_create(dir, DEV_API_KEY_FILE)?;
                if created {
                    tracing::info!(path = %path.display(), "WAYBILL_API_KEYS unset: generated a dev admin key");
                } else {
                    tracing::info!(path = %path.display(), "WAYBILL_API_KEYS unset: using the dev admin key");
                }
                format!("{key}:dev:admin")
            }
        };
        let tracking_secret = match settings.tracking_secret.as_deref() {
            Some(secret) if !secret.is_empty() => secret.as_bytes().to_vec(),
            _ => {
                let (secret, path, _) = read_or_create(dir, TRACKING_SECRET_FILE)?;
                tracing::info!(path = %path.display(), "WAYBILL_TRACKING_SECRET unset: using the dev secret");
                secret.into_bytes()
            }
        };
        let tracking = TrackingKeys::new(tracking_secret)
            .with_previous(
                settings
                    .tracking_secret_previous
                    .as_deref()
                    .map(|s| s.as_bytes().to_vec()),
            )
            .with_ttl(chrono::Duration::days(settings.tracking_token_ttl_days))
            .with_legacy_until(settings.tracking_legacy_until);
        let jwt_secret =
            configured_or_generated(settings.jwt_secret.as_deref(), dir, JWT_SECRET_FILE)?
                .into_bytes();
        let checkout = &settings.checkout;
        let payment_api_key = configured_or_generated(
            checkout.payment_api_key.as_deref(),
            dir,
            PAYMENT_API_KEY_FILE,
        )?;
        let payment_webhook_secret = configured_or_generated(
            checkout.payment_webhook_secret.as_deref(),
            dir,
            PAYMENT_WEBHOOK_SECRET_FILE,
        )?
        .into_bytes();
        let logistics_webhook_secret = configured_or_generated(
            settings.fulfillment.logistics_webhook_secret.as_deref(),
            dir,
            LOGISTICS_WEBHOOK_SECRET_FILE,
        )?
        .into_bytes();
        let sms_api_key =
            configured_or_generated(checkout.sms_api_key.as_deref(), dir, SMS_API_KEY_FILE)?;
        let webhook_sealing_key =
            waybill_write_side::subscriptions::seal::SealingKey::parse(&configured_or_generated(
                settings.webhooks.webhook_sealing_key.as_deref(),
                dir,
                WEBHOOK_SEALING_KEY_FILE,
            )?)
            .context("WAYBILL_WEBHOOK_SEALING_KEY")?;
        Ok(Self {
            sms_api_key,
            client_key: client_key(&api_keys),
            api_keys,
            tracking,
            jwt_secret,
            payment_api_key,
            payment_webhook_secret,
            logistics_webhook_secret,
            webhook_sealing_key,
        })
    }
}

/// Installs the master key of personal data (`WAYBILL_PII_MASTER_KEY`, or the dev key in the
/// secrets directory) for the whole process: every event write seals personal fields under a
/// data key it wraps, every read opens them (see `waybill_write_side::pii`). Every command that
/// touches the event log runs this first. `serving` (a long-running role that reads or writes
/// events: one process of what may be a deployment of many) refuses the generated dev key
/// unless `WAYBILL_ALLOW_GENERATED_PII_KEY` says this is a developer machine.
pub fn install_pii_master_key(settings: &Settings, serving: bool) -> anyhow::Result<()> {
    let set = settings
        .pii_master_key
        .as_deref()
        .is_some_and(|v| !v.trim().is_empty());
    if serving && !set && !settings.allow_generated_pii_key {
        anyhow::bail!(
            "WAYBILL_PII_MASTER_KEY is not set. Customers' personal data in events is sealed \
             under data keys wrapped with this master key; a key generated into {} would not be \
             shared by the other processes of a deployment and would be lost with that \
             directory, and the personal data with it. Set WAYBILL_PII_MASTER_KEY (64 hex \
             digits: openssl rand -hex 32) to the same value in every process, or set \
             WAYBILL_ALLOW_GENERATED_PII_KEY=true on a developer machine.",
            settings.secrets_dir.join(PII_MASTER_KEY_FILE).display()
        );
    }
    let configured = configured_or_generated(
        settings.pii_master_key.as_deref(),
        &settings.secrets_dir,
        PII_MASTER_KEY_FILE,
    )?;
    let key = waybill_write_side::subscriptions::seal::SealingKey::parse(&configured)
        .context("WAYBILL_PII_MASTER_KEY")?;
    waybill_write_side::pii::install(key);
    Ok(())
}

/// Whether `serve <role>` reads or writes events that hold personal data (the sandboxes do
/// not, and the relay publishes outbox rows as stored, sealed).
pub fn serves_personal_data(role: crate::config::Role) -> bool {
    use crate::config::Role;
    !matches!(
        role,
        Role::Relay | Role::PaymentSandbox | Role::LogisticsSandbox | Role::SmsSandbox
    )
}

/// The configured value, or the dev secret `name` in `dir` (generated once).
fn configured_or_generated(
    configured: Option<&str>,
    dir: &Path,
    name: &str,
) -> anyhow::Result<String> {
    match configured.map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value.to_owned()),
        _ => Ok(read_or_create(dir, name)?.0),
    }
}

/// The first key whose role may place orders and read tracking.
pub fn client_key(api_keys: &str) -> Option<String> {
    api_keys.split(',').map(str::trim).find_map(|entry| {
        let mut parts = entry.splitn(3, ':');
        let (key, _client, role) = (parts.next()?, parts.next()?, parts.next()?);
        matches!(role, "admin" | "service" | "agent").then(|| key.to_owned())
    })
}

/// The secret in `dir/name`, created with 32 random bytes (hex) if absent. `true` if created.
fn read_or_create(dir: &Path, name: &str) -> anyhow::Result<(String, PathBuf, bool)> {
    let path = dir.join(name);
    if let Ok(existing) = fs::read_to_string(&path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok((existing.to_owned(), path, false));
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    // Write a private temp file, then link it into place: linking fails if another process
    // got there first, and then everyone uses that one.
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temp)
        .with_context(|| format!("writing {}", temp.display()))?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    drop(file);
    let linked = fs::hard_link(&temp, &path);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok((secret, path, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let existing =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok((existing.trim().to_owned(), path, false))
        }
        Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn client_key_is_the_first_key_that_may_place_orders() {
        assert_eq!(
            client_key("f:fin:finance, s:shop:service,a:ann:admin").as_deref(),
            Some("s")
        );
        assert_eq!(client_key("f:fin:finance"), None);
        assert_eq!(client_key(""), None);
    }

    #[test]
    fn generated_secrets_are_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("waybill-secrets-{}", uuid::Uuid::now_v7()));
        let (first, path, created) = read_or_create(&dir, "s").unwrap();
        assert!(created);
        assert_eq!(first.len(), 64);
        let (again, _, created_again) = read_or_create(&dir, "s").unwrap();
        assert!(!created_again);
        assert_eq!(first, again);
        assert!(path.starts_with(&dir));
        fs::remove_dir_all(dir).unwrap();
    }
}
