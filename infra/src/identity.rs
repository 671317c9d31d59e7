//! Who signs the Bearer JWTs both APIs accept: Waybill's own HS256 secret
//! (`WAYBILL_JWT_SECRET`) and, when `WAYBILL_JWKS_URL` is set, the storefront's identity provider
//! (RS256/ES256 keys from its JWKS, fetched at start, every `WAYBILL_JWKS_REFRESH_SECS`, and on a
//! token with an unknown `kid` at most once per `WAYBILL_JWKS_MIN_REFRESH_SECS`), all held to one
//! policy: issuer, audience, leeway, and the claim the role is read from.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use waybill_schemas::jwt::{JwtKey, JwtPolicy, JwtVerifier};
use waybill_write_side::jwks::JwksFetcher;

use crate::shutdown::Shutdown;

/// How long one JWKS fetch may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Args)]
pub struct JwtSettings {
    /// The identity provider's JWKS URL: RS256/ES256 Bearer JWTs signed with its keys are
    /// accepted beside HS256 ones. Unset: HS256 only.
    #[arg(long, env = "WAYBILL_JWKS_URL", global = true)]
    pub jwks_url: Option<String>,
    /// Accepted `iss` values (comma-separated); tokens without one of them are refused.
    /// Unset: the issuer is not checked.
    #[arg(long, env = "WAYBILL_JWT_ISSUER", global = true, value_delimiter = ',')]
    pub jwt_issuer: Vec<String>,
    /// Accepted `aud` values (comma-separated); a token must name one. Unset: tokens naming
    /// any audience are refused (they were meant for another service).
    #[arg(
        long,
        env = "WAYBILL_JWT_AUDIENCE",
        global = true,
        value_delimiter = ','
    )]
    pub jwt_audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[arg(long, env = "WAYBILL_JWT_LEEWAY_SECS", global = true, default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub jwt_leeway_secs: u64,
    /// The claim holding the caller's role (a string or an array of strings; a dotted path
    /// such as `realm_access.roles` for nested claims). No such claim: role customer.
    #[arg(
        long,
        env = "WAYBILL_JWT_ROLE_CLAIM",
        global = true,
        default_value = "role"
    )]
    pub jwt_role_claim: String,
    /// Seconds between scheduled JWKS fetches.
    #[arg(long, env = "WAYBILL_JWKS_REFRESH_SECS", global = true, default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub jwks_refresh_secs: u64,
    /// Least seconds between fetches caused by tokens naming an unknown `kid`.
    #[arg(
        long,
        env = "WAYBILL_JWKS_MIN_REFRESH_SECS",
        global = true,
        default_value_t = 10
    )]
    pub jwks_min_refresh_secs: u64,
}

impl JwtSettings {
    fn policy(&self) -> JwtPolicy {
        let listed = |values: &[String]| {
            values
                .iter()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect()
        };
        JwtPolicy {
            issuers: listed(&self.jwt_issuer),
            audiences: listed(&self.jwt_audience),
            leeway_secs: self.jwt_leeway_secs,
            role_claim: self.jwt_role_claim.trim().to_owned(),
        }
    }
}

/// The verifier both APIs of this process share (`None`: JWTs off). With an identity provider
/// the first fetch happens here; if it fails the process starts anyway (the keys are fetched
/// again on schedule and on the first token that needs them) and says so in the log.
pub async fn verifier(
    settings: &JwtSettings,
    hs256_secret: &[u8],
    shutdown: &Shutdown,
) -> anyhow::Result<Option<JwtVerifier>> {
    let mut verifier = JwtVerifier::new(settings.policy());
    if !hs256_secret.is_empty() {
        verifier = verifier.with_secret_key(JwtKey::new(hs256_secret));
    }
    if let Some(url) = settings
        .jwks_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        let fetcher = Arc::new(JwksFetcher::new(
            url.trim(),
            Duration::from_secs(settings.jwks_min_refresh_secs),
            JWKS_FETCH_TIMEOUT,
        )?);
        if let Err(error) = fetcher.fetch().await {
            tracing::error!(%error, "the identity provider's keys could not be fetched at start; its tokens are refused until they are");
        }
        tokio::spawn(Arc::clone(&fetcher).keep_fresh(
            Duration::from_secs(settings.jwks_refresh_secs),
            shutdown.wait(),
        ));
        verifier = verifier.with_jwks(fetcher);
    }
    Ok(verifier.accepts_tokens().then_some(verifier))
}
