//! The login limits (issue 9, item 3): what counts, what is refused, and what an attacker cannot
//! do — over HTTP where the server sees 127.0.0.1, and through the accounts service where a
//! test needs several client addresses (the service takes the address as an argument).

use std::net::IpAddr;
use std::time::Duration;

use latchkey::accounts::{AccountError, LoginError};
use latchkey::audit::Actor;
use reqwest::StatusCode;
use secrecy::SecretString;

use crate::helpers::{spawn_app_with, spec, TestApp, PASSWORD};

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("an address"))
}

/// How many rate-limit counters exist.
async fn counters(app: &TestApp) -> i64 {
    app.services
        .db
        .read(|conn| latchkey::db::rate_limits::count(conn).map_err(latchkey::db::DbError::from))
        .await
        .expect("count")
}

/// The largest hit count of any counter.
async fn most_hits(app: &TestApp) -> i64 {
    app.services
        .db
        .read(|conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::rate_limits;
            rate_limits::table
                .select(diesel::dsl::max(rate_limits::hits))
                .first::<Option<i64>>(conn)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("max")
        .unwrap_or(0)
}

/// The password grant: (status, `Retry-After`).
async fn grant(
    app: &TestApp,
    client: &(String, String),
    username: &str,
    password: &str,
) -> (StatusCode, Option<u64>) {
    let response = app
        .api
        .post(app.url("/o/token/"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .expect("request");
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").parse().expect("seconds"));
    (response.status(), retry)
}

async fn login(app: &TestApp, login: &str, password: &str, from: &str) -> Result<(), LoginError> {
    app.services
        .accounts
        .check_login(login, SecretString::from(password), ip(from))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_burst_of_correct_logins_is_never_refused() {
    // Tight limits and two hashes at a time, so that most requests wait for a slot.
    let app = spawn_app_with(
        "[rate_limits]\nfailed_logins_per_account = 2\nfailed_logins_per_ip = 3\nfailed_logins_before_delay = 3\n[argon2]\nmax_concurrent = 2",
    )
    .await;
    app.create_user("kim").await;
    let client = app.password_client(&[]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = app
            .api
            .post(app.url("/o/token/"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[
                ("grant_type", "password"),
                ("username", "kim"),
                ("password", PASSWORD),
            ]);
        tasks.spawn(async move { request.send().await.expect("request").status() });
    }
    let statuses: Vec<StatusCode> = tasks.join_all().await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    // A right password is never counted: no counter exists at all.
    assert_eq!(counters(&app).await, 0);
    assert_eq!(app.audit_events("login.success").await.len(), 20);
}

#[tokio::test]
async fn refused_attempts_neither_count_nor_extend_the_lock() {
    let app = spawn_app_with("[rate_limits]\nfailed_logins_per_account = 2").await;
    app.create_user("lou").await;
    let client = app.password_client(&[]).await;
    for _ in 0..2 {
        assert_eq!(
            grant(&app, &client, "lou", "wrong guess").await.0,
            StatusCode::BAD_REQUEST
        );
    }
    // Locked for this address: guesses and the right password alike, and the end of the lock
    // never moves later.
    let mut waits = Vec::new();
    for password in [
        "wrong again",
        PASSWORD,
        "more",
        PASSWORD,
        "and more",
        "still",
    ] {
        let (status, retry) = grant(&app, &client, "lou", password).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        waits.push(retry.expect("Retry-After"));
    }
    assert!(waits.windows(2).all(|w| w[1] <= w[0]), "{waits:?}");
    // Nothing refused was counted: the counters stand at the two failures.
    assert_eq!(most_hits(&app).await, 2);
    let page = app.login("lou", PASSWORD).await;
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers().contains_key("retry-after"));
    // The sign-in page says the wait in words (issue 10 item 15), not in seconds.
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Too many failed attempts. Try again in ") && html.contains(" minute"),
        "{html}"
    );
    assert!(!html.contains(" seconds."), "{html}");
    assert_eq!(most_hits(&app).await, 2);
}

#[tokio::test]
async fn the_username_and_the_email_address_share_one_counter() {
    let app = spawn_app_with("[rate_limits]\nfailed_logins_per_account = 2").await;
    app.create_user("max").await;
    let client = app.password_client(&[]).await;
    assert_eq!(
        grant(&app, &client, "max", "guess one").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        grant(&app, &client, "MAX@example.com", "guess two").await.0,
        StatusCode::BAD_REQUEST
    );
    // Two guesses for one account, whatever name they used: the limit is reached.
    assert_eq!(
        grant(&app, &client, "max", PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        grant(&app, &client, "max@example.com", PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let locked = app.audit_events("login.locked").await;
    assert_eq!(locked.len(), 1, "the lock is recorded once");
}

#[tokio::test]
async fn failures_from_one_address_do_not_lock_the_owner_out_from_another() {
    let app = spawn_app_with(
        "[rate_limits]\nfailed_logins_per_account = 3\nfailed_logins_per_ip = 5\nfailed_logins_before_delay = 10",
    )
    .await;
    let ned = app.create_user("ned").await;
    let attacker = "203.0.113.7";
    for guess in ["a", "b", "c"] {
        assert!(matches!(
            login(&app, "ned", guess, attacker).await,
            Err(LoginError::InvalidCredentials)
        ));
    }
    // The attacker's address is locked for this account, even with the right password…
    assert!(matches!(
        login(&app, "ned", PASSWORD, attacker).await,
        Err(LoginError::Locked(_))
    ));
    // …and a stolen session on that address cannot confirm changes with guesses either.
    let err = app
        .services
        .accounts
        .confirm_password(
            &Actor::user(ned.id.clone(), ip(attacker)),
            &ned,
            SecretString::from(PASSWORD),
            "password_change",
        )
        .await
        .expect_err("locked");
    assert!(matches!(err, AccountError::Locked(_)), "{err:?}");
    // The owner signs in from elsewhere: another address, and over HTTP (127.0.0.1).
    login(&app, "ned", PASSWORD, "198.51.100.20")
        .await
        .expect("the owner signs in");
    login(&app, "ned@example.com", PASSWORD, "2001:db8:1:2::99")
        .await
        .expect("the owner signs in over IPv6");
    let page = app.login("ned", PASSWORD).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);

    // The attacker's address guessing at other accounts stops at its own limit (5 failures).
    app.create_user("ola").await;
    for guess in ["d", "e"] {
        assert!(matches!(
            login(&app, "ola", guess, attacker).await,
            Err(LoginError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        login(&app, "ola", "f", attacker).await,
        Err(LoginError::Locked(_))
    ));
    login(&app, "ola", PASSWORD, "198.51.100.21")
        .await
        .expect("ola signs in from her own address");
    // IPv6 addresses of one /64 are one client.
    for (n, guess) in ["g", "h", "i"].into_iter().enumerate() {
        assert!(matches!(
            login(&app, "ola", guess, &format!("2001:db8:aa:bb::{}", n + 1)).await,
            Err(LoginError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        login(&app, "ola", PASSWORD, "2001:db8:aa:bb::ffff").await,
        Err(LoginError::Locked(_))
    ));
}

#[tokio::test]
async fn distributed_guessing_is_slowed_with_a_growing_delay_but_never_locked() {
    let app = spawn_app_with(
        "[rate_limits]\nfailed_logins_per_account = 3\nfailed_logins_before_delay = 4\nlogin_delay_max_seconds = 2",
    )
    .await;
    app.create_user("pia").await;
    // Four addresses, one guess each: none reaches its own limit, the account reaches its
    // threshold.
    for n in 1..=4 {
        assert!(matches!(
            login(&app, "pia", "guess", &format!("192.0.2.{n}")).await,
            Err(LoginError::InvalidCredentials)
        ));
    }
    let wait = |result: Result<(), LoginError>| match result {
        Err(LoginError::Locked(retry)) => retry.0,
        other => panic!("expected a delay, got {other:?}"),
    };
    // Now every attempt, from anywhere, waits 1 s after the latest failure…
    assert_eq!(wait(login(&app, "pia", PASSWORD, "192.0.2.50").await), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        login(&app, "pia", "guess", "192.0.2.5").await,
        Err(LoginError::InvalidCredentials)
    ));
    // …then 2 s (doubled), and never more than the cap (2 s here, not 4)…
    assert_eq!(wait(login(&app, "pia", PASSWORD, "192.0.2.50").await), 2);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        login(&app, "pia", "guess", "192.0.2.6").await,
        Err(LoginError::InvalidCredentials)
    ));
    assert_eq!(wait(login(&app, "pia", PASSWORD, "192.0.2.50").await), 2);
    // …and once it has passed, the owner's right password works.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    login(&app, "pia", PASSWORD, "192.0.2.50")
        .await
        .expect("slowed down, not locked");
    let locked = app.audit_events("login.locked").await;
    assert_eq!(locked.len(), 1, "the slowdown is recorded once");
}

#[tokio::test]
async fn parallel_guesses_overshoot_by_at_most_the_hashes_in_flight() {
    let app = spawn_app_with(
        "[rate_limits]\nfailed_logins_per_account = 3\n[argon2]\nmax_concurrent = 2",
    )
    .await;
    app.create_user("noa").await;
    let client = app.password_client(&[]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let request = app
            .api
            .post(app.url("/o/token/"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[
                ("grant_type", "password"),
                ("username", "noa"),
                ("password", &format!("guess{i}")),
            ]);
        tasks.spawn(async move { request.send().await.expect("request").status() });
    }
    let statuses: Vec<StatusCode> = tasks.join_all().await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + refused, 16, "{statuses:?}");
    // limit − 1 + slots: at most two guesses can be between their check and their count.
    assert!((3..=4).contains(&checked), "{statuses:?}");
}

#[tokio::test]
async fn unknown_names_and_client_ids_leave_a_bounded_number_of_counters() {
    let app =
        spawn_app_with("[rate_limits]\nfailed_logins_per_ip = 5\nfailed_client_auth_per_ip = 5")
            .await;
    let client = app.password_client(&[]).await;
    let mut statuses = Vec::new();
    for n in 0..40 {
        statuses.push(grant(&app, &client, &format!("nobody{n}"), "guess").await.0);
    }
    assert!(statuses[..5].iter().all(|s| *s == StatusCode::BAD_REQUEST));
    assert!(statuses[5..]
        .iter()
        .all(|s| *s == StatusCode::TOO_MANY_REQUESTS));
    // The address's counter, and two per name it could still try (this address, everywhere).
    let after_names = counters(&app).await;
    assert!(after_names <= 1 + 2 * 5, "{after_names} counters");

    for n in 0..40 {
        let (status, _) = app
            .post_token(
                &[("grant_type", "client_credentials")],
                Some((&format!("invented-{n}"), "x")),
            )
            .await;
        let expected = if n < 5 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, expected, "attempt {n}");
    }
    // Invented client_ids get no counter of their own: only the address's.
    assert_eq!(counters(&app).await, after_names + 1);
}

#[tokio::test]
async fn client_authentication_failures_are_limited_per_address_and_the_right_secret_still_works() {
    let app = spawn_app_with(
        "[rate_limits]\nfailed_client_auth_per_ip = 3\nfailed_client_auth_per_client = 10",
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (client, secret) = app
            .register(&spec("confidential", &["client_credentials"]))
            .await;
        clients.push((client.id().to_owned(), secret.expect("secret")));
    }
    // One failure for each of three clients: the address's limit.
    for (id, _) in &clients {
        let (status, _) = app
            .post_token(&[("grant_type", "client_credentials")], Some((id, "wrong")))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let response = app
        .api
        .post(app.url("/o/introspect/"))
        .basic_auth(&clients[0].0, Some("wrong"))
        .form(&[("token", "x")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let (status, _) = app
        .post_oauth(
            "/o/revoke_token/",
            &[("token", "x")],
            Some((&clients[1].0, "wrong")),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A correct secret is never refused.
    for (id, secret) in &clients {
        let (status, body) = app
            .post_token(&[("grant_type", "client_credentials")], Some((id, secret)))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Recorded up to the limit only.
    assert_eq!(app.audit_events("client_auth.failure").await.len(), 3);
}
