//! The authorization-code grant with PKCE, through the hosted pages, exchanged by the `oauth2`
//! crate (a client library no one here wrote).

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;

use crate::helpers::{pkce_pair, query_param, spawn_app, spec, TestApp, PASSWORD, REDIRECT_URI};

fn http_client() -> oauth2::reqwest::Client {
    oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn full_flow(app: &TestApp, client_id: &str, secret: Option<String>) {
    app.create_user("alice").await;
    let mut client = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_auth_uri(AuthUrl::new(app.url("/o/authorize/")).expect("url"))
        .set_token_uri(TokenUrl::new(app.url("/o/token/")).expect("url"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).expect("url"));
    if let Some(secret) = secret {
        client = client.set_client_secret(ClientSecret::new(secret));
    }
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        // OIDC Core §11: refresh tokens from this grant need offline_access.
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let location = app.authorize_as(url.as_str(), "alice", "allow").await;
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(state.secret().as_str())
    );
    // RFC 9207: the issuer is in the response.
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(app.address.as_str())
    );
    let code = query_param(&location, "code").expect("code");

    let http = http_client();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let scopes: Vec<_> = tokens
        .scopes()
        .expect("scope")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["email", "offline_access", "profile"]);
    let refresh = tokens.refresh_token().expect("refresh token").clone();

    let me = app
        .api
        .get(app.url("/api/me"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), StatusCode::OK);
    let me: serde_json::Value = me.json().await.expect("json");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");

    let refreshed = client
        .exchange_refresh_token(&refresh)
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    assert!(refreshed.refresh_token().is_some(), "refresh tokens rotate");
}

#[tokio::test]
async fn public_client_completes_the_code_flow_with_pkce() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec("public", &["authorization_code", "refresh_token"]))
        .await;
    assert!(secret.is_none());
    full_flow(&app, client.id(), None).await;
}

#[tokio::test]
async fn confidential_client_completes_the_code_flow_with_basic_auth() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec(
            "confidential",
            &["authorization_code", "refresh_token"],
        ))
        .await;
    full_flow(&app, client.id(), secret).await;
}

#[tokio::test]
async fn consent_is_remembered_and_asked_again_only_for_new_scopes() {
    let app = spawn_app().await;
    app.create_user("bob").await;
    let (client, _) = app
        .register(&spec("confidential", &["authorization_code"]))
        .await;
    app.code_for(client.id(), "bob", "profile").await;

    // Same scope: straight back to the client, no consent page.
    let (_, challenge) = pkce_pair();
    let again = app
        .browse(&app.authorize_url(client.id(), "profile", &challenge, "s2"))
        .await;
    assert_eq!(again.status(), StatusCode::FOUND);
    let location = again.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(query_param(&location, "code").is_some());

    // A new scope: the consent page again, marking what is new.
    let more = app
        .browse(&app.authorize_url(client.id(), "profile email", &challenge, "s3"))
        .await;
    assert_eq!(more.status(), StatusCode::OK);
    let html = more.text().await.expect("html");
    assert!(
        html.contains("See your email address"),
        "scopes are described in words"
    );
    assert!(html.contains("already allowed") && html.contains(">new<"));
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_state() {
    let app = spawn_app().await;
    app.create_user("carol").await;
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    let (_, challenge) = pkce_pair();
    let location = app
        .authorize_as(
            &app.authorize_url(client.id(), "profile", &challenge, "keep-me"),
            "carol",
            "deny",
        )
        .await;
    assert!(location.starts_with(REDIRECT_URI));
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("keep-me"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(app.address.as_str())
    );
    assert!(query_param(&location, "code").is_none());
}

#[tokio::test]
async fn skip_authorization_clients_get_no_consent_page() {
    let app = spawn_app().await;
    app.create_user("dave").await;
    let mut s = spec("public", &["authorization_code"]);
    s.skip_authorization = true;
    let (client, _) = app.register(&s).await;
    app.login("dave", PASSWORD).await;
    let (_, challenge) = pkce_pair();
    let response = app
        .browse(&app.authorize_url(client.id(), "profile", &challenge, "s"))
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(query_param(
        response.headers()["location"].to_str().expect("ascii"),
        "code"
    )
    .is_some());
}

#[tokio::test]
async fn untrusted_clients_and_redirect_uris_get_an_error_page_never_a_redirect() {
    let app = spawn_app().await;
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    let (_, challenge) = pkce_pair();
    let evil = [
        format!("/o/authorize/?response_type=code&client_id=nope&redirect_uri={REDIRECT_URI}"),
        format!("/o/authorize/?response_type=code&client_id={}&redirect_uri=https://evil.example/callback", client.id()),
        format!("/o/authorize/?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}/extra", client.id()),
        format!("/o/authorize/?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}?x=1", client.id()),
        format!("/o/authorize/?response_type=code&client_id={}&redirect_uri=HTTP://127.0.0.1:9999/callback", client.id()),
        format!("/o/authorize/?response_type=code&client_id={0}&client_id={0}&code_challenge={challenge}", client.id()),
        "/o/authorize/?response_type=code".to_owned(),
    ];
    for path in evil {
        let response = app.browse(&path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(
            response.headers().get("location").is_none(),
            "{path} must not redirect"
        );
        assert!(response
            .text()
            .await
            .expect("html")
            .contains("Invalid authorization request"));
    }
}

#[tokio::test]
async fn invalid_requests_from_a_trusted_client_redirect_with_the_rfc_error() {
    let app = spawn_app().await;
    let (public, _) = app.register(&spec("public", &["authorization_code"])).await;
    let (cc, _) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let (_, challenge) = pkce_pair();
    let base =
        |id: &str| format!("/o/authorize/?client_id={id}&redirect_uri={REDIRECT_URI}&state=s");
    let cases = [
        (format!("{}&response_type=token&code_challenge={challenge}&code_challenge_method=S256", base(public.id())), "unsupported_response_type"),
        (format!("{}&code_challenge={challenge}&code_challenge_method=S256", base(public.id())), "invalid_request"),
        (format!("{}&response_type=code&scope=admin&code_challenge={challenge}&code_challenge_method=S256", base(public.id())), "invalid_scope"),
        (format!("{}&response_type=code", base(public.id())), "invalid_request"),
        (format!("{}&response_type=code&code_challenge={challenge}&code_challenge_method=plain", base(public.id())), "invalid_request"),
        (format!("{}&response_type=code&code_challenge=short&code_challenge_method=S256", base(public.id())), "invalid_request"),
        (format!("{}&response_type=code&code_challenge={challenge}&code_challenge_method=S256", base(cc.id())), "unauthorized_client"),
    ];
    for (path, error) in cases {
        let response = app.browse(&path).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{path}");
        let location = response.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(location.starts_with(REDIRECT_URI), "{location}");
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some(error),
            "{path}"
        );
        assert_eq!(query_param(&location, "state").as_deref(), Some("s"));
        assert_eq!(
            query_param(&location, "iss").as_deref(),
            Some(app.address.as_str())
        );
    }
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_the_tokens_issued_from_it() {
    let app = spawn_app().await;
    app.create_user("erin").await;
    let (client, _) = app
        .register(&spec("public", &["authorization_code", "refresh_token"]))
        .await;
    let (code, verifier) = app
        .code_for(client.id(), "erin", "profile offline_access")
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", crate::helpers::REDIRECT_URI),
        ("client_id", client.id()),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, first) = app.post_token(&form, None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let access = first["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let me = app.get_with_bearer("/api/me", &access).await;
    assert_eq!(me.status(), StatusCode::OK);

    let (status, replay) = app.post_token(&form, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(replay["error"], "invalid_grant");
    let me = app.get_with_bearer("/api/me", &access).await;
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "RFC 6749 §4.1.2: tokens from a replayed code are revoked"
    );
    let (status, refreshed) = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    first["refresh_token"].as_str().expect("refresh"),
                ),
                ("client_id", client.id()),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refreshed["error"], "invalid_grant");
}

#[tokio::test]
async fn pkce_and_binding_failures_are_invalid_grant() {
    let app = spawn_app().await;
    app.create_user("frank").await;
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    let (other, _) = app.register(&spec("public", &["authorization_code"])).await;

    // Each case overrides parameters of a correct exchange; CODE, VERIFIER and OTHER are
    // replaced by the real code, its verifier and another client's id.
    let wrong_verifier = "x".repeat(43);
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "wrong verifier",
            vec![("code_verifier", wrong_verifier.as_str())],
        ),
        ("missing verifier", vec![("code_verifier", "")]),
        (
            "other redirect_uri",
            vec![("redirect_uri", "http://127.0.0.1:9999/other")],
        ),
        ("unknown code", vec![("code", "garbage")]),
        ("other client", vec![("client_id", "OTHER")]),
    ];
    for (name, overrides) in cases {
        let (code, verifier) = app.code_for(client.id(), "frank", "profile").await;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", client.id()),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        for (key, value) in overrides {
            form.retain(|(k, _)| *k != key);
            let value = if value == "OTHER" { other.id() } else { value };
            if !value.is_empty() {
                form.push((key, value));
            }
        }
        let (status, body) = app.post_token(&form, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{name}: {body}");
    }
}

#[tokio::test]
async fn redirect_uri_may_be_omitted_only_when_it_was_omitted_before() {
    let app = spawn_app().await;
    app.create_user("gina").await;
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    let (verifier, challenge) = pkce_pair();
    let url = format!(
        "/o/authorize/?response_type=code&client_id={}&scope=profile&code_challenge={challenge}&code_challenge_method=S256",
        client.id()
    );
    let location = app.authorize_as(&url, "gina", "allow").await;
    let code = query_param(&location, "code").expect("code");
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", client.id()),
                ("code_verifier", &verifier),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Named in the authorization request → required at the token endpoint (RFC 6749 §4.1.3).
    let (code, verifier) = app.code_for(client.id(), "gina", "profile").await;
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", client.id()),
                ("code_verifier", &verifier),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn login_page_refuses_bad_passwords_missing_csrf_and_inactive_users() {
    let app = spawn_app().await;
    let user = app.create_user("hank").await;
    let wrong = app.login("hank", "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong
        .text()
        .await
        .expect("html")
        .contains("Invalid username or password"));

    let no_csrf = app
        .browser
        .post(app.url("/accounts/login/"))
        .form(&[("username", "hank"), ("password", PASSWORD)])
        .send()
        .await
        .expect("post");
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);

    // Login by email works too.
    let ok = app.login("hank@example.com", PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);

    app.deactivate(&user.id).await;
    let inactive = app.login("hank", PASSWORD).await;
    // Answered like a wrong password, so a correct guess for a disabled account is not confirmed.
    assert_eq!(inactive.status(), StatusCode::UNAUTHORIZED);
    // And the old session no longer counts as signed in.
    let (_, challenge) = pkce_pair();
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    let response = app
        .browse(&app.authorize_url(client.id(), "profile", &challenge, "s"))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers()["location"]
        .to_str()
        .expect("ascii")
        .starts_with("/accounts/login/"));
}

#[tokio::test]
async fn consent_without_csrf_is_refused() {
    let app = spawn_app().await;
    app.create_user("ivy").await;
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    app.login("ivy", PASSWORD).await;
    let (_, challenge) = pkce_pair();
    let url = app.authorize_url(client.id(), "profile", &challenge, "s");
    let consent = app.browse(&url).await;
    assert_eq!(consent.status(), StatusCode::OK);
    let response = app
        .browser
        .post(&url)
        .form(&[("decision", "allow")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn login_next_cannot_redirect_off_site() {
    let app = spawn_app().await;
    app.create_user("jack").await;
    let page = app.browse("/accounts/login/").await;
    let csrf = crate::helpers::csrf_from(&page.text().await.expect("html"));
    let response = app
        .browser
        .post(app.url("/accounts/login/"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", "jack"),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/");
}

#[tokio::test]
async fn public_clients_on_loopback_redirects_are_always_asked() {
    let app = spawn_app().await;
    app.create_user("pablo").await;
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    app.code_for(client.id(), "pablo", "profile").await;
    // RFC 8252 §8.6: another app could claim this loopback redirect, so consent is asked again.
    let (_, challenge) = pkce_pair();
    let again = app
        .browse(&app.authorize_url(client.id(), "profile", &challenge, "s2"))
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let html = again.text().await.expect("html");
    assert!(html.contains("wants to access your account"));
    // …and says why (issue 10, item 11), which a confidential client's page does not.
    assert!(
        html.contains(r#"id="asks-every-time""#) && html.contains("you are asked every time"),
        "{html}"
    );
    let (confidential, _) = app
        .register(&spec("confidential", &["authorization_code"]))
        .await;
    let (_, challenge) = pkce_pair();
    let first = app
        .browse(&app.authorize_url(confidential.id(), "profile", &challenge, "s3"))
        .await
        .text()
        .await
        .expect("html");
    assert!(first.contains("wants to access your account"), "{first}");
    assert!(!first.contains("asks-every-time"), "{first}");
}

#[tokio::test]
async fn logins_expire_after_the_session_max_age() {
    let app = crate::helpers::spawn_app_with("[server]\nsession_max_age_seconds = 1\n").await;
    app.create_user("olga").await;
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    app.login("olga", PASSWORD).await;
    let (_, challenge) = pkce_pair();
    let url = app.authorize_url(client.id(), "profile", &challenge, "s");
    assert_eq!(
        app.browse(&url).await.status(),
        StatusCode::OK,
        "signed in: consent page"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let later = app.browse(&url).await;
    assert_eq!(later.status(), StatusCode::SEE_OTHER);
    assert!(later.headers()["location"]
        .to_str()
        .expect("ascii")
        .starts_with("/accounts/login/"));
}
