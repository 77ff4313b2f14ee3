//! Signing in with Google (issue 11) against the wiremock fake of `google_fake.rs`: discovery,
//! the code exchange, the ID token verified against the JWKS (every way an ID token can be
//! wrong is refused with a readable page and nothing created), UserInfo, Google's hosted
//! domains, a generic provider's required claims.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::google_fake::{
    hs256, now, unsigned, userinfo_of, FakeGoogle, TestKey, ANDROID_CLIENT_ID, CLIENT_ID,
    CLIENT_SECRET, FOREIGN_CLIENT_ID,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{location, query_param, spawn_app_with, TestApp, Visitor};

/// A Latchkey whose `[upstream.<id>]` of `kind` is the fake (plus `extra` settings in the
/// table); Latchkey's Android app is an accepted audience.
pub async fn rp_of(google: &FakeGoogle, id: &str, kind: &str, extra: &str) -> TestApp {
    spawn_app_with(&format!(
        r#"
[upstream.{id}]
kind = "{kind}"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
accepted_audiences = ["{CLIENT_ID}", "{ANDROID_CLIENT_ID}"]
{tokeninfo}
{extra}
"#,
        issuer = google.issuer(),
        tokeninfo = if kind == "google" {
            format!("tokeninfo_endpoint = \"{}/tokeninfo\"", google.issuer())
        } else {
            String::new()
        },
    ))
    .await
}

async fn google_rp(google: &FakeGoogle, extra: &str) -> TestApp {
    rp_of(google, "google", "google", extra).await
}

/// Starts a sign-in at provider `id` in `visitor`, lets `token_for` make the ID token from the
/// nonce the RP sent, has the fake answer the code with it, and comes back to the callback
/// as Google would. Returns the callback's answer.
pub async fn sign_in(
    google: &FakeGoogle,
    visitor: &Visitor,
    id: &str,
    token_for: impl FnOnce(&str) -> (String, Value),
) -> reqwest::Response {
    sign_in_with(google, visitor, id, "", token_for).await
}

/// [`sign_in`], the callback's query with `more` (e.g. `&iss=…`).
pub async fn sign_in_with(
    google: &FakeGoogle,
    visitor: &Visitor,
    id: &str,
    more: &str,
    token_for: impl FnOnce(&str) -> (String, Value),
) -> reqwest::Response {
    sign_in_from(google, visitor, id, "", more, token_for).await
}

/// [`sign_in_with`], started with `?next=` `next` (URL-encoded here).
async fn sign_in_from(
    google: &FakeGoogle,
    visitor: &Visitor,
    id: &str,
    next: &str,
    more: &str,
    token_for: impl FnOnce(&str) -> (String, Value),
) -> reqwest::Response {
    let start = visitor
        .get_response(&format!(
            "/accounts/upstream/{id}/login/?next={}",
            urlencode(next)
        ))
        .await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = location(&start);
    assert!(authorize.starts_with(&format!("{}/o/oauth2/v2/auth?", google.issuer())));
    let state = query_param(&authorize, "state").expect("state");
    let nonce = query_param(&authorize, "nonce").expect("nonce");
    let (id_token, userinfo) = token_for(&nonce);
    let code = format!("4/{}", uuid::Uuid::new_v4().simple());
    google.accept_code(&code, &id_token, &userinfo);
    visitor
        .get_response(&format!(
            "/accounts/upstream/{id}/callback/?code={}&state={state}{more}",
            urlencode(&code)
        ))
        .await
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Signs `claims` (given the nonce) with the fake's key; UserInfo says the same person.
fn signed<'a>(
    google: &'a FakeGoogle,
    edit: impl FnOnce(&mut Value) + 'a,
) -> impl FnOnce(&str) -> (String, Value) + 'a {
    move |nonce| {
        let mut claims = google.claims(Some(nonce));
        edit(&mut claims);
        (google.sign(&claims), userinfo_of(&claims))
    }
}

async fn no_account(rp: &TestApp) {
    assert!(
        rp.services
            .accounts
            .find_by_login("ann@gmail.example")
            .await
            .expect("db")
            .is_none(),
        "no account was made"
    );
}

/// The callback answered a readable refusal page.
async fn refused(response: reqwest::Response, case: &str) -> String {
    let status = response.status();
    let html = response.text().await.expect("page");
    assert!(status.is_client_error(), "{case}: {status} {html}");
    assert!(
        html.contains("<html") || html.contains("<!DOCTYPE"),
        "{case}: a page"
    );
    assert!(html.contains(r#"href="/""#), "{case}: a way back: {html}");
    html
}

#[tokio::test]
async fn a_google_user_signs_in_and_gets_an_account() {
    let google = FakeGoogle::start().await;
    let rp = google_rp(&google, "").await;
    let visitor = rp.anonymous_visitor();
    let (_, page) = visitor.get("/accounts/login/").await;
    assert!(page.contains("Sign in with Google"), "{page}");

    let start = visitor
        .get_response("/accounts/upstream/google/login/?next=/account/")
        .await;
    let authorize = location(&start);
    assert_eq!(
        query_param(&authorize, "client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        query_param(&authorize, "scope").as_deref(),
        Some("openid email profile")
    );
    assert_eq!(
        query_param(&authorize, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&authorize, "redirect_uri"),
        Some(format!("{}/accounts/upstream/google/callback/", rp.address))
    );
    let state = query_param(&authorize, "state").expect("state");
    let nonce = query_param(&authorize, "nonce").expect("nonce");
    let claims = google.claims(Some(&nonce));
    google.accept_code("4/good", &google.sign(&claims), &userinfo_of(&claims));
    let callback = visitor
        .get_response(&format!(
            "/accounts/upstream/google/callback/?code=4%2Fgood&state={state}"
        ))
        .await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&callback), "/account/");
    assert!(visitor.signed_in().await);

    let user = rp
        .services
        .accounts
        .find_by_login("ann@gmail.example")
        .await
        .expect("db")
        .expect("an account for Ann");
    assert_eq!(user.username, "ann", "named after the address's local part");
    assert!(user.email_verified, "Google verified the address");
    assert_eq!(
        (user.first_name.as_str(), user.last_name.as_str()),
        ("Ann", "Example")
    );
    let links = rp.services.upstream.links_of(&user.id).await.expect("db");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].provider_id, "google");
    assert_eq!(links[0].subject, "110169484474386276334");
    assert_eq!(links[0].issuer, google.issuer());
    // UserInfo was read with the access token of this exchange.
    let userinfo = google
        .server
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .filter(|r| r.url.path() == "/v1/userinfo")
        .collect::<Vec<_>>();
    assert_eq!(userinfo.len(), 1);
    assert_eq!(
        userinfo[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer ya29.4/good")
    );

    // Several audiences, with Latchkey as the authorized party: accepted (the link signs in).
    let again = rp.anonymous_visitor();
    let response = sign_in(
        &google,
        &again,
        "google",
        signed(&google, |c| {
            c["aud"] = json!([CLIENT_ID, ANDROID_CLIENT_ID]);
        }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(again.signed_in().await);
}

#[tokio::test]
async fn every_bad_id_token_is_refused_with_a_page_and_nothing_created() {
    let google = FakeGoogle::start().await;
    let rp = google_rp(&google, "").await;
    let stranger = TestKey::generate("key-1");
    let kid = google.key.kid.clone();
    let public_pem = google.key.public_pem.clone();
    type Case<'a> = (&'a str, Box<dyn FnOnce(&str) -> (String, Value) + 'a>);
    let cases: Vec<Case<'_>> = vec![
        (
            "a signature by another key under the same kid",
            Box::new(|nonce: &str| {
                let claims = google.claims(Some(nonce));
                (stranger.sign(&claims), userinfo_of(&claims))
            }),
        ),
        (
            "another aud",
            Box::new(signed(&google, |c| c["aud"] = json!(FOREIGN_CLIENT_ID))),
        ),
        (
            "several audiences, azp another accepted app",
            Box::new(signed(&google, |c| {
                c["aud"] = json!([CLIENT_ID, ANDROID_CLIENT_ID]);
                c["azp"] = json!(ANDROID_CLIENT_ID);
            })),
        ),
        (
            "several audiences and no azp",
            Box::new(signed(&google, |c| {
                c["aud"] = json!([CLIENT_ID, ANDROID_CLIENT_ID]);
                c.as_object_mut().expect("object").remove("azp");
            })),
        ),
        (
            "several audiences, one untrusted",
            Box::new(signed(&google, |c| {
                c["aud"] = json!([CLIENT_ID, FOREIGN_CLIENT_ID]);
            })),
        ),
        (
            "azp another app",
            Box::new(signed(&google, |c| c["azp"] = json!(FOREIGN_CLIENT_ID))),
        ),
        (
            "another iss",
            Box::new(signed(&google, |c| {
                c["iss"] = json!("https://evil.example")
            })),
        ),
        (
            "Google's issuer where the fake's is expected",
            Box::new(signed(&google, |c| {
                c["iss"] = json!("https://accounts.google.com");
            })),
        ),
        (
            "an expired exp",
            Box::new(signed(&google, |c| {
                c["iat"] = json!(now() - 7200);
                c["exp"] = json!(now() - 3600);
            })),
        ),
        (
            "another nonce",
            Box::new(signed(&google, |c| c["nonce"] = json!("not-the-nonce"))),
        ),
        (
            "no nonce",
            Box::new(signed(&google, |c| {
                c.as_object_mut().expect("object").remove("nonce");
            })),
        ),
        (
            "alg none",
            Box::new(|nonce: &str| {
                let claims = google.claims(Some(nonce));
                (unsigned(&claims), userinfo_of(&claims))
            }),
        ),
        (
            "HS256 keyed with the client secret",
            Box::new(|nonce: &str| {
                let claims = google.claims(Some(nonce));
                (
                    hs256(CLIENT_SECRET.as_bytes(), &kid, &claims),
                    userinfo_of(&claims),
                )
            }),
        ),
        (
            "HS256 keyed with the public key",
            Box::new(|nonce: &str| {
                let claims = google.claims(Some(nonce));
                (
                    hs256(public_pem.as_bytes(), &kid, &claims),
                    userinfo_of(&claims),
                )
            }),
        ),
        (
            "UserInfo for another subject",
            Box::new(|nonce: &str| {
                let claims = google.claims(Some(nonce));
                let mut other = userinfo_of(&claims);
                other["sub"] = json!("someone-else");
                (google.sign(&claims), other)
            }),
        ),
    ];
    for (case, token_for) in cases {
        let response = sign_in(&google, &rp.anonymous_visitor(), "google", token_for).await;
        let html = refused(response, case).await;
        assert!(html.contains("Google"), "{case}: {html}");
        no_account(&rp).await;
    }
    assert!(rp.audit_events("upstream.login").await.is_empty());
}

#[tokio::test]
async fn googles_bare_issuer_spelling_is_accepted_for_google_only() {
    let google = FakeGoogle::start().await;
    let bare = |c: &mut Value| c["iss"] = json!("accounts.google.com");
    let rp = google_rp(&google, "").await;
    let visitor = rp.anonymous_visitor();
    let response = sign_in(&google, &visitor, "google", signed(&google, bare)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(visitor.signed_in().await);

    let generic = rp_of(&google, "corp", "oidc", "").await;
    let response = sign_in(
        &google,
        &generic.anonymous_visitor(),
        "corp",
        signed(&google, bare),
    )
    .await;
    refused(response, "the bare spelling at a generic provider").await;
    no_account(&generic).await;
}

#[tokio::test]
async fn hosted_domains_admit_their_accounts_only() {
    let google = FakeGoogle::start().await;
    let rp = google_rp(
        &google,
        r#"allowed_hosted_domains = ["corp.example", "Lab.Example"]"#,
    )
    .await;
    for (case, hd) in [
        ("another organisation", Some("other.example")),
        ("a personal account", None),
    ] {
        let response = sign_in(
            &google,
            &rp.anonymous_visitor(),
            "google",
            signed(&google, |c| {
                if let Some(hd) = hd {
                    c["hd"] = json!(hd);
                }
            }),
        )
        .await;
        let html = refused(response, case).await;
        assert!(html.contains("allowed organisation"), "{case}: {html}");
        no_account(&rp).await;
    }
    // UserInfo saying otherwise does not count: `hd` is read from the ID token.
    let response = sign_in(&google, &rp.anonymous_visitor(), "google", |nonce| {
        let claims = google.claims(Some(nonce));
        let mut info = userinfo_of(&claims);
        info["hd"] = json!("corp.example");
        (google.sign(&claims), info)
    })
    .await;
    refused(response, "hd in UserInfo only").await;

    let visitor = rp.anonymous_visitor();
    let response = sign_in(
        &google,
        &visitor,
        "google",
        signed(&google, |c| c["hd"] = json!("lab.example")),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "an allowed domain"
    );
    assert!(visitor.signed_in().await);

    // One allowed domain is also hinted at the authorization request.
    let single = google_rp(&google, r#"allowed_hosted_domains = ["corp.example"]"#).await;
    let start = single
        .anonymous_visitor()
        .get_response("/accounts/upstream/google/login/")
        .await;
    assert_eq!(
        query_param(&location(&start), "hd").as_deref(),
        Some("corp.example")
    );
}

#[tokio::test]
async fn required_claims_admit_only_those_who_have_them() {
    let google = FakeGoogle::start().await;
    let rp = rp_of(
        &google,
        "corp",
        "oidc",
        "[upstream.corp.required_claims]\ngroups = \"staff\"",
    )
    .await;
    for (case, groups) in [
        ("another group", Some(json!(["interns"]))),
        ("a string that is not the value", Some(json!("staffers"))),
        ("no groups at all", None),
    ] {
        let response = sign_in(
            &google,
            &rp.anonymous_visitor(),
            "corp",
            signed(&google, |c| {
                if let Some(groups) = groups {
                    c["groups"] = groups;
                }
            }),
        )
        .await;
        let html = refused(response, case).await;
        assert!(html.contains("lacks the required groups"), "{case}: {html}");
        no_account(&rp).await;
    }
    // In the ID token, or only in UserInfo: admitted.
    let visitor = rp.anonymous_visitor();
    let response = sign_in(
        &google,
        &visitor,
        "corp",
        signed(&google, |c| c["groups"] = json!(["interns", "staff"])),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(visitor.signed_in().await);
    let bob = rp.anonymous_visitor();
    let response = sign_in(&google, &bob, "corp", |nonce| {
        let mut claims = google.claims(Some(nonce));
        claims["sub"] = json!("bob-subject");
        claims["email"] = json!("bob@gmail.example");
        let mut info = userinfo_of(&claims);
        info["groups"] = json!("staff");
        (google.sign(&claims), info)
    })
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(bob.signed_in().await);
}

#[tokio::test]
async fn no_account_is_made_from_an_address_google_has_not_verified() {
    let google = FakeGoogle::start().await;
    let rp = google_rp(&google, "").await;
    for unverified in [json!(false), json!("false"), Value::Null] {
        let response = sign_in(
            &google,
            &rp.anonymous_visitor(),
            "google",
            signed(&google, |c| c["email_verified"] = unverified.clone()),
        )
        .await;
        let html = refused(response, "email_verified false").await;
        assert!(
            html.contains("has not verified your email address"),
            "{html}"
        );
        no_account(&rp).await;
    }
    // Google's string "true" counts as verified.
    let response = sign_in(
        &google,
        &rp.anonymous_visitor(),
        "google",
        signed(&google, |c| c["email_verified"] = json!("true")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_forged_kids_fetch_nothing() {
    let google = FakeGoogle::start().await;
    let rp = google_rp(&google, "").await;
    let first = rp.anonymous_visitor();
    let response = sign_in(&google, &first, "google", signed(&google, |_| {})).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(google.requests_to("/oauth2/v3/certs").await, 1);

    // Google rotates its key: the next ID token names a kid the RP has not seen.
    let rotated = google.rotate("key-2");
    let second = rp.anonymous_visitor();
    let response = sign_in(&google, &second, "google", |nonce| {
        let claims = google.claims(Some(nonce));
        (rotated.sign(&claims), userinfo_of(&claims))
    })
    .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the new key was fetched"
    );
    assert!(second.signed_in().await);
    assert_eq!(google.requests_to("/oauth2/v3/certs").await, 2);

    // Unknown kids right after: refused, and no more fetches (at most one a minute).
    for kid in ["key-3", "forged"] {
        let response = sign_in(&google, &rp.anonymous_visitor(), "google", |nonce| {
            let claims = google.claims(Some(nonce));
            (rotated.sign_as(kid, &claims), userinfo_of(&claims))
        })
        .await;
        let html = refused(response, kid).await;
        assert!(html.contains("key the provider does not publish"), "{html}");
    }
    assert_eq!(google.requests_to("/oauth2/v3/certs").await, 2);
    // The rotated key still works from the keys in hand.
    let response = sign_in(&google, &rp.anonymous_visitor(), "google", |nonce| {
        let claims = google.claims(Some(nonce));
        (rotated.sign(&claims), userinfo_of(&claims))
    })
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_failed_discovery_is_remembered_for_a_while() {
    let down = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .named("one discovery call for both sign-in starts")
        .mount(&down)
        .await;
    let rp = spawn_app_with(&format!(
        r#"
[upstream.google]
kind = "google"
issuer = "{}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
"#,
        down.uri()
    ))
    .await;
    for _ in 0..2 {
        let response = rp
            .anonymous_visitor()
            .get_response("/accounts/upstream/google/login/")
            .await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let html = response.text().await.expect("page");
        assert!(html.contains("Google could not be reached"), "{html}");
        assert!(html.contains("sign in with your password"), "{html}");
    }
    down.verify().await;
}

#[tokio::test]
async fn a_callback_naming_another_issuer_is_refused() {
    let google = FakeGoogle::start().await;
    let rp = google_rp(&google, "").await;
    // RFC 9207 §2.4: a foreign `iss` is refused (the fake does not announce `iss`, so none is
    // also fine).
    let foreign = format!("&iss={}", urlencode("https://evil.example"));
    let response = sign_in_with(
        &google,
        &rp.anonymous_visitor(),
        "google",
        &foreign,
        signed(&google, |_| {}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    refused(response, "a foreign iss").await;
    no_account(&rp).await;
    let error_answer = rp
        .anonymous_visitor()
        .get_response(&format!(
            "/accounts/upstream/google/callback/?error=access_denied&state=x{foreign}"
        ))
        .await;
    assert_eq!(error_answer.status(), StatusCode::BAD_REQUEST);

    let own = format!("&iss={}", urlencode(&google.issuer()));
    let visitor = rp.anonymous_visitor();
    let response = sign_in_with(&google, &visitor, "google", &own, signed(&google, |_| {})).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "its own issuer");
    assert!(visitor.signed_in().await);
}

#[tokio::test]
async fn a_provider_announcing_rfc_9207_must_name_itself() {
    let google =
        FakeGoogle::start_with(json!({"authorization_response_iss_parameter_supported": true}))
            .await;
    let rp = google_rp(&google, "").await;
    let response = sign_in(
        &google,
        &rp.anonymous_visitor(),
        "google",
        signed(&google, |_| {}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "no iss");
    refused(response, "no iss").await;
    no_account(&rp).await;

    let own = format!("&iss={}", urlencode(&google.issuer()));
    let visitor = rp.anonymous_visitor();
    let response = sign_in_with(&google, &visitor, "google", &own, signed(&google, |_| {})).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(visitor.signed_in().await);
}

/// A visitor who opened an authorization request of a client at `rp` with `extra` (e.g.
/// `&prompt=login`) and was sent to the sign-in page: the visitor and the page's `next`.
async fn at_sign_in_for(rp: &TestApp, extra: &str) -> (Visitor, String) {
    let (client, _) = rp
        .register(&crate::helpers::spec("public", &["authorization_code"]))
        .await;
    let (_, challenge) = crate::helpers::pkce_pair();
    let url = format!(
        "{}{extra}",
        rp.authorize_url(client.id(), "openid", &challenge, "st")
    );
    let visitor = rp.anonymous_visitor();
    let response = visitor.client.get(&url).send().await.expect("authorize");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let login = rp.url(&location(&response));
    let next = query_param(&login, "next").expect("next");
    assert!(
        !next.contains("prompt=login"),
        "the resumed request: {next}"
    );
    (visitor, next)
}

#[tokio::test]
async fn a_fresh_login_the_application_asked_for_is_asked_of_an_openid_connect_provider() {
    let google = FakeGoogle::start().await;
    let rp = rp_of(&google, "corp", "oidc", "").await;
    // The authorization request says prompt=login; the sign-in page's `next` no longer does,
    // but the sign-in through the provider still asks it for a fresh login.
    let (visitor, next) = at_sign_in_for(&rp, "&prompt=login").await;
    let start = visitor
        .get_response(&format!(
            "/accounts/upstream/corp/login/?next={}",
            urlencode(&next)
        ))
        .await;
    let authorize = location(&start);
    assert_eq!(query_param(&authorize, "prompt").as_deref(), Some("login"));
    assert_eq!(query_param(&authorize, "max_age").as_deref(), Some("0"));
    let (_, next_max_age) = at_sign_in_for(&rp, "&max_age=600").await;
    assert!(!next_max_age.contains("max_age"), "{next_max_age}");
    // OIDC Core §3.1.2.1: with max_age sent, the ID token must say when the user
    // authenticated, and that must be now, not an hour ago.
    for (case, auth_time) in [
        ("no auth_time", None),
        ("an old sign-in", Some(now() - 3600)),
    ] {
        let (visitor, next) = at_sign_in_for(&rp, "&prompt=login").await;
        let response = sign_in_from(
            &google,
            &visitor,
            "corp",
            &next,
            "",
            signed(&google, move |c| {
                if let Some(t) = auth_time {
                    c["auth_time"] = json!(t);
                }
            }),
        )
        .await;
        let html = refused(response, case).await;
        assert!(html.contains("asked for a fresh"), "{case}: {html}");
        no_account(&rp).await;
    }
    let (visitor, next) = at_sign_in_for(&rp, "&max_age=600").await;
    let response = sign_in_from(
        &google,
        &visitor,
        "corp",
        &next,
        "",
        signed(&google, |c| c["auth_time"] = json!(now() - 300)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), next);

    // Google knows no prompt=login: nothing is passed on to it, and no auth_time is asked.
    let google_rp = google_rp(&google, "").await;
    let (visitor, next) = at_sign_in_for(&google_rp, "&prompt=login").await;
    let start = visitor
        .get_response(&format!(
            "/accounts/upstream/google/login/?next={}",
            urlencode(&next)
        ))
        .await;
    let authorize = location(&start);
    assert_eq!(query_param(&authorize, "prompt"), None);
    assert_eq!(query_param(&authorize, "max_age"), None);
}

/// A provider whose issuer is `https://idp.test` (a remote host), and a client that reaches
/// `idp.test` at `fake` (on loopback) without DNS: discovery as this server would do it for a
/// remote issuer, with the fake answering.
async fn remote_issuer_at(
    fake: &MockServer,
) -> (TestApp, latchkey::config::UpstreamProvider, reqwest::Client) {
    let rp = spawn_app_with(
        "[upstream.corp]\nkind = \"oidc\"\nissuer = \"https://idp.test\"\nclient_id = \"c\"\nclient_secret = \"s\"",
    )
    .await;
    let mut provider = rp
        .services
        .upstream
        .provider("corp")
        .expect("the provider")
        .as_ref()
        .clone();
    // Plain http, so the fake needs no certificate; the host is what the rule looks at.
    provider.issuer = Some(format!("http://idp.test:{}", fake.address().port()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("idp.test", *fake.address())
        .build()
        .expect("a client");
    (rp, provider, http)
}

#[tokio::test]
async fn a_remote_issuers_discovery_cannot_point_this_server_at_this_machine() {
    let key = TestKey::generate("k");
    // Each document names one endpoint this server would call on loopback: the JWKS (fetched
    // at once), UserInfo (sent the user's bearer token), the token endpoint (sent the client
    // secret and the code).
    for (endpoint, internal) in [
        ("jwks_uri", "http://127.0.0.1:{port}/certs"),
        ("userinfo_endpoint", "http://localhost:{port}/userinfo"),
        ("token_endpoint", "http://[::1]:{port}/token"),
    ] {
        let fake = MockServer::start().await;
        let port = fake.address().port();
        let issuer = format!("http://idp.test:{port}");
        let mut document = json!({
            "issuer": issuer,
            "authorization_endpoint": "https://idp.test/authorize",
            "token_endpoint": "https://idp.test/token",
            "userinfo_endpoint": "https://idp.test/userinfo",
            "jwks_uri": format!("http://127.0.0.1:{port}/certs"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        // The JWKS must be fetchable over plain http for discovery to succeed at all, so it is
        // on loopback in every document; the endpoints are checked token, UserInfo, JWKS, and
        // the refusal names the one under test.
        let internal = internal.replace("{port}", &port.to_string());
        document[endpoint] = json!(internal);
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&document))
            .mount(&fake)
            .await;
        Mock::given(method("GET"))
            .and(path("/certs"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "keys": [key.jwk] })))
            .mount(&fake)
            .await;
        let (_rp, provider, http) = remote_issuer_at(&fake).await;
        let clients = latchkey::upstream::client::HttpClients {
            plain: http.clone(),
            guarded: http,
        };
        let answer = latchkey::upstream::oidc::discover(&clients, &provider).await;
        let Err(latchkey::upstream::UpstreamError::Unreachable(message)) = answer else {
            panic!("{endpoint}: a discovery naming {internal} was accepted");
        };
        assert!(message.contains("will not call"), "{endpoint}: {message}");
        assert!(message.contains(&internal), "{endpoint}: {message}");
        // Nothing was fetched from the refused document.
        let fetched: Vec<String> = fake
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| r.url.path().to_owned())
            .collect();
        assert_eq!(fetched, ["/.well-known/openid-configuration"], "{endpoint}");
    }
}

#[tokio::test]
async fn a_sign_in_that_sent_no_nonce_finishes_nothing_at_an_openid_connect_provider() {
    // The provider `corp` was Discord (no nonce) when the sign-in began and is an OpenID
    // Connect provider when the browser comes back: two servers sharing the secret key (so
    // each reads the other's session cookie, which the browser sends to both loopback ports)
    // stand for the restart in between.
    let google = FakeGoogle::start().await;
    let before = spawn_app_with(&format!(
        r#"
[upstream.corp]
kind = "discord"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
authorization_endpoint = "{issuer}/o/oauth2/v2/auth"
"#,
        issuer = google.issuer()
    ))
    .await;
    let after = rp_of(&google, "corp", "oidc", "").await;
    let visitor = before.anonymous_visitor();
    let start = visitor.get_response("/accounts/upstream/corp/login/").await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = location(&start);
    let state = query_param(&authorize, "state").expect("state");
    assert_eq!(
        query_param(&authorize, "nonce"),
        None,
        "Discord gets no nonce"
    );
    // The provider answers the code with a good ID token for this client, without a nonce
    // (as any of its ID tokens for Latchkey, replayed or injected, could be).
    let code = format!("4/{}", uuid::Uuid::new_v4().simple());
    let claims = google.claims(None);
    google.accept_code(&code, &google.sign(&claims), &userinfo_of(&claims));
    let response = visitor
        .client
        .get(after.url(&format!(
            "/accounts/upstream/corp/callback/?code={}&state={state}",
            urlencode(&code)
        )))
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.expect("a page");
    assert!(html.contains("Sign-in not finished"), "{html}");
    no_account(&after).await;
    // Nothing reached the provider's token endpoint: the code is still unused.
    assert_eq!(google.requests_to("/token").await, 0);
}
