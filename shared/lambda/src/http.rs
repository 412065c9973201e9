//! HTTP handlers' shared parts: identity from the authenticated request context,
//! JSON bodies with limits, and error responses with stable names.
//!
//! Identity comes only from the claims API Gateway's JWT authorizer verified and put
//! in the request context (the local stack's gateway does the same). A body that
//! names a user is never consulted for who is asking.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use lapse_core::identity::{EmploymentType, Principal, PrincipalId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::HandlerError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The claims that carry identity.
pub mod claims {
    /// The person's id (their IAM user name).
    pub const USER: &str = "sub";
    /// Their approver groups.
    pub const GROUPS: &str = "groups";
    /// `employee`, `contractor` or `vendor`; absent counts as `contractor`.
    pub const EMPLOYMENT: &str = "employment_type";
}

/// Why a caller is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request carries no verified identity")]
    Unauthenticated,
    #[error("claim `{claim}` is invalid")]
    BadClaim { claim: &'static str },
}

/// Splits a groups claim. API Gateway flattens JSON arrays to `[a b]`; other
/// issuers send `a,b`, `a b` or a JSON array string.
pub fn parse_groups(raw: &str) -> Vec<String> {
    if let Ok(list) = serde_json::from_str::<Vec<String>>(raw) {
        return list;
    }
    raw.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|g| g.trim_matches('"'))
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The authenticated caller.
pub fn principal(request: &Request) -> Result<Principal, AuthError> {
    let claims = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims),
        _ => None,
    }
    .ok_or(AuthError::Unauthenticated)?;
    let user = claims.get(claims::USER).ok_or(AuthError::Unauthenticated)?;
    let id = PrincipalId::new(user.as_str()).map_err(|_| AuthError::BadClaim {
        claim: claims::USER,
    })?;
    let groups = claims
        .get(claims::GROUPS)
        .map(|g| parse_groups(g))
        .unwrap_or_default();
    let employment = match claims.get(claims::EMPLOYMENT).map(String::as_str) {
        Some("employee") => EmploymentType::Employee,
        Some("vendor") => EmploymentType::Vendor,
        Some("contractor") | None => EmploymentType::Contractor,
        Some(_) => {
            return Err(AuthError::BadClaim {
                claim: claims::EMPLOYMENT,
            });
        }
    };
    Ok(Principal::authenticated(id, groups, employment))
}

/// A JSON body, limited in size, with a precise message when it does not parse.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, HandlerError> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(HandlerError::BadEvent(format!(
            "body is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| HandlerError::BadEvent(format!("invalid JSON body: {e}")))
}

/// A JSON response.
pub fn json(status: u16, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body))
        .unwrap_or_default()
}

/// The HTTP status for an error.
pub fn status_of(err: &HandlerError) -> u16 {
    use crate::error::names;
    match err.name() {
        names::VALIDATION | names::BAD_EVENT => 400,
        names::FORBIDDEN => 403,
        names::NOT_FOUND => 404,
        names::CONFLICT => 409,
        names::TRANSIENT => 503,
        _ => 500,
    }
}

/// The response for an error: `{ "error": <name>, "message": ... }`. Internal
/// failures are logged in full and answered without detail.
pub fn error(err: &HandlerError) -> Response<Body> {
    let status = status_of(err);
    let message = if status >= 500 {
        tracing::error!(error = %err, name = err.name(), "request failed");
        "internal error; see the service logs".to_owned()
    } else {
        err.to_string()
    };
    json(
        status,
        &serde_json::json!({ "error": err.name(), "message": message }),
    )
}

/// 404 for a route this function does not serve.
pub fn no_route(request: &Request) -> Response<Body> {
    json(
        404,
        &serde_json::json!({
            "error": "Lapse.NotFound",
            "message": format!("no route {} {}", request.method(), request.uri().path()),
        }),
    )
}

/// The skeleton of every authenticated handler: the caller from the verified
/// claims (401 without), then `route`, whose errors become responses.
pub async fn respond<F, Fut>(request: Request, route: F) -> Response<Body>
where
    F: FnOnce(Principal, Request) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Body>, HandlerError>>,
{
    match principal(&request) {
        Ok(who) => route(who, request).await.unwrap_or_else(|err| error(&err)),
        Err(err) => unauthorized(&err),
    }
}

/// The path's segments after the leading `/`, without a trailing `/`.
pub fn segments(request: &Request) -> Vec<String> {
    request
        .uri()
        .path()
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// 401 for a caller with no verified identity.
pub fn unauthorized(err: &AuthError) -> Response<Body> {
    json(
        401,
        &serde_json::json!({ "error": "Lapse.Unauthenticated", "message": err.to_string() }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_claims_in_every_issuer_shape() {
        assert_eq!(
            parse_groups("[managers security]"),
            ["managers", "security"]
        );
        assert_eq!(parse_groups("managers,security"), ["managers", "security"]);
        assert_eq!(
            parse_groups(r#"["managers","security"]"#),
            ["managers", "security"]
        );
        assert!(parse_groups("").is_empty());
    }

    #[test]
    fn no_authorizer_context_is_unauthenticated() {
        let request = lambda_http::http::Request::builder()
            .uri("/v1/requests")
            .body(Body::Empty)
            .unwrap();
        assert_eq!(principal(&request), Err(AuthError::Unauthenticated));
    }

    #[test]
    fn identity_comes_from_verified_claims() {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/v1/requests", "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "localhost", "domainPrefix": "local",
                "http": {"method": "POST", "path": "/v1/requests", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "23/Nov/2026:10:00:00 +0000", "timeEpoch": 0,
                "authorizer": {"jwt": {"claims": {"sub": "rita", "groups": "[managers]", "employment_type": "employee"}, "scopes": null}}
            },
            "body": "{\"requester\": \"mallory\"}", "isBase64Encoded": false
        });
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let who = principal(&request).unwrap();
        assert_eq!(who.id().as_str(), "rita");
        assert!(who.is_member("managers"));
        assert_eq!(who.employment(), EmploymentType::Employee);
    }
}
