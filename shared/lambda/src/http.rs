//! HTTP handlers' shared parts: identity from the authenticated request context,
//! JSON bodies with limits, and error responses with stable names.
//!
//! Identity comes only from the claims API Gateway's JWT authorizer verified and put
//! in the request context (the local stack's gateway does the same). A body that
//! names a user is never consulted for who is asking.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use lapse_core::identity::{EmploymentType, Principal, PrincipalId};
use lapse_core::policy::Catalog;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::HandlerError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The claims that carry identity.
pub mod claims {
    /// The person's id (their IAM user name).
    pub const USER: &str = "sub";
    /// Their identity provider's group ids (mapped to approver groups by the catalog).
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

/// The identity-provider group ids in a groups claim, exactly as sent. Two shapes
/// are accepted: a JSON array of strings, and API Gateway's flattening of an
/// array claim (`[a b c]`, single spaces). Anything else (comma lists, stray
/// brackets or quotes, empty entries) is refused rather than guessed at: a guess
/// is how a group named "Engineering managers" becomes a `managers` slot.
pub fn parse_groups(raw: &str) -> Result<Vec<String>, AuthError> {
    let malformed = AuthError::BadClaim {
        claim: claims::GROUPS,
    };
    if raw.trim_start().starts_with("[\"") {
        return serde_json::from_str::<Vec<String>>(raw).map_err(|_| malformed);
    }
    let inner = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| malformed.clone())?;
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = inner.split(' ').collect();
    if ids
        .iter()
        .any(|id| !lapse_core::policy::is_idp_group_id(id))
    {
        return Err(malformed);
    }
    Ok(ids.into_iter().map(str::to_owned).collect())
}

/// The authenticated caller. Their approver groups are the catalog's groups whose
/// identity-provider ids the claim carries exactly.
pub fn principal(request: &Request, catalog: &Catalog) -> Result<Principal, AuthError> {
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
    let idp_groups = match claims.get(claims::GROUPS) {
        Some(raw) => parse_groups(raw)?,
        None => Vec::new(),
    };
    let groups = catalog.approver_groups_for(idp_groups.iter().map(String::as_str));
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

/// The AWS principal API Gateway's IAM authorizer authenticated (SigV4, and an
/// IAM policy allowing `execute-api:Invoke` on the route), as the audited
/// executor `operator:<ARN>`. Only the request context is read: an operator route
/// without the IAM authorizer has no caller, and is refused.
pub fn iam_caller(request: &Request) -> Result<String, AuthError> {
    let arn = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|iam| iam.user_arn.as_deref()),
        _ => None,
    }
    .ok_or(AuthError::Unauthenticated)?;
    let well_formed = arn.starts_with("arn:")
        && arn.split(':').count() >= 6
        && arn.len() <= 2048
        && !arn.chars().any(|c| c.is_whitespace() || c.is_control());
    if !well_formed {
        return Err(AuthError::BadClaim { claim: "userArn" });
    }
    Ok(format!("operator:{arn}"))
}

/// A JSON body, limited in size, with a precise message when it does not parse.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, HandlerError> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(HandlerError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
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

/// The HTTP status for an error (from the error registry).
pub fn status_of(err: &HandlerError) -> u16 {
    err.status()
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
pub async fn respond<F, Fut>(request: Request, catalog: &Catalog, route: F) -> Response<Body>
where
    F: FnOnce(Principal, Request) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Body>, HandlerError>>,
{
    match principal(&request, catalog) {
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

    fn catalog() -> Catalog {
        Catalog::parse(
            include_str!("../../../infra/policy/catalog.yaml"),
            "catalog.yaml",
        )
        .unwrap()
    }

    #[test]
    fn groups_claims_are_parsed_exactly_or_refused() {
        assert_eq!(parse_groups("[idp-a idp-b]").unwrap(), ["idp-a", "idp-b"]);
        assert_eq!(
            parse_groups(r#"["idp-a","Engineering managers"]"#).unwrap(),
            ["idp-a", "Engineering managers"],
            "a JSON array keeps each entry whole"
        );
        assert!(parse_groups("[]").unwrap().is_empty());
        for bad in [
            "idp-a,idp-b",
            "idp-a idp-b",
            "[idp-a,idp-b]",
            "[idp-a  idp-b]",
            "[idp-a",
            "[\"idp-a\"",
            "[idp-a \"b\"]",
            "",
        ] {
            assert_eq!(
                parse_groups(bad),
                Err(AuthError::BadClaim {
                    claim: claims::GROUPS
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn no_authorizer_context_is_unauthenticated() {
        let request = lambda_http::http::Request::builder()
            .uri("/v1/requests")
            .body(Body::Empty)
            .unwrap();
        assert_eq!(
            principal(&request, &catalog()),
            Err(AuthError::Unauthenticated)
        );
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
                "authorizer": {"jwt": {"claims": {"sub": "rita", "groups": "[00gmanagers000000008 Engineering managers]", "employment_type": "employee"}, "scopes": null}}
            },
            "body": "{\"requester\": \"mallory\"}", "isBase64Encoded": false
        });
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let who = principal(&request, &catalog()).unwrap();
        assert_eq!(who.id().as_str(), "rita");
        assert!(who.is_member("managers"));
        assert_eq!(who.groups().len(), 1, "{:?}", who.groups());
        assert_eq!(who.employment(), EmploymentType::Employee);
    }

    fn with_authorizer(authorizer: serde_json::Value) -> Request {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/v1/operator/revocations", "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "localhost", "domainPrefix": "local",
                "http": {"method": "POST", "path": "/v1/operator/revocations", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "23/Nov/2026:10:00:00 +0000", "timeEpoch": 0,
                "authorizer": authorizer
            },
            "body": "{\"executor\": \"mallory\"}", "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn the_operator_is_the_principal_the_iam_authorizer_authenticated() {
        let arn = "arn:aws:sts::123456789012:assumed-role/LapseOperators/ana";
        let request = with_authorizer(serde_json::json!({"iam": {
            "accessKey": "ASIAEXAMPLE", "accountId": "123456789012", "callerId": "AROAEXAMPLE:ana",
            "principalOrgId": null, "userArn": arn, "userId": "AROAEXAMPLE:ana"
        }}));
        assert_eq!(iam_caller(&request).unwrap(), format!("operator:{arn}"));
        // A JWT is not an AWS identity: an operator route never accepts one.
        let jwt =
            with_authorizer(serde_json::json!({"jwt": {"claims": {"sub": "ana"}, "scopes": null}}));
        assert_eq!(iam_caller(&jwt), Err(AuthError::Unauthenticated));
        let odd = with_authorizer(serde_json::json!({"iam": {"userArn": "ana\nadmin"}}));
        assert_eq!(
            iam_caller(&odd),
            Err(AuthError::BadClaim { claim: "userArn" })
        );
    }
}
