//! A development JWT issuer: Ed25519 keys, `EdDSA` tokens, and verification with
//! the checks API Gateway's JWT authorizer makes (signature, `iss`, `aud`, `exp`,
//! `nbf`). The key lives in a file the scripts create; it is for local use only.

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::LocalError;

pub const ISSUER: &str = "https://lapse.local/dev-issuer";
pub const AUDIENCE: &str = "lapse-api";

/// PKCS#8 v1 prefix for a raw Ed25519 private key (RFC 8410).
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The claims Lapse reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employment_type: Option<String>,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
}

pub struct DevIssuer {
    seed: [u8; 32],
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &ISSUER)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    seed_hex: String,
}

impl DevIssuer {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        Self {
            seed,
            encoding: EncodingKey::from_ed_der(&der),
            decoding: DecodingKey::from_ed_der(signing.verifying_key().as_bytes()),
        }
    }

    pub fn generate() -> Result<Self, LocalError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| LocalError::Issuer(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// Loads the key file, creating it (mode 600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, LocalError> {
        if let Ok(text) = std::fs::read_to_string(path) {
            let file: KeyFile =
                serde_json::from_str(&text).map_err(|e| LocalError::Issuer(e.to_string()))?;
            let seed: [u8; 32] = hex::decode(file.seed_hex)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    LocalError::Issuer(format!("{} holds no valid key", path.display()))
                })?;
            return Ok(Self::from_seed(seed));
        }
        let issuer = Self::generate()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string(&KeyFile {
            seed_hex: hex::encode(issuer.seed),
        })
        .map_err(|e| LocalError::Issuer(e.to_string()))?;
        std::fs::write(path, text)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(issuer)
    }

    /// A token for a person, valid for `ttl` from now (this machine's clock).
    pub fn mint(
        &self,
        user: &str,
        groups: &[&str],
        employment: &str,
        ttl: TimeDelta,
    ) -> Result<String, LocalError> {
        self.mint_at(user, groups, employment, ttl, Utc::now())
    }

    /// A token issued at `at` (the local stack's clock), valid for `ttl`.
    pub fn mint_at(
        &self,
        user: &str,
        groups: &[&str],
        employment: &str,
        ttl: TimeDelta,
        at: DateTime<Utc>,
    ) -> Result<String, LocalError> {
        let now = at.timestamp();
        let claims = Claims {
            sub: user.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            employment_type: Some(employment.to_owned()),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            exp: now + ttl.num_seconds(),
            nbf: now - 5,
            iat: now,
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use it for expired or foreign tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, LocalError> {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.encoding)
            .map_err(|e| LocalError::Issuer(e.to_string()))
    }

    /// Verifies a token as the JWT authorizer would, at this machine's time;
    /// `None` means 401.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        self.verify_at(token, Utc::now())
    }

    /// Verifies a token as the JWT authorizer would at `now` (the local stack's
    /// clock, so that moving it forward expires tokens as time would).
    pub fn verify_at(&self, token: &str, now: DateTime<Utc>) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // The time claims are checked against `now` below, not this machine's time.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()?
            .claims;
        let now = now.timestamp();
        (claims.nbf <= now && now < claims.exp).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_the_right_key_and_in_time() {
        let issuer = DevIssuer::from_seed([7; 32]);
        let token = issuer
            .mint("rita", &["managers"], "employee", TimeDelta::minutes(5))
            .unwrap();
        let claims = issuer.verify(&token).unwrap();
        assert_eq!(claims.sub, "rita");
        assert_eq!(claims.groups, ["managers"]);

        let other = DevIssuer::from_seed([8; 32]);
        assert!(other.verify(&token).is_none(), "bad signature");
        let mut expired = claims.clone();
        expired.exp = Utc::now().timestamp() - 10;
        assert!(
            issuer.verify(&issuer.sign(&expired).unwrap()).is_none(),
            "expired"
        );
        // On a clock moved forward: valid until its own expiry, on that clock.
        let later = Utc::now() + TimeDelta::hours(3);
        let minted = issuer
            .mint_at("rita", &[], "employee", TimeDelta::hours(1), later)
            .unwrap();
        assert!(issuer.verify_at(&minted, later).is_some());
        assert!(issuer.verify(&minted).is_none(), "not yet valid now");
        assert!(
            issuer
                .verify_at(&minted, later + TimeDelta::hours(1))
                .is_none(),
            "expired on the moved clock"
        );
        assert!(
            issuer.verify_at(&token, later).is_none(),
            "expired on the moved clock"
        );
        let mut foreign = claims.clone();
        foreign.aud = "someone-else".into();
        assert!(
            issuer.verify(&issuer.sign(&foreign).unwrap()).is_none(),
            "wrong audience"
        );
        let mut tampered = token.clone();
        tampered.replace_range(token.len() - 4.., "AAAA");
        assert!(issuer.verify(&tampered).is_none());
        assert!(issuer.verify("not.a.jwt").is_none());
    }
}
