//! Hostile and broken registries: behaviour the real docker-registry cannot produce, served by
//! the scripted peer in `registry_peer` on 127.0.0.1. Each case must end in a clear error (or
//! the correct answer), never a panic, unbounded memory or an endless loop.

// tests/support is shared; its one collapsible `if` is not this file's to change.
mod support;

#[path = "registry_peer/mod.rs"]
mod peer;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keelson::registry::{Credentials, Error, ImageRef, Limits, RegistryClient, RegistryConfig};
use peer::{Body, Peer, Reply, Request};

fn fast_config() -> RegistryConfig {
    RegistryConfig {
        default_limits: Limits {
            max_concurrent: 8,
            requests_per_second: 10_000.0,
            burst: 1_000,
        },
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        request_timeout: Duration::from_secs(10),
        ..RegistryConfig::default()
    }
}

fn client(config: RegistryConfig) -> RegistryClient {
    keelson::cluster::install_crypto_provider();
    RegistryClient::new(config).expect("client")
}

fn image(peer: &Peer, path: &str) -> ImageRef {
    ImageRef::parse(&format!("{}/{path}", peer.host())).expect("valid image")
}

fn tags_json(tags: impl IntoIterator<Item = String>) -> serde_json::Value {
    serde_json::json!({"name": "x", "tags": tags.into_iter().collect::<Vec<_>>()})
}

fn ping_or(request: &Request, reply: impl FnOnce() -> Reply) -> Reply {
    if request.path() == "/v2/" {
        Reply::json(200, serde_json::json!({}))
    } else {
        reply()
    }
}

fn basic_secret(host: &str, user: &str, password: &str) -> Credentials {
    let document = serde_json::json!({"auths": {host: {"username": user, "password": password}}});
    Credentials::from_document(document.to_string().as_bytes(), "test-secret.json")
        .expect("valid secret")
}

#[tokio::test]
async fn huge_declared_body_is_refused_before_reading() {
    let peer = Peer::start(|r| {
        ping_or(r, || {
            Reply::new(200).streamed(Body::Endless {
                chunk: vec![b' '; 64 * 1024],
                total: 1 << 30,
                declare_length: true,
            })
        })
    })
    .await;
    let err = client(fast_config())
        .list_tags(&image(&peer, "huge/declared"))
        .await
        .expect_err("a 1 GiB page must be refused");
    assert!(matches!(err, Error::BodyTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("huge/declared"), "{err}");
}

#[tokio::test]
async fn huge_streamed_body_stops_at_the_cap() {
    let peer = Peer::start(|r| {
        ping_or(r, || {
            Reply::new(200).streamed(Body::Endless {
                chunk: vec![b' '; 64 * 1024],
                total: 1 << 30,
                declare_length: false,
            })
        })
    })
    .await;
    let config = RegistryConfig {
        max_body_bytes: 1024 * 1024,
        ..fast_config()
    };
    let err = client(config)
        .list_tags(&image(&peer, "huge/streamed"))
        .await
        .expect_err("an endless page must be refused");
    assert!(
        matches!(
            err,
            Error::BodyTooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_million_tags_in_one_page_hit_the_body_cap() {
    let body = tags_json((0..1_000_000).map(|i| format!("1.0.{i}")))
        .to_string()
        .into_bytes();
    let peer = Peer::start(move |r| ping_or(r, || Reply::new(200).body(body.clone()))).await;
    let err = client(fast_config())
        .list_tags(&image(&peer, "million/one-page"))
        .await
        .expect_err("an ~11 MB page is over the default 8 MiB cap");
    assert!(matches!(err, Error::BodyTooLarge { .. }), "{err}");
}

#[tokio::test]
async fn endless_pagination_hits_the_tag_cap() {
    let peer = Peer::start(|r| {
        ping_or(r, || {
            let page: usize = r.query("page").and_then(|p| p.parse().ok()).unwrap_or(0);
            let tags = (0..1000).map(move |i| format!("{page}.{i}"));
            Reply::json(200, tags_json(tags)).header(
                "Link",
                &format!(
                    "</v2/million/paged/tags/list?n=100&page={}>; rel=\"next\"",
                    page + 1
                ),
            )
        })
    })
    .await;
    let config = RegistryConfig {
        max_tags: 20_000,
        ..fast_config()
    };
    let err = client(config)
        .list_tags(&image(&peer, "million/paged"))
        .await
        .expect_err("endless pages must stop");
    assert!(
        matches!(err, Error::TooManyTags { limit: 20_000, .. }),
        "{err}"
    );
    // 20 pages of 1000 fill the cap; the 21st overflows it.
    assert_eq!(peer.count(|r| r.path().ends_with("/tags/list")), 21);
}

#[tokio::test]
async fn empty_pages_with_endless_links_hit_the_page_cap() {
    let counter = Arc::new(AtomicUsize::new(0));
    let peer = Peer::start(move |r| {
        ping_or(r, || {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            Reply::json(200, serde_json::json!({"tags": []}))
                .header("Link", &format!("<?token={n}>; rel=\"next\""))
        })
    })
    .await;
    let config = RegistryConfig {
        max_pages: 50,
        ..fast_config()
    };
    let err = client(config)
        .list_tags(&image(&peer, "empty/pages"))
        .await
        .expect_err("endless empty pages must stop");
    assert!(
        matches!(err, Error::TooManyPages { limit: 50, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn link_loops_and_other_hosts_are_refused() {
    let peer = Peer::start(|r| {
        ping_or(r, || {
            Reply::json(200, tags_json(["a".to_string()]))
                .header("Link", "</v2/loop/x/tags/list?last=a>; rel=\"next\"")
        })
    })
    .await;
    let err = client(fast_config())
        .list_tags(&image(&peer, "loop/x"))
        .await
        .expect_err("a Link pointing to itself loops");
    assert!(matches!(err, Error::PaginationLoop { .. }), "{err}");

    let other = Peer::start(|r| {
        ping_or(r, || {
            Reply::json(200, tags_json(["a".to_string()])).header(
                "Link",
                "<http://localhost:1/v2/x/tags/list?last=a>; rel=\"next\"",
            )
        })
    })
    .await;
    let err = client(fast_config())
        .list_tags(&image(&other, "cross/x"))
        .await
        .expect_err("a Link to another host is refused");
    assert!(matches!(err, Error::CrossHostLink { .. }), "{err}");
}

#[tokio::test]
async fn malformed_json_and_link_headers_are_clear_errors() {
    let peer = Peer::start(|r| {
        ping_or(r, || {
            if r.path().contains("badjson") {
                Reply::new(200).body(b"{\"tags\": [\"a\", 3".to_vec())
            } else if r.path().contains("wrongshape") {
                Reply::json(200, serde_json::json!({"tags": "not-a-list"}))
            } else {
                Reply::json(200, tags_json(["a".to_string()])).header("Link", "<>; rel=\"next\"")
            }
        })
    })
    .await;
    let client = client(fast_config());
    for (path, expect_json) in [
        ("badjson/x", true),
        ("wrongshape/x", true),
        ("badlink/x", false),
    ] {
        let err = client.list_tags(&image(&peer, path)).await.expect_err(path);
        if expect_json {
            assert!(matches!(err, Error::MalformedJson { .. }), "{path}: {err}");
        } else {
            assert!(matches!(err, Error::MalformedLink { .. }), "{path}: {err}");
        }
        assert!(err.to_string().contains(path), "{path}: {err}");
    }
}

#[tokio::test]
async fn invalid_tag_names_are_dropped() {
    let peer = Peer::start(|r| {
        ping_or(r, || {
            Reply::json(
                200,
                serde_json::json!({"tags": ["1.0.0", "bad tag", "-x", "ok_1", "a\nb", "1.0.0"]}),
            )
        })
    })
    .await;
    let tags = client(fast_config())
        .list_tags(&image(&peer, "odd/tags"))
        .await
        .expect("valid tags are kept");
    assert_eq!(tags, ["1.0.0", "ok_1"]);
}

/// distribution 2.8 (the test environment's registry) does not paginate tag lists, so the Link
/// header forms other registries send (distribution 3, Harbor, GHCR, ECR, Artifactory) are
/// scripted here: angle brackets or none, absolute or relative URLs, opaque continuation tokens.
#[tokio::test]
async fn pagination_follows_every_link_form() {
    let peer = Peer::start(|r| {
        ping_or(r, || {
            let page = r
                .query("last")
                .or_else(|| r.query("token"))
                .unwrap_or_default();
            let host = r.header("host").unwrap_or_default().to_string();
            let (tags, link): (&[&str], Option<String>) = match page.as_str() {
                "" => (
                    &["1.0", "1.1"],
                    Some("</v2/paged/app/tags/list?n=100&last=1.1>; rel=\"next\"".into()),
                ),
                "1.1" => (
                    &["1.2", "1.3"],
                    Some(format!(
                        "<http://{host}/v2/paged/app/tags/list?n=100&last=1.3>; rel=\"next\""
                    )),
                ),
                "1.3" => (
                    &["1.4"],
                    Some("/v2/paged/app/tags/list?token=b3BhcXVl%2Bx; rel=next".into()),
                ),
                "b3BhcXVl+x" => (
                    &["1.5"],
                    Some(
                        "<?token=last-page>; rel=\"next\", <http://elsewhere/>; rel=\"prev\""
                            .into(),
                    ),
                ),
                "last-page" => (&["1.6"], None),
                other => panic!("unexpected page {other:?}"),
            };
            let reply = Reply::json(200, tags_json(tags.iter().map(|t| t.to_string())));
            match link {
                Some(link) => reply.header("Link", &link),
                None => reply,
            }
        })
    })
    .await;
    let client = client(fast_config());
    let tags = client
        .list_tags(&image(&peer, "paged/app"))
        .await
        .expect("every page");
    assert_eq!(tags, ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6"]);
    assert_eq!(client.requests_to(&peer.host()).tags, 5);
}

#[tokio::test]
async fn refused_page_size_is_retried_smaller() {
    let peer = Peer::start(|r| {
        ping_or(r, || match r.query("n").as_deref() {
            Some("100") => Reply::json(
                400,
                serde_json::json!({"errors": [{"code": "PAGINATION_NUMBER_INVALID"}]}),
            ),
            _ => Reply::json(200, tags_json(["1.0".to_string(), "1.1".to_string()])),
        })
    })
    .await;
    let tags = client(fast_config())
        .list_tags(&image(&peer, "small/pages"))
        .await
        .expect("retried with n=50");
    assert_eq!(tags, ["1.0", "1.1"]);
    let sizes: Vec<Option<String>> = peer
        .requests()
        .iter()
        .filter(|r| r.path().ends_with("/tags/list"))
        .map(|r| r.query("n"))
        .collect();
    assert_eq!(sizes, [Some("100".into()), Some("50".into())]);
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let peer = Peer::start(move |r| {
        ping_or(r, || {
            if counter.fetch_add(1, Ordering::Relaxed) == 0 {
                Reply::json(
                    429,
                    serde_json::json!({"errors": [{"code": "TOOMANYREQUESTS"}]}),
                )
                .header("Retry-After", "1")
            } else {
                Reply::json(200, tags_json(["2.0".to_string()]))
            }
        })
    })
    .await;
    let started = std::time::Instant::now();
    let tags = client(fast_config())
        .list_tags(&image(&peer, "busy/x"))
        .await
        .expect("succeeds after waiting");
    assert_eq!(tags, ["2.0"]);
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    // The client waited as told (a lower bound: this checks behaviour, not speed).
    assert!(started.elapsed() >= Duration::from_millis(950));
}

#[tokio::test]
async fn long_retry_after_fails_fast_and_503_backs_off_then_gives_up() {
    let peer = Peer::start(|r| {
        ping_or(r, || {
            if r.path().contains("long") {
                Reply::new(429).header("Retry-After", "3600")
            } else {
                Reply::new(503)
            }
        })
    })
    .await;
    let client = client(fast_config());
    let err = client
        .list_tags(&image(&peer, "long/wait"))
        .await
        .expect_err("an hour is too long to wait");
    assert!(
        matches!(err, Error::RateLimited { status: 429, attempts: 1, retry_after: Some(d), .. } if d.as_secs() == 3600),
        "{err}"
    );
    let err = client
        .list_tags(&image(&peer, "down/x"))
        .await
        .expect_err("503 forever");
    assert!(
        matches!(
            err,
            Error::RateLimited {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(peer.count(|r| r.path() == "/v2/down/x/tags/list"), 4);
}

#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_host() {
    let target =
        Peer::start(|r| ping_or(r, || Reply::json(200, tags_json(["3.0".to_string()])))).await;
    // `localhost` instead of 127.0.0.1 and another port: another origin.
    let location = format!("http://localhost:{}/elsewhere/tags", target.addr.port());
    let origin = Peer::start(move |r| {
        ping_or(r, || {
            if r.header("authorization").is_none() {
                Reply::new(401).header("WWW-Authenticate", "Basic realm=\"test\"")
            } else {
                Reply::new(307).header("Location", &location)
            }
        })
    })
    .await;
    let config = RegistryConfig {
        credentials: basic_secret(&origin.host(), "alice", "s3cret"),
        ..fast_config()
    };
    let tags = client(config)
        .list_tags(&image(&origin, "moved/x"))
        .await
        .expect("follows the redirect");
    assert_eq!(tags, ["3.0"]);
    let redirected = target.requests();
    let [request] = redirected.as_slice() else {
        panic!("one request expected at the redirect target: {redirected:?}");
    };
    assert_eq!(request.header("authorization"), None, "credentials leaked");
    assert!(
        origin.requests().iter().any(|r| r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic "))),
        "the origin itself gets the credentials"
    );
}

/// Issue 13 item 13: a redirect target that answers 401 with its own Bearer realm must not be
/// taken as the registry's challenge, or the registry's Basic credentials would go to it.
#[tokio::test]
async fn a_401_from_a_redirect_target_never_receives_credentials() {
    let foreign = Peer::start(|r| {
        ping_or(r, || {
            if r.path().starts_with("/token") {
                Reply::json(200, serde_json::json!({"token": "stolen"}))
            } else {
                let realm = format!("http://{}/token", r.header("host").unwrap_or_default());
                Reply::new(401).header(
                    "WWW-Authenticate",
                    &format!("Bearer realm=\"{realm}\",service=\"evil\""),
                )
            }
        })
    })
    .await;
    // `localhost` and another port: another origin than the registry's 127.0.0.1:port.
    let location = format!("http://localhost:{}/v2/elsewhere/tags", foreign.addr.port());
    let origin = Peer::start(move |r| {
        ping_or(r, || {
            if r.header("authorization").is_none() {
                Reply::new(307).header("Location", &location)
            } else {
                Reply::json(200, tags_json(["1.0".to_string()]))
            }
        })
    })
    .await;
    let config = RegistryConfig {
        credentials: basic_secret(&origin.host(), "alice", "s3cret"),
        ..fast_config()
    };
    let err = client(config)
        .list_tags(&image(&origin, "hijack/x"))
        .await
        .expect_err("a foreign 401 is not the registry's challenge");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("redirect target"),
        "the error says why: {err}"
    );
    for request in foreign.requests() {
        assert_eq!(
            request.header("authorization"),
            None,
            "credentials reached the redirect target: {request:?}"
        );
    }
    assert_eq!(
        foreign.count(|r| r.path().starts_with("/token")),
        0,
        "the foreign realm was asked for a token"
    );
}

#[tokio::test]
async fn redirect_to_plain_http_elsewhere_is_refused_before_sending() {
    let peer = Peer::start(|r| {
        ping_or(r, || {
            Reply::new(302).header("Location", "http://registry.example.invalid/v2/x/tags/list")
        })
    })
    .await;
    let err = client(fast_config())
        .list_tags(&image(&peer, "downgrade/x"))
        .await
        .expect_err("plain HTTP to a non-loopback host");
    assert!(matches!(err, Error::InsecureNotAllowed { .. }), "{err}");
    assert!(err.to_string().contains("--insecure-registry"), "{err}");
}

#[tokio::test]
async fn redirect_loops_stop() {
    let peer =
        Peer::start(|r| ping_or(r, || Reply::new(302).header("Location", r.target.as_str()))).await;
    let err = client(fast_config())
        .list_tags(&image(&peer, "circle/x"))
        .await
        .expect_err("endless redirects");
    assert!(
        matches!(err, Error::TooManyRedirects { limit: 5, .. }),
        "{err}"
    );
}

/// A Docker Hub–style registry and token server in one peer: the registry answers 401 with the
/// challenge exactly as Docker Hub words it until a Bearer token is presented.
fn docker_hub_like(
    expires_in: u64,
    required_user: Option<&'static str>,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let issued = Arc::new(AtomicUsize::new(0));
    move |r: &Request| {
        if r.path() == "/token" {
            if let Some(user) = required_user {
                use base64::Engine;
                let expected = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"))
                );
                if r.header("authorization") != Some(expected.as_str()) {
                    return Reply::json(
                        401,
                        serde_json::json!({"details": "incorrect username or password"}),
                    );
                }
            }
            let n = issued.fetch_add(1, Ordering::Relaxed);
            return Reply::json(
                200,
                serde_json::json!({
                    "token": format!("token-{n}"),
                    "access_token": format!("token-{n}"),
                    "expires_in": expires_in,
                    "issued_at": "2026-01-01T00:00:00Z"
                }),
            );
        }
        if r.path() == "/v2/" {
            return Reply::new(401);
        }
        let scope = r
            .path()
            .strip_prefix("/v2/")
            .and_then(|p| p.split("/tags/").next())
            .and_then(|p| p.split("/manifests/").next())
            .unwrap_or_default()
            .to_string();
        match r.header("authorization") {
            Some(auth) if auth.starts_with("Bearer token-") => {
                if r.path().contains("/manifests/") {
                    Reply::new(200).header(
                        "Docker-Content-Digest",
                        "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                    )
                } else {
                    Reply::json(200, tags_json(["1.0.0".to_string(), "1.1.0".to_string()]))
                }
            }
            _ => Reply::json(401, serde_json::json!({"errors": [{"code": "UNAUTHORIZED"}]})).header(
                "Www-Authenticate",
                &format!(
                    "Bearer realm=\"http://{{HOST}}/token\",service=\"registry.docker.io\",scope=\"repository:{scope}:pull\""
                ),
            ),
        }
    }
}

/// Replaces `{HOST}` in the challenge with the peer's own address once it is known.
async fn start_docker_hub_like(expires_in: u64, required_user: Option<&'static str>) -> Peer {
    let host = Arc::new(std::sync::OnceLock::<String>::new());
    let host_for_handler = host.clone();
    let inner = docker_hub_like(expires_in, required_user);
    let peer = Peer::start(move |r| {
        let mut reply = inner(r);
        let own = host_for_handler.get().cloned().unwrap_or_default();
        for (_, value) in &mut reply.headers {
            *value = value.replace("{HOST}", &own);
        }
        reply
    })
    .await;
    host.set(peer.host()).expect("set once");
    peer
}

#[tokio::test]
async fn bearer_tokens_are_cached_per_scope_until_they_expire() {
    let peer = start_docker_hub_like(300, None).await;
    let client = client(fast_config());
    let app = image(&peer, "library/app");
    for _ in 0..3 {
        assert_eq!(
            client.list_tags(&app).await.expect("tags"),
            ["1.0.0", "1.1.0"]
        );
    }
    client.digest(&app, "1.1.0").await.expect("digest");
    let tokens = peer
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/token")
        .collect::<Vec<_>>();
    let [token_request] = tokens.as_slice() else {
        panic!("one token for one scope: {tokens:?}");
    };
    assert_eq!(
        token_request.query("service").as_deref(),
        Some("registry.docker.io")
    );
    assert_eq!(
        token_request.query("scope").as_deref(),
        Some("repository:library/app:pull")
    );
    // One 401 to learn the challenge, then every call is a single request (Keel: two per call).
    assert_eq!(peer.count(|r| r.path().ends_with("/tags/list")), 4);
    assert_eq!(peer.count(|r| r.path().contains("/manifests/")), 1);

    // Another repository: a new scope, a new token, but no second 401 round trip.
    client
        .list_tags(&image(&peer, "library/other"))
        .await
        .expect("tags");
    assert_eq!(peer.count(|r| r.path() == "/token"), 2);
    assert_eq!(peer.count(|r| r.path() == "/v2/library/other/tags/list"), 1);
    let counts = client.requests_to(&peer.host());
    assert_eq!(counts.token, 2);
    assert_eq!(counts.tags, 5);
}

#[tokio::test]
async fn concurrent_requests_share_one_token() {
    let peer = start_docker_hub_like(300, None).await;
    let client = client(fast_config());
    let app = image(&peer, "library/busy");
    // Learn the challenge first, then drop into many concurrent first uses of a new scope.
    client.list_tags(&app).await.expect("tags");
    let other = image(&peer, "library/crowded");
    let calls = (0..10).map(|_| {
        let client = client.clone();
        let other = other.clone();
        async move { client.list_tags(&other).await }
    });
    for result in futures::future::join_all(calls).await {
        result.expect("tags");
    }
    assert_eq!(peer.count(|r| r.path() == "/token"), 2);
}

#[tokio::test]
async fn expired_tokens_are_renewed() {
    let peer = start_docker_hub_like(1, None).await;
    let client = client(fast_config());
    let app = image(&peer, "library/short");
    client.list_tags(&app).await.expect("tags");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.list_tags(&app).await.expect("tags");
    assert_eq!(peer.count(|r| r.path() == "/token"), 2);
}

#[tokio::test]
async fn credentialed_token_flow_and_rejected_credentials() {
    let peer = start_docker_hub_like(300, Some("bob")).await;
    let good = client(RegistryConfig {
        credentials: basic_secret(&peer.host(), "bob", "pw"),
        ..fast_config()
    });
    good.list_tags(&image(&peer, "private/app"))
        .await
        .expect("bob may pull");

    let bad = client(RegistryConfig {
        credentials: basic_secret(&peer.host(), "mallory", "pw"),
        ..fast_config()
    });
    let err = bad
        .list_tags(&image(&peer, "private/app"))
        .await
        .expect_err("wrong user");
    assert!(
        matches!(err, Error::TokenRequest { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("/token"), "{err}");
}

#[tokio::test]
async fn rejected_credentials_fall_back_to_the_next_match() {
    let peer = start_docker_hub_like(300, Some("bob")).await;
    // Kubelet order: the more specific key (with a path) is tried first and rejected.
    let document = serde_json::json!({"auths": {
        format!("{}/private", peer.host()): {"username": "mallory", "password": "pw"},
        peer.host(): {"username": "bob", "password": "pw"},
    }});
    let credentials =
        Credentials::from_document(document.to_string().as_bytes(), "two.json").expect("secret");
    let client = client(RegistryConfig {
        credentials,
        ..fast_config()
    });
    let tags = client
        .list_tags(&image(&peer, "private/app"))
        .await
        .expect("bob's credentials work");
    assert_eq!(tags, ["1.0.0", "1.1.0"]);
    assert_eq!(peer.count(|r| r.path() == "/token"), 2);
}

#[tokio::test]
async fn endless_401_stops_after_one_retry() {
    let peer = Peer::start(|r| {
        if r.path() == "/token" {
            return Reply::json(
                200,
                serde_json::json!({"token": "useless", "expires_in": 300}),
            );
        }
        ping_or(r, || {
            Reply::new(401).header(
                "WWW-Authenticate",
                &format!(
                    "Bearer realm=\"http://{}/token\",service=\"loop\"",
                    r.header("host").unwrap_or_default()
                ),
            )
        })
    })
    .await;
    let err = client(fast_config())
        .list_tags(&image(&peer, "loop/auth"))
        .await
        .expect_err("401 forever");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("rejected the credentials"),
        "{err}"
    );
    assert_eq!(peer.count(|r| r.path().ends_with("/tags/list")), 2);
    assert_eq!(peer.count(|r| r.path() == "/token"), 1);
}

#[tokio::test]
async fn malformed_challenges_and_realms_are_clear_errors() {
    let peer = Peer::start(|r| {
        ping_or(r, || {
            let challenge = if r.path().contains("garbled") {
                "Bearer realm=\"unterminated"
            } else if r.path().contains("unknown") {
                "Negotiate abc"
            } else {
                "Bearer realm=\"http://10.255.255.1/token\",service=\"x\""
            };
            Reply::new(401).header("WWW-Authenticate", challenge)
        })
    })
    .await;
    let client = client(fast_config());
    let err = client
        .list_tags(&image(&peer, "garbled/x"))
        .await
        .expect_err("garbled");
    assert!(matches!(err, Error::MalformedChallenge { .. }), "{err}");
    let err = client
        .list_tags(&image(&peer, "unknown/x"))
        .await
        .expect_err("unknown");
    assert!(matches!(err, Error::MalformedChallenge { .. }), "{err}");
    // A plain-HTTP realm on a non-loopback host is refused before anything is sent to it.
    let err = client
        .list_tags(&image(&peer, "plainrealm/x"))
        .await
        .expect_err("realm");
    assert!(matches!(err, Error::InsecureNotAllowed { .. }), "{err}");
}

#[tokio::test]
async fn digest_falls_back_to_get_only_without_the_header() {
    let manifest =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec();
    let expected = {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(&manifest);
        format!(
            "sha256:{}",
            hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    };
    let body = manifest.clone();
    let peer = Peer::start(move |r| {
        ping_or(r, || {
            if r.path().contains("badheader") {
                Reply::new(200).header("Docker-Content-Digest", "md5:nope")
            } else if r.path().contains("mismatch") && r.method == "GET" {
                Reply::new(200).body(body.clone()).header(
                    "Docker-Content-Digest",
                    "sha256:2222222222222222222222222222222222222222222222222222222222222222",
                )
            } else if r.method == "HEAD" {
                Reply::new(200)
            } else {
                Reply::new(200).body(body.clone())
            }
        })
    })
    .await;
    let client = client(fast_config());
    let digest = client
        .digest(&image(&peer, "nohead/x"), "1.0")
        .await
        .expect("GET fallback");
    assert_eq!(digest, expected);
    let methods: Vec<String> = peer
        .requests()
        .iter()
        .filter(|r| r.path().contains("/manifests/"))
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);
    let accept = peer
        .requests()
        .iter()
        .find(|r| r.method == "HEAD")
        .and_then(|r| r.header("accept").map(str::to_string))
        .unwrap_or_default();
    for media_type in [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ] {
        assert!(
            accept.contains(media_type),
            "Accept lacks {media_type}: {accept}"
        );
    }
    let err = client
        .digest(&image(&peer, "badheader/x"), "1.0")
        .await
        .expect_err("bad header");
    assert!(matches!(err, Error::MalformedDigest { .. }), "{err}");
    let err = client
        .digest(&image(&peer, "mismatch/x"), "1.0")
        .await
        .expect_err("mismatch");
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
}

#[tokio::test]
async fn silent_registries_time_out() {
    let peer = Peer::start(|r| ping_or(r, || Reply::new(200).streamed(Body::Silence))).await;
    let config = RegistryConfig {
        request_timeout: Duration::from_millis(300),
        max_attempts: 2,
        ..fast_config()
    };
    let err = client(config)
        .list_tags(&image(&peer, "silent/x"))
        .await
        .expect_err("no answer");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(peer.count(|r| r.path().ends_with("/tags/list")), 2);
}

#[tokio::test]
async fn concurrency_limit_is_respected() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (flight, top) = (in_flight.clone(), peak.clone());
    let peer = Peer::start(move |r| {
        ping_or(r, || {
            let now = flight.fetch_add(1, Ordering::SeqCst) + 1;
            top.fetch_max(now, Ordering::SeqCst);
            // The handler is synchronous: hold the slot briefly so overlaps would show.
            std::thread::sleep(Duration::from_millis(30));
            flight.fetch_sub(1, Ordering::SeqCst);
            Reply::json(200, tags_json(["1".to_string()]))
        })
    })
    .await;
    let config = RegistryConfig {
        default_limits: Limits {
            max_concurrent: 2,
            requests_per_second: 10_000.0,
            burst: 1_000,
        },
        ..fast_config()
    };
    let client = client(config);
    let calls = (0..8).map(|i| {
        let client = client.clone();
        let image = image(&peer, &format!("many/r{i}"));
        async move { client.list_tags(&image).await }
    });
    for result in futures::future::join_all(calls).await {
        result.expect("tags");
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
}
