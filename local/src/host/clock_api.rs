//! `/_local/clock`: the stack's clock over HTTP, for the state machine runner's
//! Waits, `lapse-dev clock` and `lapse-dev token` (which mint on the stack's
//! time). Loopback only, like the rest of the host; the deployed stack has no such
//! thing.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use lapse_core::ports::Clock;
use serde::Deserialize;

use super::HostState;

/// How long one `GET` with `until` is held before it answers "not yet".
const HOLD: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Debug, Deserialize)]
pub(crate) struct Asked {
    /// Answer once the clock passes this time (or after [`HOLD`]).
    until: Option<String>,
}

fn at(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn refused(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

/// `GET /_local/clock[?until=<RFC 3339>]`: `{"now": ..., "reached": ...}`.
pub(crate) async fn read(
    State(state): State<Arc<HostState>>,
    Query(asked): Query<Asked>,
) -> Response {
    let until = match asked.until.as_deref().map(DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(until)) => Some(until.with_timezone(&Utc)),
        Some(Err(e)) => return refused(format!("`until` is not an RFC 3339 time: {e}")),
    };
    let held_until = tokio::time::Instant::now() + HOLD;
    loop {
        let now = state.clock.now();
        let reached = until.is_none_or(|u| now >= u);
        if reached || tokio::time::Instant::now() >= held_until {
            return Json(serde_json::json!({ "now": at(now), "reached": reached })).into_response();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// What `POST /_local/clock` asks: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Move {
    /// A duration (`90s`, `4h`, `1d2h`).
    advance: Option<String>,
    /// A time (RFC 3339) later than the clock's.
    set: Option<String>,
}

/// `POST /_local/clock` `{"advance": "4h"}` or `{"set": "<RFC 3339>"}`: moves the
/// stack's clock forward (never back: grants, schedules and audit times already
/// written would be in the future). Answers `{"now": ..., "from": ...}`.
pub(crate) async fn moved(
    State(state): State<Arc<HostState>>,
    body: axum::body::Bytes,
) -> Response {
    let asked: Move = match serde_json::from_slice(&body) {
        Ok(asked) => asked,
        Err(e) => {
            return refused(format!(
                "expected {{\"advance\": \"4h\"}} or {{\"set\": \"<time>\"}}: {e}"
            ));
        }
    };
    let from = state.clock.now();
    match (asked.advance, asked.set) {
        (Some(by), None) => match by.parse::<lapse_core::duration::Span>() {
            Ok(span) => state.clock.advance(span.delta()),
            Err(e) => return refused(e.to_string()),
        },
        (None, Some(to)) => match DateTime::parse_from_rfc3339(&to) {
            Ok(to) if to.with_timezone(&Utc) > from => {
                state.clock.advance_to(to.with_timezone(&Utc))
            }
            Ok(_) => {
                return refused(format!(
                    "the stack's clock is at {} and only moves forward",
                    at(from)
                ));
            }
            Err(e) => return refused(format!("`set` is not an RFC 3339 time: {e}")),
        },
        _ => return refused("say either `advance` or `set`".into()),
    }
    Json(serde_json::json!({ "now": at(state.clock.now()), "from": at(from) })).into_response()
}
