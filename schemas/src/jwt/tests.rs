use std::sync::OnceLock;

use serde_json::json;

use super::testing::{jwks, sign_hs256, TestSigner};
use super::*;

const NOW: i64 = 1_800_000_000;

fn claims(role: &str, exp: i64) -> Claims {
    Claims {
        sub: "cust-42".into(),
        role: role.into(),
        exp,
    }
}

/// Keys are slow to make in a debug build: one of each for all tests.
fn rsa() -> &'static TestSigner {
    static KEY: OnceLock<TestSigner> = OnceLock::new();
    KEY.get_or_init(|| TestSigner::rsa("rsa-1"))
}

fn ec() -> &'static TestSigner {
    static KEY: OnceLock<TestSigner> = OnceLock::new();
    KEY.get_or_init(|| TestSigner::ec("ec-1"))
}

/// A key source that never fetches: what the keys are is what the test put in.
struct Fixed(JwksKeys);

impl JwksSource for Fixed {
    fn keys(&self) -> &JwksKeys {
        &self.0
    }
    fn refresh_for<'a>(&'a self, _: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async {})
    }
}

fn idp_verifier(policy: JwtPolicy, signers: &[&TestSigner]) -> (JwtVerifier, JwksKeys) {
    let keys = JwksKeys::default();
    let document = serde_json::to_vec(&jwks(signers)).unwrap();
    keys.replace_from_json(&document).unwrap();
    let verifier = JwtVerifier::new(policy).with_jwks(Arc::new(Fixed(keys.clone())));
    (verifier, keys)
}

fn storefront_policy() -> JwtPolicy {
    JwtPolicy {
        issuers: vec!["https://id.shop.example".into()],
        audiences: vec!["waybill".into()],
        leeway_secs: 30,
        role_claim: "role".into(),
    }
}

fn idp_claims() -> serde_json::Value {
    json!({"sub": "cust-7", "iss": "https://id.shop.example", "aud": "waybill", "exp": NOW + 300})
}

#[test]
fn a_valid_hs256_token_names_its_subject_and_role() {
    let key = JwtKey::new(b"secret");
    let token = key.issue(&claims("customer", NOW + 60));
    assert!(looks_like_jwt(&token));
    let principal = key.verify(&token, NOW).unwrap();
    assert_eq!(principal.client_id, "cust-42");
    assert_eq!(principal.role, Role::Customer);
    for role in ["agent", "finance", "admin", "service"] {
        let token = key.issue(&claims(role, NOW + 60));
        assert_eq!(key.verify(&token, NOW).unwrap().role.as_str(), role);
    }
}

#[test]
fn an_expired_token_is_refused_from_its_exp_second_on_plus_the_leeway() {
    let key = JwtKey::new(b"secret");
    let token = key.issue(&claims("customer", NOW));
    assert_eq!(
        key.verify(&token, NOW),
        Err(JwtError::Expired { exp: NOW, now: NOW })
    );
    assert!(key.verify(&token, NOW - 1).is_ok());
    let lenient = JwtVerifier::new(JwtPolicy {
        leeway_secs: 30,
        ..JwtPolicy::default()
    })
    .with_secret_key(key);
    assert!(lenient.verify(&token, NOW + 29).is_ok());
    assert_eq!(
        lenient.verify(&token, NOW + 30),
        Err(JwtError::Expired {
            exp: NOW,
            now: NOW + 30
        })
    );
}

#[test]
fn a_token_signed_with_another_secret_is_refused() {
    let token = JwtKey::new(b"other").issue(&claims("admin", NOW + 60));
    assert_eq!(
        JwtKey::new(b"secret").verify(&token, NOW),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn tokens_naming_an_algorithm_nobody_allows_are_refused_before_the_signature() {
    let key = JwtKey::new(b"secret");
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("admin", NOW + 60)).unwrap());
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"HS512"}"#,
        r#"{"alg":"RS384"}"#,
        r#"{"alg":"PS256"}"#,
        r#"{"alg":"hs256"}"#,
    ] {
        let header = URL_SAFE_NO_PAD.encode(header);
        for token in [
            format!("{header}.{payload}.c2lnbmF0dXJl"),
            format!("{header}.{payload}."),
        ] {
            assert_eq!(
                key.verify(&token, NOW),
                Err(JwtError::WrongAlgorithm),
                "{token}"
            );
        }
    }
    // RS256 and ES256 without an identity provider configured.
    let token = rsa().sign(&json!({"sub": "x", "exp": NOW + 60}));
    assert_eq!(key.verify(&token, NOW), Err(JwtError::WrongAlgorithm));
}

#[test]
fn a_tampered_payload_or_signature_is_refused() {
    let key = JwtKey::new(b"secret");
    let token = key.issue(&claims("customer", NOW + 60));
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = signed.split_once('.').unwrap();
    // Same signature, payload promoting the customer to admin.
    let forged_payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("admin", NOW + 60)).unwrap());
    let forged = format!("{header}.{forged_payload}.{signature}");
    assert_eq!(key.verify(&forged, NOW), Err(JwtError::BadSignature));
    // One flipped signature character.
    let mut chars: Vec<char> = signature.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    let flipped = format!("{signed}.{}", chars.into_iter().collect::<String>());
    assert_eq!(key.verify(&flipped, NOW), Err(JwtError::BadSignature));
    assert_eq!(
        key.verify(&format!("{signed}.AAAA"), NOW),
        Err(JwtError::BadSignature)
    );
    assert_eq!(
        key.verify(&format!("{token}.x"), NOW),
        Err(JwtError::Malformed)
    );
    assert_eq!(key.verify("abc", NOW), Err(JwtError::Malformed));
    assert_eq!(key.verify("a.b.c", NOW), Err(JwtError::Malformed));
}

#[test]
fn unknown_roles_and_missing_claims_are_refused() {
    let key = JwtKey::new(b"secret");
    let token = key.issue(&claims("root", NOW + 60));
    assert_eq!(
        key.verify(&token, NOW),
        Err(JwtError::UnknownRole("root".into()))
    );
    let no_exp = sign_hs256(b"secret", &json!({"sub": "x", "role": "admin"}), None);
    assert_eq!(
        key.verify(&no_exp, NOW),
        Err(JwtError::BadClaims),
        "a token without exp never expires, so it is refused"
    );
    let no_sub = sign_hs256(b"secret", &json!({"role": "admin", "exp": NOW + 60}), None);
    assert_eq!(key.verify(&no_sub, NOW), Err(JwtError::BadClaims));
}

#[test]
fn rs256_and_es256_tokens_verify_against_the_identity_providers_keys() {
    let (verifier, _) = idp_verifier(storefront_policy(), &[rsa(), ec()]);
    for signer in [rsa(), ec()] {
        let principal = verifier.verify(&signer.sign(&idp_claims()), NOW).unwrap();
        assert_eq!(principal.client_id, "cust-7");
        assert_eq!(principal.role, Role::Customer, "no role claim: a customer");
    }
    // A key the provider does not publish.
    let stranger = TestSigner::ec("ec-1");
    assert_eq!(
        verifier.verify(&stranger.sign(&idp_claims()), NOW),
        Err(JwtError::BadSignature)
    );
    let unknown = ec().sign_as(&idp_claims(), Some("ec-2"));
    assert_eq!(
        verifier.verify(&unknown, NOW),
        Err(JwtError::UnknownKey("ec-2".into()))
    );
    assert_eq!(
        verifier.unknown_kid(&unknown).map(|(_, kid)| kid),
        Some("ec-2".into())
    );
    assert!(verifier.unknown_kid(&ec().sign(&idp_claims())).is_none());
}

#[test]
fn issuer_audience_and_times_are_checked_with_the_leeway() {
    let (verifier, _) = idp_verifier(storefront_policy(), &[rsa()]);
    let with = |patch: serde_json::Value| {
        let mut claims = idp_claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        verifier.verify(&rsa().sign(&claims), NOW)
    };
    assert_eq!(
        with(json!({"iss": "https://evil.example"})),
        Err(JwtError::WrongIssuer)
    );
    assert_eq!(with(json!({"iss": null})), Err(JwtError::WrongIssuer));
    assert_eq!(
        with(json!({"aud": "another-api"})),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(with(json!({"aud": null})), Err(JwtError::WrongAudience));
    assert!(with(json!({"aud": ["another-api", "waybill"]})).is_ok());
    assert!(with(json!({"exp": NOW - 29})).is_ok(), "within the leeway");
    assert_eq!(
        with(json!({"exp": NOW - 30})),
        Err(JwtError::Expired {
            exp: NOW - 30,
            now: NOW
        })
    );
    assert!(with(json!({"nbf": NOW + 30})).is_ok(), "within the leeway");
    assert_eq!(
        with(json!({"nbf": NOW + 31})),
        Err(JwtError::NotYetValid {
            nbf: NOW + 31,
            now: NOW
        })
    );
    assert_eq!(with(json!({"nbf": "soon"})), Err(JwtError::BadClaims));
    // Without an audience configured, a token meant for another service is refused.
    let (open, _) = idp_verifier(JwtPolicy::default(), &[rsa()]);
    assert!(open
        .verify(&rsa().sign(&json!({"sub": "a", "exp": NOW + 9})), NOW)
        .is_ok());
    assert_eq!(
        open.verify(&rsa().sign(&idp_claims()), NOW),
        Err(JwtError::WrongAudience)
    );
}

#[test]
fn a_token_cannot_choose_the_algorithm_of_a_key() {
    let secret = b"waybill-own-secret";
    let (verifier, _) = idp_verifier(storefront_policy(), &[rsa(), ec()]);
    // HS256 signed with the RSA public key (which anyone can read in the JWKS), naming the
    // RSA key's kid: without an HS256 secret there is no HS256 at all...
    let confused = sign_hs256(
        rsa().public_key_pem().as_bytes(),
        &idp_claims(),
        Some(rsa().kid()),
    );
    assert_eq!(
        verifier.verify(&confused, NOW),
        Err(JwtError::WrongAlgorithm)
    );
    // ...and with one, HS256 is checked against that secret only.
    let both = verifier.clone().with_secret_key(JwtKey::new(secret));
    assert_eq!(both.verify(&confused, NOW), Err(JwtError::BadSignature));
    assert!(both.unknown_kid(&confused).is_none(), "never worth a fetch");
    // ES256 header naming the RSA key.
    let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
    header.kid = Some(rsa().kid().into());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&idp_claims()).unwrap());
    let head = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    let mismatched = format!("{head}.{payload}.c2ln");
    assert_eq!(
        verifier.verify(&mismatched, NOW),
        Err(JwtError::WrongAlgorithm)
    );
}

#[test]
fn a_refetched_key_set_replaces_the_old_one_whole() {
    let (verifier, keys) = idp_verifier(storefront_policy(), &[rsa()]);
    let old = rsa().sign(&idp_claims());
    assert!(verifier.verify(&old, NOW).is_ok());
    keys.replace_from_json(&serde_json::to_vec(&jwks(&[ec()])).unwrap())
        .unwrap();
    assert_eq!(
        verifier.verify(&old, NOW),
        Err(JwtError::UnknownKey("rsa-1".into())),
        "a key the provider withdrew stops verifying"
    );
    assert!(verifier.verify(&ec().sign(&idp_claims()), NOW).is_ok());
    // A document with nothing usable keeps what was there.
    let useless = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
                                  {"kty": "RSA", "use": "enc", "kid": "e", "n": "AQAB", "e": "AQAB"},
                                  {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
                                  {"kty": "RSA", "alg": "RSA-OAEP-384", "kid": "odd"}]});
    assert_eq!(
        keys.replace_from_json(&serde_json::to_vec(&useless).unwrap()),
        Err(JwksError::NoUsableKey)
    );
    assert_eq!(keys.replace_from_json(b"[]"), Err(JwksError::NotAKeySet));
    assert!(keys.knows("ec-1"));
}

#[test]
fn a_single_unnamed_key_verifies_tokens_without_kid() {
    let mut jwk = rsa().jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    let keys = JwksKeys::default();
    keys.replace_from_json(&serde_json::to_vec(&json!({"keys": [jwk]})).unwrap())
        .unwrap();
    let verifier = JwtVerifier::new(storefront_policy()).with_jwks(Arc::new(Fixed(keys.clone())));
    assert!(verifier
        .verify(&rsa().sign_as(&idp_claims(), None), NOW)
        .is_ok());
    assert_eq!(
        verifier.verify(&ec().sign_as(&idp_claims(), None), NOW),
        Err(JwtError::UnknownKey(String::new()))
    );
}

#[test]
fn the_role_comes_from_the_configured_claim() {
    let policy = JwtPolicy {
        role_claim: "realm_access.roles".into(),
        ..storefront_policy()
    };
    let (verifier, _) = idp_verifier(policy, &[rsa()]);
    let role = |roles: serde_json::Value| {
        let mut claims = idp_claims();
        claims["realm_access"] = json!({ "roles": roles });
        verifier.verify(&rsa().sign(&claims), NOW).map(|p| p.role)
    };
    assert_eq!(role(json!(["offline_access", "agent"])), Ok(Role::Agent));
    assert_eq!(
        role(json!(["finance", "admin"])),
        Ok(Role::Admin),
        "the most privileged"
    );
    assert_eq!(role(json!("service")), Ok(Role::Service));
    assert_eq!(
        role(json!(["offline_access"])),
        Err(JwtError::UnknownRole("offline_access".into()))
    );
    assert_eq!(role(json!(7)), Err(JwtError::BadClaims));
    let mut claims = idp_claims();
    claims["role"] = json!("admin");
    assert_eq!(
        verifier.verify(&rsa().sign(&claims), NOW).map(|p| p.role),
        Ok(Role::Customer),
        "only the configured claim counts"
    );
}
