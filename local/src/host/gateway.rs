//! The API Gateway stand-in: the JWT authorizer for people's routes, the IAM
//! authorizer (SigV4) for the operator routes, none for the HR webhook (it
//! authenticates itself); handlers get real API Gateway v2 events.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::issuer::Claims;
use crate::sigv4::Received;

use super::*;

/// An API Gateway (HTTP API, payload 2.0) event for a request, with what the
/// route's authorizer established (`null` for none).
pub(crate) fn api_event(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    authorizer: serde_json::Value,
) -> Result<lambda_http::Request, Box<Response>> {
    let path = uri.path();
    let query = uri.query().unwrap_or_default();
    let mut query_params = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query_params.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
    }
    // API Gateway does not pass the credential on to the function.
    let header_map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter(|(k, _)| k.as_str() != "authorization")
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_owned(),
                serde_json::Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let now = chrono::Utc::now();
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "queryStringParameters": if query_params.is_empty() { serde_json::Value::Null } else { serde_json::Value::Object(query_params) },
        "requestContext": {
            "accountId": crate::provision::ACCOUNT,
            "apiId": "lapse-local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": { "method": method.as_str(), "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "lapse-local" },
            "requestId": format!("local-{}", now.timestamp_nanos_opt().unwrap_or_default()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
            "authorizer": authorizer
        },
        "body": String::from_utf8_lossy(body),
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string())
        .map_err(|err| Box::new((StatusCode::BAD_REQUEST, err.to_string()).into_response()))
}

/// The operator routes: API Gateway's IAM authorizer (SigV4 against the keys the
/// stack issued), then the operator function with the caller in the context.
pub(crate) async fn operator_route(
    state: &HostState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let received = Received {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: &received_headers,
        body: &body,
    };
    let arn = match state.operators.verify(&received, chrono::Utc::now()) {
        Ok(arn) => arn.to_owned(),
        // What API Gateway answers when IAM authorization fails.
        Err(err) => {
            return (
                StatusCode::FORBIDDEN,
                [("content-type", "application/json")],
                serde_json::json!({ "message": err.to_string() }).to_string(),
            )
                .into_response();
        }
    };
    let authorizer = serde_json::json!({ "iam": {
        "accessKey": null, "accountId": crate::provision::ACCOUNT, "callerId": null,
        "cognitoIdentity": null, "principalOrgId": null, "userArn": arn, "userId": null
    }});
    let request = match api_event(&method, &uri, &headers, &body, authorizer) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let Ok(response) = operator::handler(&state.functions.operator, request).await;
    into_axum(response)
}

/// The HR webhook route: no JWT authorizer (HR systems authenticate with the
/// bearer token and HMAC signature the handler checks), as in the template.
pub(crate) async fn webhook(
    state: &HostState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The handler checks the bearer token itself, so it is passed on.
    let mut headers = headers;
    let bearer = headers.remove("authorization");
    let request = match api_event(&method, &uri, &headers, &body, serde_json::Value::Null) {
        Ok(mut request) => {
            if let Some(value) = bearer {
                request.headers_mut().insert("authorization", value);
            }
            request
        }
        Err(response) => return *response,
    };
    let Ok(response) = hr_webhook::handler(&state.functions.hr_webhook, request).await;
    into_axum(response)
}

pub(crate) fn into_axum(response: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(text) => text.into_bytes(),
        lambda_http::Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    let mut out = (parts.status, bytes).into_response();
    for (k, v) in parts.headers.iter() {
        out.headers_mut().insert(k.clone(), v.clone());
    }
    out
}

/// API Gateway claims are strings; arrays are flattened to `[a b]`, as the JWT
/// authorizer does.
pub(crate) fn claim_strings(claims: &Claims) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        map.insert(k.to_owned(), serde_json::Value::String(v));
    };
    put("sub", claims.sub.clone());
    put("groups", format!("[{}]", claims.groups.join(" ")));
    if let Some(employment) = &claims.employment_type {
        put("employment_type", employment.clone());
    }
    put("iss", claims.iss.clone());
    put("aud", claims.aud.clone());
    put("exp", claims.exp.to_string());
    put("iat", claims.iat.to_string());
    map
}

/// Everything that is not the Invoke API: the HTTP API behind a JWT authorizer.
pub(crate) async fn gateway(
    State(state): State<Arc<HostState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == "/api/v1/webhooks/hr-events" {
        return webhook(&state, method, uri, headers, body).await;
    }
    if uri.path() == "/v1/operator" || uri.path().starts_with("/v1/operator/") {
        return operator_route(&state, method, uri, headers, body).await;
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // The token's time is the stack's: a clock moved forward expires it.
    let now = lapse_core::ports::Clock::now(state.clock.as_ref());
    let Some(claims) = token.and_then(|t| state.issuer.verify_at(t, now)) else {
        // What API Gateway's JWT authorizer answers.
        return (
            StatusCode::UNAUTHORIZED,
            [
                ("content-type", "application/json"),
                ("www-authenticate", "Bearer"),
            ],
            r#"{"message":"Unauthorized"}"#,
        )
            .into_response();
    };
    let authorizer =
        serde_json::json!({ "jwt": { "claims": claim_strings(&claims), "scopes": null } });
    let request = match api_event(&method, &uri, &headers, &body, authorizer) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let path = uri.path();
    let f = &state.functions;
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let response = match segments.as_slice() {
        ["v1", "requests", _, "decisions"] | ["v1", "break-glass", _, "reviews"] => {
            approval::handler(&f.approval, request).await
        }
        ["v1", "grants", _, "revoke"] => grants_api::handler(&f.grants_api, request).await,
        _ => intake::handler(&f.intake, request).await,
    };
    let Ok(response) = response;
    into_axum(response)
}
