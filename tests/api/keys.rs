//! `latchkey keys revoke`: a compromised signing key leaves the JWKS and stops signing and
//! verifying at once on a node that caches keys for an hour, the JWT access tokens it signed are
//! revoked, and signing goes on with a replacement.

use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app_with, spec, TestApp, PASSWORD, TEST_KEY};
use latchkey::clients::ClientSpec;

/// The CLI binary against the test's database (a separate process, as an operator runs it).
fn latchkey(app: &TestApp, args: &[&str]) -> Output {
    latchkey_with(app, args, &[])
}

fn latchkey_with(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("dir");
    Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .envs(env.iter().copied())
        .env("LATCHKEY_DATABASE__URL", &app.db_url)
        .env("LATCHKEY_SECRETS__SECRET_KEY", TEST_KEY)
        .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
        .env("LATCHKEY_LOG__LEVEL", "warn")
        .env_remove("LATCHKEY_TEST_POSTGRES_URL")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run latchkey")
}

fn kid_of(jwt: &str) -> String {
    let part = jwt.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

async fn jwks(app: &TestApp) -> Vec<(String, String)> {
    let response = app
        .api
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().expect("kid").to_owned(),
                k["alg"].as_str().expect("alg").to_owned(),
            )
        })
        .collect()
}

/// A password-grant token response with an ID token and a JWT access token.
async fn tokens(app: &TestApp, client_id: &str, secret: &str) -> Value {
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "keyholder"),
                ("password", PASSWORD),
                ("scope", "openid profile"),
            ],
            Some((client_id, secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn keys_revoke_removes_a_key_everywhere_at_once_and_signing_goes_on() {
    // Keys are cached for an hour: the revocation must not wait for the cache.
    let app = spawn_app_with("[oidc]\nkey_cache_seconds = 3600").await;
    app.create_user("keyholder").await;
    let (client, secret) = app
        .register(&ClientSpec {
            scopes: vec!["openid profile".into()],
            access_token_format: Some("jwt".into()),
            id_token_alg: Some("RS256".into()),
            ..spec("confidential", &["password", "refresh_token"])
        })
        .await;
    let secret = secret.expect("secret");
    let basic = Some((client.id(), secret.as_str()));
    let before = tokens(&app, client.id(), &secret).await;
    let access = before["access_token"].as_str().expect("access").to_owned();
    let id_token = before["id_token"].as_str().expect("id_token").to_owned();
    let refresh = before["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let kid = kid_of(&access);
    assert_eq!(kid_of(&id_token), kid);
    assert!(jwks(&app).await.iter().any(|(k, _)| *k == kid));
    // An unrelated opaque token, which the revocation must leave alone.
    let (opaque_client, opaque_secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let opaque_secret = opaque_secret.expect("secret");
    let (_, opaque) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((opaque_client.id(), opaque_secret.as_str())),
        )
        .await;
    let opaque = opaque["access_token"].as_str().expect("opaque").to_owned();
    // The hint verifies before the revocation (nobody is signed in: the logout page is shown).
    let logout = |hint: String| {
        let app = &app;
        async move {
            app.api
                .get(app.url("/o/logout/"))
                .query(&[("id_token_hint", hint.as_str())])
                .send()
                .await
                .expect("logout")
        }
    };
    assert_eq!(logout(id_token.clone()).await.status(), StatusCode::OK);

    let unknown = latchkey(&app, &["keys", "revoke", "no-such-kid"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no signing key"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );

    let revoked = latchkey(&app, &["keys", "revoke", "--json", "--", &kid]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let revoked: Value = serde_json::from_slice(&revoked.stdout).expect("json");
    assert_eq!(revoked["kid"], kid.as_str());
    assert_eq!(revoked["alg"], "RS256");
    assert_eq!(
        revoked["tokens_revoked"], 1,
        "the JWT access token it signed"
    );
    let replacement = revoked["replacement"]
        .as_str()
        .expect("a replacement, it was signing")
        .to_owned();

    // Over HTTP, on a server that read its keys before the revocation and caches them for an
    // hour: the key is gone from the JWKS, the replacement is there.
    let published = jwks(&app).await;
    assert!(!published.iter().any(|(k, _)| *k == kid), "{published:?}");
    assert!(published.contains(&(replacement.clone(), "RS256".to_owned())));
    assert_eq!(published.len(), 3, "one key per algorithm");
    // Its ID token no longer verifies as an id_token_hint.
    let refused = logout(id_token.clone()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused
        .text()
        .await
        .expect("page")
        .contains("not a valid ID token"));
    // Its JWT access token is revoked: introspection and bearer use refuse it.
    let (_, introspected) = app
        .post_oauth("/o/introspect/", &[("token", access.as_str())], basic)
        .await;
    assert_eq!(introspected, serde_json::json!({ "active": false }));
    assert_eq!(
        app.get_with_bearer("/api/me", &access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Other tokens are untouched; the refresh token is opaque and gets tokens from the
    // replacement at once.
    let (_, still) = app
        .post_oauth(
            "/o/introspect/",
            &[("token", opaque.as_str())],
            Some((opaque_client.id(), opaque_secret.as_str())),
        )
        .await;
    assert_eq!(still["active"], true);
    let (status, refreshed) = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
            ],
            basic,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let new_access = refreshed["access_token"].as_str().expect("access");
    assert_eq!(kid_of(new_access), replacement);
    assert_eq!(
        kid_of(refreshed["id_token"].as_str().expect("id token")),
        replacement
    );
    assert_eq!(
        app.get_with_bearer("/api/me", new_access).await.status(),
        StatusCode::OK
    );
    let after = tokens(&app, client.id(), &secret).await;
    assert_eq!(
        logout(after["id_token"].as_str().expect("id").to_owned())
            .await
            .status(),
        StatusCode::OK
    );

    // The list no longer has it; a second revocation finds nothing; the audit log has both.
    let listed = latchkey(&app, &["keys", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert!(!listed.to_string().contains(&kid));
    assert!(!latchkey(&app, &["keys", "revoke", "--", &kid])
        .status
        .success());
    let events = app
        .services
        .audit
        .list(
            latchkey::db::audit_events::AuditFilter {
                event: Some("signing_key.revoked".into()),
                ..Default::default()
            },
            latchkey::domain::PageRequest::new(None, 10),
        )
        .await
        .expect("audit")
        .items;
    assert_eq!(events.len(), 1);
    assert!(events[0].details.contains(&kid) && events[0].details.contains(&replacement));
}

#[tokio::test]
async fn revoking_a_key_that_no_longer_signs_needs_no_replacement() {
    let app = spawn_app_with("[oidc]\nkey_cache_seconds = 0").await;
    let before = jwks(&app).await;
    let es256 = before
        .iter()
        .find(|(_, alg)| alg == "ES256")
        .expect("an ES256 key")
        .0
        .clone();
    let rotated = latchkey_with(
        &app,
        &["keys", "rotate", "--alg", "ES256"],
        &[("LATCHKEY_OIDC__KEY_CACHE_SECONDS", "0")],
    );
    assert!(rotated.status.success());
    // The old ES256 key is retired (it signed until the new one activated: with a zero cache,
    // at once) but still published; revoking it removes it and makes no new key.
    let revoked = latchkey(&app, &["keys", "revoke", "--json", "--", &es256]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let revoked: Value = serde_json::from_slice(&revoked.stdout).expect("json");
    assert_eq!(revoked["replacement"], Value::Null);
    let after = jwks(&app).await;
    assert_eq!(after.len(), 3);
    assert!(!after.iter().any(|(k, _)| *k == es256));
}

#[tokio::test]
async fn tokens_minted_while_their_key_is_revoked_never_outlive_it() {
    let app = spawn_app_with("[oidc]\nkey_cache_seconds = 3600").await;
    let (client, secret) = app
        .register(&ClientSpec {
            access_token_format: Some("jwt".into()),
            id_token_alg: Some("ES256".into()),
            ..spec("confidential", &["client_credentials"])
        })
        .await;
    let secret = secret.expect("secret");
    let mut issued = Vec::new();
    let mut revoked_kids = Vec::new();
    for _round in 0..4 {
        let (_, first) = app
            .post_token(
                &[("grant_type", "client_credentials")],
                Some((client.id(), secret.as_str())),
            )
            .await;
        let kid = kid_of(first["access_token"].as_str().expect("token"));
        // Token requests in flight while the key that signs them is revoked.
        let requests: Vec<_> = (0..12)
            .map(|_| {
                let (api, url) = (app.api.clone(), app.url("/o/token/"));
                let (id, secret) = (client.id().to_owned(), secret.clone());
                tokio::spawn(async move {
                    let response = api
                        .post(url)
                        .basic_auth(id, Some(secret))
                        .form(&[("grant_type", "client_credentials")])
                        .send()
                        .await
                        .expect("token request");
                    let status = response.status();
                    (status, response.json::<Value>().await.expect("json"))
                })
            })
            .collect();
        app.services
            .keys
            .revoke(&latchkey::audit::Actor::system(), &kid)
            .await
            .expect("revoke");
        revoked_kids.push(kid);
        for request in requests {
            let (status, body) = request.await.expect("task");
            assert_eq!(status, StatusCode::OK, "{body}");
            issued.push(body["access_token"].as_str().expect("token").to_owned());
        }
    }
    // Every token signed by a revoked key is inactive; every other one works.
    for token in &issued {
        let (_, introspected) = app
            .post_oauth(
                "/o/introspect/",
                &[("token", token.as_str())],
                Some((client.id(), secret.as_str())),
            )
            .await;
        let by_revoked_key = revoked_kids.contains(&kid_of(token));
        assert_eq!(
            introspected["active"],
            !by_revoked_key,
            "{} ({})",
            kid_of(token),
            app.backend
        );
    }
}

#[tokio::test]
async fn a_replacement_signing_on_one_node_verifies_at_once_on_another() {
    // Two nodes of one cluster (one issuer, one database), each caching keys for an hour.
    // Found by bench/cluster.sh: after `keys revoke` of the signing key, the node that signed
    // next used the replacement at once, and the other refused its ID tokens as
    // id_token_hints until its cache expired (it did not look up a kid it had not cached).
    let app = spawn_app_with("[oidc]\nkey_cache_seconds = 3600").await;
    let other = app
        .second_node(&format!(
            "[server]\nissuer = \"{}\"\n[oidc]\nkey_cache_seconds = 3600",
            app.address
        ))
        .await;
    app.create_user("keyholder").await;
    let (client, secret) = app
        .register(&ClientSpec {
            scopes: vec!["openid profile".into()],
            id_token_alg: Some("RS256".into()),
            ..spec("confidential", &["password"])
        })
        .await;
    let secret = secret.expect("secret");
    let logout_at = |node: &TestApp, hint: &str| {
        node.api
            .get(node.url("/o/logout/"))
            .query(&[("id_token_hint", hint)])
            .send()
    };
    let before = tokens(&app, client.id(), &secret).await;
    let before = before["id_token"].as_str().expect("id_token").to_owned();
    let status = logout_at(&other, &before).await.expect("logout").status();
    assert_eq!(
        status,
        StatusCode::OK,
        "the other node verifies the first's ID token"
    );

    let revoked = latchkey(&app, &["keys", "revoke", "--json", "--", &kid_of(&before)]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let revoked: Value = serde_json::from_slice(&revoked.stdout).expect("json");
    let replacement = revoked["replacement"].as_str().expect("a replacement");

    // The first node signs with the replacement at once; the other, whose cache predates it,
    // accepts that ID token at once too, and still refuses the revoked key's.
    let after = tokens(&app, client.id(), &secret).await;
    let after = after["id_token"].as_str().expect("id_token").to_owned();
    assert_eq!(kid_of(&after), replacement);
    let response = logout_at(&other, &after).await.expect("logout");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let status = logout_at(&other, &before).await.expect("logout").status();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A kid that is not stored anywhere is still refused.
    let forged = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT","kid":"no-such-kid"}"#),
        after.split_once('.').expect("a JWT").1
    );
    let status = logout_at(&other, &forged).await.expect("logout").status();
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
