//! Access tokens (JWT) and opaque secrets (refresh and API tokens).

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The prefix of API tokens, so they are recognisable (and scannable) in leaks.
pub const API_TOKEN_PREFIX: &str = "ihk_";

/// Who issues access tokens and whom they are for: a token another service
/// signed (with a key shared by mistake, say) is refused.
pub const ISSUER: &str = "icehouse";
pub const AUDIENCE: &str = "icehouse-api";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user.
    pub sub: Uuid,
    /// The tenant the session is in.
    pub tid: Uuid,
    pub iat: i64,
    /// `iat` in milliseconds, so that a password change ends the sessions
    /// issued in the same second before it (and not the one just after).
    #[serde(default)]
    pub iat_ms: i64,
    pub exp: i64,
    pub jti: Uuid,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub ttl_secs: u64,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        // Exactly one algorithm is accepted; `alg: none` and every other
        // algorithm are refused by the library before the signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "iat", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    pub fn issue(&self, user: Uuid, tenant: Uuid) -> anyhow::Result<String> {
        let issued = chrono::Utc::now();
        let now = issued.timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user,
            tid: tenant,
            iat: now,
            iat_ms: issued.timestamp_millis(),
            exp: now + self.ttl_secs as i64,
            jti: Uuid::new_v4(),
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok().map(|data| data.claims)
    }
}

/// A new random secret (256 bits, base64url) and its hash for storage.
pub fn new_secret(prefix: &str) -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_secret(&secret);
    (secret, hash)
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_round_trip_and_refusals() {
        let keys = JwtKeys::new(&[1u8; 32], 60);
        let (u, t) = (Uuid::new_v4(), Uuid::new_v4());
        let token = keys.issue(u, t).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.tid), (u, t));
        assert!(JwtKeys::new(&[2u8; 32], 60).verify(&token).is_none(), "other key");
        let mut parts: Vec<&str> = token.split('.').collect();
        let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        parts[0] = &none_header;
        assert!(keys.verify(&format!("{}.{}.", parts[0], parts[1])).is_none(), "alg none");
    }

    #[test]
    fn secrets_are_unique_and_hashed() {
        let (a, ha) = new_secret("x_");
        let (b, _) = new_secret("x_");
        assert_ne!(a, b);
        assert!(a.starts_with("x_") && a.len() == 2 + 43);
        assert_eq!(ha, hash_secret(&a));
    }
}
