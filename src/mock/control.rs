//! The control API under `/__gauntlet/`: stats, adding/removing faults at run time, and a
//! reset (faults cleared, counters zeroed, prefix cache emptied, per-key budgets refilled) between the targets of a
//! bake-off.
//! It is exempt from faults (an outage must stay liftable) and is not counted in the stats.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::openai::{ApiError, ApiErrorKind, bearer};

use super::body::MockBody;
use super::fault::RawFault;
use super::inject::FaultId;
use super::respond::{error_response, json_response};
use super::state::MockState;

pub(crate) const PREFIX: &str = "/__gauntlet/";

/// Fault bodies are a few hundred bytes; anything bigger is not a fault.
const MAX_CONTROL_BODY: usize = 64 * 1024;

/// The header a token can also be sent in, for clients that reserve `Authorization`.
pub const TOKEN_HEADER: &str = "x-gauntlet-token";

fn authorized(shared: &MockState, req: &Request<Incoming>) -> bool {
    let Some(expected) = &shared.admin_token else {
        return true;
    };
    let h = req.headers();
    let given = bearer(h).or_else(|| h.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()));
    given.is_some_and(|g| bool::from(g.trim().as_bytes().ct_eq(expected.as_bytes())))
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<MockBody> {
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

fn err(kind: ApiErrorKind, msg: impl Into<String>) -> Response<MockBody> {
    error_response(&ApiError::new(kind, msg))
}

/// The answer to adding a fault; `ControlClient` reads the same shape.
#[derive(Serialize, Deserialize)]
pub(crate) struct Added {
    pub id: FaultId,
}

/// The answer to a reset: the faults it cleared (the counters are then zero).
#[derive(Serialize, Deserialize)]
pub(crate) struct Reset {
    pub faults_cleared: usize,
}

/// The answer to removing faults.
#[derive(Serialize, Deserialize)]
pub(crate) struct Removed {
    pub removed: usize,
}

pub(crate) async fn handle(shared: &Arc<MockState>, req: Request<Incoming>) -> Response<MockBody> {
    if !authorized(shared, &req) {
        return err(
            ApiErrorKind::InvalidApiKey,
            "The control API needs the admin token (Authorization: Bearer TOKEN or x-gauntlet-token).",
        );
    }
    let path = req.uri().path();
    let rest = path
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .trim_end_matches('/');
    match (req.method().clone(), rest) {
        (Method::GET, "stats") => json(StatusCode::OK, &shared.counters.snapshot(&shared.name)),
        (Method::POST, "reset") => {
            let faults_cleared = shared.injector.clear();
            shared.counters.reset();
            if let Some(cache) = &shared.cache {
                cache.clear();
            }
            // The next target of a bake-off must not find a key's minute spent by the last.
            if let Some(limiter) = &shared.limiter {
                limiter.clear();
            }
            json(StatusCode::OK, &Reset { faults_cleared })
        }
        (Method::GET, "faults") => json(StatusCode::OK, &shared.injector.list()),
        (Method::POST, "faults") => add_fault(shared, req).await,
        (Method::DELETE, "faults") => json(
            StatusCode::OK,
            &Removed {
                removed: shared.injector.clear(),
            },
        ),
        (Method::DELETE, r) if r.starts_with("faults/") => {
            let id = &r["faults/".len()..];
            match id.parse::<u64>() {
                Ok(n) if shared.injector.remove(FaultId(n)) => {
                    json(StatusCode::OK, &Removed { removed: 1 })
                }
                Ok(n) => err(
                    ApiErrorKind::UnknownUrl,
                    format!("No active fault with id {n}."),
                ),
                Err(_) => err(
                    ApiErrorKind::InvalidRequest,
                    format!("`{id}` is not a fault id (a number)."),
                ),
            }
        }
        (m, "stats" | "faults" | "reset") => err(
            ApiErrorKind::MethodNotAllowed,
            format!("{m} is not allowed on {path}"),
        ),
        _ => err(
            ApiErrorKind::UnknownUrl,
            format!(
                "Unknown control path {path}. Use GET {PREFIX}stats, GET/POST/DELETE {PREFIX}faults, DELETE {PREFIX}faults/ID, POST {PREFIX}reset."
            ),
        ),
    }
}

async fn add_fault(shared: &MockState, req: Request<Incoming>) -> Response<MockBody> {
    let body = match Limited::new(req.into_body(), MAX_CONTROL_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return err(
                ApiErrorKind::RequestTooLarge,
                format!("A fault body must be under {MAX_CONTROL_BODY} bytes."),
            );
        }
    };
    let raw: RawFault = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return err(
                ApiErrorKind::InvalidRequest,
                format!("The body is not a fault: {e}"),
            );
        }
    };
    match raw.compile() {
        Ok(spec) => json(
            StatusCode::OK,
            &Added {
                id: shared.injector.add(spec),
            },
        ),
        Err(e) => error_response(
            &ApiError::new(ApiErrorKind::InvalidRequest, e.to_string()).with_param(e.field),
        ),
    }
}
