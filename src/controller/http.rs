//! The controller's one HTTP server: registry webhooks (authenticated), `/metrics`,
//! `/healthz` and `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::webhooks::{self, Kind};
use super::{Controller, dashboard};

/// Bodies larger than this are refused (413): registry events are a few KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How webhook requests prove who sent them.
#[derive(Clone)]
pub struct WebhookAuth {
    /// The shared secret: a bearer token, a basic-auth password, or GitHub's HMAC key.
    pub token: Option<String>,
    /// Accept requests without credentials (Keel's behaviour); off unless asked for.
    pub allow_unauthenticated: bool,
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .finish()
    }
}

/// Compares without an early exit, so response times do not reveal how much of a guess was
/// right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A 303 to `location`, optionally setting a cookie.
fn see_other(location: &str, cookie: Option<String>) -> Reply {
    let mut response = reply(StatusCode::SEE_OTHER, "text/plain", "");
    if let Ok(value) = header::HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if let Some(cookie) = cookie.and_then(|c| header::HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

impl WebhookAuth {
    /// Whether `given` is the token (the dashboard's login and session cookie).
    pub fn token_matches(&self, given: &str) -> bool {
        self.token
            .as_deref()
            .filter(|t| !t.is_empty())
            .is_some_and(|token| same_secret(given.as_bytes(), token.as_bytes()))
    }

    /// Whether the request carries valid credentials: `Authorization: Bearer TOKEN`, basic
    /// auth with TOKEN as the password (for senders that only take credentials in the URL),
    /// or GitHub's `X-Hub-Signature-256` HMAC of the body keyed with TOKEN.
    pub fn allows(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let Some(token) = self.token.as_deref().filter(|t| !t.is_empty()) else {
            return self.allow_unauthenticated;
        };
        if let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            if let Some(given) = value.strip_prefix("Bearer ") {
                return same_secret(given.trim().as_bytes(), token.as_bytes());
            }
            if let Some(encoded) = value.strip_prefix("Basic ") {
                use base64::Engine;
                let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim())
                else {
                    return false;
                };
                let password = decoded
                    .iter()
                    .position(|b| *b == b':')
                    .map_or(&decoded[..0], |colon| &decoded[colon + 1..]);
                return same_secret(password, token.as_bytes());
            }
            return false;
        }
        if let Some(signature) = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256="))
        {
            let Some(expected) = hex_decode(signature) else {
                return false;
            };
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
            return ring::hmac::verify(&key, body, &expected).is_ok();
        }
        self.allow_unauthenticated
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

type Reply = Response<Full<Bytes>>;

/// Marks a webhook a standby handed on to the leader.
const FORWARDED_HEADER: &str = "x-keelson-forwarded";

/// Hands a webhook on to the leader; 503 when there is none to reach.
async fn forward(controller: &Controller, kind: Kind, headers: &HeaderMap, body: Bytes) -> Reply {
    let unavailable = |why: &str| {
        let mut response = json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": format!("this replica is not the leader and {why}; retry")}),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
        response
    };
    let Some((api, name)) = &controller.leader_lease else {
        return unavailable("knows no leader");
    };
    let Some(address) = super::leader::leader_address(api, name).await else {
        return unavailable("no leader has published its address");
    };
    let url = format!("http://{address}/v1/webhooks/{}", kind.label());
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
    {
        Ok(client) => client,
        Err(_) => return unavailable("cannot build an HTTP client"),
    };
    let mut request = client.post(&url).header(FORWARDED_HEADER, "1").body(body);
    for name in [
        header::AUTHORIZATION.as_str(),
        header::CONTENT_TYPE.as_str(),
        "x-hub-signature-256",
        "x-github-event",
    ] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.clone());
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = reply(status, "application/json", bytes);
            *response.status_mut() = status;
            response
        }
        Err(err) => {
            warn!(leader = %address, error = %err, "cannot hand a webhook on to the leader");
            unavailable("the leader cannot be reached")
        }
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn json(status: StatusCode, value: serde_json::Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    controller: Arc<Controller>,
    auth: WebhookAuth,
    mut shutdown: watch::Receiver<bool>,
) {
    let auth = Arc::new(auth);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!(error = %err, "cannot accept a connection");
                continue;
            }
        };
        let controller = controller.clone();
        let auth = auth.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let controller = controller.clone();
                let auth = auth.clone();
                async move { Ok::<_, Infallible>(route(request, &controller, &auth, peer).await) }
            });
            // A slow client may not hold a connection open forever.
            let connection = http1::Builder::new()
                .header_read_timeout(std::time::Duration::from_secs(10))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
}

/// Binds the listener (an error names the address).
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {address}: {err}"))?;
    info!(%address, "serving webhooks, /metrics, /healthz and /readyz");
    Ok(listener)
}

async fn route(
    request: hyper::Request<Incoming>,
    controller: &Arc<Controller>,
    auth: &WebhookAuth,
    peer: SocketAddr,
) -> Reply {
    let path = request.uri().path().to_string();
    match (request.method(), path.as_str()) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/readyz") => {
            if *controller.synced.borrow() {
                let role = if *controller.leading.borrow() {
                    "leader"
                } else {
                    "standby"
                };
                reply(StatusCode::OK, "text/plain", format!("ready ({role})\n"))
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "release records not listed yet\n",
                )
            }
        }
        (&Method::GET, "/metrics") => {
            controller.publish_registry_counts();
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                controller.metrics.render(),
            )
        }
        (_, "/v1/approvals") => approvals(request, controller, auth).await,
        (&Method::GET, "/") => {
            let signed_in = dashboard::session_token(request.headers())
                .is_some_and(|token| auth.token_matches(&token));
            let message = request
                .uri()
                .query()
                .and_then(|q| {
                    dashboard::form_fields(q.as_bytes())
                        .into_iter()
                        .find(|(k, _)| k == "message")
                })
                .map(|(_, v)| v);
            reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                dashboard::page(controller, signed_in, message.as_deref()).await,
            )
        }
        (&Method::POST, "/ui/login") => {
            let body = match Limited::new(request.into_body(), 8 * 1024).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return reply(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "text/plain",
                        "body too large\n",
                    );
                }
            };
            let token = dashboard::form_fields(&body)
                .into_iter()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v)
                .unwrap_or_default();
            if !auth.token_matches(&token) {
                return see_other("/?message=Wrong%20token", None);
            }
            let cookie = format!(
                "{}={}; HttpOnly; SameSite=Strict; Path=/",
                dashboard::SESSION_COOKIE,
                url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
            );
            see_other("/", Some(cookie))
        }
        (&Method::POST, "/ui/vote") => {
            let signed_in = dashboard::session_token(request.headers())
                .is_some_and(|token| auth.token_matches(&token));
            if !signed_in {
                return reply(StatusCode::UNAUTHORIZED, "text/plain", "sign in first\n");
            }
            let body = match Limited::new(request.into_body(), 8 * 1024).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return reply(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "text/plain",
                        "body too large\n",
                    );
                }
            };
            let fields = dashboard::form_fields(&body);
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let approve = field("action") == "approve";
            let voter = Some(field("voter"))
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "dashboard".to_string());
            let store = crate::approvals::Approvals::new(controller.updater.client.clone());
            let message = match store.vote(&field("id"), &voter, approve).await {
                Ok(approval) => {
                    controller.voted(&approval).await;
                    format!("{}: {}", approval.id, approval.state.as_str())
                }
                Err(err) => err.to_string(),
            };
            let location = format!(
                "/?message={}",
                url::form_urlencoded::byte_serialize(message.as_bytes()).collect::<String>()
            );
            see_other(&location, None)
        }
        (_, p) if p.starts_with("/v1/webhooks/") => {
            let Some(kind) = Kind::from_path(p) else {
                return reply(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    "unknown webhook kind\n",
                );
            };
            let response = webhook(request, kind, controller, auth).await;
            let code = response.status().as_u16().to_string();
            controller.metrics.inc(
                "keelson_webhook_requests_total",
                &[("endpoint", kind.label()), ("code", &code)],
            );
            debug!(%peer, endpoint = kind.label(), code = %code, "webhook");
            response
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// `GET /v1/approvals` lists the approvals of the watched releases and workloads; `POST /v1/approvals` with
/// Keel's body `{"identifier": ID, "action": "approve"|"reject", "voter": NAME}` votes. Both
/// need the webhook credentials.
async fn approvals(
    request: hyper::Request<Incoming>,
    controller: &Arc<Controller>,
    auth: &WebhookAuth,
) -> Reply {
    let method = request.method().clone();
    let headers = request.headers().clone();
    let body = match Limited::new(request.into_body(), 64 * 1024).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "body too large\n",
            );
        }
    };
    if !auth.allows(&headers, &body) {
        return reply(StatusCode::UNAUTHORIZED, "text/plain", "unauthorized\n");
    }
    let store = crate::approvals::Approvals::new(controller.updater.client.clone());
    if method == Method::GET {
        let mut all = Vec::new();
        for namespace in controller.approval_namespaces() {
            match store.list(Some(&namespace)).await {
                Ok(found) => all.extend(found),
                Err(err) => {
                    return json(
                        StatusCode::BAD_GATEWAY,
                        serde_json::json!({"error": err.to_string()}),
                    );
                }
            }
        }
        return json(StatusCode::OK, serde_json::json!(all));
    }
    if method != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET or POST\n",
        );
    }
    #[derive(serde::Deserialize)]
    struct Vote {
        identifier: String,
        action: String,
        #[serde(default)]
        voter: Option<String>,
    }
    let vote: Vote = match serde_json::from_slice(&body) {
        Ok(vote) => vote,
        Err(err) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("the body is not a vote: {err}")}),
            );
        }
    };
    let approve = match vote.action.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("{other:?} is not an action (approve or reject)")}),
            );
        }
    };
    let voter = vote
        .voter
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "anonymous".to_string());
    match store.vote(&vote.identifier, &voter, approve).await {
        Ok(approval) => {
            // Plan the release or workload now: an approval that is complete moves it at once.
            controller.voted(&approval).await;
            json(StatusCode::OK, serde_json::json!(approval))
        }
        Err(err @ (crate::approvals::Error::NotFound(_) | crate::approvals::Error::BadId(_))) => {
            json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": err.to_string()}),
            )
        }
        Err(err @ crate::approvals::Error::Decided { .. }) => json(
            StatusCode::CONFLICT,
            serde_json::json!({"error": err.to_string()}),
        ),
        Err(err) => json(
            StatusCode::BAD_GATEWAY,
            serde_json::json!({"error": err.to_string()}),
        ),
    }
}

async fn webhook(
    request: hyper::Request<Incoming>,
    kind: Kind,
    controller: &Arc<Controller>,
    auth: &WebhookAuth,
) -> Reply {
    if request.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use POST\n");
    }
    let headers = request.headers().clone();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            "body too large\n",
        );
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "body too large\n",
            );
        }
    };
    // Credentials are checked before the body is even parsed: an unauthenticated request
    // learns nothing about what keelson tracks.
    if !auth.allows(&headers, &body) {
        let mut response = reply(StatusCode::UNAUTHORIZED, "text/plain", "unauthorized\n");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"keelson\""),
        );
        return response;
    }
    // Only the leader writes: a standby hands the request on, unchanged, to the leader the
    // Lease names (once: a forwarded request is never forwarded again).
    if !*controller.leading.borrow() && !headers.contains_key(FORWARDED_HEADER) {
        return forward(controller, kind, &headers, body).await;
    }
    let context = webhooks::Context {
        github_event: headers.get("x-github-event").and_then(|v| v.to_str().ok()),
        jfrog_registry: std::env::var("KEELSON_JFROG_REGISTRY")
            .or_else(|_| std::env::var("PRIVATE_REGISTRY"))
            .ok(),
    };
    let hints = match webhooks::parse(kind, &body, &context) {
        Ok(hints) => hints,
        Err(err) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": err.to_string()}),
            );
        }
    };
    let answers = controller.handle_hints(hints).await;
    let status = if answers.iter().any(|a| a.status == "not the leader") {
        StatusCode::SERVICE_UNAVAILABLE
    } else if answers.iter().any(|a| a.status == "accepted") {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    json(status, serde_json::json!({"hints": answers}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, header::HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn credentials() {
        use base64::Engine;
        let auth = WebhookAuth {
            token: Some("s3cret".into()),
            allow_unauthenticated: false,
        };
        assert!(auth.allows(&headers(&[("authorization", "Bearer s3cret")]), b"{}"));
        assert!(!auth.allows(&headers(&[("authorization", "Bearer s3cre")]), b"{}"));
        assert!(!auth.allows(&headers(&[]), b"{}"));
        let basic = base64::engine::general_purpose::STANDARD.encode("hub:s3cret");
        assert!(auth.allows(
            &headers(&[("authorization", &format!("Basic {basic}"))]),
            b"{}"
        ));
        let wrong = base64::engine::general_purpose::STANDARD.encode("hub:nope");
        assert!(!auth.allows(
            &headers(&[("authorization", &format!("Basic {wrong}"))]),
            b"{}"
        ));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
        let tag = ring::hmac::sign(&key, b"{\"a\":1}");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let signed = headers(&[("x-hub-signature-256", &format!("sha256={hex}"))]);
        assert!(auth.allows(&signed, b"{\"a\":1}"));
        assert!(!auth.allows(&signed, b"{\"a\":2}"));
        let open = WebhookAuth {
            token: None,
            allow_unauthenticated: true,
        };
        assert!(open.allows(&headers(&[]), b"{}"));
        let closed = WebhookAuth {
            token: None,
            allow_unauthenticated: false,
        };
        assert!(!closed.allows(&headers(&[("authorization", "Bearer x")]), b"{}"));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
