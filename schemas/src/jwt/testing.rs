//! Signing keys made on the spot, for tests of JWT verification: an RSA (RS256) or P-256
//! (ES256) key pair with its public half as a JWK, and the JWKS document that publishes them.
//! Behind the `testing` feature (the end-to-end harness serves these keys as an identity
//! provider would); nothing in production signs with them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use rand_core::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

/// A key pair an identity provider would sign tokens with.
pub struct TestSigner {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    public_pem: String,
}

impl TestSigner {
    /// A fresh 2048-bit RSA key for RS256.
    pub fn rsa(kid: &str) -> Self {
        let private = rsa::RsaPrivateKey::new(&mut OsRng, 2048).expect("RSA key generation");
        let public = private.to_public_key();
        let der = private.to_pkcs1_der().expect("PKCS#1 encoding");
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }),
            public_pem: public
                .to_public_key_pem(LineEnding::LF)
                .expect("PEM encoding"),
        }
    }

    /// A fresh P-256 key for ES256.
    pub fn ec(kid: &str) -> Self {
        let private = p256::SecretKey::random(&mut OsRng);
        let public = private.public_key();
        let point = public.to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| {
            URL_SAFE_NO_PAD.encode(c.map(|c| c.to_vec()).unwrap_or_default())
        };
        let der = private.to_pkcs8_der().expect("PKCS#8 encoding");
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256", "kid": kid,
                "x": coordinate(point.x()), "y": coordinate(point.y()),
            }),
            public_pem: public
                .to_public_key_pem(LineEnding::LF)
                .expect("PEM encoding"),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// The public key as PEM: what an attacker who read the JWKS has (alg-confusion tests sign
    /// HS256 with it as the secret).
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// `claims` signed with this key, the header naming its `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(claims, Some(&self.kid))
    }

    /// `claims` signed with this key, the header naming `kid` (or none).
    pub fn sign_as(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing a test token")
    }
}

/// A JWKS document publishing these keys.
pub fn jwks(signers: &[&TestSigner]) -> Value {
    json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() })
}

/// `claims` signed HS256 with `secret`, the header naming `kid` when given.
pub fn sign_hs256(secret: &[u8], claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret))
        .expect("signing a test token")
}
