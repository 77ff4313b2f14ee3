//! The client-credentials grant and client authentication.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use reqwest::StatusCode;

use crate::helpers::{spawn_app, spec};

#[tokio::test]
async fn client_credentials_via_basic_and_post() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let secret = secret.expect("secret");
    let http = oauth2::reqwest::Client::new();
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let tokens = BasicClient::new(ClientId::new(client.id().to_owned()))
            .set_client_secret(ClientSecret::new(secret.clone()))
            .set_token_uri(TokenUrl::new(app.url("/o/token/")).expect("url"))
            .set_auth_type(auth)
            .exchange_client_credentials()
            .add_scope(Scope::new("read".into()))
            .request_async(&http)
            .await
            .expect("client credentials");
        assert!(
            tokens.refresh_token().is_none(),
            "RFC 6749 §4.4.3: no refresh token"
        );
        assert_eq!(tokens.scopes().expect("scope")[0].as_str(), "read");
    }
}

#[tokio::test]
async fn token_responses_are_not_cacheable() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    for path in ["/o/token/", "/o/token"] {
        let response = app
            .api
            .post(app.url(path))
            .basic_auth(client.id(), secret.as_deref())
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["pragma"], "no-cache");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(
            body["scope"], "discord email profile read write",
            "no scope → the client's allowed scopes"
        );
    }
}

#[tokio::test]
async fn basic_credentials_are_form_urldecoded() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let secret = secret.expect("secret");
    // Generated secrets are URL-safe; encode every byte anyway, as RFC 6749 §2.3.1 allows.
    let encoded: String = secret.bytes().map(|b| format!("%{b:02X}")).collect();
    let header = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{encoded}", client.id()))
    );
    let response = app
        .api
        .post(app.url("/o/token/"))
        .header("authorization", header)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn client_authentication_failures_are_401_with_a_challenge() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let secret = secret.expect("secret");
    let (public, _) = app.register(&spec("public", &["authorization_code"])).await;
    type Attempt<'a> = (Vec<(&'a str, &'a str)>, Option<(&'a str, &'a str)>);
    let attempts: Vec<Attempt> = vec![
        (
            vec![("grant_type", "client_credentials")],
            Some((client.id(), "wrong-secret")),
        ),
        (
            vec![("grant_type", "client_credentials")],
            Some(("no-such-client", "x")),
        ),
        (vec![("grant_type", "client_credentials")], None),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", client.id()),
            ],
            None,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", public.id()),
                ("client_secret", "x"),
            ],
            None,
        ),
    ];
    for (form, basic) in attempts {
        let response = {
            let mut request = app.api.post(app.url("/o/token/")).form(&form);
            if let Some((id, s)) = basic {
                request = request.basic_auth(id, Some(s));
            }
            request.send().await.expect("request")
        };
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{form:?}");
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Basic"));
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"], "invalid_client");
        assert!(body["error_description"].is_string());
    }
    // Both methods at once is a malformed request.
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[tokio::test]
async fn grant_rules_are_enforced() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec("confidential", &["authorization_code"]))
        .await;
    let basic = Some((client.id(), secret.as_deref().expect("secret")));
    let (status, body) = app
        .post_token(&[("grant_type", "client_credentials")], basic)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    let (status, body) = app.post_token(&[("grant_type", "implicit")], basic).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, body) = app.post_token(&[("code", "x")], basic).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    let (cc, cc_secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read admin"),
            ],
            Some((cc.id(), cc_secret.as_deref().expect("secret"))),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn failed_client_authentication_is_rate_limited_but_never_locks_out_the_real_secret() {
    let app =
        crate::helpers::spawn_app_with("[rate_limits]\nfailed_client_auth_per_client = 2\n").await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let mut last = StatusCode::OK;
    for _ in 0..3 {
        let (status, _) = app
            .post_token(
                &[("grant_type", "client_credentials")],
                Some((client.id(), "guess")),
            )
            .await;
        last = status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((client.id(), secret.as_deref().expect("secret"))),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// A confidential client with the client-credentials grant: registered in the portal (it has
/// an owner) or by an operator; returns (client_id, secret).
async fn userless_client(
    app: &crate::helpers::TestApp,
    owner: Option<&str>,
    scopes: &[&str],
) -> (String, String) {
    let mut s = spec("confidential", &["client_credentials"]);
    s.owner_id = owner.map(str::to_owned);
    s.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
    let (client, secret) = app.register(&s).await;
    (client.id().to_owned(), secret.expect("secret"))
}

#[tokio::test]
async fn portal_clients_get_no_user_less_tokens_by_default_and_operator_clients_are_unchanged() {
    let app = spawn_app().await;
    let dev = app.create_user("dev").await;
    let (portal, portal_secret) = userless_client(&app, Some(&dev.id), &[]).await;
    for form in [
        vec![("grant_type", "client_credentials")],
        vec![("grant_type", "client_credentials"), ("scope", "read")],
    ] {
        let (status, body) = app.post_token(&form, Some((&portal, &portal_secret))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "unauthorized_client");
    }
    // Nothing was issued.
    assert_eq!(
        app.services
            .clients
            .active_token_count(&portal)
            .await
            .expect("count"),
        0
    );
    let (operator, operator_secret) = userless_client(&app, None, &[]).await;
    let (status, body) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&operator, &operator_secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "discord email profile read write");
}

#[tokio::test]
async fn portal_clients_get_only_the_scopes_an_operator_allows_without_a_user() {
    let app = crate::helpers::spawn_app_with("[tokens]\nscopes_without_user = [\"read\"]").await;
    let dev = app.create_user("dev").await;
    let (portal, secret) = userless_client(&app, Some(&dev.id), &[]).await;
    let token = |scope: Option<&'static str>| {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let (portal, secret) = (portal.clone(), secret.clone());
        let app = &app;
        async move { app.post_token(&form, Some((&portal, &secret))).await }
    };
    // No scope named: the client's scopes that may be granted without a user.
    let (status, body) = token(None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "read");
    let (status, body) = token(Some("read")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for beyond in ["write", "read write", "profile"] {
        let (status, body) = token(Some(beyond)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{beyond}: {body}");
        assert_eq!(body["error"], "invalid_scope", "{beyond}");
    }
    // A portal client none of whose scopes is allowed without a user gets nothing.
    let (writer, writer_secret) = userless_client(&app, Some(&dev.id), &["write"]).await;
    let (status, body) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&writer, &writer_secret)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
    // Operator clients are not limited by the setting.
    let (operator, operator_secret) = userless_client(&app, None, &[]).await;
    let (status, body) = app
        .post_token(
            &[("grant_type", "client_credentials"), ("scope", "write")],
            Some((&operator, &operator_secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Group commit (issue 13): many tokens issued at once — on SQLite they are committed together
/// — and every token answered 200 is stored with its audit event: it introspects active on
/// another node (its own caches, reading the database), and there is one `token.issued` event
/// per answered token.
#[tokio::test]
async fn every_token_answered_under_concurrency_is_stored() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let secret = secret.expect("secret");
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..120 {
        let (http, url, id, secret) = (
            app.api.clone(),
            app.url("/o/token/"),
            client.id().to_owned(),
            secret.clone(),
        );
        requests.spawn(async move {
            let response = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials"), ("scope", "read")])
                .send()
                .await
                .expect("request");
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("json");
            (status, body)
        });
    }
    let mut tokens = Vec::new();
    while let Some(answer) = requests.join_next().await {
        let (status, body) = answer.expect("task");
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens.push(body["access_token"].as_str().expect("token").to_owned());
    }
    let other = app.second_node("").await;
    for token in &tokens {
        let (status, body) = other
            .post_oauth(
                "/o/introspect/",
                &[("token", token)],
                Some((client.id(), &secret)),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["active"], true, "an answered token was not stored");
    }
    let issued = app.audit_events("token.issued").await;
    assert_eq!(
        issued
            .iter()
            .filter(|e| e.client_id.as_deref() == Some(client.id()))
            .count(),
        tokens.len()
    );
}

/// The client cache (issue 13): a rotated secret stops working at once on the node that
/// rotated it, and on another node — which authenticated with the old secret a moment before,
/// so it holds the row — within `CLIENT_CACHE_SECONDS`. A deleted client likewise.
#[tokio::test]
async fn a_rotated_secret_stops_at_once_here_and_within_the_cache_bound_elsewhere() {
    let app = spawn_app().await;
    let other = app.second_node("").await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let old = secret.expect("secret");
    let grant = [("grant_type", "client_credentials")];
    for node in [&app, &other] {
        let (status, _) = node.post_token(&grant, Some((client.id(), &old))).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the secret works before the rotation"
        );
    }
    let new = app
        .services
        .clients
        .rotate_secret(&latchkey::audit::Actor::system(), client.id())
        .await
        .expect("rotate")
        .0;
    let (status, _) = app.post_token(&grant, Some((client.id(), &old))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "at once on this node");
    let (status, _) = app.post_token(&grant, Some((client.id(), &new))).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(
        latchkey::clients::CLIENT_CACHE_SECONDS * 1000 + 200,
    ))
    .await;
    let (status, _) = other.post_token(&grant, Some((client.id(), &old))).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "within the bound elsewhere"
    );
    let (status, _) = other.post_token(&grant, Some((client.id(), &new))).await;
    assert_eq!(status, StatusCode::OK);

    app.services
        .clients
        .delete(&latchkey::audit::Actor::system(), client.id())
        .await
        .expect("delete");
    let (status, _) = app.post_token(&grant, Some((client.id(), &new))).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a deleted client, at once"
    );
}

/// Tokens made before storage is asked (issue 13) and inserted in groups: when a client is
/// deleted while another node still keeps its row, that node's requests for it fail client
/// authentication (401, not a 500) — the token rows break the foreign key — and requests of
/// other clients inserted in the same groups are answered and stored all the same.
#[tokio::test]
async fn a_client_deleted_elsewhere_is_refused_without_failing_the_others_in_its_group() {
    let app = spawn_app().await;
    let other = app.second_node("").await;
    let spec = spec("confidential", &["client_credentials"]);
    let (kept, kept_secret) = app.register(&spec).await;
    let (gone, gone_secret) = app.register(&spec).await;
    let (kept_secret, gone_secret) = (kept_secret.expect("secret"), gone_secret.expect("secret"));
    let grant = [("grant_type", "client_credentials")];
    // The other node authenticates both once, and so keeps both rows.
    for (client, secret) in [(&kept, &kept_secret), (&gone, &gone_secret)] {
        let (status, _) = other.post_token(&grant, Some((client.id(), secret))).await;
        assert_eq!(status, StatusCode::OK);
    }
    app.services
        .clients
        .delete(&latchkey::audit::Actor::system(), gone.id())
        .await
        .expect("delete");
    let mut requests = tokio::task::JoinSet::new();
    // A third for the deleted client: well under `failed_client_auth_per_ip`.
    for i in 0..60 {
        let (client, secret) = if i % 3 != 0 {
            (kept.id().to_owned(), kept_secret.clone())
        } else {
            (gone.id().to_owned(), gone_secret.clone())
        };
        let (http, url) = (other.api.clone(), other.url("/o/token/"));
        requests.spawn(async move {
            let response = http
                .post(url)
                .basic_auth(&client, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("request");
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("json");
            (client, status, body)
        });
    }
    let mut tokens = Vec::new();
    while let Some(answer) = requests.join_next().await {
        let (client, status, body) = answer.expect("task");
        if client == kept.id() {
            assert_eq!(status, StatusCode::OK, "{body}");
            tokens.push(body["access_token"].as_str().expect("token").to_owned());
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["error"], "invalid_client");
        }
    }
    assert_eq!(tokens.len(), 40);
    for token in &tokens {
        let (status, body) = app
            .post_oauth(
                "/o/introspect/",
                &[("token", token)],
                Some((kept.id(), &kept_secret)),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["active"], true, "an answered token was not stored");
    }
}
