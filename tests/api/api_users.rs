//! The admin users API: `GET /api/users/` (paginated, filterable) and `GET /api/users/{id}/`,
//! for a token with the `admin` scope held by an active staff user.

use latchkey::audit::Actor;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, spec, TestApp, PASSWORD};

/// A confidential client with the password grant, allowed `scopes`: (client id, secret).
async fn client_with_scopes(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let mut client_spec = spec("confidential", &["password", "client_credentials"]);
    client_spec.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
    let (client, secret) = app.register(&client_spec).await;
    (client.id().to_owned(), secret.expect("secret"))
}

/// An access token for `username` with `scope` through the password grant.
async fn token_for(
    app: &TestApp,
    client: &(String, String),
    username: &str,
    scope: &str,
) -> String {
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", PASSWORD),
                ("scope", scope),
            ],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

/// GETs `path_or_url` with the bearer token: (status, JSON, WWW-Authenticate).
async fn get(
    app: &TestApp,
    path_or_url: &str,
    token: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let url = if path_or_url.starts_with("http") {
        path_or_url.to_owned()
    } else {
        app.url(path_or_url)
    };
    let mut request = app.api.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

fn usernames(body: &Value) -> Vec<&str> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|u| u["username"].as_str().expect("username"))
        .collect()
}

/// Staff `root` with an admin token; users ann, bob (deactivated), carl, dora.
async fn directory(app: &TestApp) -> String {
    app.create_staff("root").await;
    let ann = app.create_user("ann").await;
    let bob = app.create_user("bob").await;
    app.create_user("carl").await;
    app.create_user("dora").await;
    app.deactivate(&bob.id).await;
    let group = app
        .services
        .groups
        .create(&Actor::system(), "Editors", "")
        .await
        .expect("group");
    app.services
        .groups
        .add_member(&Actor::system(), &group.id, "ann")
        .await
        .expect("member");
    let _ = ann;
    let client = client_with_scopes(app, &["admin", "profile"]).await;
    token_for(app, &client, "root", "admin").await
}

#[tokio::test]
async fn staff_list_users_page_by_page() {
    let app = spawn_app().await;
    let token = directory(&app).await;

    let (status, body, _) = get(&app, "/api/users/", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 5);
    assert_eq!(body["page"], 1);
    assert_eq!(body["page_size"], 25);
    assert_eq!(body["next"], Value::Null);
    assert_eq!(body["previous"], Value::Null);
    assert_eq!(usernames(&body), ["ann", "bob", "carl", "dora", "root"]);
    let ann = &body["results"][0];
    let keys: Vec<&str> = ann
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "is_active",
        "is_staff",
        "is_superuser",
        "email_verified",
        "date_joined",
        "last_login",
        "groups",
    ] {
        assert!(keys.contains(&key), "{key} in {ann}");
    }
    assert!(!keys.contains(&"password_hash"), "{ann}");
    assert_eq!(ann["email"], "ann@example.com");
    assert_eq!(ann["groups"], serde_json::json!(["Editors"]));
    assert_eq!(ann["last_login"], Value::Null);
    assert!(ann["date_joined"].as_str().expect("date").ends_with('Z'));
    let root = &body["results"][4];
    assert_eq!(
        (root["is_staff"].as_bool(), root["is_superuser"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(
        root["last_login"].is_string(),
        "the password grant logged root in"
    );

    // Two per page: follow `next` to the end and `previous` back.
    let (_, page1, _) = get(&app, "/api/users/?page_size=2", Some(&token)).await;
    assert_eq!(usernames(&page1), ["ann", "bob"]);
    let next = page1["next"].as_str().expect("next").to_owned();
    assert_eq!(next, app.url("/api/users/?page=2&page_size=2"));
    let (_, page2, _) = get(&app, &next, Some(&token)).await;
    assert_eq!(usernames(&page2), ["carl", "dora"]);
    assert_eq!(
        page2["previous"].as_str(),
        Some(app.url("/api/users/?page=1&page_size=2").as_str())
    );
    let (_, page3, _) = get(&app, page2["next"].as_str().expect("next"), Some(&token)).await;
    assert_eq!(usernames(&page3), ["root"]);
    assert_eq!(page3["next"], Value::Null);
    assert_eq!(page3["count"], 5);
    let (status, beyond, _) = get(&app, "/api/users/?page=9&page_size=2", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(usernames(&beyond).is_empty());
}

#[tokio::test]
async fn the_list_filters_by_search_activity_and_staff_status() {
    let app = spawn_app().await;
    let token = directory(&app).await;

    let (_, body, _) = get(&app, "/api/users/?active=false", Some(&token)).await;
    assert_eq!(usernames(&body), ["bob"]);
    assert_eq!(body["count"], 1);
    let (_, body, _) = get(&app, "/api/users/?active=true&staff=false", Some(&token)).await;
    assert_eq!(usernames(&body), ["ann", "carl", "dora"]);
    let (_, body, _) = get(&app, "/api/users/?staff=true", Some(&token)).await;
    assert_eq!(usernames(&body), ["root"]);
    let (_, body, _) = get(&app, "/api/users/?search=AR", Some(&token)).await;
    assert_eq!(usernames(&body), ["carl"]);
    let (_, body, _) = get(
        &app,
        "/api/users/?search=example.com&page_size=1&active=true",
        Some(&token),
    )
    .await;
    assert_eq!(body["count"], 4);
    assert_eq!(
        body["next"].as_str(),
        Some(
            app.url("/api/users/?search=example.com&active=true&page=2&page_size=1")
                .as_str()
        )
    );
    let (_, body, _) = get(&app, "/api/users/?search=%25", Some(&token)).await;
    assert_eq!(body["count"], 0, "LIKE wildcards are searched literally");

    for bad in [
        "active=yes",
        "staff=1",
        "page=0",
        "page=x",
        "page_size=1000",
    ] {
        let (status, body, _) = get(&app, &format!("/api/users/?{bad}"), Some(&token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_request");
    }
}

#[tokio::test]
async fn one_user_by_id_or_404() {
    let app = spawn_app().await;
    let token = directory(&app).await;
    let ann = app
        .services
        .accounts
        .find_by_login("ann")
        .await
        .expect("db")
        .expect("ann");

    let (status, body, _) = get(&app, &format!("/api/users/{}/", ann.id), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], ann.id.as_str());
    assert_eq!(body["username"], "ann");
    assert_eq!(body["groups"], serde_json::json!(["Editors"]));
    assert_eq!(body["is_active"], true);
    let (status, body, _) = get(&app, &format!("/api/users/{}", ann.id), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "without the slash too: {body}");

    let (status, body, _) = get(&app, "/api/users/no-such-user/", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, _, _) = get(&app, &format!("/api/users/{}/", ann.id), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_an_admin_token_of_an_active_staff_user_may_read_users() {
    let app = spawn_app().await;
    let token = directory(&app).await;
    let admin_client = client_with_scopes(&app, &["admin", "profile"]).await;

    // No token: 401 with a bare challenge (RFC 6750 §3.1).
    let (status, _, challenge) = get(&app, "/api/users/", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="latchkey""#));
    let (status, body, _) = get(&app, "/api/users/", Some("not-a-token")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );

    // A staff token without the admin scope.
    let profile_only = token_for(&app, &admin_client, "root", "profile").await;
    let (status, body, challenge) = get(&app, "/api/users/", Some(&profile_only)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "insufficient_scope");
    assert!(challenge.expect("challenge").contains(r#"scope="admin""#));

    // An admin-scoped token of someone who is not staff.
    let ann_admin = token_for(&app, &admin_client, "ann", "admin").await;
    let (status, body, _) = get(&app, "/api/users/", Some(&ann_admin)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "forbidden");
    let (status, _, _) = get(&app, "/api/users/no-such-user/", Some(&ann_admin)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no hint whether the user exists"
    );

    // A client-credentials token, even with the admin scope.
    let (status, body) = app
        .post_token(
            &[("grant_type", "client_credentials"), ("scope", "admin")],
            Some((&admin_client.0, &admin_client.1)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let machine = body["access_token"].as_str().expect("token");
    let (status, body, _) = get(&app, "/api/users/", Some(machine)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "insufficient_scope");

    // Staff status removed: the same token no longer works.
    let root = app
        .services
        .accounts
        .find_by_login("root")
        .await
        .expect("db")
        .expect("root");
    let other_superuser = app.create_staff("sue").await;
    app.services
        .accounts
        .set_flags(
            &Actor::user(other_superuser.id.clone(), None),
            &root.id,
            latchkey::accounts::AccountFlags {
                is_active: true,
                is_staff: false,
                is_superuser: false,
            },
        )
        .await
        .expect("demote");
    let (status, body, _) = get(&app, "/api/users/", Some(&token)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
}

#[tokio::test]
async fn clients_get_the_admin_scope_only_when_allowed_it_by_name() {
    let app = spawn_app().await;
    app.create_staff("root").await;
    // No scope list: every scope the server knows, except `admin`.
    let (status, body) = {
        let client = client_with_scopes(&app, &[]).await;
        app.post_token(
            &[
                ("grant_type", "password"),
                ("username", "root"),
                ("password", PASSWORD),
                ("scope", "admin"),
            ],
            Some((&client.0, &client.1)),
        )
        .await
    };
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope");
    let (client, _) = app
        .register(&spec("confidential", &["authorization_code"]))
        .await;
    assert!(!client.allowed_scopes.contains("admin"));
    assert!(client.allowed_scopes.contains("profile"));
}
