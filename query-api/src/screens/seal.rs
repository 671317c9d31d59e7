//! The credential a console session forwards to the command API, sealed at rest.
//!
//! The session record in Redis keeps the staff member's own credential (API key or JWT) so the
//! command API can apply its role checks to them. It is sealed with ChaCha20-Poly1305 under a key
//! derived from the session id (HMAC-SHA256), and the session id only lives in the browser's
//! cookie: Redis holds a digest of it as the key name, never the id itself. Whoever can read Redis
//! therefore cannot read or use the credential, and a tampered record fails to open.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn cipher(session_id: &str) -> ChaCha20Poly1305 {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(session_id.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"waybill console credential v1");
    let key = mac.finalize().into_bytes();
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

/// Seals `credential` for the session `session_id`: base64 of nonce ‖ ciphertext.
pub fn seal(session_id: &str, credential: &str) -> String {
    let nonce: [u8; 12] = rand::random();
    let mut out = nonce.to_vec();
    let sealed = cipher(session_id)
        .encrypt(Nonce::from_slice(&nonce), credential.as_bytes())
        .unwrap_or_else(|_| unreachable!("encrypting into a Vec cannot fail"));
    out.extend(sealed);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
}

/// Opens what [`seal`] made under the same session id; `None` when anything does not match.
pub fn open(session_id: &str, sealed: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(sealed)
        .ok()?;
    if raw.len() < 12 {
        return None;
    }
    let (nonce, body) = raw.split_at(12);
    let plain = cipher(session_id)
        .decrypt(Nonce::from_slice(nonce), body)
        .ok()?;
    String::from_utf8(plain).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_credential_opens_only_with_its_own_session_id() {
        let sealed = seal("session-a", "agent-key-123");
        assert!(!sealed.contains("agent-key-123"));
        assert_eq!(open("session-a", &sealed).as_deref(), Some("agent-key-123"));
        assert_eq!(open("session-b", &sealed), None);
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            open("session-a", &String::from_utf8(tampered).unwrap()),
            None
        );
    }
}
