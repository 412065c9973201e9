//! The Lambda Invoke API the state machines' Task states call.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lambda_runtime::{Context, LambdaEvent};
use lapse_lambda::HandlerError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

/// A Lambda function error, as the Invoke API reports it.
pub(crate) fn function_error(error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    (
        StatusCode::OK,
        [
            ("x-amz-function-error", "Unhandled"),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}

pub(crate) async fn call<T, O, Fut>(
    body: &Bytes,
    handler: impl FnOnce(LambdaEvent<T>) -> Fut,
) -> Response
where
    T: DeserializeOwned,
    O: Serialize,
    Fut: Future<Output = Result<O, HandlerError>>,
{
    let payload: T = match serde_json::from_slice(body) {
        Ok(payload) => payload,
        Err(err) => return function_error(lapse_lambda::error::names::BAD_EVENT, &err.to_string()),
    };
    // Boxed: the server's futures then hold a pointer to the handler's future (large
    // in a debug build), not the future itself. The demo's deepest stack went from
    // over 1.75 MiB to under it (measured with the runtime's thread stack set).
    match Box::pin(handler(LambdaEvent::new(payload, Context::default()))).await {
        Ok(output) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            serde_json::to_string(&output).unwrap_or_else(|_| "null".into()),
        )
            .into_response(),
        Err(err) => function_error(err.name(), &err.to_string()),
    }
}

/// `POST /2015-03-31/functions/{name}/invocations`, as Step Functions calls Lambda.
pub(crate) async fn invoke(
    State(state): State<Arc<HostState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let name = percent_encoding::percent_decode_str(&name)
        .decode_utf8_lossy()
        .into_owned();
    let short = name.rsplit(':').next().unwrap_or(&name);
    let function = short
        .strip_prefix(&format!("{}-", state.prefix))
        .unwrap_or(short)
        .to_owned();
    let mut keys = vec![function.clone()];
    if function == "revocation"
        && let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body)
    {
        let step = payload["step"].as_str().unwrap_or_default();
        keys.push(match payload["lane"].as_str() {
            Some(lane) => format!("revocation/{step}/{lane}"),
            None => format!("revocation/{step}"),
        });
    }
    for key in keys {
        match state.faults.take(&key) {
            Some(Fault::Error {
                error_type,
                message,
            }) => return function_error(&error_type, &message),
            Some(Fault::Before(hook)) => hook().await,
            None => {}
        }
    }
    let f = &state.functions;
    match function.as_str() {
        "grant" => call(&body, |e| grant::handler(&f.grant, e)).await,
        "revoke" => call(&body, |e| revoke::handler(&f.revoke, e)).await,
        "verify" => call(&body, |e| verify::handler(&f.verify, e)).await,
        "credentials" => call(&body, |e| credentials::handler(&f.credentials, e)).await,
        "vendors" => call(&body, |e| vendors::handler(&f.vendors, e)).await,
        "ttl-backstop" => call(&body, |e| ttl_backstop::handler(&f.ttl_backstop, e)).await,
        "notify" => call(&body, |e| notify::handler(&f.notify, e)).await,
        "sweeper" => call(&body, |e| sweeper::handler(&f.sweeper, e)).await,
        "revocation" => {
            call(&body, |e| {
                revocation::handler(&f.revocation, &f.revocation_people, e)
            })
            .await
        }
        "inactivity-check" => call(&body, |e| inactivity_check::handler(&f.inactivity, e)).await,
        _ => (
            StatusCode::NOT_FOUND,
            [("x-amzn-errortype", "ResourceNotFoundException")],
            serde_json::json!({ "Type": "User", "message": format!("Function not found: {name}") })
                .to_string(),
        )
            .into_response(),
    }
}
