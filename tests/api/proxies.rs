//! Behind a reverse proxy (issue 9, item 15): the client address comes from the configured
//! forwarding header only when the TCP peer is one of `server.trusted_proxies` (the tests' peer
//! is 127.0.0.1), read as the rightmost untrusted hop; every other request is attributed to its
//! peer, whatever it sends. The address is observed where it is used: the audit log's `ip` and
//! the per-IP login limit. Under an https issuer: HSTS and the `__Host-` session cookie.

use reqwest::header::SET_COOKIE;
use reqwest::StatusCode;

use crate::helpers::{spawn_app_with, spec, TestApp};

struct Proxied {
    app: TestApp,
    client: (String, String),
}

impl Proxied {
    /// A server with `server` settings and `per_ip` failed logins allowed per client address
    /// (per account: more than any test makes).
    async fn new(server: &str, per_ip: u32) -> Self {
        let app = spawn_app_with(&format!(
            "[rate_limits]\nfailed_logins_per_account = 1000\nfailed_logins_per_ip = {per_ip}\n\
             [server]\n{server}\n"
        ))
        .await;
        app.create_user("ivy").await;
        let (client, secret) = app.register(&spec("confidential", &["password"])).await;
        Self {
            client: (client.id().to_owned(), secret.expect("secret")),
            app,
        }
    }

    /// A failed password grant sent with `headers`; its status.
    async fn fail_login(&self, headers: &[(&str, &str)]) -> StatusCode {
        let mut request = self
            .app
            .api
            .post(self.app.url("/o/token/"))
            .basic_auth(&self.client.0, Some(&self.client.1))
            .form(&[
                ("grant_type", "password"),
                ("username", "ivy"),
                ("password", "not the password"),
            ]);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("token request").status()
    }

    /// The address the audit log recorded for a failed login sent with `headers`.
    async fn recorded_ip(&self, headers: &[(&str, &str)]) -> String {
        let before = self.app.audit_events("login.failure").await.len();
        let status = self.fail_login(headers).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?}");
        let events = self.app.audit_events("login.failure").await;
        assert_eq!(events.len(), before + 1);
        // Newest first.
        events[0].ip.clone().expect("an address")
    }
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    // Four failures are allowed per address; the four below all count for 127.0.0.1.
    let proxied = Proxied::new("", 4).await;
    for headers in [
        vec![("x-forwarded-for", "198.51.100.7")],
        vec![("forwarded", "for=198.51.100.8")],
        vec![("x-real-ip", "198.51.100.9")],
        vec![
            ("x-forwarded-for", "198.51.100.7, 203.0.113.1"),
            ("forwarded", "for=\"[2001:db8::1]\""),
        ],
    ] {
        assert_eq!(
            proxied.recorded_ip(&headers).await,
            "127.0.0.1",
            "{headers:?}"
        );
    }
    // The per-IP limit counts every one of them as 127.0.0.1: a new forged address does not
    // buy a new bucket.
    assert_eq!(
        proxied
            .fail_login(&[("x-forwarded-for", "192.0.2.200")])
            .await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_trusted_proxy_s_x_forwarded_for_gives_the_rightmost_untrusted_hop() {
    let proxied = Proxied::new("trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]", 1000).await;
    for (value, expected) in [
        ("198.51.100.7", "198.51.100.7"),
        // What the client wrote itself, on the left, is never read.
        ("1.1.1.1, 2.2.2.2, 198.51.100.8", "198.51.100.8"),
        // Trusted hops are skipped.
        ("198.51.100.9, 10.1.2.3, 127.0.0.1", "198.51.100.9"),
        // Ports, IPv6 with and without brackets and ports, IPv4-mapped.
        ("198.51.100.10:4711", "198.51.100.10"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::2]:4711", "2001:db8::2"),
        ("::ffff:198.51.100.11", "198.51.100.11"),
        // A hop without an address: the proxy that reported it.
        ("198.51.100.12, garbage", "127.0.0.1"),
        ("198.51.100.13, unknown, 10.0.0.9", "10.0.0.9"),
        ("", "127.0.0.1"),
        // Every hop trusted: the leftmost.
        ("10.0.0.5, 10.0.0.6", "10.0.0.5"),
    ] {
        assert_eq!(
            proxied.recorded_ip(&[("x-forwarded-for", value)]).await,
            expected,
            "X-Forwarded-For: {value}"
        );
    }
    // Several field lines are one list.
    assert_eq!(
        proxied
            .recorded_ip(&[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "198.51.100.14, 10.0.0.1"),
            ])
            .await,
        "198.51.100.14"
    );
    // No header, or only the header the proxies are not configured to set: the peer.
    assert_eq!(proxied.recorded_ip(&[]).await, "127.0.0.1");
    assert_eq!(
        proxied
            .recorded_ip(&[("forwarded", "for=198.51.100.15")])
            .await,
        "127.0.0.1"
    );
}

#[tokio::test]
async fn a_trusted_proxy_s_forwarded_header_gives_the_rightmost_untrusted_hop() {
    let proxied = Proxied::new(
        "trusted_proxies = [\"127.0.0.1\"]\nforwarded_header = \"forwarded\"",
        1000,
    )
    .await;
    for (value, expected) in [
        ("for=198.51.100.7", "198.51.100.7"),
        (
            "for=1.1.1.1, for=198.51.100.8;proto=https;by=127.0.0.1",
            "198.51.100.8",
        ),
        ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
        ("for=\"198.51.100.9:4711\", For=127.0.0.1", "198.51.100.9"),
        // Obfuscated identifiers and `unknown` (RFC 7239 §6) name no address.
        ("for=198.51.100.10, for=_hidden", "127.0.0.1"),
        ("for=198.51.100.11, for=unknown", "127.0.0.1"),
        ("for=198.51.100.12, nonsense", "127.0.0.1"),
        ("for=2001:db8::1", "127.0.0.1"),
    ] {
        assert_eq!(
            proxied.recorded_ip(&[("forwarded", value)]).await,
            expected,
            "Forwarded: {value}"
        );
    }
    assert_eq!(
        proxied
            .recorded_ip(&[("x-forwarded-for", "198.51.100.13")])
            .await,
        "127.0.0.1",
        "X-Forwarded-For is not read when the proxies set Forwarded"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_login_limit() {
    let proxied = Proxied::new("trusted_proxies = [\"127.0.0.1\"]", 2).await;
    let a = [("x-forwarded-for", "198.51.100.20")];
    let b = [("x-forwarded-for", "198.51.100.21")];
    assert_eq!(proxied.fail_login(&a).await, StatusCode::BAD_REQUEST);
    assert_eq!(proxied.fail_login(&a).await, StatusCode::BAD_REQUEST);
    assert_eq!(proxied.fail_login(&a).await, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy is not locked out with the first.
    assert_eq!(proxied.fail_login(&b).await, StatusCode::BAD_REQUEST);
}

/// The `Set-Cookie` header of the login page (it stores the CSRF token in the session).
async fn session_cookie(app: &TestApp) -> String {
    let page = app
        .api
        .get(app.url("/accounts/login/"))
        .send()
        .await
        .expect("login page");
    assert_eq!(page.status(), StatusCode::OK);
    page.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .find(|v| v.contains("latchkey_session="))
        .expect("a session cookie")
}

#[tokio::test]
async fn an_https_issuer_sends_hsts_and_a_host_prefixed_secure_session_cookie() {
    // The test server listens on plain loopback HTTP; only the issuer says https, which is
    // what a deployment behind a TLS-terminating proxy looks like. The browser-side effect of
    // `Secure` (reqwest's cookie store would not send it back over http) is not what is tested
    // here, the header text is.
    let app = spawn_app_with("[server]\nissuer = \"https://id.example.test\"\n").await;
    let health = app
        .api
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    // Without `includeSubDomains` by default: a sibling subdomain's plain-HTTP site keeps
    // working (RFC 6797 §6.1.2).
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let cookie = session_cookie(&app).await;
    assert!(cookie.starts_with("__Host-latchkey_session="), "{cookie}");
    let attributes: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(attributes.iter().any(|a| a == "secure"), "{cookie}");
    assert!(attributes.iter().any(|a| a == "path=/"), "{cookie}");
    assert!(attributes.iter().any(|a| a == "httponly"), "{cookie}");
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain")),
        "{cookie}"
    );
}

#[tokio::test]
async fn hsts_covers_subdomains_only_when_configured() {
    let app = spawn_app_with(
        "[server]\nissuer = \"https://id.example.test\"\nhsts_include_subdomains = true\n",
    )
    .await;
    let health = app
        .api
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test]
async fn an_http_issuer_sends_no_hsts_and_the_plain_cookie_name() {
    let app = spawn_app_with("").await;
    let health = app
        .api
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(health.headers().get("strict-transport-security").is_none());
    let cookie = session_cookie(&app).await;
    assert!(cookie.starts_with("latchkey_session="), "{cookie}");
    assert!(!cookie.to_ascii_lowercase().contains("secure"), "{cookie}");
}
