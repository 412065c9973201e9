//! What API Gateway's IAM authorizer does for the operator routes, locally: check
//! an AWS Signature Version 4 (`AWS4-HMAC-SHA256`, service `execute-api`) over
//! the request as received, and name the principal whose key signed it.
//!
//! The local stack knows the secret of the operator keys it issued itself
//! ([`OperatorKeys`]); on AWS, IAM knows every key and the caller's IAM policy must
//! also allow `execute-api:Invoke` on the route. Everything signed is recomputed
//! from what arrived (path, query, the signed headers, a hash of the body actually
//! received) and compared in constant time; the signature must be no more than
//! [`MAX_SKEW`] away from the host's time.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How far a request's signing time may be from the host's.
pub const MAX_SKEW: TimeDelta = TimeDelta::minutes(5);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "execute-api";

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - _ . ~`) is encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Paths keep their `/`.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Why a request is refused (API Gateway answers 403 for each).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("the Authorization header is not a SigV4 signature: {0}")]
    Malformed(&'static str),
    #[error("The security token included in the request is invalid")]
    UnknownKey,
    #[error("Signature expired or not yet valid: signed at {0}")]
    Skewed(String),
    #[error("Credential should be scoped to a valid region and the service `execute-api`")]
    BadScope,
    #[error("The request signature we calculated does not match the signature you provided")]
    Mismatch,
}

/// One operator key the local stack issued.
#[derive(Clone)]
pub struct OperatorKey {
    pub secret: String,
    /// The IAM principal that owns the key.
    pub arn: String,
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorKey")
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

/// The keys the local gateway accepts, by access key id.
#[derive(Clone, Debug, Default)]
pub struct OperatorKeys {
    keys: HashMap<String, OperatorKey>,
}

/// A request as the gateway received it.
#[derive(Debug)]
pub struct Received<'a> {
    pub method: &'a str,
    /// The path exactly as sent (still percent-encoded).
    pub path: &'a str,
    pub query: &'a str,
    /// Lower-case names, each with its values in the order received.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

struct Authorization<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(SigError::Malformed("not AWS4-HMAC-SHA256"))?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(SigError::Malformed("unknown component")),
        }
    }
    let credential = credential.ok_or(SigError::Malformed("no Credential"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(SigError::Malformed(
            "Credential is not key/date/region/service/aws4_request",
        ));
    };
    let signed_headers: Vec<&str> = signed
        .ok_or(SigError::Malformed("no SignedHeaders"))?
        .split(';')
        .collect();
    let signature = signature.ok_or(SigError::Malformed("no Signature"))?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigError::Malformed("Signature is not 64 hex digits"));
    }
    Ok(Authorization {
        key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (
                utf8_percent_encode(&decode(k), UNRESERVED).to_string(),
                utf8_percent_encode(&decode(v), UNRESERVED).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

impl OperatorKeys {
    pub fn insert(&mut self, access_key_id: impl Into<String>, key: OperatorKey) {
        self.keys.insert(access_key_id.into(), key);
    }

    /// The ARN of the principal whose key signed `request`, or why it is refused.
    pub fn verify(&self, request: &Received<'_>, now: DateTime<Utc>) -> Result<&str, SigError> {
        let authorization =
            header_value(request.headers, "authorization").ok_or(SigError::Missing)?;
        let auth = parse_authorization(&authorization)?;
        if auth.service != SERVICE || auth.region.is_empty() {
            return Err(SigError::BadScope);
        }
        let key = self.keys.get(auth.key_id).ok_or(SigError::UnknownKey)?;
        // The signing time is signed; host too, so a signature is for this API.
        for required in ["host", "x-amz-date"] {
            if !auth.signed_headers.contains(&required) {
                return Err(SigError::Malformed("host and x-amz-date must be signed"));
            }
        }
        let mut sorted = auth.signed_headers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted != auth.signed_headers || sorted.contains(&"authorization") {
            return Err(SigError::Malformed(
                "SignedHeaders must be sorted, unique lower-case names",
            ));
        }
        let amz_date = header_value(request.headers, "x-amz-date").ok_or(SigError::Missing)?;
        let signed_at = NaiveDateTime::parse_from_str(&amz_date, "%Y%m%dT%H%M%SZ")
            .map_err(|_| SigError::Malformed("x-amz-date is not YYYYMMDDTHHMMSSZ"))?
            .and_utc();
        if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
            return Err(SigError::BadScope);
        }
        if (now - signed_at).abs() > MAX_SKEW {
            return Err(SigError::Skewed(amz_date));
        }
        let body_hash = hex::encode(Sha256::digest(request.body));
        if let Some(claimed) = header_value(request.headers, "x-amz-content-sha256")
            && claimed != body_hash
        {
            return Err(SigError::Mismatch);
        }
        let mut canonical_headers = String::new();
        for name in &auth.signed_headers {
            let value = header_value(request.headers, name)
                .ok_or(SigError::Malformed("a signed header is missing"))?;
            canonical_headers.push_str(&format!("{name}:{value}\n"));
        }
        // Double encoding, as for every service but S3: the path as sent, encoded again.
        let path = if request.path.is_empty() {
            "/"
        } else {
            request.path
        };
        let canonical_request = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            request.method,
            utf8_percent_encode(path, PATH),
            canonical_query(request.query),
            canonical_headers,
            auth.signed_headers.join(";"),
            body_hash
        );
        let scope = format!("{}/{}/{SERVICE}/aws4_request", auth.date, auth.region);
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let k_date = hmac(format!("AWS4{}", key.secret).as_bytes(), auth.date);
        let k_region = hmac(&k_date, auth.region);
        let k_service = hmac(&k_region, SERVICE);
        let k_signing = hmac(&k_service, "aws4_request");
        let expected = hex::encode(hmac(&k_signing, &string_to_sign));
        if expected
            .as_bytes()
            .ct_eq(auth.signature.to_ascii_lowercase().as_bytes())
            .into()
        {
            Ok(&key.arn)
        } else {
            Err(SigError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ID: &str = "AKIALOCALOPERATOR01";
    const SECRET: &str = "local-operator-secret/with+odd=chars";
    const ARN: &str = "arn:aws:iam::123456789012:user/lapse-operators/ops";

    fn keys() -> OperatorKeys {
        let mut keys = OperatorKeys::default();
        keys.insert(
            KEY_ID,
            OperatorKey {
                secret: SECRET.into(),
                arn: ARN.into(),
            },
        );
        keys
    }

    /// Signed by the AWS SDK's own signer, as the CLI signs.
    fn signed(
        secret: &str,
        service: &str,
        method: &str,
        url: &str,
        body: &[u8],
        at: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let identity =
            aws_credential_types::Credentials::new(KEY_ID, secret, None, None, "test").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(at.into())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [("content-type", "application/json")];
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut out: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.push(("host".into(), "127.0.0.1:8787".into()));
        for (name, value) in instructions.headers() {
            out.push((name.to_ascii_lowercase(), value.to_owned()));
        }
        out
    }

    fn received<'a>(
        method: &'a str,
        path: &'a str,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> Received<'a> {
        Received {
            method,
            path,
            query: "",
            headers,
            body,
        }
    }

    #[test]
    fn a_request_the_sdk_signed_names_its_principal() {
        let now = Utc::now();
        let body = br#"{"user":"jdoe"}"#;
        let url = "http://127.0.0.1:8787/v1/operator/users/j.doe+ops@example/verify";
        let headers = signed(SECRET, SERVICE, "POST", url, body, now);
        let request = received(
            "POST",
            "/v1/operator/users/j.doe+ops@example/verify",
            &headers,
            body,
        );
        assert_eq!(keys().verify(&request, now), Ok(ARN));
    }

    #[test]
    fn anything_changed_or_unknown_is_refused() {
        let now = Utc::now();
        let body = br#"{"user":"jdoe"}"#;
        let path = "/v1/operator/revocations";
        let url = format!("http://127.0.0.1:8787{path}");
        let good = signed(SECRET, SERVICE, "POST", &url, body, now);
        let keys = keys();

        let tampered = br#"{"user":"root"}"#;
        assert_eq!(
            keys.verify(&received("POST", path, &good, tampered), now),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            keys.verify(
                &received("POST", "/v1/operator/revocations/plan", &good, body),
                now
            ),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            keys.verify(&received("PUT", path, &good, body), now),
            Err(SigError::Mismatch)
        );

        let wrong_secret = signed("guessed", SERVICE, "POST", &url, body, now);
        assert_eq!(
            keys.verify(&received("POST", path, &wrong_secret, body), now),
            Err(SigError::Mismatch)
        );

        let other_service = signed(SECRET, "iam", "POST", &url, body, now);
        assert_eq!(
            keys.verify(&received("POST", path, &other_service, body), now),
            Err(SigError::BadScope)
        );

        assert!(
            matches!(
                keys.verify(
                    &received("POST", path, &good, body),
                    now + TimeDelta::minutes(6)
                ),
                Err(SigError::Skewed(_))
            ),
            "a replay after the window is refused"
        );

        let unsigned: Vec<(String, String)> = good
            .iter()
            .filter(|(k, _)| k != "authorization")
            .cloned()
            .collect();
        assert_eq!(
            keys.verify(&received("POST", path, &unsigned, body), now),
            Err(SigError::Missing)
        );

        let stranger = OperatorKeys::default();
        assert_eq!(
            stranger.verify(&received("POST", path, &good, body), now),
            Err(SigError::UnknownKey)
        );

        let mut other_host = good.clone();
        for (k, v) in other_host.iter_mut() {
            if k == "host" {
                *v = "evil.example".into();
            }
        }
        assert_eq!(
            keys.verify(&received("POST", path, &other_host, body), now),
            Err(SigError::Mismatch)
        );
    }
}
