//! The audit log: the services record security events in the database with actor, time, IP and
//! details, in the transaction of the change; `cleartokens` applies the retention.

use chrono::TimeDelta;
use latchkey::db::audit_events::AuditRow;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, spec, PASSWORD};

fn details(row: &AuditRow) -> Value {
    serde_json::from_str(&row.details).expect("details are a JSON object")
}

#[tokio::test]
async fn logins_are_recorded_with_the_address_and_without_the_password() {
    let app = spawn_app().await;
    let user = app.create_user("ann").await;
    let response = app.login("ann", "wrong password").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app.login("nobody", "whatever").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app.login("ann", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let failures = app.audit_events("login.failure").await;
    assert_eq!(failures.len(), 2);
    // Newest first: the unknown login (what was typed is not kept: it may be a password typed
    // into the wrong field), then ann's wrong password (which names her account).
    assert_eq!(details(&failures[0]), serde_json::json!({}));
    assert_eq!(failures[0].user_id, None);
    assert_eq!(failures[0].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(failures[1].user_id.as_deref(), Some(user.id.as_str()));
    let success = app.audit_events("login.success").await;
    assert_eq!(success.len(), 1);
    assert_eq!(success[0].actor_id.as_deref(), Some(user.id.as_str()));
    assert_eq!(success[0].ip.as_deref(), Some("127.0.0.1"));
    for row in failures.iter().chain(&success) {
        assert!(!row.details.contains("wrong password") && !row.details.contains(PASSWORD));
    }
    // A prefix filter finds all three.
    assert_eq!(app.audit_events("login.").await.len(), 3);
}

#[tokio::test]
async fn consent_tokens_and_revocation_are_recorded() {
    let app = spawn_app().await;
    let user = app.create_user("bo").await;
    let (client, secret) = app
        .register(&spec(
            "confidential",
            &["authorization_code", "refresh_token"],
        ))
        .await;
    let secret = secret.expect("secret");
    let (code, verifier) = app
        .code_for(client.id(), "bo", "profile offline_access")
        .await;
    let (status, tokens) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", crate::helpers::REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    let consent = app.audit_events("consent.granted").await;
    assert_eq!(consent.len(), 1);
    assert_eq!(consent[0].actor_id.as_deref(), Some(user.id.as_str()));
    assert_eq!(consent[0].client_id.as_deref(), Some(client.id()));
    assert_eq!(consent[0].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(details(&consent[0])["scope"], "offline_access profile");

    let issued = app.audit_events("token.issued").await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].user_id.as_deref(), Some(user.id.as_str()));
    assert_eq!(details(&issued[0])["grant_type"], "authorization_code");
    assert_eq!(details(&issued[0])["refresh_token"], true);
    let access = tokens["access_token"].as_str().expect("access token");
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    for row in app.audit_events("").await {
        assert!(
            !row.details.contains(access) && !row.details.contains(refresh),
            "no token in {row:?}"
        );
    }

    let (status, _) = app
        .post_oauth(
            "/o/revoke_token/",
            &[("token", refresh)],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let revoked = app.audit_events("token.revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(
        details(&revoked[0])["tokens_revoked"],
        2,
        "refresh + access"
    );
    // Revoking again changes nothing and records nothing.
    app.post_oauth(
        "/o/revoke_token/",
        &[("token", refresh)],
        Some((client.id(), &secret)),
    )
    .await;
    assert_eq!(app.audit_events("token.revoked").await.len(), 1);

    // A wrong client secret is recorded as well.
    let (status, _) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((client.id(), "not the secret")),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let failures = app.audit_events("client_auth.failure").await;
    assert_eq!(failures[0].client_id.as_deref(), Some(client.id()));
}

#[tokio::test]
async fn cleartokens_keeps_events_for_the_retention_period() {
    let app = spawn_app_with("[audit]\nretention_days = 30").await;
    app.create_user("old").await;
    let now = latchkey::db::now();
    let rows = [
        ("ancient", now - TimeDelta::days(31)),
        ("recent", now - TimeDelta::days(29)),
    ];
    for (event, at) in rows {
        let row = AuditRow {
            id: uuid::Uuid::now_v7().to_string(),
            occurred_at: at,
            event: event.to_owned(),
            actor_id: None,
            user_id: None,
            client_id: None,
            ip: None,
            details: "{}".to_owned(),
        };
        app.services
            .db
            .write(move |conn| {
                latchkey::db::audit_events::insert(conn, &row).map_err(latchkey::db::DbError::from)
            })
            .await
            .expect("insert");
    }
    app.services.oauth.clear_expired().await.expect("cleanup");
    assert!(app.audit_events("ancient").await.is_empty());
    assert_eq!(app.audit_events("recent").await.len(), 1);
    assert_eq!(
        app.audit_events("user.created").await.len(),
        1,
        "today's events stay"
    );
}

#[tokio::test]
async fn an_event_exists_only_if_its_change_does() {
    let app = spawn_app().await;
    let actor = latchkey::audit::Actor::system();
    let first = app
        .services
        .groups
        .create(&actor, "Ops", "")
        .await
        .expect("first group");
    // The second create fails on the unique name; no event may claim it happened.
    let err = app
        .services
        .groups
        .create(&actor, "OPS", "")
        .await
        .expect_err("duplicate name");
    assert!(
        matches!(err, latchkey::groups::GroupError::Taken),
        "{err:?}"
    );
    let created = app.audit_events("group.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(details(&created[0])["group_id"], first.id.as_str());
}

#[tokio::test]
async fn floods_do_not_flood_the_audit_log() {
    let app = spawn_app_with(
        "[rate_limits]\nfailed_logins_per_account = 1\nfailed_client_auth_per_client = 2",
    )
    .await;
    let user = app.create_user("cat").await;
    for _ in 0..5 {
        app.login("cat", "wrong").await;
    }
    // One failure within the limit, then the lock is recorded once, not once per refusal.
    assert_eq!(app.audit_events("login.failure").await.len(), 1);
    let locked = app.audit_events("login.locked").await;
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0].user_id.as_deref(), Some(user.id.as_str()));

    // Invented client_ids leave no trace; a real client's failures are recorded up to the
    // limit, and its lock once.
    for i in 0..3 {
        let id = format!("invented-{i}");
        app.post_token(&[("grant_type", "client_credentials")], Some((&id, "x")))
            .await;
    }
    assert!(app.audit_events("client_auth.").await.is_empty());
    let (client, _) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    for _ in 0..6 {
        app.post_token(
            &[("grant_type", "client_credentials")],
            Some((client.id(), "wrong")),
        )
        .await;
    }
    assert_eq!(app.audit_events("client_auth.failure").await.len(), 2);
    assert_eq!(app.audit_events("client_auth.locked").await.len(), 1);
}
