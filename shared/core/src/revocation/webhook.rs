//! Webhook authentication for HR systems: a bearer token plus a Standard-Webhooks
//! HMAC-SHA256 signature over `<webhook-id>.<webhook-timestamp>.<body>`.
//!
//! - Every comparison is constant time (token digests with `subtle`, signatures with
//!   the MAC's own verification).
//! - Two secrets of each kind are accepted at once, so they can be rotated.
//! - A timestamp more than five minutes from now is refused (replay window); replays
//!   inside the window are caught by the event-id claim the handler makes next.
//! - Bodies over 256 KiB are refused before any work is done on them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Largest body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// How far a signature's timestamp may be from now.
pub const TOLERANCE: TimeDelta = TimeDelta::minutes(5);

/// The secrets in force (current first, then the one being rotated out).
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    bearer: Vec<[u8; 32]>,
    hmac_keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("bearer", &format!("{} token(s)", self.bearer.len()))
            .field("hmac_keys", &format!("{} key(s)", self.hmac_keys.len()))
            .finish()
    }
}

/// A malformed secret (the message never contains the secret).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("webhook secret {0} is malformed: signing secrets look like `whsec_<base64>`")]
pub struct SecretFormatError(pub usize);

impl WebhookSecrets {
    /// From bearer tokens and `whsec_…` signing secrets (one or two of each).
    pub fn new(
        bearer_tokens: &[&str],
        signing_secrets: &[&str],
    ) -> Result<Self, SecretFormatError> {
        let bearer = bearer_tokens
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| Sha256::digest(t.as_bytes()).into())
            .collect();
        let hmac_keys = signing_secrets
            .iter()
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| {
                s.strip_prefix("whsec_")
                    .and_then(|b| B64.decode(b).ok())
                    .filter(|k| k.len() >= 16)
                    .ok_or(SecretFormatError(i))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { bearer, hmac_keys })
    }
}

/// The headers the check needs.
#[derive(Clone, Debug, Default)]
pub struct WebhookHeaders<'a> {
    pub authorization: Option<&'a str>,
    pub webhook_id: Option<&'a str>,
    pub webhook_timestamp: Option<&'a str>,
    pub webhook_signature: Option<&'a str>,
}

/// Why a webhook call was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing bearer token")]
    MissingToken,
    #[error("invalid bearer token")]
    BadToken,
    #[error("missing webhook-id, webhook-timestamp or webhook-signature header")]
    MissingSignature,
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than 5 minutes from the server's time")]
    StaleTimestamp,
    #[error("no valid signature")]
    BadSignature,
    #[error("body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the webhook has no secrets configured")]
    NotConfigured,
}

impl WebhookError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::TooLarge => 413,
            WebhookError::NotConfigured => 500,
            _ => 401,
        }
    }
}

/// The HR sender's networks (the stack's `HrSenderNetworks` parameter): a
/// comma-separated list of IPv4 and IPv6 CIDR blocks. When set, the webhook
/// refuses any other source address before it reads a secret or the body, so
/// junk from elsewhere costs one comparison. Empty: not configured, every source
/// goes on to authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SenderNetworks {
    blocks: Vec<(std::net::IpAddr, u8)>,
}

impl SenderNetworks {
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut blocks = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            let (addr, bits) = raw.split_once('/').unwrap_or((raw, ""));
            let addr: std::net::IpAddr = addr
                .parse()
                .map_err(|_| format!("`{raw}` is not a CIDR block (like 203.0.113.0/24)"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits: u8 = if bits.is_empty() {
                max
            } else {
                bits.parse()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("`{raw}`: the prefix length must be 0 to {max}"))?
            };
            if bits == 0 {
                return Err(format!(
                    "`{raw}` admits every address: leave the list empty instead"
                ));
            }
            blocks.push((addr, bits));
        }
        Ok(Self { blocks })
    }

    pub fn is_configured(&self) -> bool {
        !self.blocks.is_empty()
    }

    /// Whether `source` (the address API Gateway saw) may deliver HR events. An
    /// unparseable or missing address is refused when a list is configured.
    pub fn admits(&self, source: Option<&str>) -> bool {
        if self.blocks.is_empty() {
            return true;
        }
        let Some(ip) = source.and_then(|s| s.parse::<std::net::IpAddr>().ok()) else {
            return false;
        };
        self.blocks
            .iter()
            .any(|(net, bits)| in_block(ip, *net, *bits))
    }
}

fn in_block(ip: std::net::IpAddr, net: std::net::IpAddr, bits: u8) -> bool {
    use std::net::IpAddr;
    let (ip, net, width): (u128, u128, u32) = match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => (u32::from(ip).into(), u32::from(net).into(), 32),
        (IpAddr::V6(ip), IpAddr::V6(net)) => (u128::from(ip), u128::from(net), 128),
        (IpAddr::V6(ip), IpAddr::V4(net)) => match ip.to_ipv4_mapped() {
            Some(ip) => (u32::from(ip).into(), u32::from(net).into(), 32),
            None => return false,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => return false,
    };
    let shift = width - u32::from(bits);
    (ip >> shift) == (net >> shift)
}

/// The Standard Webhooks signature for a message (what senders compute).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = B64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// Authenticates one call. Order matters: cheap checks first, no parsing of the
/// body until it is authenticated.
pub fn authenticate(
    secrets: &WebhookSecrets,
    headers: &WebhookHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    if secrets.bearer.is_empty() || secrets.hmac_keys.is_empty() {
        return Err(WebhookError::NotConfigured);
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::TooLarge);
    }
    let token = headers
        .authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(WebhookError::MissingToken)?;
    let presented: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
    // Check every configured token, so timing does not reveal which one matched.
    let token_ok = secrets
        .bearer
        .iter()
        .fold(subtle::Choice::from(0), |ok, expected| {
            ok | expected.ct_eq(&presented)
        });
    if !bool::from(token_ok) {
        return Err(WebhookError::BadToken);
    }
    let (Some(id), Some(timestamp), Some(signatures)) = (
        headers.webhook_id,
        headers.webhook_timestamp,
        headers.webhook_signature,
    ) else {
        return Err(WebhookError::MissingSignature);
    };
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::BadTimestamp)?;
    let sent = DateTime::from_timestamp(seconds, 0).ok_or(WebhookError::BadTimestamp)?;
    if (now - sent).abs() > TOLERANCE {
        return Err(WebhookError::StaleTimestamp);
    }
    let mut valid = false;
    for candidate in signatures.split_whitespace() {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(signature) = B64.decode(encoded) else {
            continue;
        };
        for key in &secrets.hmac_keys {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                continue;
            };
            mac.update(format!("{id}.{seconds}.").as_bytes());
            mac.update(body);
            // `verify_slice` compares in constant time.
            valid |= mac.verify_slice(&signature).is_ok();
        }
    }
    if valid {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hr_senders_networks_are_admitted_when_listed() {
        let nets = SenderNetworks::parse(" 203.0.113.0/24, 198.51.100.7 ,2001:db8::/32").unwrap();
        for ok in [
            "203.0.113.1",
            "203.0.113.255",
            "198.51.100.7",
            "2001:db8::1",
            "::ffff:203.0.113.9",
        ] {
            assert!(nets.admits(Some(ok)), "{ok}");
        }
        for refused in [
            Some("203.0.114.1"),
            Some("198.51.100.8"),
            Some("2001:db9::1"),
            Some("not an address"),
            None,
        ] {
            assert!(!nets.admits(refused), "{refused:?}");
        }
        // Not configured: authentication decides, as before.
        let open = SenderNetworks::parse("").unwrap();
        assert!(!open.is_configured() && open.admits(None));
        for bad in [
            "203.0.113.0/33",
            "0.0.0.0/0",
            "::/0",
            "example.com",
            "10.0.0.0/x",
        ] {
            assert!(SenderNetworks::parse(bad).is_err(), "{bad}");
        }
    }

    const TOKEN: &str = "hr-token-current";
    const OLD_TOKEN: &str = "hr-token-previous";
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OLD_SECRET: &str = "whsec_c2VjcmV0LWJlaW5nLXJvdGF0ZWQtb3V0IQ==";

    fn secrets() -> WebhookSecrets {
        WebhookSecrets::new(&[TOKEN, OLD_TOKEN], &[SECRET, OLD_SECRET]).unwrap()
    }

    fn call<'a>(token: &'a str, ts: &'a str, sig: &'a str) -> WebhookHeaders<'a> {
        WebhookHeaders {
            authorization: Some(token),
            webhook_id: Some("msg_1"),
            webhook_timestamp: Some(ts),
            webhook_signature: Some(sig),
        }
    }

    #[test]
    fn a_signed_call_with_either_secret_passes() {
        let now = Utc::now();
        let body = br#"{"event_type":"user_terminated"}"#;
        let ts = now.timestamp().to_string();
        for (token, secret) in [(TOKEN, SECRET), (OLD_TOKEN, OLD_SECRET)] {
            let sig = sign(secret, "msg_1", now.timestamp(), body).unwrap();
            let bearer = format!("Bearer {token}");
            assert_eq!(
                authenticate(&secrets(), &call(&bearer, &ts, &sig), body, now),
                Ok(())
            );
        }
        // Several signatures: one valid is enough.
        let sig = format!(
            "v1,AAAA {}",
            sign(SECRET, "msg_1", now.timestamp(), body).unwrap()
        );
        assert_eq!(
            authenticate(
                &secrets(),
                &call("Bearer hr-token-current", &ts, &sig),
                body,
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn every_failure_is_refused() {
        let now = Utc::now();
        let body = br#"{"a":1}"#;
        let ts = now.timestamp().to_string();
        let sig = sign(SECRET, "msg_1", now.timestamp(), body).unwrap();
        let s = secrets();
        let refused = |h: WebhookHeaders<'_>, b: &[u8]| authenticate(&s, &h, b, now).unwrap_err();
        assert_eq!(
            refused(WebhookHeaders::default(), body),
            WebhookError::MissingToken
        );
        assert_eq!(
            refused(call("Bearer wrong", &ts, &sig), body),
            WebhookError::BadToken
        );
        assert_eq!(
            refused(call("Basic abc", &ts, &sig), body),
            WebhookError::MissingToken
        );
        let mut missing = call("Bearer hr-token-current", &ts, &sig);
        missing.webhook_signature = None;
        assert_eq!(refused(missing, body), WebhookError::MissingSignature);
        assert_eq!(
            refused(call("Bearer hr-token-current", "soon", &sig), body),
            WebhookError::BadTimestamp
        );
        let old = (now - TimeDelta::minutes(6)).timestamp();
        let old_sig = sign(SECRET, "msg_1", old, body).unwrap();
        assert_eq!(
            refused(
                call("Bearer hr-token-current", &old.to_string(), &old_sig),
                body
            ),
            WebhookError::StaleTimestamp
        );
        assert_eq!(
            refused(call("Bearer hr-token-current", &ts, &sig), br#"{"a":2}"#),
            WebhookError::BadSignature
        );
        let foreign = sign(
            "whsec_Zm9yZWlnbi1rZXktdGhhdC1pcy1sb25n",
            "msg_1",
            now.timestamp(),
            body,
        )
        .unwrap();
        assert_eq!(
            refused(call("Bearer hr-token-current", &ts, &foreign), body),
            WebhookError::BadSignature
        );
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            refused(call("Bearer hr-token-current", &ts, &sig), &big),
            WebhookError::TooLarge
        );
        assert_eq!(WebhookError::TooLarge.status(), 413);
    }

    #[test]
    fn secrets_never_show_in_debug_output_or_errors() {
        let s = secrets();
        assert!(!format!("{s:?}").contains(TOKEN));
        let err = WebhookSecrets::new(&[TOKEN], &["not-a-secret"]).unwrap_err();
        assert!(!err.to_string().contains("not-a-secret"));
        assert_eq!(
            authenticate(
                &WebhookSecrets::default(),
                &WebhookHeaders::default(),
                b"",
                Utc::now()
            ),
            Err(WebhookError::NotConfigured)
        );
    }
}
