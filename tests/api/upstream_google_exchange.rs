//! Mobile apps trading a Google token for Latchkey tokens (issue 11): `POST /api/google/` (and
//! seed 002's `/accounts/api/google/`) and RFC 8693 token exchange at `/o/token/`, against the
//! Google fake. A token issued to another application is refused (the confused-deputy case:
//! an access token is checked at tokeninfo before UserInfo is asked who it is).

use latchkey::clients::ClientSpec;
use latchkey::oauth::token_exchange::{ACCESS_TOKEN_TYPE, GRANT_TYPE, ID_TOKEN_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::google_fake::{
    now, userinfo_of, FakeGoogle, ANDROID_CLIENT_ID, CLIENT_ID, FOREIGN_CLIENT_ID,
};
use crate::helpers::{spec, TestApp};
use crate::upstream_google::rp_of;

/// A Latchkey with the fake as `[upstream.google]`, and a confidential client allowed token
/// exchange (and refresh tokens): (app, client id, secret).
async fn exchange_rp(google: &FakeGoogle) -> (TestApp, String, String) {
    let rp = rp_of(google, "google", "google", "accept_access_tokens = true").await;
    let (client, secret) = rp
        .register(&ClientSpec {
            scopes: ["openid", "profile", "email"].map(str::to_owned).to_vec(),
            ..spec("confidential", &[GRANT_TYPE, "refresh_token"])
        })
        .await;
    (rp, client.id().to_owned(), secret.expect("a secret"))
}

/// An ID token as Google gives Latchkey's Android app for its server: `aud` the web client
/// id, `azp` the Android client id, no nonce, its own `jti` (two made in one second differ).
fn android_id_token(google: &FakeGoogle, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = google.claims(None);
    claims["azp"] = json!(ANDROID_CLIENT_ID);
    claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
    edit(&mut claims);
    google.sign(&claims)
}

/// Makes `token` a Google access token issued to `audience` that expires at `exp`.
fn access_token(google: &FakeGoogle, token: &str, audience: &str, exp: i64) {
    let claims = google.claims(None);
    google.accept_access_token(
        token,
        &json!({
            "azp": audience,
            "aud": audience,
            "sub": claims["sub"],
            "scope": "openid https://www.googleapis.com/auth/userinfo.email",
            "exp": exp.to_string(),
            "expires_in": (exp - now()).to_string(),
            "email": claims["email"],
            "email_verified": "true",
            "access_type": "online",
        }),
        &userinfo_of(&claims),
    );
}

async fn post_json(
    rp: &TestApp,
    path: &str,
    body: &Value,
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut request = rp.api.post(rp.url(path)).json(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    (status, response.json().await.expect("a JSON body"))
}

async fn ann(rp: &TestApp) -> Option<latchkey::accounts::Account> {
    rp.services
        .accounts
        .find_by_login("ann@gmail.example")
        .await
        .expect("db")
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

#[tokio::test]
async fn an_android_id_token_gets_tokens_at_api_google_on_both_paths() {
    let google = FakeGoogle::start().await;
    let (rp, id, secret) = exchange_rp(&google).await;
    let id_token = android_id_token(&google, |_| {});
    let (status, tokens) = post_json(
        &rp,
        "/api/google/",
        &json!({ "id_token": id_token }),
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(tokens["issued_token_type"], ACCESS_TOKEN_TYPE);
    let user = ann(&rp).await.expect("an account for Ann");
    assert!(user.email_verified);
    let me = rp
        .get_with_bearer("/api/me", tokens["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["sub"], user.id.as_str());
    assert_eq!(me["email"], "ann@gmail.example");

    // Seed 002's path, the client authenticating in the body (client_secret_post), with the
    // app's next ID token (each is exchanged once): the link signs the same user in.
    let next_id_token = android_id_token(&google, |_| {});
    let (status, again) = post_json(
        &rp,
        "/accounts/api/google/",
        &json!({ "id_token": next_id_token, "client_id": id, "client_secret": secret, "provider": "google" }),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let me: Value = rp
        .get_with_bearer("/api/me", again["access_token"].as_str().expect("token"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["sub"], user.id.as_str());
    let links = rp.services.upstream.links_of(&user.id).await.expect("db");
    assert_eq!(links.len(), 1);
    assert!(!rp.audit_events("upstream.login").await.is_empty());
}

#[tokio::test]
async fn token_exchange_at_the_token_endpoint_takes_both_token_kinds() {
    let google = FakeGoogle::start().await;
    let rp = rp_of(&google, "google", "google", "accept_access_tokens = true").await;
    // A public client (the mobile app) authenticates by its client_id alone.
    let (client, _) = rp
        .register(&ClientSpec {
            scopes: ["openid", "profile", "email"].map(str::to_owned).to_vec(),
            ..spec("public", &[GRANT_TYPE])
        })
        .await;
    let id = client.id();
    access_token(&google, "ya29.mobile", ANDROID_CLIENT_ID, now() + 3000);
    let (status, tokens) = rp
        .post_token(
            &[
                ("grant_type", GRANT_TYPE),
                ("client_id", id),
                ("subject_token", "ya29.mobile"),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
                ("subject_issuer", "google"),
                ("scope", "openid profile"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    // RFC 8693 §2.2.1.
    assert_eq!(tokens["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_i64().is_some_and(|s| s > 0));
    assert_eq!(tokens["scope"], "openid profile");
    assert!(tokens["id_token"].is_string(), "openid asked: {tokens}");
    assert!(
        tokens.get("refresh_token").is_none(),
        "not allowed refresh tokens"
    );
    let user = ann(&rp).await.expect("an account for Ann");

    // The ID token kind, the provider by default (the only Google one).
    let id_token = android_id_token(&google, |_| {});
    let (status, tokens) = rp
        .post_token(
            &[
                ("grant_type", GRANT_TYPE),
                ("client_id", id),
                ("subject_token", &id_token),
                ("subject_token_type", ID_TOKEN_TYPE),
                ("requested_token_type", ACCESS_TOKEN_TYPE),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let me: Value = rp
        .get_with_bearer("/api/me", tokens["access_token"].as_str().expect("token"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["sub"], user.id.as_str());

    // /api/google/ with an access token too (another: each is exchanged once).
    access_token(&google, "ya29.mobile2", ANDROID_CLIENT_ID, now() + 3000);
    let (status, tokens) = post_json(
        &rp,
        "/api/google/",
        &json!({ "access_token": "ya29.mobile2", "client_id": id }),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // Advertised (RFC 8414).
    let metadata: Value = rp
        .api
        .get(rp.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert!(metadata["grant_types_supported"]
        .as_array()
        .expect("a list")
        .contains(&json!(GRANT_TYPE)));
}

#[tokio::test]
async fn a_token_issued_to_another_application_is_refused() {
    let google = FakeGoogle::start().await;
    let (rp, id, secret) = exchange_rp(&google).await;
    let basic = Some((id.as_str(), secret.as_str()));
    // An access token some other app obtained for Ann: tokeninfo says whose it is, and
    // UserInfo is never asked.
    access_token(&google, "ya29.theirs", FOREIGN_CLIENT_ID, now() + 3000);
    let (status, body) = post_json(
        &rp,
        "/api/google/",
        &json!({ "access_token": "ya29.theirs" }),
        basic,
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("issued to an application")),
        "{body}"
    );
    assert_eq!(google.requests_to("/v1/userinfo").await, 0);
    // An ID token of another app, and one naming several audiences with another app as the
    // authorized party.
    for id_token in [
        android_id_token(&google, |c| {
            c["aud"] = json!(FOREIGN_CLIENT_ID);
            c["azp"] = json!(FOREIGN_CLIENT_ID);
        }),
        android_id_token(&google, |c| {
            c["aud"] = json!([FOREIGN_CLIENT_ID, ANDROID_CLIENT_ID]);
            c["azp"] = json!(FOREIGN_CLIENT_ID);
        }),
    ] {
        let (status, body) = rp
            .post_token(
                &[
                    ("grant_type", GRANT_TYPE),
                    ("subject_token", &id_token),
                    ("subject_token_type", ID_TOKEN_TYPE),
                ],
                basic,
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    assert!(ann(&rp).await.is_none());
}

/// Exchanges `id_token` at `/o/token/` as the client `basic` for provider `provider`.
async fn exchange_id_token(
    rp: &TestApp,
    id_token: &str,
    provider: &str,
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    rp.post_token(
        &[
            ("grant_type", GRANT_TYPE),
            ("subject_token", id_token),
            ("subject_token_type", ID_TOKEN_TYPE),
            ("subject_issuer", provider),
        ],
        basic,
    )
    .await
}

#[tokio::test]
async fn our_apps_token_for_another_service_is_not_an_id_token_for_us() {
    // A generic OpenID Connect provider whose access tokens are JWTs signed with the ID
    // tokens' keys: our Android app asked it for a token to call a third party's API, and that
    // API replays it here.
    let google = FakeGoogle::start().await;
    let rp = rp_of(&google, "corp", "oidc", "").await;
    let (client, secret) = rp
        .register(&ClientSpec {
            scopes: ["openid", "profile", "email"].map(str::to_owned).to_vec(),
            ..spec("confidential", &[GRANT_TYPE])
        })
        .await;
    let secret = secret.expect("a secret");
    let basic = Some((client.id(), secret.as_str()));
    let third_party = "https://api.third-party.example";
    let mut for_them = google.claims(None);
    for_them["aud"] = json!(third_party);
    for_them["azp"] = json!(ANDROID_CLIENT_ID);
    let cases = [
        // Signed like an ID token: `azp` is our app, `aud` is not us.
        ("aud another service's", google.sign(&for_them)),
        // The same, as RFC 9068 shapes it.
        (
            "an at+jwt for another service",
            google.key.sign_typed("at+jwt", &for_them),
        ),
        // Several audiences, one of them someone else's.
        ("aud several, one another's", {
            let mut claims = google.claims(None);
            claims["aud"] = json!([CLIENT_ID, third_party]);
            claims["azp"] = json!(ANDROID_CLIENT_ID);
            google.sign(&claims)
        }),
        // `aud` ours, but the header says it is an access token (RFC 9068 §2.1).
        ("typ at+jwt", {
            let mut claims = google.claims(None);
            claims["azp"] = json!(ANDROID_CLIENT_ID);
            google.key.sign_typed("application/at+jwt", &claims)
        }),
        // `aud` ours, `azp` an app this server does not know.
        ("azp someone else's", {
            let mut claims = google.claims(None);
            claims["azp"] = json!(FOREIGN_CLIENT_ID);
            google.sign(&claims)
        }),
    ];
    for (case, token) in &cases {
        let (status, body) = exchange_id_token(&rp, token, "corp", basic).await;
        assert_eq!(body["error"], "invalid_grant", "{case}: {body}");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
        let (status, body) = post_json(
            &rp,
            "/api/google/",
            &json!({ "id_token": token, "provider": "corp" }),
            basic,
        )
        .await;
        assert_eq!(body["error"], "invalid_grant", "{case}: {body}");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
    }
    assert!(ann(&rp).await.is_none());
    // The app's own ID token for this server is accepted.
    let mut ours = google.claims(None);
    ours["azp"] = json!(ANDROID_CLIENT_ID);
    let (status, body) = exchange_id_token(&rp, &google.sign(&ours), "corp", basic).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_id_token_is_exchanged_once_and_only_while_fresh() {
    let google = FakeGoogle::start().await;
    let (rp, id, secret) = exchange_rp(&google).await;
    let basic = Some((id.as_str(), secret.as_str()));
    let id_token = android_id_token(&google, |_| {});
    let (status, body) = exchange_id_token(&rp, &id_token, "google", basic).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Replayed, at either endpoint: refused.
    let (status, body) = exchange_id_token(&rp, &id_token, "google", basic).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("already exchanged")),
        "{body}"
    );
    let (status, body) =
        post_json(&rp, "/api/google/", &json!({ "id_token": id_token }), basic).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    // The record lives in `upstream_used_states` until the token would be refused anyway:
    // the cleanup keeps it now.
    rp.services.oauth.clear_expired().await.expect("cleanup");
    let (status, _) = exchange_id_token(&rp, &id_token, "google", basic).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // No `iat`, or issued over ten minutes ago (though not expired): refused, nothing recorded
    // against the user.
    for (case, token) in [
        (
            "no iat",
            android_id_token(&google, |c| {
                c.as_object_mut().expect("claims").remove("iat");
            }),
        ),
        (
            "eleven minutes old",
            android_id_token(&google, |c| c["iat"] = json!(now() - 660)),
        ),
        (
            "issued in the future",
            android_id_token(&google, |c| c["iat"] = json!(now() + 600)),
        ),
    ] {
        let (status, body) = exchange_id_token(&rp, &token, "google", basic).await;
        assert_eq!(body["error"], "invalid_grant", "{case}: {body}");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
    }
    // Nine minutes old is still fine.
    let token = android_id_token(&google, |c| c["iat"] = json!(now() - 540));
    let (status, body) = exchange_id_token(&rp, &token, "google", basic).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn of_two_exchanges_of_one_id_token_at_once_one_succeeds() {
    let google = FakeGoogle::start().await;
    let (rp, id, secret) = exchange_rp(&google).await;
    // The account exists already, so the two race only on the token's record.
    let first = android_id_token(&google, |_| {});
    let basic = Some((id.as_str(), secret.as_str()));
    let (status, _) = exchange_id_token(&rp, &first, "google", basic).await;
    assert_eq!(status, StatusCode::OK);
    let id_token = android_id_token(&google, |_| {});
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let request = rp
            .api
            .post(rp.url("/o/token/"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", GRANT_TYPE),
                ("subject_token", id_token.as_str()),
                ("subject_token_type", ID_TOKEN_TYPE),
            ]);
        tasks.spawn(async move {
            let response = request.send().await.expect("request");
            let status = response.status();
            (status, response.json::<Value>().await.expect("a JSON body"))
        });
    }
    let answers: Vec<(StatusCode, Value)> = tasks.join_all().await;
    let ok = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_error(*status, body, StatusCode::BAD_REQUEST, "invalid_grant");
    }
}

/// A Latchkey with the fake as `[upstream.google]`, `rate_limits.token_exchanges_per_ip =
/// limit`, and a public client (the mobile app) allowed token exchange: (app, client id).
async fn limited_rp(google: &FakeGoogle, limit: u32) -> (TestApp, String) {
    let rp = rp_of(
        google,
        "google",
        "google",
        &format!("accept_access_tokens = true\n[rate_limits]\ntoken_exchanges_per_ip = {limit}"),
    )
    .await;
    let (client, _) = rp
        .register(&ClientSpec {
            scopes: ["openid", "profile", "email"].map(str::to_owned).to_vec(),
            ..spec("public", &[GRANT_TYPE])
        })
        .await;
    (rp, client.id().to_owned())
}

/// The `Retry-After` of `response`, in seconds.
fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[tokio::test]
async fn token_exchange_attempts_are_limited_per_address() {
    let google = FakeGoogle::start().await;
    let (rp, id) = limited_rp(&google, 3).await;
    // Access tokens Google does not know: each attempt costs a call to tokeninfo.
    for n in 0..3 {
        let (status, body) = rp
            .post_token(
                &[
                    ("grant_type", GRANT_TYPE),
                    ("client_id", &id),
                    ("subject_token", &format!("ya29.guess-{n}")),
                    ("subject_token_type", ACCESS_TOKEN_TYPE),
                ],
                None,
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    assert_eq!(google.requests_to("/tokeninfo").await, 3);
    // The fourth, even with a good token and at /api/google/: 429, RFC 6749 §5.2 body,
    // Retry-After, and no call to Google.
    access_token(&google, "ya29.good", ANDROID_CLIENT_ID, now() + 3000);
    for _ in 0..2 {
        let response = rp
            .api
            .post(rp.url("/api/google/"))
            .json(&json!({ "access_token": "ya29.good", "client_id": id }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait = retry_after(&response).expect("a Retry-After header");
        assert!((1..=900).contains(&wait), "{wait}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["error"], "invalid_grant", "{body}");
        assert!(body["error_description"].is_string(), "{body}");
    }
    let (status, body) = rp
        .post_token(
            &[
                ("grant_type", GRANT_TYPE),
                ("client_id", &id),
                ("subject_token", &android_id_token(&google, |_| {})),
                ("subject_token_type", ID_TOKEN_TYPE),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(google.requests_to("/tokeninfo").await, 3);
    assert!(ann(&rp).await.is_none());
    // The lock is recorded once, with the address.
    let locks = rp.audit_events("token_exchange.locked").await;
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn parallel_token_exchanges_pass_the_limit_no_more_often_than_it_allows() {
    let google = FakeGoogle::start().await;
    let (rp, id) = limited_rp(&google, 4).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..12 {
        let request = rp.api.post(rp.url("/o/token/")).form(&[
            ("grant_type", GRANT_TYPE),
            ("client_id", id.as_str()),
            ("subject_token", &format!("ya29.guess-{n}")),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ]);
        tasks.spawn(async move { request.send().await.expect("request").status() });
    }
    let statuses: Vec<StatusCode> = tasks.join_all().await;
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(limited, 8, "{statuses:?}");
    assert_eq!(google.requests_to("/tokeninfo").await, 4);
}

#[tokio::test]
async fn expired_unknown_and_forged_tokens_are_refused() {
    let google = FakeGoogle::start().await;
    let (rp, id, secret) = exchange_rp(&google).await;
    let basic = Some((id.as_str(), secret.as_str()));
    access_token(&google, "ya29.old", ANDROID_CLIENT_ID, now() - 10);
    let expired_id_token = android_id_token(&google, |c| {
        c["iat"] = json!(now() - 7200);
        c["exp"] = json!(now() - 3600);
    });
    let forged = crate::google_fake::TestKey::generate("key-1").sign(&google.claims(None));
    for (case, body) in [
        (
            "an expired access token",
            json!({ "access_token": "ya29.old" }),
        ),
        (
            "an access token Google does not know",
            json!({ "access_token": "ya29.nobody" }),
        ),
        (
            "an expired ID token",
            json!({ "id_token": expired_id_token }),
        ),
        ("a forged ID token", json!({ "id_token": forged })),
        ("not a JWT", json!({ "id_token": "not-a-jwt" })),
    ] {
        let (status, answer) = post_json(&rp, "/api/google/", &body, basic).await;
        assert_eq!(answer["error"], "invalid_grant", "{case}: {answer}");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
    }
    assert!(ann(&rp).await.is_none());
}

#[tokio::test]
async fn clients_and_requests_that_may_not_exchange_are_refused_with_rfc_6749_errors() {
    let google = FakeGoogle::start().await;
    let (rp, id, secret) = exchange_rp(&google).await;
    let id_token = android_id_token(&google, |_| {});
    let body = json!({ "id_token": id_token });
    // A client not allowed the grant.
    let (password_only, password_secret) = rp.password_client(&[]).await;
    let (status, answer) = post_json(
        &rp,
        "/api/google/",
        &body,
        Some((&password_only, &password_secret)),
    )
    .await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    );
    // A wrong secret, and no client at all.
    let (status, answer) = post_json(&rp, "/api/google/", &body, Some((&id, "wrong-secret"))).await;
    assert_error(status, &answer, StatusCode::UNAUTHORIZED, "invalid_client");
    let (status, answer) = post_json(&rp, "/api/google/", &body, None).await;
    assert_error(status, &answer, StatusCode::UNAUTHORIZED, "invalid_client");
    // An unknown provider, and one that is not OpenID Connect.
    let basic = Some((id.as_str(), secret.as_str()));
    let (status, answer) = post_json(
        &rp,
        "/api/google/",
        &json!({ "id_token": id_token, "provider": "nope" }),
        basic,
    )
    .await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, answer) = rp
        .post_token(
            &[
                ("grant_type", GRANT_TYPE),
                ("subject_token", &id_token),
                ("subject_token_type", ID_TOKEN_TYPE),
                ("subject_issuer", "nope"),
            ],
            basic,
        )
        .await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_request");
    // Malformed bodies.
    for (case, raw, content_type) in [
        ("not JSON", "{not json", "application/json"),
        (
            "both tokens",
            r#"{"id_token": "a", "access_token": "b"}"#,
            "application/json",
        ),
        ("no token", r#"{"provider": "google"}"#, "application/json"),
        (
            "a token that is not a string",
            r#"{"id_token": 42}"#,
            "application/json",
        ),
        ("another media type", r#"{"id_token": "a"}"#, "text/plain"),
    ] {
        let response = rp
            .api
            .post(rp.url("/api/google/"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", content_type)
            .body(raw)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let answer: Value = response.json().await.expect("a JSON body");
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(!case.is_empty());
    }
    for form in [
        vec![("subject_token", id_token.as_str())],
        vec![
            ("subject_token", id_token.as_str()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:saml2",
            ),
        ],
        vec![("subject_token_type", ID_TOKEN_TYPE)],
        vec![
            ("subject_token", id_token.as_str()),
            ("subject_token_type", ID_TOKEN_TYPE),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            ),
        ],
        vec![
            ("subject_token", id_token.as_str()),
            ("subject_token_type", ID_TOKEN_TYPE),
            ("actor_token", "x"),
            ("actor_token_type", ACCESS_TOKEN_TYPE),
        ],
    ] {
        let mut all = vec![("grant_type", GRANT_TYPE)];
        all.extend(form);
        let (status, answer) = rp.post_token(&all, basic).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let get = rp
        .api
        .get(rp.url("/api/google/"))
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(ann(&rp).await.is_none());
}

#[tokio::test]
async fn an_address_taken_here_is_not_linked_without_the_password() {
    let google = FakeGoogle::start().await;
    let (rp, id, secret) = exchange_rp(&google).await;
    rp.create_user("ann").await;
    let id_token = android_id_token(&google, |c| c["email"] = json!("ann@example.com"));
    let (status, answer) = post_json(
        &rp,
        "/api/google/",
        &json!({ "id_token": id_token }),
        Some((&id, &secret)),
    )
    .await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        answer["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("sign in with the password")),
        "{answer}"
    );
    let user = rp
        .services
        .accounts
        .find_by_login("ann")
        .await
        .expect("db")
        .expect("ann");
    assert!(rp
        .services
        .upstream
        .links_of(&user.id)
        .await
        .expect("db")
        .is_empty());
}

#[tokio::test]
async fn google_down_is_a_503_never_a_500() {
    let down = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(&down)
        .await;
    let rp = crate::helpers::spawn_app_with(&format!(
        r#"
[upstream.google]
kind = "google"
issuer = "{0}"
client_id = "web"
client_secret = "s"
tokeninfo_endpoint = "{0}/tokeninfo"
accept_access_tokens = true
"#,
        down.uri()
    ))
    .await;
    let (client, secret) = rp.register(&spec("confidential", &[GRANT_TYPE])).await;
    let secret = secret.expect("a secret");
    for body in [
        json!({ "id_token": "a.b.c" }),
        json!({ "access_token": "ya29.x" }),
    ] {
        let (status, answer) =
            post_json(&rp, "/api/google/", &body, Some((client.id(), &secret))).await;
        assert_error(
            status,
            &answer,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        );
    }
}
