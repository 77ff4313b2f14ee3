//! Email through real SMTP: an SMTP server inside the test process (mailin-embedded on
//! 127.0.0.1 and a free port) receives what the app sends with `[email] transport = "smtp"`.
//!
//! Only `smtp_security = "none"` is tested: STARTTLS and implicit TLS need a certificate the
//! client trusts for the server's name, which a test cannot make without bundling a CA and a
//! way to tell lettre to trust it.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mailin_embedded::{response, Handler, Response, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, ReceivedEmail, TestApp, PASSWORD};

const NEW_PASSWORD: &str = "sent by real mail";

/// Collects every message the server accepts, as raw RFC 5322 bytes.
#[derive(Clone, Default)]
struct Collector {
    /// Messages received so far (shared by every connection's clone).
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The message being received on this connection.
    current: Vec<u8>,
}

impl Handler for Collector {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.current.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = std::mem::take(&mut self.current);
        if let Ok(mut received) = self.received.lock() {
            received.push(message);
        }
        response::OK
    }
}

/// An SMTP server on 127.0.0.1:`port` (a free port when 0) running on its own threads for the
/// rest of the test process; returns the port and the messages it receives.
fn start_smtp_server(port: u16) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the SMTP port");
    let port = listener.local_addr().expect("address").port();
    let collector = Collector::default();
    let received = Arc::clone(&collector.received);
    let mut server = Server::new(collector);
    server
        .with_name("smtp.test")
        .with_num_threads(2)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        if let Err(e) = server.serve() {
            eprintln!("the test SMTP server stopped: {e}");
        }
    });
    (port, received)
}

fn smtp_settings(port: u16) -> String {
    format!(
        r#"
[email]
transport = "smtp"
smtp_host = "127.0.0.1"
smtp_port = {port}
smtp_security = "none"
smtp_timeout_seconds = 5
from = "Latchkey <no-reply@latchkey.test>"
[accounts]
resend_cooldown_seconds = 1
"#
    )
}

/// Waits (at most 10 s) for `count` messages.
async fn wait_for_messages(
    received: &Arc<Mutex<Vec<Vec<u8>>>>,
    count: usize,
) -> Vec<ReceivedEmail> {
    for _ in 0..200 {
        let messages: Vec<Vec<u8>> = received.lock().expect("lock").clone();
        if messages.len() >= count {
            return messages.iter().map(|m| ReceivedEmail::parse(m)).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {count} messages through SMTP");
}

async fn ask_for_reset(app: &TestApp, email: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let response = app
        .api
        .post(app.url("/api/password-reset/"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("request");
    let took = started.elapsed();
    let status = response.status();
    (status, response.json().await.expect("json"), took)
}

#[tokio::test]
async fn a_reset_link_arrives_through_smtp_and_works() {
    let (port, received) = start_smtp_server(0);
    let app = spawn_app_with(&smtp_settings(port)).await;
    app.create_user("sam").await;

    let (status, body, _) = ask_for_reset(&app, "sam@example.com").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "status": "sent" }))
    );
    let email = wait_for_messages(&received, 1).await.remove(0);
    assert!(email.to.contains("sam@example.com"), "{}", email.to);
    assert_eq!(email.subject, "Reset your password");
    let link = email
        .link_starting_with(&app.url("/accounts/password-reset-confirm/"))
        .unwrap_or_else(|| panic!("a link in {}", email.text));
    assert!(email.html.contains(&link));

    // Follow the link in a browser and set the new password.
    let path = link.trim_start_matches(&app.address).to_owned();
    let visitor = app.anonymous_visitor();
    let response = visitor
        .submit(
            &path,
            &path,
            &[
                ("password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.try_login("sam", NEW_PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.try_login("sam", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );

    let notice = wait_for_messages(&received, 2).await.remove(1);
    assert_eq!(notice.subject, "Your password was changed");
    assert!(notice.to.contains("sam@example.com"));
}

/// Error events of the reset module, recorded by a global subscriber (installed once, unless
/// `TEST_LOG` asks for the helpers' log output instead).
fn captured_errors() -> Option<&'static Mutex<Vec<String>>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    struct Capture(&'static Mutex<Vec<String>>);
    struct Fields(String);
    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let meta = event.metadata();
            if *meta.level() == tracing::Level::ERROR
                && meta.target().starts_with("latchkey::accounts::reset")
            {
                let mut fields = Fields(String::new());
                event.record(&mut fields);
                if let Ok(mut lines) = self.0.lock() {
                    lines.push(fields.0);
                }
            }
        }
    }

    static LINES: OnceLock<Option<&'static Mutex<Vec<String>>>> = OnceLock::new();
    *LINES.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            return None;
        }
        let lines: &'static Mutex<Vec<String>> = Box::leak(Box::default());
        tracing_subscriber::registry()
            .with(Capture(lines))
            .try_init()
            .expect("no other global subscriber without TEST_LOG");
        Some(lines)
    })
}

#[tokio::test]
async fn a_send_failure_is_logged_answers_the_same_and_the_user_can_ask_again() {
    let errors = captured_errors();
    // A port with nothing listening: the connection is refused.
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address").port()
    };
    let app = spawn_app_with(&smtp_settings(port)).await;
    let tom = app.create_user("tom").await;

    let (status, body, _) = ask_for_reset(&app, "tom@example.com").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "status": "sent" }))
    );
    // The request is recorded; the failed send only logged (without the link).
    for _ in 0..200 {
        if !app
            .audit_events("password_reset.requested")
            .await
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.audit_events("password_reset.requested").await.len(), 1);
    if let Some(errors) = errors {
        let mut logged = None;
        for _ in 0..200 {
            logged = errors
                .lock()
                .expect("lock")
                .iter()
                .find(|l| l.contains(&tom.id))
                .cloned();
            if logged.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let logged = logged.expect("the failure is logged");
        assert!(logged.contains("could not be sent"), "{logged}");
        assert!(
            !logged.contains("password-reset-confirm"),
            "no link in the log: {logged}"
        );
    }

    // Nothing was lost: once the mail server is up, asking again delivers a working link.
    let (_, received) = start_smtp_server(port);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = ask_for_reset(&app, "tom@example.com").await;
    assert_eq!(status, StatusCode::OK);
    let email = wait_for_messages(&received, 1).await.remove(0);
    let link = email
        .link_starting_with(&app.url("/accounts/password-reset-confirm/"))
        .expect("a link");
    let path = link
        .trim_start_matches(&app.address)
        .replacen("/accounts/", "/api/", 1);
    let response = app
        .api
        .post(app.url(&path))
        .json(&json!({ "password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD }))
        .send()
        .await
        .expect("confirm");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_answer_does_not_wait_for_a_slow_mail_server() {
    // A listener that never accepts: the connection is made (the kernel's backlog) but the
    // server's greeting never comes, so the send waits for `smtp_timeout_seconds` (5).
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let app = spawn_app_with(&smtp_settings(port)).await;
    app.create_user("uma").await;

    let (known, known_body, known_took) = ask_for_reset(&app, "uma@example.com").await;
    let (unknown, unknown_body, unknown_took) = ask_for_reset(&app, "nobody@example.com").await;
    assert_eq!((known, &known_body), (unknown, &unknown_body));
    assert_eq!(known, StatusCode::OK);
    assert!(
        known_took < Duration::from_secs(2) && unknown_took < Duration::from_secs(2),
        "the answer does not wait for the mail server: {known_took:?} and {unknown_took:?}"
    );
    drop(silent);
}
