//! The entry Worker's decisions: routes, token placements, refusals for plain requests and for
//! upgrades, and what is forwarded to the room.

mod common;

use common::{hs256, NOW_MS, NOW_S, SECRET};
use edgesignal::config::{edge_config, ConfigError, EdgeConfig};
use edgesignal::edge::{decide, error_body, EdgeDecision, EdgeRequest, EdgeStep};
use edgesignal::error::ErrorCode;
use edgesignal::log::user_hash;
use serde_json::json;

fn config() -> EdgeConfig {
    edge_config(|name| (name == "JWT_SECRET").then(|| SECRET.to_owned())).unwrap()
}

fn token(rooms: serde_json::Value) -> String {
    hs256(json!({"sub":"alice","exp":NOW_S + 600,"rooms":rooms}))
}

fn run(req: EdgeRequest<'_>) -> EdgeDecision {
    let config = config();
    settle(decide(&req, Ok(&config)), &config)
}

/// Carries out an [`EdgeStep::Authorize`] as the Worker does, for HS256 tokens and no policy.
fn settle(step: EdgeStep<'_>, config: &EdgeConfig) -> EdgeDecision {
    match step {
        EdgeStep::Decided(decision) => decision,
        EdgeStep::Authorize(authorize) => {
            let identity = config
                .verifier
                .verify(authorize.token, NOW_MS)
                .and_then(|identity| match &authorize.room {
                    Some(room) => identity.may_enter(room).map(|()| identity),
                    None => Ok(identity),
                });
            authorize.finish(config, identity, NOW_MS)
        }
    }
}

fn ws(path: &str) -> EdgeRequest<'_> {
    EdgeRequest {
        method: "GET",
        path,
        upgrade: Some("websocket"),
        ..EdgeRequest::default()
    }
}

fn http_code(d: &EdgeDecision) -> Option<ErrorCode> {
    match d {
        EdgeDecision::HttpError { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn healthz_needs_no_token_and_only_get() {
    let get = EdgeRequest {
        method: "GET",
        path: "/healthz",
        ..Default::default()
    };
    assert_eq!(run(get), EdgeDecision::Health);
    let post = EdgeRequest {
        method: "POST",
        ..get
    };
    assert_eq!(http_code(&run(post)), Some(ErrorCode::MethodNotAllowed));
}

#[test]
fn unknown_paths_are_404_and_bad_room_ids_are_400_before_auth() {
    for path in ["/", "/nope", "/ws", "/ws/a/b", "/healthz/", "/ws/a/"] {
        assert_eq!(
            http_code(&run(ws(path))),
            Some(ErrorCode::NotFound),
            "{path}"
        );
    }
    let long = format!("/ws/{}", "a".repeat(65));
    for path in [
        "/ws/",
        "/ws/bad%20id",
        "/ws/a.b",
        "/ws/%2e%2e",
        long.as_str(),
    ] {
        assert_eq!(
            http_code(&run(ws(path))),
            Some(ErrorCode::BadRequest),
            "{path}"
        );
    }
    let ok64 = format!("/ws/{}", "a".repeat(64));
    assert!(matches!(
        run(EdgeRequest {
            query: Some("token=x"),
            ..ws(&ok64)
        }),
        EdgeDecision::RefuseUpgrade {
            code: ErrorCode::Unauthorized,
            ..
        }
    ));
    let post = EdgeRequest {
        method: "POST",
        ..ws("/ws/lobby")
    };
    assert_eq!(http_code(&run(post)), Some(ErrorCode::MethodNotAllowed));
}

#[test]
fn each_placement_is_accepted_and_forwards_a_hashed_identity() {
    let t = token(json!(["lobby"]));
    let header = format!("Bearer {t}");
    let protocols = format!("signal.v1, bearer.{t}");
    let query = format!("token={t}");
    for (name, req, protocol) in [
        (
            "header",
            EdgeRequest {
                authorization: Some(&header),
                ..ws("/ws/lobby")
            },
            None,
        ),
        (
            "protocol",
            EdgeRequest {
                protocols: Some(&protocols),
                ..ws("/ws/lobby")
            },
            Some("signal.v1"),
        ),
        (
            "query",
            EdgeRequest {
                query: Some(&query),
                ..ws("/ws/lobby")
            },
            None,
        ),
    ] {
        match run(req) {
            EdgeDecision::Forward(identity) => {
                assert_eq!(identity.room, "lobby", "{name}");
                assert_eq!(
                    identity.user,
                    user_hash(SECRET.as_bytes(), "alice"),
                    "{name}"
                );
                assert!(!identity.user.contains("alice"));
                assert_eq!(identity.protocol.as_deref(), protocol, "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn the_first_placement_wins() {
    let good = token(json!(["lobby"]));
    let header = "Bearer not-a-valid-token".to_owned();
    let query = format!("token={good}");
    let req = EdgeRequest {
        authorization: Some(&header),
        query: Some(&query),
        ..ws("/ws/lobby")
    };
    assert!(matches!(
        run(req),
        EdgeDecision::RefuseUpgrade {
            code: ErrorCode::Unauthorized,
            ..
        }
    ));
}

/// `(code, close code, answered subprotocol)` of a refused upgrade.
fn refused(req: EdgeRequest<'_>) -> (ErrorCode, u16, Option<&'static str>) {
    match run(req) {
        EdgeDecision::RefuseUpgrade {
            code,
            close_code,
            protocol,
            ..
        } => (code, close_code, protocol),
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
}

#[test]
fn refused_upgrades_get_a_frame_and_4401_or_4403_and_answer_signal_v1() {
    let no_token = EdgeRequest {
        protocols: Some("signal.v1"),
        ..ws("/ws/lobby")
    };
    assert_eq!(
        refused(no_token),
        (ErrorCode::Unauthorized, 4401, Some("signal.v1"))
    );
    let elsewhere = format!("signal.v1, bearer.{}", token(json!(["other-room"])));
    let other_room = EdgeRequest {
        protocols: Some(&elsewhere),
        ..ws("/ws/lobby")
    };
    assert_eq!(
        refused(other_room),
        (ErrorCode::Forbidden, 4403, Some("signal.v1"))
    );
    let no_rooms = format!("Bearer {}", hs256(json!({"sub":"a","exp":NOW_S + 60})));
    let header = EdgeRequest {
        authorization: Some(&no_rooms),
        ..ws("/ws/lobby")
    };
    assert_eq!(refused(header), (ErrorCode::Forbidden, 4403, None));
}

#[test]
fn plain_requests_get_http_errors_and_426_when_authorized() {
    let plain = |auth: Option<&str>| {
        let req = EdgeRequest {
            upgrade: None,
            authorization: auth,
            ..ws("/ws/lobby")
        };
        http_code(&run(req))
    };
    assert_eq!(plain(None), Some(ErrorCode::Unauthorized));
    let elsewhere = format!("Bearer {}", token(json!(["x"])));
    assert_eq!(plain(Some(&elsewhere)), Some(ErrorCode::Forbidden));
    let good = format!("Bearer {}", token(json!(["lobby"])));
    assert_eq!(plain(Some(&good)), Some(ErrorCode::UpgradeRequired));
    assert_eq!(ErrorCode::UpgradeRequired.http_status(), 426);
}

#[test]
fn a_bearer_protocol_without_signal_v1_is_a_400() {
    let protocols = format!("bearer.{}", token(json!(["lobby"])));
    let d = run(EdgeRequest {
        protocols: Some(&protocols),
        ..ws("/ws/lobby")
    });
    assert_eq!(http_code(&d), Some(ErrorCode::BadRequest));
}

#[test]
fn the_token_is_never_echoed_in_a_refusal() {
    let t = hs256(json!({"sub":"alice","exp":NOW_S - 3600,"rooms":["lobby"]}));
    let protocols = format!("signal.v1, bearer.{t}");
    let d = run(EdgeRequest {
        protocols: Some(&protocols),
        ..ws("/ws/lobby")
    });
    assert!(!format!("{d:?}").contains(&t));
    assert!(matches!(
        d,
        EdgeDecision::RefuseUpgrade {
            code: ErrorCode::Unauthorized,
            ..
        }
    ));
}

#[test]
fn a_missing_or_short_secret_is_a_clear_500_not_an_open_door() {
    let missing = edge_config(|_| None).err().unwrap();
    assert_eq!(missing, ConfigError::MissingSecret);
    let t = format!("Bearer {}", token(json!(["lobby"])));
    let d = decide(
        &EdgeRequest {
            authorization: Some(&t),
            ..ws("/ws/lobby")
        },
        Err(&missing),
    );
    assert!(
        matches!(
            d,
            EdgeStep::Decided(EdgeDecision::HttpError {
                code: ErrorCode::Internal,
                ..
            })
        ),
        "{d:?}"
    );
    assert!(matches!(
        edge_config(|n| (n == "JWT_SECRET").then(|| "short".to_owned())),
        Err(ConfigError::ShortSecret)
    ));
}

#[test]
fn error_bodies_have_the_documented_shape() {
    let body: serde_json::Value =
        serde_json::from_str(&error_body(ErrorCode::NotFound, "no route")).unwrap();
    assert_eq!(
        body,
        json!({"error":{"code":"not_found","message":"no route"}})
    );
}

#[test]
fn the_query_is_read_and_dropped_from_the_raw_url_string() {
    use edgesignal::edge::{url_query, url_without_query};
    let url = "https://signal.example/ws/lobby?token=abc.def&x=1#frag";
    assert_eq!(url_query(url), Some("token=abc.def&x=1"));
    assert_eq!(url_without_query(url), "https://signal.example/ws/lobby");
    assert_eq!(url_query("http://h/ws/a"), None);
    assert_eq!(url_query("http://h/ws/a?"), Some(""));
    assert_eq!(
        url_query("http://h/ws/a#x?y"),
        None,
        "a ? after # is the fragment's"
    );
    assert_eq!(url_without_query("http://h/ws/a#x"), "http://h/ws/a");
}

#[test]
fn the_path_is_read_from_the_raw_url_string_as_sent() {
    use edgesignal::edge::url_path;
    assert_eq!(
        url_path("https://signal.example/ws/lobby?token=a/b#x"),
        "/ws/lobby"
    );
    assert_eq!(
        url_path("http://127.0.0.1:8787/ws/bad%20id"),
        "/ws/bad%20id"
    );
    assert_eq!(url_path("https://signal.example"), "/");
    assert_eq!(url_path("https://signal.example?q=/x"), "/");
    assert_eq!(
        url_path("https://signal.example/a%3F%23%2Fb?c"),
        "/a%3F%23%2Fb"
    );
    assert_eq!(url_path("https://signal.example/healthz/"), "/healthz/");
}

#[test]
fn a_resume_token_is_forwarded_from_the_query_or_the_subprotocol_and_never_answered() {
    let good = token(json!(["lobby"]));
    let protocols = format!("signal.v1, bearer.{good}, resume.PEER1.SECRET1");
    let query = format!("token={good}&resume=PEER2.SECRET2");
    let cases = [
        (
            EdgeRequest {
                protocols: Some(&protocols),
                ..ws("/ws/lobby")
            },
            Some("PEER1.SECRET1"),
        ),
        (
            EdgeRequest {
                query: Some(&query),
                ..ws("/ws/lobby")
            },
            Some("PEER2.SECRET2"),
        ),
    ];
    for (req, resume) in cases {
        match run(req) {
            EdgeDecision::Forward(identity) => {
                assert_eq!(identity.resume.as_deref(), resume);
                // The answer names only signal.v1 (or nothing): never the resume token.
                assert!(identity
                    .protocol
                    .as_deref()
                    .is_none_or(|p| p == "signal.v1"));
                // The connection's deadline: exp plus the 60 s leeway.
                assert_eq!(identity.expires_ms, Some((NOW_S as u64 + 600 + 60) * 1000));
            }
            other => panic!("{other:?}"),
        }
    }
    // Something that is not one of our tokens in shape is no resume attempt at all.
    let junk = format!("token={good}&resume=%3Cscript%3E");
    match run(EdgeRequest {
        query: Some(&junk),
        ..ws("/ws/lobby")
    }) {
        EdgeDecision::Forward(identity) => assert_eq!(identity.resume, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refresh_grant_carries_the_salted_sub_and_the_deadline() {
    use edgesignal::edge::refresh_grant;
    let identity = config()
        .verifier
        .verify(&token(json!(["lobby"])), NOW_MS)
        .unwrap();
    let grant = refresh_grant(&config(), &identity);
    assert_eq!(grant.user, user_hash(SECRET.as_bytes(), "alice"));
    assert_eq!(grant.expires_ms, (NOW_S as u64 + 660) * 1000);
}

#[test]
fn an_origin_outside_the_allow_list_is_forbidden_before_the_token_is_read() {
    let config = edge_config(|name| match name {
        "JWT_SECRET" => Some(SECRET.to_owned()),
        "ALLOWED_ORIGINS" => Some("https://app.example.com".to_owned()),
        _ => None,
    })
    .unwrap();
    let good = format!("Bearer {}", token(json!(["lobby"])));
    fn request<'a>(origin: Option<&'a str>, authorization: &'a str) -> EdgeRequest<'a> {
        EdgeRequest {
            origin,
            authorization: Some(authorization),
            ..ws("/ws/lobby")
        }
    }
    let good = good.as_str();
    // A foreign origin: forbidden at once, the (valid) token is never verified.
    for authorization in [good, "Bearer not-a-jwt"] {
        match decide(
            &request(Some("https://evil.example"), authorization),
            Ok(&config),
        ) {
            EdgeStep::Decided(EdgeDecision::RefuseUpgrade {
                code,
                close_code,
                message,
                ..
            }) => {
                assert_eq!((code, close_code), (ErrorCode::Forbidden, 4403));
                assert!(message.contains("https://evil.example"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    // The listed origin, and no Origin at all, go on to the token.
    for origin in [Some("https://app.example.com"), None] {
        let decision = settle(decide(&request(origin, good), Ok(&config)), &config);
        assert!(matches!(decision, EdgeDecision::Forward(_)), "{decision:?}");
    }
}

#[test]
fn ice_servers_need_a_token_in_the_header_or_query_and_only_get() {
    let config = config();
    let t = token(json!(["lobby"]));
    let header = format!("Bearer {t}");
    let query = format!("token={t}");
    let protocols = format!("signal.v1, bearer.{t}");
    let get = EdgeRequest {
        method: "GET",
        path: "/ice-servers",
        ..EdgeRequest::default()
    };
    for req in [
        EdgeRequest {
            authorization: Some(&header),
            ..get
        },
        EdgeRequest {
            query: Some(&query),
            ..get
        },
    ] {
        match settle(decide(&req, Ok(&config)), &config) {
            EdgeDecision::Json { body } => {
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(
                    body,
                    json!({"iceServers":[{"urls":["stun:stun.cloudflare.com:3478"]}],"iceServersExpireAt":null})
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let subprotocol = EdgeRequest {
        protocols: Some(&protocols),
        ..get
    };
    assert_eq!(http_code(&run(subprotocol)), Some(ErrorCode::Unauthorized));
    assert_eq!(http_code(&run(get)), Some(ErrorCode::Unauthorized));
    let post = EdgeRequest {
        method: "POST",
        authorization: Some(&header),
        ..get
    };
    assert_eq!(http_code(&run(post)), Some(ErrorCode::MethodNotAllowed));
}
