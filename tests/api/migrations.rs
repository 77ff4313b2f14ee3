//! The two migration folders stay in step, and every table round-trips on the backend in use.

use chrono::TimeDelta;
use latchkey::db::clients::ClientRow;
use latchkey::db::codes::CodeRow;
use latchkey::db::consents::ConsentRow;
use latchkey::db::held_secrets::HeldSecretRow;
use latchkey::db::tokens::TokenRow;
use latchkey::db::users::UserRow;
use latchkey::db::{self, DbError};

use crate::helpers::spawn_app;

fn names(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("migration folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn both_backends_have_the_same_migrations() {
    let sqlite = names("migrations/sqlite");
    let postgres = names("migrations/postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
    for name in &sqlite {
        for backend in ["sqlite", "postgres"] {
            for file in ["up.sql", "down.sql"] {
                assert!(
                    std::path::Path::new(&format!("migrations/{backend}/{name}/{file}")).exists(),
                    "{backend}/{name}/{file}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_table_round_trips() {
    let app = spawn_app().await;
    let now = db::now();
    let user = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: "rounder".into(),
        email: "rounder@example.com".into(),
        first_name: "Ro".into(),
        last_name: "Under ✓".into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        is_active: true,
        is_staff: false,
        is_superuser: true,
        email_verified: false,
        date_joined: now,
        last_login: Some(now + TimeDelta::microseconds(1)),
        sessions_valid_after: Some(now),
        mfa_enabled: true,
    };
    let client = ClientRow {
        client_id: "round-trip".into(),
        name: "Round trip".into(),
        client_type: "confidential".into(),
        token_endpoint_auth_method: "client_secret_post".into(),
        secret_hash: Some("ab".repeat(32)),
        secret_hint: Some("abcdef".into()),
        grant_types: "authorization_code refresh_token".into(),
        redirect_uris: "https://a.example/cb http://127.0.0.1/cb".into(),
        post_logout_redirect_uris: "https://a.example/bye".into(),
        allowed_origins: "https://a.example".into(),
        allowed_scopes: "profile read".into(),
        skip_authorization: true,
        require_pkce: false,
        allow_plain_pkce: true,
        introspect_all: true,
        access_token_lifetime: Some(60),
        refresh_token_lifetime: None,
        owner_id: Some(user.id.clone()),
        created_at: now,
        updated_at: now,
        id_token_signed_response_alg: "EdDSA".into(),
        access_token_format: "jwt".into(),
        always_issue_refresh_token: true,
        resource_uris: "https://api.example.com urn:example:billing".into(),
        logo_uri: Some("https://a.example/logo.png".into()),
        client_uri: Some("https://a.example/".into()),
        policy_uri: None,
        tos_uri: Some("http://127.0.0.1/tos".into()),
    };
    let code = CodeRow {
        id: "code-1".into(),
        code_hash: "cd".repeat(32),
        client_id: client.client_id.clone(),
        user_id: user.id.clone(),
        redirect_uri: "https://a.example/cb".into(),
        redirect_uri_explicit: true,
        scope: "profile".into(),
        extensions: "{\"pkce\":{\"private\":\"xS\"}}".into(),
        created_at: now,
        expires_at: now + TimeDelta::seconds(60),
        used_at: None,
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: Some(now - TimeDelta::seconds(5)),
        amr: Some("pwd".into()),
        resources: "https://api.example.com".into(),
        idp: None,
    };
    let token = TokenRow {
        id: "token-1".into(),
        token_hash: "ef".repeat(32),
        kind: "refresh".into(),
        client_id: client.client_id.clone(),
        user_id: Some(user.id.clone()),
        scope: "profile".into(),
        grant_type: "authorization_code".into(),
        family_id: "code-1".into(),
        created_at: now,
        expires_at: now + TimeDelta::days(30),
        revoked_at: None,
        rotated_at: Some(now),
        auth_time: Some(now - TimeDelta::seconds(5)),
        amr: Some("pwd otp".into()),
        resources: "https://api.example.com urn:example:billing".into(),
        signing_kid: Some("kid-1".into()),
        idp: Some("corp".into()),
    };
    let consent = ConsentRow {
        user_id: user.id.clone(),
        client_id: client.client_id.clone(),
        scope: "profile read".into(),
        created_at: now,
        updated_at: now,
        resources: "https://api.example.com".into(),
    };
    let held = HeldSecretRow {
        ticket_hash: "a".repeat(64),
        client_id: client.client_id.clone(),
        user_id: user.id.clone(),
        sealed: "c2VhbGVk".into(),
        expires_at: now + TimeDelta::minutes(5),
    };
    let (u, c, k, t, s, h) = (
        user.clone(),
        client.clone(),
        code.clone(),
        token.clone(),
        consent.clone(),
        held.clone(),
    );
    let loaded = app
        .services
        .db
        .write(move |conn| -> Result<_, DbError> {
            db::users::insert(conn, &u)?;
            db::clients::insert(conn, &c)?;
            db::codes::insert(conn, &k)?;
            db::tokens::insert(conn, &t)?;
            db::consents::upsert(
                conn,
                &s.user_id,
                &s.client_id,
                &s.scope,
                &s.resources,
                s.created_at,
            )?;
            db::held_secrets::replace(conn, &h, now)?;
            let (hits, _) = db::rate_limits::hit(conn, "bucket", TimeDelta::seconds(60), now)?;
            let (hits2, _) = db::rate_limits::hit(conn, "bucket", TimeDelta::seconds(60), now)?;
            Ok((
                db::users::find(conn, &u.id)?,
                db::clients::find(conn, &c.client_id)?,
                db::codes::find_by_hash(conn, &k.code_hash)?,
                db::tokens::find_by_hash(conn, &t.token_hash, Some("refresh"))?,
                db::consents::find(conn, &s.user_id, &s.client_id)?,
                (hits, hits2),
                db::signing_keys::all(conn)?,
                db::held_secrets::take(conn, &h.ticket_hash)?,
            ))
        })
        .await
        .expect("round trip");
    assert_eq!(loaded.0.as_ref(), Some(&user), "{}", app.backend);
    assert_eq!(loaded.1.as_ref(), Some(&client));
    assert_eq!(loaded.2.as_ref(), Some(&code));
    assert_eq!(loaded.3.as_ref(), Some(&token));
    assert_eq!(loaded.4.as_ref(), Some(&consent));
    assert_eq!(loaded.5, (1, 2));
    assert_eq!(loaded.7.as_ref(), Some(&held));
    // The first start made one key per algorithm, private parts sealed.
    let algs: Vec<&str> = loaded.6.iter().map(|k| k.alg.as_str()).collect();
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert_eq!(algs.iter().filter(|a| **a == alg).count(), 1, "{algs:?}");
    }
    for key in &loaded.6 {
        assert!(key.retired_at.is_none() && key.expires_at.is_none());
        assert!(!key.private_key.contains("PRIVATE"), "sealed, not PEM");
        assert!(key.public_jwk.contains(&key.kid));
        assert!(!key.public_jwk.contains("\"d\""), "no private JWK members");
    }
}
