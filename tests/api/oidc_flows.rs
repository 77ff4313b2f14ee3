//! OpenID Connect authorization-request parameters and RP-initiated logout, over HTTP.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    csrf_from, location, pkce_pair, query_param, spawn_app, spec, TestApp, PASSWORD, REDIRECT_URI,
};

/// The post-logout redirect URI the relying parties here register.
const BYE: &str = "http://127.0.0.1:9999/bye";

/// A confidential relying party: remembered consent counts for it (RFC 8252 §8.6 only
/// discounts it for public clients on loopback redirect URIs).
struct Rp {
    id: String,
    secret: String,
}

async fn register_rp(app: &TestApp, name: &str) -> Rp {
    let mut s = spec("confidential", &["authorization_code", "refresh_token"]);
    s.name = name.to_owned();
    s.post_logout_redirect_uris = vec![BYE.into()];
    let (client, secret) = app.register(&s).await;
    Rp {
        id: client.id().to_owned(),
        secret: secret.expect("a confidential client has a secret"),
    }
}

/// One authorization request: its URL, PKCE verifier and `state`.
struct AuthRequest {
    url: String,
    verifier: String,
    state: String,
}

/// An authorization request with PKCE, a random `state` and `extra` parameters.
fn auth_request(
    app: &TestApp,
    client_id: &str,
    scope: &str,
    extra: &[(&str, &str)],
) -> AuthRequest {
    let state = format!("state-{}", uuid::Uuid::new_v4().simple());
    auth_request_with_state(app, client_id, scope, &state, extra)
}

fn auth_request_with_state(
    app: &TestApp,
    client_id: &str,
    scope: &str,
    state: &str,
    extra: &[(&str, &str)],
) -> AuthRequest {
    let (verifier, challenge) = pkce_pair();
    let mut url =
        url::Url::parse(&app.authorize_url(client_id, scope, &challenge, state)).expect("url");
    url.query_pairs_mut().extend_pairs(extra);
    AuthRequest {
        url: url.into(),
        verifier,
        state: state.to_owned(),
    }
}

/// The query pairs of `url`, sorted.
fn sorted_pairs(url: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// The `Location` of a 303.
fn location_of(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    location(response)
}

/// Asserts `location` is an authorization response to the client with `state` and `iss`
/// (RFC 9207).
fn assert_sent_to_client(app: &TestApp, location: &str, state: &str) {
    assert!(
        location.starts_with(&format!("{REDIRECT_URI}?")),
        "sent to the client's redirect URI: {location}"
    );
    assert_eq!(
        query_param(location, "state").as_deref(),
        Some(state),
        "{location}"
    );
    assert_eq!(
        query_param(location, "iss").as_deref(),
        Some(app.address.as_str()),
        "{location}"
    );
}

/// Asserts `location` is an error response `error` to the client, and carries no code.
fn assert_error(app: &TestApp, location: &str, state: &str, error: &str) {
    assert_sent_to_client(app, location, state);
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some(error),
        "{location}"
    );
    assert!(query_param(location, "code").is_none(), "{location}");
}

/// Asserts `location` is a successful authorization response and returns its code.
fn code_from(app: &TestApp, location: &str, state: &str) -> String {
    assert_sent_to_client(app, location, state);
    assert!(query_param(location, "error").is_none(), "{location}");
    query_param(location, "code").unwrap_or_else(|| panic!("a code in {location}"))
}

/// Exchanges a code at the token endpoint (HTTP Basic, PKCE) and returns the JSON answer.
async fn exchange(app: &TestApp, rp: &Rp, code: &str, verifier: &str) -> Value {
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
            Some((&rp.id, &rp.secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The payload of a JWT (not verified: the relying-party tests do that).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

fn id_token_of(tokens: &Value) -> String {
    tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("an id_token in {tokens}"))
        .to_owned()
}

fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit")
}

/// Signs the browser in as `username` (when needed), consents for `scope` and returns the ID
/// token of the code exchange.
async fn id_token_for(app: &TestApp, rp: &Rp, username: &str) -> String {
    let (code, verifier) = app.code_for(&rp.id, username, "openid profile").await;
    id_token_of(&exchange(app, rp, &code, &verifier).await)
}

/// Decodes the character references askama writes (`&#38;`, `&#34;`, …) and the named ones.
fn html_decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let decoded = tail.find(';').and_then(|end| {
            let entity = &tail[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ if entity.starts_with("#x") || entity.starts_with("#X") => {
                    u32::from_str_radix(&entity[2..], 16)
                        .ok()
                        .and_then(char::from_u32)
                }
                _ if entity.starts_with('#') => entity[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The (decoded) value of attribute `name` in a tag's text.
fn attr(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = tag[start..].find('"')? + start;
    Some(html_decode(&tag[start..end]))
}

/// An HTML form as a browser sees it.
#[derive(Debug)]
struct Form {
    method: String,
    action: String,
    /// The `<input>`s: (name, value), decoded.
    fields: Vec<(String, String)>,
}

impl Form {
    fn value(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn names(&self) -> Vec<&str> {
        let mut names: Vec<_> = self.fields.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names
    }
}

fn forms(html: &str) -> Vec<Form> {
    html.split("<form")
        .skip(1)
        .map(|chunk| {
            let body = chunk.split("</form>").next().unwrap_or(chunk);
            let open = body.split('>').next().unwrap_or_default();
            let fields = body
                .split("<input")
                .skip(1)
                .filter_map(|tag| {
                    let tag = tag.split('>').next()?;
                    Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
                })
                .collect();
            Form {
                method: attr(open, "method").unwrap_or_default(),
                action: attr(open, "action").unwrap_or_default(),
                fields,
            }
        })
        .collect()
}

/// The form of `html` that posts to `action`.
fn form_to(html: &str, action: &str) -> Form {
    forms(html)
        .into_iter()
        .find(|f| f.action == action)
        .unwrap_or_else(|| panic!("a form posting to {action} in {html}"))
}

/// The login page a redirect to `/accounts/login/?…` leads to.
async fn login_page(app: &TestApp, login_location: &str) -> String {
    assert!(
        login_location.starts_with("/accounts/login/?"),
        "{login_location}"
    );
    let page = app.browse(login_location).await;
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.expect("html")
}

/// Submits the login form of `html` as `username` with its hidden fields; returns where the
/// server continues (`next`).
async fn submit_login(app: &TestApp, html: &str, username: &str) -> String {
    let form = form_to(html, "/accounts/login/");
    assert_eq!(form.method, "post");
    let next = form.value("next").expect("a next field");
    let response = app
        .browser
        .post(app.url("/accounts/login/"))
        .form(&[
            (
                "csrf_token",
                form.value("csrf_token").expect("a CSRF field"),
            ),
            ("username", username),
            ("password", PASSWORD),
            ("next", next),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "login succeeds");
    location(&response)
}

/// `/o/logout/?…`.
fn logout_url(app: &TestApp, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&app.url("/o/logout/")).expect("url");
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    url.into()
}

/// A JWT that looks like one of ours (our issuer, our ES256 `kid`, the right claims) but is
/// signed with a key this server never had.
async fn forged_id_token(app: &TestApp, sub: &str, aud: &str) -> String {
    let jwks: Value = app
        .api
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let kid = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["alg"] == "ES256")
        .and_then(|k| k["kid"].as_str())
        .expect("an ES256 key")
        .to_owned();
    let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    )
    .expect("a P-256 key");
    let der = pair.to_pkcs8v1().expect("PKCS#8");
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).expect("encoding key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid);
    header.typ = Some("JWT".into());
    let now = unix_now();
    jsonwebtoken::encode(
        &header,
        &json!({"iss": app.address, "sub": sub, "aud": aud, "azp": aud, "iat": now, "exp": now + 600}),
        &key,
    )
    .expect("sign")
}

/// `jwt` with its payload's `sub` changed and the original signature kept.
fn tampered(jwt: &str, sub: &str) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut payload = claims(jwt);
    payload["sub"] = Value::String(sub.to_owned());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).expect("json"));
    format!("{}.{payload}.{}", parts[0], parts[2])
}

// ---------------------------------------------------------------------------------------------
// prompt=none

#[tokio::test]
async fn prompt_none_without_a_session_redirects_with_login_required() {
    let app = spawn_app().await;
    let rp = register_rp(&app, "Silent app").await;
    let request = auth_request(&app, &rp.id, "openid profile", &[("prompt", "none")]);
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_error(&app, &location(&response), &request.state, "login_required");
}

#[tokio::test]
async fn prompt_none_with_a_session_and_remembered_consent_returns_a_code() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Silent app").await;
    app.code_for(&rp.id, "alice", "openid profile").await;

    let request = auth_request(
        &app,
        &rp.id,
        "openid profile",
        &[("prompt", "none"), ("nonce", "silent-nonce")],
    );
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let code = code_from(&app, &location(&response), &request.state);
    let tokens = exchange(&app, &rp, &code, &request.verifier).await;
    let id = claims(&id_token_of(&tokens));
    assert_eq!(id["nonce"], "silent-nonce");
    assert_eq!(id["aud"], rp.id.as_str());

    // A scope narrower than the one consented to needs no new consent either.
    let request = auth_request(&app, &rp.id, "openid", &[("prompt", "none")]);
    let response = app.browse(&request.url).await;
    code_from(&app, &location(&response), &request.state);
}

#[tokio::test]
async fn prompt_none_without_remembered_consent_redirects_with_consent_required() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Never consented").await;
    app.login("alice", PASSWORD).await;

    let request = auth_request(&app, &rp.id, "openid profile", &[("prompt", "none")]);
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_error(
        &app,
        &location(&response),
        &request.state,
        "consent_required",
    );

    // Consent to `openid` only: asking silently for more is consent_required again.
    app.code_for(&rp.id, "alice", "openid").await;
    let request = auth_request(&app, &rp.id, "openid email", &[("prompt", "none")]);
    let response = app.browse(&request.url).await;
    assert_error(
        &app,
        &location(&response),
        &request.state,
        "consent_required",
    );
}

// ---------------------------------------------------------------------------------------------
// prompt=login, login_hint

#[tokio::test]
async fn prompt_login_asks_for_a_new_login_and_resumes_without_prompt_login() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Step-up app").await;
    app.code_for(&rp.id, "alice", "openid profile").await;

    let request = auth_request(&app, &rp.id, "openid profile", &[("prompt", "login")]);
    let response = app.browse(&request.url).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "a new login although signed in"
    );
    let to_login = location(&response);
    let next = query_param(&app.url(&to_login), "next").expect("next");
    assert!(next.starts_with("/o/authorize/?"), "{next}");
    let expected: Vec<_> = sorted_pairs(&request.url)
        .into_iter()
        .filter(|(k, _)| k != "prompt")
        .collect();
    assert_eq!(
        sorted_pairs(&app.url(&next)),
        expected,
        "next is the request without prompt=login"
    );

    let html = login_page(&app, &to_login).await;
    assert_eq!(
        form_to(&html, "/accounts/login/").value("next"),
        Some(next.as_str())
    );
    let before = unix_now();
    let back = submit_login(&app, &html, "alice").await;
    assert_eq!(back, next);
    let response = app.browse(&back).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "consent is remembered"
    );
    let code = code_from(&app, &location(&response), &request.state);
    let id = claims(&id_token_of(
        &exchange(&app, &rp, &code, &request.verifier).await,
    ));
    let auth_time = id["auth_time"].as_i64().expect("auth_time");
    assert!(
        auth_time >= before && auth_time <= unix_now() + 1,
        "auth_time {auth_time} is the new login (after {before})"
    );

    // select_account means the same here (one account per session).
    let request = auth_request(&app, &rp.id, "openid", &[("prompt", "select_account")]);
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let next = query_param(&app.url(&location(&response)), "next").expect("next");
    assert!(query_param(&app.url(&next), "prompt").is_none(), "{next}");
}

#[tokio::test]
async fn prompt_login_consent_asks_for_a_login_then_shows_the_consent_page() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Careful app").await;
    app.code_for(&rp.id, "alice", "openid profile").await;

    let request = auth_request(
        &app,
        &rp.id,
        "openid profile",
        &[("prompt", "login consent")],
    );
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to_login = location(&response);
    let next = query_param(&app.url(&to_login), "next").expect("next");
    assert_eq!(
        query_param(&app.url(&next), "prompt").as_deref(),
        Some("consent"),
        "only prompt=login is dropped: {next}"
    );
    let html = login_page(&app, &to_login).await;
    let back = submit_login(&app, &html, "alice").await;
    let consent = app.browse(&back).await;
    assert_eq!(consent.status(), StatusCode::OK);
    let html = consent.text().await.expect("html");
    assert!(html.contains("wants to access your account"), "{html}");
    let location = app.authorize_as(&back, "alice", "allow").await;
    code_from(&app, &location, &request.state);
}

#[tokio::test]
async fn skipping_the_login_page_does_not_satisfy_prompt_login_or_max_age() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Step-up app").await;
    app.code_for(&rp.id, "alice", "openid profile").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut bypassed = Vec::new();
    for parameter in [("prompt", "login"), ("max_age", "0")] {
        let request = auth_request(&app, &rp.id, "openid profile", &[parameter]);
        let response = app.browse(&request.url).await;
        let next = query_param(&app.url(&location_of(&response)), "next").expect("next");
        // The person at the browser goes straight to `next` instead of signing in.
        let skipped = app.browse(&next).await;
        let issued = skipped
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| query_param(l, "code"));
        if issued.is_some() {
            bypassed.push(parameter);
        }
    }
    assert!(
        bypassed.is_empty(),
        "codes were issued without the new login for {bypassed:?}"
    );
}

#[tokio::test]
async fn login_hint_is_passed_to_the_login_page_and_prefills_the_username() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Hinting app").await;

    let request = auth_request(&app, &rp.id, "openid", &[("login_hint", "alice")]);
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to_login = location(&response);
    assert_eq!(
        query_param(&app.url(&to_login), "login_hint").as_deref(),
        Some("alice")
    );
    let html = login_page(&app, &to_login).await;
    assert_eq!(
        form_to(&html, "/accounts/login/").value("username"),
        Some("alice"),
        "the username field is pre-filled"
    );
    // The login continues as usual: the consent page, then a code.
    let back = submit_login(&app, &html, "alice").await;
    let location = app.authorize_as(&back, "alice", "allow").await;
    code_from(&app, &location, &request.state);

    // prompt=login carries the hint too.
    let request = auth_request(
        &app,
        &rp.id,
        "openid",
        &[("prompt", "login"), ("login_hint", "alice@example.com")],
    );
    let response = app.browse(&request.url).await;
    let html = login_page(&app, &location_of(&response)).await;
    assert_eq!(
        form_to(&html, "/accounts/login/").value("username"),
        Some("alice@example.com")
    );

    // A hostile hint is escaped, not markup.
    let hostile = "\"><script>alert(1)</script>";
    let mut url = url::Url::parse(&app.url("/accounts/login/")).expect("url");
    url.query_pairs_mut()
        .append_pair("next", "/")
        .append_pair("login_hint", hostile);
    let html = app.browse(url.as_str()).await.text().await.expect("html");
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert_eq!(
        form_to(&html, "/accounts/login/").value("username"),
        Some(hostile)
    );
}

// ---------------------------------------------------------------------------------------------
// max_age

#[tokio::test]
async fn max_age_exceeded_asks_for_a_new_login_and_the_id_token_has_the_new_auth_time() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Fresh-login app").await;
    app.code_for(&rp.id, "alice", "openid profile").await;
    // Session auth_time has one-second resolution: wait until the login is surely 1 s old.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Silently, an old login is login_required.
    let request = auth_request(
        &app,
        &rp.id,
        "openid",
        &[("prompt", "none"), ("max_age", "0")],
    );
    let response = app.browse(&request.url).await;
    assert_error(&app, &location(&response), &request.state, "login_required");

    let request = auth_request(
        &app,
        &rp.id,
        "openid profile",
        &[("max_age", "0"), ("nonce", "n-max-age")],
    );
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to_login = location(&response);
    let next = query_param(&app.url(&to_login), "next").expect("next");
    assert!(
        query_param(&app.url(&next), "max_age").is_none(),
        "the new login satisfies max_age: {next}"
    );
    assert_eq!(
        query_param(&app.url(&next), "nonce").as_deref(),
        Some("n-max-age")
    );

    let html = login_page(&app, &to_login).await;
    let before = unix_now();
    let back = submit_login(&app, &html, "alice").await;
    let response = app.browse(&back).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let code = code_from(&app, &location(&response), &request.state);
    let id = claims(&id_token_of(
        &exchange(&app, &rp, &code, &request.verifier).await,
    ));
    let auth_time = id["auth_time"].as_i64().expect("auth_time");
    let now = unix_now();
    assert!(
        auth_time >= before && (now - auth_time).abs() <= 5,
        "auth_time {auth_time} is the new login (after {before}, now {now})"
    );
    assert_eq!(id["nonce"], "n-max-age");
}

#[tokio::test]
async fn max_age_zero_right_after_a_login_still_asks_for_a_new_login() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Fresh-login app").await;
    app.code_for(&rp.id, "alice", "openid profile").await;

    // OIDC Core §3.1.2.1 (errata set 2): "max_age=0 is equivalent to prompt=login".
    let request = auth_request(&app, &rp.id, "openid profile", &[("max_age", "0")]);
    let response = app.browse(&request.url).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "max_age=0 requires a new login, got {:?}",
        response.headers().get(LOCATION)
    );
    assert!(location(&response).starts_with("/accounts/login/"));
}

#[tokio::test]
async fn a_generous_max_age_needs_no_new_login() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Relaxed app").await;
    let before = unix_now();
    app.code_for(&rp.id, "alice", "openid profile").await;

    let request = auth_request(&app, &rp.id, "openid profile", &[("max_age", "3600")]);
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::FOUND, "no login page");
    let code = code_from(&app, &location(&response), &request.state);
    let id = claims(&id_token_of(
        &exchange(&app, &rp, &code, &request.verifier).await,
    ));
    // OIDC Core §3.1.2.1: with max_age the ID token must carry auth_time (the original login).
    let auth_time = id["auth_time"].as_i64().expect("auth_time");
    assert!(
        auth_time >= before && auth_time <= unix_now(),
        "{auth_time}"
    );
}

// ---------------------------------------------------------------------------------------------
// prompt=consent

#[tokio::test]
async fn prompt_consent_shows_the_consent_page_although_consent_is_remembered() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Polite app").await;
    app.code_for(&rp.id, "alice", "openid profile").await;

    let request = auth_request(&app, &rp.id, "openid profile", &[("prompt", "consent")]);
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::OK, "the consent page");
    let html = response.text().await.expect("html");
    assert!(html.contains("wants to access your account"), "{html}");
    assert!(html.contains("already allowed"), "{html}");
    let form = forms(&html)
        .into_iter()
        .find(|f| f.action.starts_with("/o/authorize/"))
        .expect("a consent form");
    assert_eq!(form.method, "post");
    assert!(form.value("csrf_token").is_some_and(|t| !t.is_empty()));
    assert!(html.contains("name=\"decision\" value=\"allow\""));

    let location = app.authorize_as(&request.url, "alice", "allow").await;
    code_from(&app, &location, &request.state);
}

// ---------------------------------------------------------------------------------------------
// invalid OIDC parameters

#[tokio::test]
async fn invalid_oidc_parameters_redirect_with_invalid_request_and_keep_state() {
    let app = spawn_app().await;
    let rp = register_rp(&app, "Sloppy app").await;
    let long_nonce = "n".repeat(513);
    let cases: [(&str, &str); 9] = [
        ("prompt", "bogus"),
        ("prompt", "none login"),
        ("prompt", "none consent"),
        ("prompt", "none select_account"),
        ("max_age", "soon"),
        ("max_age", "-5"),
        ("response_mode", "fragment"),
        ("response_mode", "web_message"),
        ("nonce", &long_nonce),
    ];
    for (name, value) in cases {
        let request = auth_request(&app, &rp.id, "openid", &[(name, value)]);
        let response = app.browse(&request.url).await;
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "{name}={value} is an error for the client"
        );
        let location = location(&response);
        assert_error(&app, &location, &request.state, "invalid_request");
        assert!(
            query_param(&location, "error_description").is_some(),
            "{name}={value}: {location}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// response_mode=form_post

#[tokio::test]
async fn form_post_answers_with_an_auto_submitting_form_carrying_code_state_and_iss() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Form-post app").await;
    app.code_for(&rp.id, "alice", "openid profile").await;

    let state = "a&b<c>\"d'e/f g";
    let request = auth_request_with_state(
        &app,
        &rp.id,
        "openid profile",
        state,
        &[("response_mode", "form_post")],
    );
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(LOCATION).is_none());
    let csp = response
        .headers()
        .get(CONTENT_SECURITY_POLICY)
        .expect("a CSP header")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("html");
    assert!(!html.contains(state), "the state is escaped in the page");

    let form = form_to(&html, REDIRECT_URI);
    assert_eq!(form.method, "post");
    assert_eq!(form.names(), ["code", "iss", "state"]);
    assert_eq!(form.value("state"), Some(state));
    assert_eq!(form.value("iss"), Some(app.address.as_str()));
    assert!(
        html.contains("<script src=\"/static/form_post.js\"></script>"),
        "{html}"
    );
    assert_eq!(html.matches("<script").count(), 1, "no inline script");
    let code = form.value("code").expect("code");
    let tokens = exchange(&app, &rp, code, &request.verifier).await;
    assert!(tokens["id_token"].is_string());

    let script = app
        .api
        .get(app.url("/static/form_post.js"))
        .send()
        .await
        .expect("script");
    assert_eq!(script.status(), StatusCode::OK);
    let content_type = script.headers()[CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.contains("javascript"), "{content_type}");
    let js = script.text().await.expect("js");
    assert!(
        js.contains("form-post-response") && js.contains("submit()"),
        "{js}"
    );
    assert!(
        html.contains("id=\"form-post-response\""),
        "the script finds the form"
    );
}

#[tokio::test]
async fn form_post_carries_errors_too() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Form-post app").await;

    // Not signed in, prompt=none.
    let request = auth_request(
        &app,
        &rp.id,
        "openid",
        &[("response_mode", "form_post"), ("prompt", "none")],
    );
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::OK);
    let form = form_to(&response.text().await.expect("html"), REDIRECT_URI);
    assert_eq!(form.value("error"), Some("login_required"));
    assert_eq!(form.value("state"), Some(request.state.as_str()));
    assert_eq!(form.value("iss"), Some(app.address.as_str()));
    assert!(form.value("code").is_none());

    // A malformed request.
    let request = auth_request(
        &app,
        &rp.id,
        "openid",
        &[("response_mode", "form_post"), ("prompt", "sometimes")],
    );
    let response = app.browse(&request.url).await;
    assert_eq!(response.status(), StatusCode::OK);
    let form = form_to(&response.text().await.expect("html"), REDIRECT_URI);
    assert_eq!(form.value("error"), Some("invalid_request"));
    assert_eq!(form.value("state"), Some(request.state.as_str()));

    // The user clicks Deny.
    app.login("alice", PASSWORD).await;
    let request = auth_request(
        &app,
        &rp.id,
        "openid profile",
        &[("response_mode", "form_post")],
    );
    let consent = app.browse(&request.url).await;
    assert_eq!(consent.status(), StatusCode::OK);
    let html = consent.text().await.expect("html");
    let form = forms(&html)
        .into_iter()
        .find(|f| f.action.starts_with("/o/authorize/"))
        .expect("the consent form");
    let denied = app
        .browser
        .post(app.url(&form.action))
        .form(&[
            ("csrf_token", csrf_from(&html).as_str()),
            ("decision", "deny"),
        ])
        .send()
        .await
        .expect("deny");
    assert_eq!(
        denied.status(),
        StatusCode::OK,
        "a form post, not a redirect"
    );
    assert!(denied.headers().get(LOCATION).is_none());
    let form = form_to(&denied.text().await.expect("html"), REDIRECT_URI);
    assert_eq!(form.value("error"), Some("access_denied"));
    assert_eq!(form.value("state"), Some(request.state.as_str()));
    assert_eq!(form.value("iss"), Some(app.address.as_str()));
    assert!(form.value("code").is_none());
}

#[tokio::test]
async fn form_post_keeps_the_redirect_uris_own_query_in_the_action() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let target = "http://127.0.0.1:9999/cb?tenant=7";
    let mut s = spec("confidential", &["authorization_code"]);
    s.redirect_uris = vec![target.to_owned()];
    s.skip_authorization = true;
    let (client, secret) = app.register(&s).await;
    app.login("alice", PASSWORD).await;

    let (verifier, challenge) = pkce_pair();
    let mut url = url::Url::parse(&app.url("/o/authorize/")).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id())
        .append_pair("redirect_uri", target)
        .append_pair("scope", "openid")
        .append_pair("state", "s-7")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("response_mode", "form_post");
    let response = app.browse(url.as_str()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let form = form_to(&response.text().await.expect("html"), target);
    assert_eq!(form.names(), ["code", "iss", "state"]);
    assert_eq!(form.value("state"), Some("s-7"));
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", form.value("code").expect("code")),
                ("redirect_uri", target),
                ("code_verifier", &verifier),
            ],
            Some((client.id(), secret.as_deref().expect("secret"))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------------------------
// nonce

#[tokio::test]
async fn nonce_is_echoed_in_the_id_token_and_refreshed_id_tokens_keep_sub_and_auth_time_only() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let rp = register_rp(&app, "Nonce app").await;
    let nonce = "n-0S6_WzA2Mj";
    let request = auth_request(
        &app,
        &rp.id,
        "openid offline_access profile",
        &[("nonce", nonce)],
    );
    let location = app.authorize_as(&request.url, "alice", "allow").await;
    let code = code_from(&app, &location, &request.state);
    let tokens = exchange(&app, &rp, &code, &request.verifier).await;
    let first = claims(&id_token_of(&tokens));
    assert_eq!(first["nonce"], nonce);
    assert_eq!(first["sub"], alice.id.as_str());
    assert_eq!(first["iss"], app.address.as_str());
    assert_eq!(first["aud"], rp.id.as_str());
    assert!(first["auth_time"].is_i64());

    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("a refresh token with offline_access");
    let (status, refreshed) = app
        .post_token(
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            Some((&rp.id, &rp.secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let second = claims(&id_token_of(&refreshed));
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
    assert_eq!(second["aud"], first["aud"]);
    assert_eq!(second["iss"], first["iss"]);
    assert!(
        second.get("nonce").is_none(),
        "no nonce on refresh: {second}"
    );
}

// ---------------------------------------------------------------------------------------------
// RP-initiated logout

#[tokio::test]
async fn logout_with_an_id_token_hint_redirects_with_state_and_ends_the_session() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Logout app").await;
    let id_token = id_token_for(&app, &rp, "alice").await;
    assert!(app.signed_in().await);

    let response = app
        .browse(&logout_url(
            &app,
            &[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", BYE),
                ("state", "bye state&more"),
            ],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = location(&response);
    assert!(location.starts_with(&format!("{BYE}?")), "{location}");
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some("bye state&more")
    );
    assert!(!app.signed_in().await, "the session is gone");

    // The hint with a matching client_id works the same.
    let id_token = id_token_for(&app, &rp, "alice").await;
    let response = app
        .browse(&logout_url(
            &app,
            &[
                ("id_token_hint", &id_token),
                ("client_id", &rp.id),
                ("post_logout_redirect_uri", BYE),
            ],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&response), BYE);
    assert!(!app.signed_in().await);
}

#[tokio::test]
async fn logout_without_an_id_token_hint_asks_for_confirmation() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Logout app").await;
    app.code_for(&rp.id, "alice", "openid").await;

    let response = app
        .browse(&logout_url(
            &app,
            &[
                ("client_id", &rp.id),
                ("post_logout_redirect_uri", BYE),
                ("state", "s1"),
            ],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "a confirmation page");
    let html = response.text().await.expect("html");
    assert!(
        html.contains("Logout app") && html.contains("alice"),
        "{html}"
    );
    let form = form_to(&html, "/o/logout/");
    assert_eq!(form.method, "post");
    assert!(form.value("csrf_token").is_some_and(|t| !t.is_empty()));
    assert_eq!(form.value("client_id"), Some(rp.id.as_str()));
    assert_eq!(form.value("post_logout_redirect_uri"), Some(BYE));
    assert_eq!(form.value("state"), Some("s1"));
    assert!(html.contains("name=\"confirm\" value=\"yes\""), "{html}");
    assert!(app.signed_in().await, "nothing happens before confirmation");

    // A forged confirmation (wrong CSRF token) is refused.
    let mut forged: Vec<(&str, &str)> = form
        .fields
        .iter()
        .filter(|(n, _)| n != "csrf_token")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    forged.push(("csrf_token", "not-the-token"));
    forged.push(("confirm", "yes"));
    let refused = app
        .browser
        .post(app.url("/o/logout/"))
        .form(&forged)
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(app.signed_in().await, "still signed in");

    // The real confirmation.
    let mut fields: Vec<(&str, &str)> = form
        .fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    fields.push(("confirm", "yes"));
    let confirmed = app
        .browser
        .post(app.url("/o/logout/"))
        .form(&fields)
        .send()
        .await
        .expect("post");
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&confirmed), format!("{BYE}?state=s1"));
    assert!(!app.signed_in().await, "signed out");
}

#[tokio::test]
async fn logout_with_an_id_token_hint_for_another_user_asks_for_confirmation() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    app.create_user("bob").await;
    let rp = register_rp(&app, "Logout app").await;
    let bobs = id_token_for(&app, &rp, "bob").await;
    let response = app
        .browse(&logout_url(&app, &[("id_token_hint", &bobs)]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!app.signed_in().await, "bob signed out");

    app.code_for(&rp.id, "alice", "openid").await;
    let response = app
        .browse(&logout_url(
            &app,
            &[("id_token_hint", &bobs), ("post_logout_redirect_uri", BYE)],
        ))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "not alice's token: confirm"
    );
    let html = response.text().await.expect("html");
    let form = form_to(&html, "/o/logout/");
    assert_eq!(form.value("id_token_hint"), Some(bobs.as_str()));
    assert!(app.signed_in().await, "alice is still signed in");
}

#[tokio::test]
async fn logout_to_an_unregistered_uri_shows_the_logged_out_page_and_ends_the_session() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Logout app").await;
    for elsewhere in ["http://127.0.0.1:9999/elsewhere", "https://evil.example/"] {
        let id_token = id_token_for(&app, &rp, "alice").await;
        let response = app
            .browse(&logout_url(
                &app,
                &[
                    ("id_token_hint", &id_token),
                    ("post_logout_redirect_uri", elsewhere),
                    ("state", "s"),
                ],
            ))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "no redirect to {elsewhere}"
        );
        assert!(response.headers().get(LOCATION).is_none());
        let html = response.text().await.expect("html");
        assert!(html.contains("You are signed out"), "{html}");
        assert!(html.contains("not registered"), "{html}");
        assert!(!html.contains(elsewhere), "no link to it either");
        assert!(!app.signed_in().await, "the session is ended");
    }
}

#[tokio::test]
async fn logout_with_an_invalid_id_token_hint_is_refused_and_keeps_the_session() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let rp = register_rp(&app, "Logout app").await;
    let real = id_token_for(&app, &rp, "alice").await;
    let hints = [
        "abc".to_owned(),
        "a.b.c".to_owned(),
        forged_id_token(&app, &alice.id, &rp.id).await,
        tampered(&real, &alice.id.to_uppercase()),
    ];
    for hint in &hints {
        for method in ["GET", "POST"] {
            let params = [
                ("id_token_hint", hint.as_str()),
                ("post_logout_redirect_uri", BYE),
                ("state", "s"),
            ];
            let response = if method == "GET" {
                app.browse(&logout_url(&app, &params)).await
            } else {
                app.browser
                    .post(app.url("/o/logout/"))
                    .form(&params)
                    .send()
                    .await
                    .expect("post")
            };
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{method} with hint {hint}"
            );
            assert!(response.headers().get(LOCATION).is_none());
            let html = response.text().await.expect("html");
            assert!(html.contains("Invalid logout request"), "{html}");
            assert!(app.signed_in().await, "still signed in");
        }
    }
}

#[tokio::test]
async fn logout_refuses_a_jwt_access_token_as_id_token_hint() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let mut s = spec("confidential", &["authorization_code"]);
    s.access_token_format = Some("jwt".into());
    s.post_logout_redirect_uris = vec![BYE.into()];
    let (client, secret) = app.register(&s).await;
    let rp = Rp {
        id: client.id().to_owned(),
        secret: secret.expect("a confidential client has a secret"),
    };
    let (code, verifier) = app.code_for(&rp.id, "alice", "openid").await;
    let tokens = exchange(&app, &rp, &code, &verifier).await;
    let access_token = tokens["access_token"].as_str().expect("access token");
    assert_eq!(
        claims(access_token)["sub"],
        claims(&id_token_of(&tokens))["sub"],
        "same user"
    );

    let response = app
        .browse(&logout_url(&app, &[("id_token_hint", access_token)]))
        .await;
    // An access token is not an ID token (RFC 9068 §2.1 / RFC 8725 §3.11): an error page, or
    // at least the confirmation page a request without a valid hint gets.
    let refused = response.status() == StatusCode::BAD_REQUEST
        || (response.status() == StatusCode::OK
            && response
                .text()
                .await
                .expect("html")
                .contains("name=\"confirm\""));
    assert!(refused, "the access token is not accepted as a hint");
    assert!(app.signed_in().await, "still signed in");
}

#[tokio::test]
async fn logout_with_a_client_id_outside_the_hints_audience_is_refused() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Logout app").await;
    let other = register_rp(&app, "Other app").await;
    let id_token = id_token_for(&app, &rp, "alice").await;

    for client_id in [other.id.as_str(), "no-such-client"] {
        let response = app
            .browse(&logout_url(
                &app,
                &[
                    ("id_token_hint", &id_token),
                    ("client_id", client_id),
                    ("post_logout_redirect_uri", BYE),
                ],
            ))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{client_id}");
        assert!(response.headers().get(LOCATION).is_none());
        assert!(app.signed_in().await, "still signed in");
    }
}

#[tokio::test]
async fn logout_posted_by_the_relying_party_behaves_like_get() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Posting app").await;

    // Without a hint: the confirmation page, as for GET.
    app.code_for(&rp.id, "alice", "openid").await;
    let response = app
        .browser
        .post(app.url("/o/logout/"))
        .form(&[
            ("client_id", rp.id.as_str()),
            ("post_logout_redirect_uri", BYE),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("html");
    form_to(&html, "/o/logout/");
    assert!(app.signed_in().await);

    // With the hint: signed out and sent back with state.
    let id_token = id_token_for(&app, &rp, "alice").await;
    let response = app
        .browser
        .post(app.url("/o/logout/"))
        .form(&[
            ("id_token_hint", id_token.as_str()),
            ("post_logout_redirect_uri", BYE),
            ("state", "posted"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("{BYE}?state=posted"));
    assert!(!app.signed_in().await, "signed out");
}

#[tokio::test]
async fn logout_without_a_session_shows_the_logged_out_page_or_redirects() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let rp = register_rp(&app, "Logout app").await;

    // Nothing at all.
    let response = app.browse("/o/logout/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("You are signed out"));
    let response = app
        .browser
        .post(app.url("/o/logout/"))
        .form(&[("state", "x")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::OK);

    // A valid hint after the session already ended (the user logged out elsewhere first):
    // the redirect still happens, with state.
    let id_token = id_token_for(&app, &rp, "alice").await;
    let first = app
        .browse(&logout_url(&app, &[("id_token_hint", &id_token)]))
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(!app.signed_in().await);
    let again = app
        .browse(&logout_url(
            &app,
            &[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", BYE),
                ("state", "late"),
            ],
        ))
        .await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&again), format!("{BYE}?state=late"));

    // client_id without a hint: the logged-out page or the registered URI, never an error.
    let response = app
        .browse(&logout_url(
            &app,
            &[("client_id", &rp.id), ("post_logout_redirect_uri", BYE)],
        ))
        .await;
    match response.status() {
        StatusCode::OK => {}
        StatusCode::SEE_OTHER => assert_eq!(location(&response), BYE),
        other => panic!("logging out without a session answered {other}"),
    }
    // An unknown client: the logged-out page.
    let response = app
        .browse(&logout_url(
            &app,
            &[("client_id", "nope"), ("post_logout_redirect_uri", BYE)],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(LOCATION).is_none());
}

#[tokio::test]
async fn a_portal_registered_client_needs_an_id_token_hint_to_redirect_after_logout() {
    let app = spawn_app().await;
    let owner = app.create_user("owner").await;
    let mut s = spec("confidential", &["authorization_code", "refresh_token"]);
    s.post_logout_redirect_uris = vec![BYE.into()];
    s.owner_id = Some(owner.id.clone());
    let (client, secret) = app.register(&s).await;
    let rp = Rp {
        id: client.id().to_owned(),
        secret: secret.expect("secret"),
    };
    // Without a hint, anyone could send people through /o/logout/ to a URI they registered.
    let response = app
        .browse(&logout_url(
            &app,
            &[("client_id", &rp.id), ("post_logout_redirect_uri", BYE)],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("You are signed out"));
    // With a hint the client proves a real login happened through it: the redirect happens.
    let id_token = id_token_for(&app, &rp, "owner").await;
    let response = app
        .browse(&logout_url(
            &app,
            &[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", BYE),
            ],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), BYE);
}

/// A post-logout redirect URI of a site the attacker owns.
const EVIL: &str = "https://evil.example/landing";

/// An ID token of ours for `sub` and `aud` that expired an hour ago (an attacker keeps the ones
/// they received; RP-Initiated Logout §2 accepts expired hints).
async fn expired_id_token(app: &TestApp, sub: &str, aud: &str) -> String {
    let now = unix_now();
    app.services
        .keys
        .sign(
            latchkey::oidc::SigningAlg::Rs256,
            latchkey::oidc::ID_TOKEN_TYP,
            &json!({
                "iss": app.address, "sub": sub, "aud": aud, "azp": aud,
                "iat": now - 7200, "exp": now - 3600, "auth_time": now - 7200,
            }),
        )
        .await
        .expect("sign")
}

#[tokio::test]
async fn a_portal_clients_logout_redirect_needs_the_hint_of_the_signed_in_user() {
    let app = spawn_app().await;
    let mallory = app.create_user("mallory").await;
    app.create_user("alice").await;
    // Mallory registers a client in the portal with her site as post-logout URI, and keeps an
    // ID token of her own (expired long ago) for it.
    let mut s = spec("confidential", &["authorization_code"]);
    s.post_logout_redirect_uris = vec![EVIL.into()];
    s.owner_id = Some(mallory.id.clone());
    let (client, _) = app.register(&s).await;
    let hint = expired_id_token(&app, &mallory.id, client.id()).await;
    let link = logout_url(
        &app,
        &[
            ("id_token_hint", hint.as_str()),
            ("post_logout_redirect_uri", EVIL),
            ("state", "x"),
        ],
    );
    let not_sent_away = |response: &reqwest::Response, who: &str| {
        assert_eq!(response.status(), StatusCode::OK, "{who}");
        assert!(response.headers().get(LOCATION).is_none(), "{who}");
    };

    // Nobody signed in: the hint proves nothing about who follows the link.
    let stranger = app.anonymous_visitor();
    let response = stranger.client.get(&link).send().await.expect("GET");
    not_sent_away(&response, "signed out");
    let html = response.text().await.expect("html");
    assert!(html.contains("You are signed out"), "{html}");
    assert!(!html.contains("evil.example"), "not even a link: {html}");

    // Alice is signed in: the hint is not hers, so she confirms, is signed out, and stays.
    let alice = app.visitor("alice").await;
    let response = alice.client.get(&link).send().await.expect("GET");
    not_sent_away(&response, "alice, before confirming");
    let html = response.text().await.expect("html");
    let form = form_to(&html, "/o/logout/");
    let mut fields: Vec<(&str, &str)> = form
        .fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    fields.push(("confirm", "yes"));
    let response = alice
        .client
        .post(alice.url("/o/logout/"))
        .form(&fields)
        .send()
        .await
        .expect("confirm");
    not_sent_away(&response, "alice, after confirming");
    let account = alice.get_response("/account/").await;
    assert_eq!(
        account.status(),
        StatusCode::SEE_OTHER,
        "alice is signed out"
    );

    // Mallory herself, signed in, with her own hint: the application's redirect happens.
    let own = app.visitor("mallory").await;
    let response = own.client.get(&link).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("{EVIL}?state=x"));

    // An operator's client keeps RP-Initiated Logout §3: its hint alone identifies it.
    let mut s = spec("confidential", &["authorization_code"]);
    s.post_logout_redirect_uris = vec![BYE.into()];
    let (operator, _) = app.register(&s).await;
    let hint = expired_id_token(&app, &mallory.id, operator.id()).await;
    let response = stranger
        .client
        .get(logout_url(
            &app,
            &[
                ("id_token_hint", hint.as_str()),
                ("post_logout_redirect_uri", BYE),
            ],
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), BYE);
}
