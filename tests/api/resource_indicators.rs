//! RFC 8707 resource indicators end to end: `resource` at the authorization and token
//! endpoints, the audience of JWT access tokens (RFC 9068 §3) and of introspection answers
//! (RFC 7662 §2.2), resource servers that introspect only the tokens meant for them, refresh
//! narrowing (RFC 8707 §2.2), `invalid_target`, and the metadata.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{location, pkce_pair, query_param, spawn_app, spec, TestApp, REDIRECT_URI};

const API: &str = "https://api.example.com";
const BILLING: &str = "https://billing.example.com/v1";
const OTHER: &str = "urn:example:other";

/// A registered client with its secret.
struct Registered {
    id: String,
    secret: String,
}

/// A resource server registered as a confidential client serving `resources`.
async fn resource_server(app: &TestApp, resources: &[&str]) -> Registered {
    let mut s = spec("confidential", &["client_credentials"]);
    s.resource_uris = resources.iter().map(|r| (*r).to_owned()).collect();
    let (client, secret) = app.register(&s).await;
    Registered {
        id: client.id().to_owned(),
        secret: secret.expect("secret"),
    }
}

/// A relying party with JWT access tokens and every grant but password.
async fn relying_party(app: &TestApp) -> Registered {
    let mut s = spec(
        "confidential",
        &["authorization_code", "refresh_token", "client_credentials"],
    );
    s.access_token_format = Some("jwt".into());
    let (client, secret) = app.register(&s).await;
    Registered {
        id: client.id().to_owned(),
        secret: secret.expect("secret"),
    }
}

fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

/// An authorization URL for `client_id` naming `resources` (repeated `resource` parameters).
fn authorize_url(app: &TestApp, client_id: &str, challenge: &str, resources: &[&str]) -> String {
    let mut url = url::Url::parse(&app.url("/o/authorize/")).expect("url");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", "read offline_access")
            .append_pair("state", "s")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        for r in resources {
            q.append_pair("resource", r);
        }
    }
    url.into()
}

/// Runs the code flow as alice for `resources`; returns (code, verifier).
async fn code_for(app: &TestApp, rp: &Registered, resources: &[&str]) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let location = app
        .authorize_as(
            &authorize_url(app, &rp.id, &challenge, resources),
            "alice",
            "allow",
        )
        .await;
    let code = query_param(&location, "code").unwrap_or_else(|| panic!("a code: {location}"));
    (code, verifier)
}

/// POSTs to the token endpoint as `rp` with `form` (pairs may repeat `resource`).
async fn token(app: &TestApp, rp: &Registered, form: &[(&str, &str)]) -> (StatusCode, Value) {
    app.post_token(form, Some((&rp.id, &rp.secret))).await
}

async fn exchange(
    app: &TestApp,
    rp: &Registered,
    code: &str,
    verifier: &str,
    resources: &[&str],
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ];
    form.extend(resources.iter().map(|r| ("resource", *r)));
    token(app, rp, &form).await
}

async fn introspect(app: &TestApp, by: &Registered, token: &str) -> Value {
    let (status, body) = app
        .post_oauth(
            "/o/introspect/",
            &[("token", token)],
            Some((&by.id, &by.secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn access_token(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("an access token: {body}"))
        .to_owned()
}

fn assert_invalid_target(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["error"], "invalid_target", "{what}: {body}");
}

#[tokio::test]
async fn resources_flow_from_the_authorization_request_to_the_audience_and_introspection() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let api = resource_server(&app, &[API]).await;
    let billing = resource_server(&app, &[BILLING]).await;
    let other = resource_server(&app, &[OTHER]).await;
    let rp = relying_party(&app).await;

    // The consent page says which APIs the access is for.
    let (_, challenge) = pkce_pair();
    app.login("alice", crate::helpers::PASSWORD).await;
    let page = app
        .browse(&authorize_url(&app, &rp.id, &challenge, &[API, BILLING]))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains(API) && html.contains(BILLING), "{html}");

    // A code for both resources; the token request names none: the token is for both.
    let (code, verifier) = code_for(&app, &rp, &[API, BILLING]).await;
    let (status, tokens) = exchange(&app, &rp, &code, &verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let both = access_token(&tokens);
    assert_eq!(jwt_claims(&both)["aud"], json!([API, BILLING]));
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();

    // Each resource server sees the token meant for it, with the audience; others see nothing.
    for rs in [&api, &billing] {
        let answer = introspect(&app, rs, &both).await;
        assert_eq!(answer["active"], true, "{answer}");
        assert_eq!(answer["aud"], json!([API, BILLING]));
        assert_eq!(answer["client_id"], rp.id.as_str());
    }
    assert_eq!(
        introspect(&app, &other, &both).await,
        json!({"active": false})
    );
    // A resource server never sees the grant's refresh token.
    assert_eq!(
        introspect(&app, &api, &refresh).await,
        json!({"active": false})
    );
    assert_eq!(introspect(&app, &rp, &refresh).await["active"], true);

    // Refresh may narrow the audience to one of the grant's resources (RFC 8707 §2.2) ...
    let (status, narrowed) = token(
        &app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("resource", BILLING),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    let billing_only = access_token(&narrowed);
    assert_eq!(jwt_claims(&billing_only)["aud"], BILLING);
    assert_eq!(
        introspect(&app, &billing, &billing_only).await["aud"],
        BILLING
    );
    assert_eq!(
        introspect(&app, &api, &billing_only).await,
        json!({"active": false})
    );
    // ... but never widen it; the refused request does not use up the refresh token.
    let refresh = narrowed["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    let (status, body) = token(
        &app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("resource", OTHER),
        ],
    )
    .await;
    assert_invalid_target(status, &body, "refresh beyond the grant");
    // The new refresh token kept both resources: naming none gives both again.
    let (status, again) = token(
        &app,
        &rp,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        jwt_claims(&access_token(&again))["aud"],
        json!([API, BILLING])
    );

    // The token request may narrow the code's resources too, never go beyond them.
    let (code, verifier) = code_for(&app, &rp, &[API, BILLING]).await;
    let (status, body) = exchange(&app, &rp, &code, &verifier, &[API]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(jwt_claims(&access_token(&body))["aud"], API);
    let (code, verifier) = code_for(&app, &rp, &[API]).await;
    let (status, body) = exchange(&app, &rp, &code, &verifier, &[BILLING]).await;
    assert_invalid_target(status, &body, "token request beyond the code");
    // A code whose request named no resource: none may be named at the token endpoint.
    let (code, verifier) = code_for(&app, &rp, &[]).await;
    let (status, body) = exchange(&app, &rp, &code, &verifier, &[API]).await;
    assert_invalid_target(status, &body, "resource only at the token endpoint");

    // Without any resource: the default audience (the issuer), introspected by nobody else.
    let (code, verifier) = code_for(&app, &rp, &[]).await;
    let (status, body) = exchange(&app, &rp, &code, &verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let plain = access_token(&body);
    assert_eq!(jwt_claims(&plain)["aud"], app.address.as_str());
    assert_eq!(
        introspect(&app, &rp, &plain).await["aud"],
        app.address.as_str()
    );
    assert_eq!(
        introspect(&app, &api, &plain).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn client_credentials_and_opaque_tokens_carry_the_resource_too() {
    let app = spawn_app().await;
    let api = resource_server(&app, &[API]).await;
    let rp = relying_party(&app).await;
    let (status, body) = token(
        &app,
        &rp,
        &[("grant_type", "client_credentials"), ("resource", API)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jwt = access_token(&body);
    assert_eq!(jwt_claims(&jwt)["aud"], API);
    assert_eq!(jwt_claims(&jwt)["sub"], rp.id.as_str());
    let answer = introspect(&app, &api, &jwt).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["aud"], API);

    // Opaque tokens: the audience is in the introspection answer only.
    let (opaque_client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let opaque = Registered {
        id: opaque_client.id().to_owned(),
        secret: secret.expect("secret"),
    };
    let (status, body) = token(
        &app,
        &opaque,
        &[("grant_type", "client_credentials"), ("resource", API)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        introspect(&app, &api, &access_token(&body)).await["aud"],
        API
    );

    // The password grant (and its refresh token) too.
    app.create_user("alice").await;
    let mut s = spec("confidential", &["password", "refresh_token"]);
    s.access_token_format = Some("jwt".into());
    let (client, secret) = app.register(&s).await;
    let first_party = Registered {
        id: client.id().to_owned(),
        secret: secret.expect("secret"),
    };
    let (status, body) = token(
        &app,
        &first_party,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", crate::helpers::PASSWORD),
            ("resource", API),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(jwt_claims(&access_token(&body))["aud"], API);
    let refresh = body["refresh_token"].as_str().expect("refresh").to_owned();
    let (status, body) = token(
        &app,
        &first_party,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(jwt_claims(&access_token(&body))["aud"], API);
}

#[tokio::test]
async fn malformed_or_unknown_resources_are_invalid_target_everywhere() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    resource_server(&app, &[API]).await;
    let rp = relying_party(&app).await;
    let bad = [
        "/relative",
        "api.example.com",
        "https://api.example.com#fragment",
        "https://api.example.com/ x",
        "https://unknown.example.com",
    ];
    for resource in bad {
        let (status, body) = token(
            &app,
            &rp,
            &[("grant_type", "client_credentials"), ("resource", resource)],
        )
        .await;
        assert_invalid_target(status, &body, resource);
        // The authorization endpoint sends the same error back to this (operator) client.
        let (_, challenge) = pkce_pair();
        let url = authorize_url(&app, &rp.id, &challenge, &[resource]);
        let response = app.browse(&url).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{resource}");
        let location = response.headers()[LOCATION].to_str().expect("ascii");
        assert_eq!(
            query_param(location, "error").as_deref(),
            Some("invalid_target"),
            "{resource}"
        );
    }
    // At most ten resources.
    let many: Vec<String> = (0..11).map(|i| format!("{API}/{i}")).collect();
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend(many.iter().map(|r| ("resource", r.as_str())));
    let (status, body) = token(&app, &rp, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Other parameters still may not repeat (RFC 6749 §3.1).
    let (status, body) = token(
        &app,
        &rp,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "read"),
            ("scope", "write"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    // Nothing was issued by any of these requests.
    assert_eq!(
        app.services
            .clients
            .active_token_count(&rp.id)
            .await
            .expect("count"),
        0
    );
}

#[tokio::test]
async fn only_confidential_clients_serve_resources_and_the_uris_are_checked() {
    let app = spawn_app().await;
    let mut s = spec("public", &["authorization_code"]);
    s.resource_uris = vec![API.into()];
    let refused = app
        .services
        .clients
        .register(&latchkey::audit::Actor::system(), &s)
        .await;
    assert!(
        matches!(
            refused,
            Err(latchkey::clients::ClientError::Invalid {
                field: "resource_uris",
                ..
            })
        ),
        "{refused:?}"
    );
    let mut s = spec("confidential", &["client_credentials"]);
    s.resource_uris = vec!["https://api.example.com/#x".into()];
    assert!(app
        .services
        .clients
        .register(&latchkey::audit::Actor::system(), &s)
        .await
        .is_err());
}

/// A portal client (owned by `owner`, registered as them) with JWT access tokens.
async fn portal_relying_party(app: &TestApp, owner: &str) -> Registered {
    let owner = app.create_user(owner).await;
    let mut s = spec("confidential", &["authorization_code", "refresh_token"]);
    s.owner_id = Some(owner.id.clone());
    s.access_token_format = Some("jwt".into());
    s.require_pkce = true;
    let (client, secret) = app
        .services
        .clients
        .register(&latchkey::audit::Actor::user(owner.id, None), &s)
        .await
        .expect("a portal client");
    Registered {
        id: client.id().to_owned(),
        secret: secret.expect("secret").0,
    }
}

/// Review finding 2: a consent remembered for some scopes (and no resource) once let a client
/// get, silently and even with `prompt=none`, a token for any API it named later. A remembered
/// consent now covers the scopes and the RFC 8707 resources the user approved; a new resource
/// shows the consent page (marking it new) or answers `consent_required`.
#[tokio::test]
async fn a_remembered_consent_covers_only_the_resources_the_user_approved() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    resource_server(&app, &[API]).await;
    resource_server(&app, &[BILLING]).await;
    let rp = portal_relying_party(&app, "mallory").await;

    // Alice consents once, naming no resource.
    code_for(&app, &rp, &[]).await;
    let silent = |resources: &[&str]| {
        let (_, challenge) = pkce_pair();
        format!(
            "{}&prompt=none",
            authorize_url(&app, &rp.id, &challenge, resources)
        )
    };
    // The same request again needs no page.
    let again = app.browse(&silent(&[])).await;
    assert!(
        query_param(&location(&again), "code").is_some(),
        "{}",
        location(&again)
    );
    // The payroll API was never approved: no code, consent_required (the client is one she
    // consented to, so the error goes back to it).
    let refused = app.browse(&silent(&[API])).await;
    let to = location(&refused);
    assert_eq!(
        query_param(&to, "error").as_deref(),
        Some("consent_required"),
        "{to}"
    );
    assert!(query_param(&to, "code").is_none(), "{to}");

    // Without prompt=none the page asks, and says the API is what is new.
    let (_, challenge) = pkce_pair();
    let page = app
        .browse(&authorize_url(&app, &rp.id, &challenge, &[API]))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    let api_line = html
        .split("<li>")
        .find(|line| line.contains(API))
        .unwrap_or_else(|| panic!("a line for the API: {html}"));
    assert!(api_line.contains(">new<"), "{api_line}");
    assert!(html.contains("already allowed"), "the scopes were: {html}");

    // Once she allows it, the API is remembered with the scopes; another API is still new.
    let (code, verifier) = code_for(&app, &rp, &[API]).await;
    let (status, tokens) = exchange(&app, &rp, &code, &verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(jwt_claims(&access_token(&tokens))["aud"], API);
    let remembered = app.browse(&silent(&[API])).await;
    assert!(
        query_param(&location(&remembered), "code").is_some(),
        "{}",
        location(&remembered)
    );
    let other = app.browse(&silent(&[API, BILLING])).await;
    assert_eq!(
        query_param(&location(&other), "error").as_deref(),
        Some("consent_required")
    );
    let (_, challenge) = pkce_pair();
    let html = app
        .browse(&authorize_url(&app, &rp.id, &challenge, &[API, BILLING]))
        .await
        .text()
        .await
        .expect("html");
    let line = |uri: &str| {
        html.split("<li>")
            .find(|line| line.contains(uri))
            .unwrap_or_else(|| panic!("a line for {uri}: {html}"))
            .to_owned()
    };
    assert!(line(API).contains("already allowed"), "{}", line(API));
    assert!(line(BILLING).contains(">new<"), "{}", line(BILLING));

    // The audit log and the account page say which APIs were approved.
    let granted = app.audit_events("consent.granted").await;
    assert!(
        granted[0].details.contains(API),
        "the newest consent names the API: {:?}",
        granted[0]
    );
    let authorized = app
        .browse("/o/authorized_tokens/")
        .await
        .text()
        .await
        .expect("html");
    assert!(authorized.contains(API), "{authorized}");
}
