//! Subscription secrets sealed at rest: ChaCha20-Poly1305 (a 256-bit AEAD like AES-256-GCM,
//! constant-time in software and already a dependency of the screens) under the operator's
//! `WAYBILL_WEBHOOK_SEALING_KEY`, with the subscription id as associated data so a sealed
//! secret copied onto another subscription does not open. Whoever reads the database learns no
//! secret; the key never is in the database.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use uuid::Uuid;

/// Why a sealing key or a sealed secret was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the sealing key must be 64 hex characters (32 bytes), or at least 32 characters")]
    BadKey,
    #[error("a sealed secret of subscription {0} does not open under the configured key")]
    DoesNotOpen(Uuid),
}

/// The key secrets are sealed under.
#[derive(Clone)]
pub struct SealingKey {
    cipher: ChaCha20Poly1305,
    /// The key of [`SealingKey::keyed_digest`]: derived from the sealing key (SHA-256 of a
    /// label and the key), so the cipher's key itself is never used for a second purpose.
    digest_key: [u8; 32],
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

impl SealingKey {
    /// From 64 hex characters (32 random bytes: `openssl rand -hex 32`), or any other text of
    /// at least 32 characters, whose SHA-256 is then the key.
    pub fn parse(configured: &str) -> Result<Self, SealError> {
        let configured = configured.trim();
        let key: [u8; 32] = match hex::decode(configured) {
            Ok(bytes) if bytes.len() == 32 => bytes
                .try_into()
                .unwrap_or_else(|_| unreachable!("32 bytes")),
            _ if configured.chars().count() >= 32 => {
                use sha2::Digest;
                sha2::Sha256::digest(configured.as_bytes()).into()
            }
            _ => return Err(SealError::BadKey),
        };
        let digest_key = {
            use sha2::Digest;
            let mut hasher = sha2::Sha256::new();
            hasher.update(b"waybill-keyed-digest-v1\0");
            hasher.update(key);
            hasher.finalize().into()
        };
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            digest_key,
        })
    }

    /// Hex HMAC-SHA256 of `message` under a key derived from this key, in the domain `label`:
    /// the same input always gives the same digest (an index can be keyed by it), and nobody
    /// without the key can compute it or test a guess against it.
    pub fn keyed_digest(&self, label: &str, message: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.digest_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// nonce ‖ ciphertext of `secret`, bound to `subscription_id`.
    pub fn seal(&self, subscription_id: Uuid, secret: &str) -> Vec<u8> {
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: subscription_id.as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("encrypting into a Vec cannot fail"));
        let mut out = nonce.to_vec();
        out.extend(sealed);
        out
    }

    /// The secret [`SealingKey::seal`] sealed for `subscription_id`.
    pub fn open(&self, subscription_id: Uuid, sealed: &[u8]) -> Result<String, SealError> {
        let fail = || SealError::DoesNotOpen(subscription_id);
        if sealed.len() < 12 {
            return Err(fail());
        }
        let (nonce, body) = sealed.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: subscription_id.as_bytes(),
                },
            )
            .map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_secret_opens_only_for_its_subscription_and_key() {
        let key = SealingKey::parse(KEY).unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = key.seal(a, "whsec_abc");
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(key.open(a, &sealed).unwrap(), "whsec_abc");
        assert_eq!(key.open(b, &sealed), Err(SealError::DoesNotOpen(b)));
        let other = SealingKey::parse(&KEY.replace("1f", "20")).unwrap();
        assert!(other.open(a, &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open(a, &tampered).is_err());
    }

    #[test]
    fn keys_are_32_bytes_of_hex_or_long_text() {
        assert!(SealingKey::parse("abcd").is_err());
        assert!(SealingKey::parse("short-text-key").is_err());
        assert!(SealingKey::parse(KEY).is_ok());
        let text = SealingKey::parse(&"zz".repeat(32)).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(text.open(id, &text.seal(id, "s")).unwrap(), "s");
    }

    #[test]
    fn keyed_digests_are_stable_per_key_and_label_and_hide_the_input() {
        let key = SealingKey::parse(KEY).unwrap();
        let digest = key.keyed_digest("guest-email", "ada@example.com");
        assert_eq!(digest, key.keyed_digest("guest-email", "ada@example.com"));
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains("ada"));
        assert_ne!(digest, key.keyed_digest("guest-email", "bob@example.com"));
        assert_ne!(digest, key.keyed_digest("other", "ada@example.com"));
        let other = SealingKey::parse(&KEY.replace("1f", "20")).unwrap();
        assert_ne!(digest, other.keyed_digest("guest-email", "ada@example.com"));
    }
}
