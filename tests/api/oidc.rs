//! OpenID Connect: a strict relying party (the `openidconnect` crate) configured with nothing
//! but the issuer, discovery, signing keys and their rotation, JWT access tokens, UserInfo.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{query_param, spawn_app, spec, TestApp, PASSWORD, REDIRECT_URI, TEST_KEY};
use latchkey::clients::ClientSpec;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The claims of a JWT, read without verifying (the tests verify separately).
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

fn header(jwt: &str) -> Value {
    let part = jwt.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

fn oidc_spec(alg: &str) -> ClientSpec {
    ClientSpec {
        scopes: vec!["openid profile email offline_access".into()],
        id_token_alg: Some(alg.to_owned()),
        ..spec("confidential", &["authorization_code", "refresh_token"])
    }
}

/// Verifies `jwt` against the JWKS the server publishes now.
async fn verify_with_jwks(app: &TestApp, jwt: &str) -> Result<Value, String> {
    let jwks: JwkSet = http()
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let kid = header(jwt)["kid"].as_str().expect("kid").to_owned();
    let jwk = jwks.find(&kid).ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let alg = jsonwebtoken::decode_header(jwt)
        .map_err(|e| e.to_string())?
        .alg;
    let mut validation = Validation::new(alg);
    validation.validate_aud = false;
    validation.set_issuer(&[&app.address]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_strict_relying_party_logs_in_with_only_the_issuer_for_every_algorithm() {
    let app = spawn_app().await;
    let user = app.create_user("olivia").await;
    let http = http();
    // Discovery with nothing but the issuer; the library checks that the issuer matches.
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(app.address.clone()).expect("issuer"),
        &http,
    )
    .await
    .expect("discovery");
    for alg in ["RS256", "ES256", "EdDSA"] {
        let (client, secret) = app.register(&oidc_spec(alg)).await;
        let rp = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(client.id().to_owned()),
            secret.map(ClientSecret::new),
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).expect("redirect"));
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = rp
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("offline_access".into()))
            .set_pkce_challenge(challenge)
            .url();
        let location = app.authorize_as(url.as_str(), "olivia", "allow").await;
        assert_eq!(
            query_param(&location, "state").as_deref(),
            Some(state.secret().as_str())
        );
        let code = query_param(&location, "code").expect("code");
        let tokens = rp
            .exchange_code(AuthorizationCode::new(code))
            .expect("token endpoint known")
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .expect("code exchange");
        let id_token = tokens.id_token().expect("an ID token for scope openid");
        let id_verifier = rp.id_token_verifier();
        // Signature against the JWKS, iss, aud, exp, and the nonce.
        let claims = id_token
            .claims(&id_verifier, &nonce)
            .expect("valid ID token");
        assert_eq!(claims.subject().as_str(), user.id);
        assert_eq!(
            claims.preferred_username().map(|u| u.as_str()),
            Some("olivia")
        );
        assert_eq!(
            claims.email().map(|e| e.as_str()),
            Some("olivia@example.com")
        );
        assert_eq!(claims.email_verified(), Some(true));
        assert!(claims.auth_time().is_some());
        // at_hash, computed by the library with the algorithm's hash.
        let expected = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().expect("alg"),
            id_token
                .signing_key(&id_verifier)
                .expect("signing key in JWKS"),
        )
        .expect("hash");
        assert_eq!(claims.access_token_hash(), Some(&expected), "{alg}");
        let raw = payload(&id_token.to_string());
        assert_eq!(header(&id_token.to_string())["alg"], alg);
        assert_eq!(raw["azp"], client.id());
        assert_eq!(raw["amr"], serde_json::json!(["pwd"]));

        // UserInfo: the same subject, claims by scope.
        let info: CoreUserInfoClaims = rp
            .user_info(
                tokens.access_token().clone(),
                Some(claims.subject().clone()),
            )
            .expect("userinfo endpoint known")
            .request_async(&http)
            .await
            .expect("userinfo");
        assert_eq!(info.email().map(|e| e.as_str()), Some("olivia@example.com"));
        assert_eq!(
            info.given_name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str()),
            Some("Test")
        );

        // Refresh (offline_access was granted): a new ID token, same sub and auth_time.
        let refresh = tokens.refresh_token().expect("refresh token").clone();
        let refreshed = rp
            .exchange_refresh_token(&refresh)
            .expect("token endpoint")
            .request_async(&http)
            .await
            .expect("refresh");
        let again = refreshed.id_token().expect("ID token on refresh");
        let again_claims = again
            .claims(&id_verifier, |_: Option<&Nonce>| Ok(()))
            .expect("valid refreshed ID token");
        assert_eq!(again_claims.subject(), claims.subject());
        assert_eq!(again_claims.auth_time(), claims.auth_time());
        assert!(again_claims.nonce().is_none());
    }
}

#[tokio::test]
async fn discovery_advertises_only_what_is_implemented() {
    let app = spawn_app().await;
    let http = http();
    let get = |path: &str| http.get(app.url(path)).send();
    let oidc = get("/.well-known/openid-configuration")
        .await
        .expect("discovery");
    assert_eq!(oidc.status(), StatusCode::OK);
    assert!(oidc.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .contains("max-age"));
    let oidc: Value = oidc.json().await.expect("json");
    let oauth: Value = get("/.well-known/oauth-authorization-server")
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(oidc, oauth, "one document at both well-known paths");
    assert_eq!(oidc["issuer"], app.address);
    for (field, path) in [
        ("authorization_endpoint", "/o/authorize/"),
        ("token_endpoint", "/o/token/"),
        ("userinfo_endpoint", "/o/userinfo/"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("revocation_endpoint", "/o/revoke_token/"),
        ("introspection_endpoint", "/o/introspect/"),
        ("end_session_endpoint", "/o/logout/"),
    ] {
        assert_eq!(oidc[field], app.url(path), "{field}");
    }
    let list = |field: &str| -> Vec<String> {
        oidc[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} is a list"))
            .iter()
            .map(|v| v.as_str().expect("string").to_owned())
            .collect()
    };
    assert_eq!(list("response_types_supported"), ["code"]);
    assert_eq!(list("response_modes_supported"), ["query", "form_post"]);
    assert_eq!(list("subject_types_supported"), ["public"]);
    assert_eq!(
        list("id_token_signing_alg_values_supported"),
        ["RS256", "ES256", "EdDSA"]
    );
    assert_eq!(list("code_challenge_methods_supported"), ["S256"]);
    for scope in ["openid", "profile", "email", "offline_access"] {
        assert!(list("scopes_supported").contains(&scope.to_owned()));
    }
    for claim in ["sub", "nonce", "at_hash", "auth_time", "amr", "email"] {
        assert!(list("claims_supported").contains(&claim.to_owned()));
    }
    assert_eq!(oidc["authorization_response_iss_parameter_supported"], true);
    // Discovery §3 defaults this to true; we have no request_uri support.
    assert_eq!(oidc["request_uri_parameter_supported"], false);
    // Every advertised endpoint answers (a 4xx for a bare request is an answer, a 404 is not).
    for field in [
        "authorization_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
    ] {
        let status = http
            .get(oidc[field].as_str().expect("url"))
            .send()
            .await
            .expect("endpoint")
            .status();
        assert_ne!(status, StatusCode::NOT_FOUND, "{field}");
        assert!(!status.is_server_error(), "{field}");
    }
    // django-oauth-toolkit's paths for the same documents.
    let dot: Value = get("/o/.well-known/openid-configuration/")
        .await
        .expect("dot discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(dot, oidc);

    let jwks = get("/.well-known/jwks.json").await.expect("jwks");
    assert_eq!(jwks.status(), StatusCode::OK);
    assert!(jwks.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .starts_with("public, max-age="));
    let jwks: Value = jwks.json().await.expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 3, "one key per algorithm on first start");
    for key in keys {
        for member in ["kid", "kty", "use", "alg"] {
            assert!(key.get(member).is_some(), "{member} in {key}");
        }
        assert_eq!(key["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "no private member {private}");
        }
    }
}

fn latchkey(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .args(args)
        .env("LATCHKEY_DATABASE__URL", &app.db_url)
        .env("LATCHKEY_SECRETS__SECRET_KEY", TEST_KEY)
        .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
        .env("LATCHKEY_OIDC__KEY_CACHE_SECONDS", "0")
        .env("LATCHKEY_LOG__LEVEL", "warn")
        .env_remove("LATCHKEY_TEST_POSTGRES_URL")
        .current_dir(dir.path())
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run latchkey")
}

/// Kills a spawned server when the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn jwks_kids(url: &str) -> Vec<String> {
    let jwks: Value = http()
        .get(url)
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    kids.sort();
    kids
}

async fn password_id_token(app: &TestApp, client_id: &str, secret: &str) -> Value {
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "rotor"),
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
async fn key_rotation_keeps_old_tokens_verifiable_and_every_node_serves_the_same_keys() {
    let app = spawn_app().await;
    app.create_user("rotor").await;
    let (client, secret) = app
        .register(&ClientSpec {
            scopes: vec!["openid profile".into()],
            ..spec("confidential", &["password"])
        })
        .await;
    let secret = secret.expect("secret");
    let before = password_id_token(&app, client.id(), &secret).await;
    let old_token = before["id_token"].as_str().expect("id_token").to_owned();
    assert_eq!(header(&old_token)["typ"], "JWT");
    let kids_before = jwks_kids(&app.url("/.well-known/jwks.json")).await;
    assert_eq!(kids_before.len(), 3);

    let listed = latchkey(&app, &["keys", "list", "--json"], &[]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(listed.as_array().expect("list").len(), 3);
    assert!(listed
        .as_array()
        .expect("list")
        .iter()
        .all(|k| k["status"] == "active"));

    // Rotate RS256 with one-second token lifetimes, so the old key's overlap is one second.
    let rotated = latchkey(
        &app,
        &["keys", "rotate", "--alg", "RS256"],
        &[
            ("LATCHKEY_TOKENS__ACCESS_TOKEN_SECONDS", "1"),
            ("LATCHKEY_TOKENS__ID_TOKEN_SECONDS", "1"),
        ],
    );
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let kids_after = jwks_kids(&app.url("/.well-known/jwks.json")).await;
    assert_eq!(kids_after.len(), 4, "the old RS256 key is still published");
    assert!(kids_before.iter().all(|k| kids_after.contains(k)));
    verify_with_jwks(&app, &old_token)
        .await
        .expect("a token signed before the rotation still verifies");

    let after = password_id_token(&app, client.id(), &secret).await;
    let new_token = after["id_token"].as_str().expect("id_token");
    assert_ne!(header(new_token)["kid"], header(&old_token)["kid"]);
    assert!(!kids_before.contains(&header(new_token)["kid"].as_str().expect("kid").to_owned()));
    verify_with_jwks(&app, new_token)
        .await
        .expect("new token verifies");

    // A second server process on the same database publishes the same keys.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("dir");
    let second = format!("http://127.0.0.1:{port}");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("serve")
            .env("LATCHKEY_DATABASE__URL", &app.db_url)
            .env("LATCHKEY_SECRETS__SECRET_KEY", TEST_KEY)
            .env("LATCHKEY_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_SERVER__ISSUER", &app.address)
            .env("LATCHKEY_SERVER__WORKERS", "1")
            .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
            .env("LATCHKEY_LOG__LEVEL", "warn")
            .env_remove("LATCHKEY_TEST_POSTGRES_URL")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a second server"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http().get(format!("{second}/readyz")).send().await {
            if r.status() == StatusCode::OK {
                break;
            }
        }
        assert!(Instant::now() < deadline, "second server not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both nodes publish what the database holds at that moment. The old key's overlap is one
    // second, and starting a process on a loaded machine can take longer, so compare the two
    // nodes with each other (again if the old key left between the two reads) rather than with
    // the list read before the second node started.
    let new_kid = header(new_token)["kid"].as_str().expect("kid").to_owned();
    let mut same = false;
    for _ in 0..3 {
        let first = jwks_kids(&app.url("/.well-known/jwks.json")).await;
        let second_kids = jwks_kids(&format!("{second}/.well-known/jwks.json")).await;
        assert!(second_kids.contains(&new_kid), "the new key is published");
        if first == second_kids {
            same = true;
            break;
        }
    }
    assert!(same, "both nodes publish the same keys");

    // After the overlap the old key leaves the JWKS and its tokens stop verifying.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kids_later = jwks_kids(&app.url("/.well-known/jwks.json")).await;
    assert_eq!(kids_later.len(), 3);
    assert!(!kids_later.contains(&header(&old_token)["kid"].as_str().expect("kid").to_owned()));
    assert!(verify_with_jwks(&app, &old_token).await.is_err());
    assert_eq!(
        jwks_kids(&format!("{second}/.well-known/jwks.json")).await,
        kids_later
    );
    // cleartokens deletes the key that has left the JWKS.
    let cleared = latchkey(&app, &["cleartokens"], &[]);
    assert!(
        cleared.status.success(),
        "{}",
        String::from_utf8_lossy(&cleared.stderr)
    );
    let listed = latchkey(&app, &["keys", "list", "--json"], &[]);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    let mut kids: Vec<String> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    kids.sort();
    assert_eq!(kids, kids_later);
}

#[tokio::test]
async fn jwt_access_tokens_follow_rfc_9068_and_stay_revocable() {
    let app = spawn_app().await;
    let user = app.create_user("jwt").await;
    for alg in ["RS256", "ES256", "EdDSA"] {
        let (client, secret) = app
            .register(&ClientSpec {
                scopes: vec!["openid profile".into()],
                access_token_format: Some("jwt".into()),
                id_token_alg: Some(alg.into()),
                ..spec("confidential", &["password", "client_credentials"])
            })
            .await;
        let secret = secret.expect("secret");
        let basic = Some((client.id(), secret.as_str()));
        let (status, body) = app
            .post_token(
                &[
                    ("grant_type", "password"),
                    ("username", "jwt"),
                    ("password", PASSWORD),
                    ("scope", "profile"),
                ],
                basic,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let access = body["access_token"].as_str().expect("access").to_owned();
        assert_eq!(header(&access)["typ"], "at+jwt");
        assert_eq!(header(&access)["alg"], alg);
        // Offline validation against the JWKS, as a resource server would do it.
        let claims = verify_with_jwks(&app, &access).await.expect("valid JWT");
        assert_eq!(claims["iss"], app.address);
        assert_eq!(claims["sub"], user.id);
        assert_eq!(claims["aud"], app.address);
        assert_eq!(claims["client_id"], client.id());
        assert_eq!(claims["scope"], "profile");
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
        let (iat, exp) = (
            claims["iat"].as_i64().expect("iat"),
            claims["exp"].as_i64().expect("exp"),
        );
        assert_eq!(exp - iat, 3600);
        assert!(claims["auth_time"].as_i64().is_some());

        // The JWT works where an opaque token does, and revocation still counts.
        let me = app.get_with_bearer("/api/me", &access).await;
        assert_eq!(me.status(), StatusCode::OK);
        let (_, active) = app
            .post_oauth("/o/introspect/", &[("token", access.as_str())], basic)
            .await;
        assert_eq!(active["active"], true, "{active}");
        assert_eq!(active["sub"], user.id);
        let (status, _) = app
            .post_oauth("/o/revoke_token/", &[("token", access.as_str())], basic)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, inactive) = app
            .post_oauth("/o/introspect/", &[("token", access.as_str())], basic)
            .await;
        assert_eq!(inactive, serde_json::json!({ "active": false }));
        let me = app.get_with_bearer("/api/me", &access).await;
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);

        // RFC 9068 §2.2: without a user, sub is the client.
        let (status, body) = app
            .post_token(&[("grant_type", "client_credentials")], basic)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let cc = verify_with_jwks(&app, body["access_token"].as_str().expect("token"))
            .await
            .expect("valid");
        assert_eq!(cc["sub"], client.id());
        assert!(cc.get("auth_time").is_none());
        assert!(body.get("id_token").is_none());
    }
}

#[tokio::test]
async fn userinfo_follows_rfc_6750_and_refuses_tokens_without_a_user_or_openid() {
    let app = spawn_app().await;
    let user = app.create_user("info").await;
    let (client, secret) = app
        .register(&ClientSpec {
            scopes: vec!["openid profile email read".into()],
            ..spec("confidential", &["password", "client_credentials"])
        })
        .await;
    let secret = secret.expect("secret");
    let basic = Some((client.id(), secret.as_str()));
    let token = |scope: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app
                .post_token(
                    &[
                        ("grant_type", "password"),
                        ("username", "info"),
                        ("password", PASSWORD),
                        ("scope", scope),
                    ],
                    basic,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let openid_only = token("openid").await;
    assert!(openid_only["id_token"].is_string());
    let access = openid_only["access_token"].as_str().expect("token");
    let get = app.get_with_bearer("/o/userinfo/", access).await;
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.headers()["cache-control"], "no-store");
    let claims: Value = get.json().await.expect("json");
    assert_eq!(
        claims,
        serde_json::json!({ "sub": user.id }),
        "openid alone: sub only"
    );

    let full = token("openid profile email").await;
    let access = full["access_token"].as_str().expect("token");
    // POST with the token in the body (RFC 6750 §2.2).
    let post: Value = app
        .api
        .post(app.url("/o/userinfo"))
        .form(&[("access_token", access)])
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(post["sub"], user.id);
    assert_eq!(post["email"], "info@example.com");
    assert_eq!(post["name"], "Test User");
    assert_eq!(post["preferred_username"], "info");
    assert_eq!(
        payload(full["id_token"].as_str().expect("id"))["sub"],
        post["sub"]
    );

    // Header and body at once: invalid_request.
    let both = app
        .api
        .post(app.url("/o/userinfo/"))
        .bearer_auth(access)
        .form(&[("access_token", access)])
        .send()
        .await
        .expect("userinfo");
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    // No token: 401 with a bare challenge.
    let none = app
        .api
        .get(app.url("/o/userinfo/"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .starts_with("Bearer"));
    // A token without openid, and a client-credentials token: 403 insufficient_scope.
    let plain = token("read").await;
    assert!(
        plain.get("id_token").is_none(),
        "no ID token without openid"
    );
    let (_, cc) = app
        .post_token(
            &[("grant_type", "client_credentials"), ("scope", "openid")],
            basic,
        )
        .await;
    for access in [&plain["access_token"], &cc["access_token"]] {
        let refused = app
            .api
            .get(app.url("/o/userinfo/"))
            .bearer_auth(access.as_str().expect("token"))
            .send()
            .await
            .expect("userinfo");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let body: Value = refused.json().await.expect("json");
        assert_eq!(body["error"], "insufficient_scope");
    }
    // A bad token: 401 invalid_token.
    let bad = app.get_with_bearer("/o/userinfo/", "not-a-token").await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn code_flow_refresh_tokens_need_offline_access_unless_the_client_always_gets_one() {
    let app = spawn_app().await;
    app.create_user("off").await;
    for (always, scope, expect_refresh) in [
        (false, "openid profile", false),
        (false, "openid profile offline_access", true),
        (true, "openid profile", true),
    ] {
        let (client, _) = app
            .register(&ClientSpec {
                scopes: vec!["openid profile offline_access".into()],
                always_issue_refresh_token: always,
                ..spec("public", &["authorization_code", "refresh_token"])
            })
            .await;
        let (code, verifier) = app.code_for(client.id(), "off", scope).await;
        let (status, body) = app
            .post_token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT_URI),
                    ("client_id", client.id()),
                    ("code_verifier", verifier.as_str()),
                ],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body.get("refresh_token").is_some(),
            expect_refresh,
            "always={always} scope={scope}: {body}"
        );
        assert!(body["id_token"].is_string());
    }
    // Without a scope parameter the client gets its allowed scopes minus openid and
    // offline_access, which must be asked for.
    let (client, secret) = app
        .register(&ClientSpec {
            scopes: vec!["openid profile offline_access".into()],
            ..spec("confidential", &["password", "refresh_token"])
        })
        .await;
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "off"),
                ("password", PASSWORD),
            ],
            Some((client.id(), secret.as_deref().expect("secret"))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "profile");
    assert!(body.get("id_token").is_none());
}

#[tokio::test]
async fn authorization_requests_may_be_posted() {
    let app = spawn_app().await;
    app.create_user("poster").await;
    let (client, _) = app
        .register(&ClientSpec {
            scopes: vec!["openid profile".into()],
            skip_authorization: true,
            ..spec("public", &["authorization_code"])
        })
        .await;
    app.login("poster", PASSWORD).await;
    let (_, challenge) = crate::helpers::pkce_pair();
    let response = app
        .browser
        .post(app.url("/o/authorize/"))
        .form(&[
            ("response_type", "code"),
            ("client_id", client.id()),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid"),
            ("state", "posted"),
            // Accepted and ignored (the pages are in English).
            ("ui_locales", "fr-CA en"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .expect("post");
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = response.headers()["location"].to_str().expect("ascii");
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert!(query_param(location, "code").is_some());
    assert_eq!(query_param(location, "state").as_deref(), Some("posted"));
}
