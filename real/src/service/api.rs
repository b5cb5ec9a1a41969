//! The HTTP API (docs/api.md): routes, request checks, answers.
//!
//! Every error answer is JSON `{"error": "..."}` naming the key or part of the request that is
//! wrong; a refused request changes nothing.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use vortex::Recipe;

use super::queue::{Refusal, Status};
use super::store;
use super::{Phase, Shared};
use crate::director::files;

/// The largest request body: a recipe file's bound ([`vortex::recipe::MAX_RECIPE_BYTES`]) twice
/// over, for JSON's escapes and the deadline; larger bodies are answered 413.
pub const MAX_REQUEST_BYTES: usize = 2 * vortex::recipe::MAX_RECIPE_BYTES as usize;

/// A slot's length: its deadline when only its start is given.
pub const SLOT_LENGTH: Duration = crate::director::DEFAULT_DEADLINE;

/// The furthest ahead a deadline or start may be: one day (a director schedules hours ahead,
/// not weeks).
pub const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// The service's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(super::page::status_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/slots", post(post_slot))
        .route("/slots/{id}", get(get_slot))
        .route("/slots/{id}/video", get(get_video))
        .route("/slots/{id}/audio", get(get_audio))
        .route("/slots/{id}/events", get(get_events))
        .with_state(shared)
}

/// `POST /slots`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map with recipe and optional deadline or start_at")]
struct SlotRequest {
    /// The recipe, as a recipe file's keys.
    recipe: Recipe,
    /// When the clip must be ready: RFC 3339, UTC.
    #[serde(default)]
    deadline: Option<String>,
    /// When the slot airs: the deadline is this plus [`SLOT_LENGTH`].
    #[serde(default)]
    start_at: Option<String>,
}

/// An error answer.
fn refuse(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

/// Parses a request body into a recipe and its wall-clock deadline (`now` is when it arrived).
pub fn parse_request(body: &[u8], now: SystemTime) -> Result<(Recipe, SystemTime), String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let request: SlotRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = vortex::yaml::shorten(&e.inner().to_string());
        if path == "." {
            format!("body: {inner}")
        } else {
            format!("{path}: {inner}")
        }
    })?;
    let time = |key: &str, text: &str| {
        humantime::parse_rfc3339(text).map_err(|e| {
            format!(
                "{key}: {}: {e}; expected an RFC 3339 UTC time like 2026-01-31T20:00:00Z",
                vortex::yaml::quoted(text)
            )
        })
    };
    let deadline = match (&request.deadline, &request.start_at) {
        (Some(_), Some(_)) => return Err("deadline, start_at: give one of them, not both".into()),
        (Some(d), None) => time("deadline", d)?,
        (None, Some(s)) => time("start_at", s)? + SLOT_LENGTH,
        (None, None) => now + SLOT_LENGTH,
    };
    if deadline.duration_since(now).is_ok_and(|ahead| ahead > MAX_AHEAD + SLOT_LENGTH) {
        let key = if request.deadline.is_some() { "deadline" } else { "start_at" };
        return Err(format!("{key}: more than {} hours ahead; post it nearer its time", MAX_AHEAD.as_secs() / 3600));
    }
    Ok((request.recipe, deadline))
}

/// The most of an oversized body read (and dropped) before answering 413: reading it lets the
/// client finish sending and read the answer; closing on it unread meets the client with a
/// broken pipe instead.
pub const MAX_DRAIN_BYTES: usize = 8 << 20;

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The request body, at most [`MAX_REQUEST_BYTES`]; an error answer otherwise.
async fn read_body(body: Body) -> Result<Bytes, Response> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let (mut kept, mut total) = (Vec::new(), 0usize);
    let read = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("body: {e}")))?;
            total += chunk.len();
            if total <= MAX_REQUEST_BYTES {
                kept.extend_from_slice(&chunk);
            } else if total > MAX_DRAIN_BYTES {
                break;
            }
        }
        Ok(())
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(())) => {}
        Ok(Err(answer)) => return Err(answer),
        Err(_) => {
            let why = format!("body: not received within {} s", BODY_TIMEOUT.as_secs());
            return Err(refuse(StatusCode::REQUEST_TIMEOUT, why));
        }
    }
    if total > MAX_REQUEST_BYTES {
        let why = format!("body: over {} KiB; a recipe fits in far less", MAX_REQUEST_BYTES / 1024);
        return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, why));
    }
    Ok(Bytes::from(kept))
}

async fn post_slot(State(shared): State<Arc<Shared>>, body: Body) -> Response {
    if shared.phase() != Phase::Serving {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping: it takes no new slots");
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let (recipe, deadline) = match parse_request(&body, SystemTime::now()) {
        Ok(parsed) => parsed,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    // Refused before it queues: the same checks as `vortex run`, against the loaded models.
    if let Err(e) = shared.director.check(&recipe) {
        return refuse(StatusCode::BAD_REQUEST, format!("recipe.{e}"));
    }
    let slot_id = recipe.slot_id;
    let pushed = shared.table().push(recipe, deadline);
    match pushed {
        Ok(position) => {
            shared.wake.notify_one();
            shared.update_queue_metrics();
            let body = json!({
                "slot_id": slot_id,
                "status": "queued",
                "position": position,
                "deadline": humantime::format_rfc3339_millis(deadline).to_string(),
            });
            (StatusCode::ACCEPTED, [(header::LOCATION, format!("/slots/{slot_id}"))], Json(body)).into_response()
        }
        Err(Refusal::Duplicate(status)) => {
            refuse(StatusCode::CONFLICT, format!("recipe.slot_id: slot {slot_id} is already taken (it is {status})"))
        }
        Err(Refusal::Full(max)) => refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!("the queue holds {max} slots (service.queue_max): post again when one has run"),
        ),
    }
}

/// Reads a slot id from the path.
fn slot_id(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("slot id {}: expected a whole number from 0 to {}", vortex::yaml::quoted(text), u64::MAX))
}

fn unknown(id: u64) -> Response {
    refuse(StatusCode::NOT_FOUND, format!("slot {id}: no such slot"))
}

async fn get_slot(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let id = match slot_id(&id) {
        Ok(id) => id,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let Some(entry) = shared.table().get(id).cloned() else { return unknown(id) };
    let deadline = entry.deadline.map(|d| humantime::format_rfc3339_millis(d).to_string());
    let mut body = json!({ "slot_id": id, "status": entry.status.name(), "deadline": deadline });
    match &entry.status {
        Status::Queued(_) => {
            let position = shared.table().view().waiting.iter().position(|&w| w == id).map(|p| p + 1);
            body["position"] = json!(position);
        }
        Status::Running => {}
        Status::Finished(summary) => {
            body["outcome"] = json!(summary.outcome);
            let dir = store::slot_dir(&shared.out_dir, id);
            match tokio::task::block_in_place(|| files::read_result(&dir)) {
                Ok(result) => body["result"] = json!(result),
                Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        Status::Error(e) | Status::Unreadable(e) => body["error"] = json!(e),
    }
    Json(body).into_response()
}

async fn get_video(state: State<Arc<Shared>>, id: Path<String>) -> Response {
    slot_file(state, id, &[(files::MP4_FILE, "video/mp4"), (files::Y4M_FILE, "video/x-yuv4mpegpipe")], "video").await
}

async fn get_audio(state: State<Arc<Shared>>, id: Path<String>) -> Response {
    slot_file(state, id, &[(files::AUDIO_FILE, "audio/wav")], "audio").await
}

async fn get_events(state: State<Arc<Shared>>, id: Path<String>) -> Response {
    slot_file(state, id, &[(files::EVENTS_FILE, "application/x-ndjson")], "event log").await
}

/// Streams the first of `names` in a finished slot's folder.
async fn slot_file(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    names: &[(&str, &str)],
    what: &str,
) -> Response {
    let id = match slot_id(&id) {
        Ok(id) => id,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let status = match shared.table().get(id) {
        Some(entry) => entry.status.clone(),
        None => return unknown(id),
    };
    let outcome = match &status {
        Status::Finished(summary) => summary.outcome,
        other => {
            return refuse(StatusCode::NOT_FOUND, format!("slot {id} is {}: it has no {what} yet", other.name()));
        }
    };
    let dir = store::slot_dir(&shared.out_dir, id);
    for (name, mime) in names {
        let path = dir.join(name);
        let Ok(file) = tokio::fs::File::open(&path).await else { continue };
        let len = match file.metadata().await {
            Ok(meta) if meta.is_file() => meta.len(),
            _ => continue,
        };
        let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
        return ([(header::CONTENT_TYPE, mime.to_string()), (header::CONTENT_LENGTH, len.to_string())], body)
            .into_response();
    }
    refuse(
        StatusCode::NOT_FOUND,
        format!("slot {id} has no {what}: it ended {outcome} (only a completed slot has media)"),
    )
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.phase() {
        Phase::Serving => Json(json!({ "status": "ok" })).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "stopping" }))).into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.update_queue_metrics();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], shared.metrics.encode())
        .into_response()
}

/// An HTML answer (the status page).
pub fn html(page: String) -> Response {
    Html(page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_deadline_comes_from_the_schedule_and_bad_requests_name_their_key() {
        let now = at("2026-01-31T20:00:00Z");
        let recipe = r#"{"slot_id": 3, "script": "Hi.", "prompt": "a face"}"#;
        let (r, d) = parse_request(format!(r#"{{"recipe": {recipe}}}"#).as_bytes(), now).unwrap();
        assert_eq!((r.slot_id, d), (3, now + SLOT_LENGTH));
        let body = format!(r#"{{"recipe": {recipe}, "start_at": "2026-01-31T20:01:00Z"}}"#);
        assert_eq!(parse_request(body.as_bytes(), now).unwrap().1, at("2026-01-31T20:01:00Z") + SLOT_LENGTH);
        let body = format!(r#"{{"recipe": {recipe}, "deadline": "2026-01-31T19:00:00Z"}}"#);
        assert_eq!(
            parse_request(body.as_bytes(), now).unwrap().1,
            at("2026-01-31T19:00:00Z"),
            "a past deadline queues"
        );
        let body = format!(r#"{{"recipe": {recipe}, "deadline": "tomorrow"}}"#);
        assert!(parse_request(body.as_bytes(), now).unwrap_err().starts_with("deadline: \"tomorrow\": "));
        let body = format!(r#"{{"recipe": {recipe}, "deadline": "2026-02-05T20:00:00Z"}}"#);
        assert!(parse_request(body.as_bytes(), now).unwrap_err().contains("more than 24 hours ahead"));
        let body = format!(
            r#"{{"recipe": {recipe}, "deadline": "2026-01-31T20:00:00Z", "start_at": "2026-01-31T20:00:00Z"}}"#
        );
        assert!(parse_request(body.as_bytes(), now).unwrap_err().contains("not both"));
        let err = parse_request(
            br#"{"recipe": {"slot_id": 3, "script": "x", "prompt": "y", "voice": {"speed": "fast"}}}"#,
            now,
        )
        .unwrap_err();
        assert!(err.starts_with("recipe.voice.speed: "), "{err}");
        let err = parse_request(br#"{"recipe": {"script": "x", "prompt": "y"}}"#, now).unwrap_err();
        assert!(err.contains("slot_id"), "{err}");
        assert!(parse_request(b"not json", now).unwrap_err().starts_with("body: "));
    }
}
