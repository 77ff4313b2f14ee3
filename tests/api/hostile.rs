//! Hostile input over every route of `src/routes/mod.rs` (read from the file, so a new route is
//! covered without editing this test): invalid UTF-8, NUL, 1 MB values, 10,000 parameters,
//! nested and duplicate JSON keys, wrong content types, huge and garbage headers — sent as a
//! signed-in superuser with a valid CSRF token and an admin bearer token, so that the handlers
//! behind the sign-in, staff and CSRF checks are reached. Never a 5xx, never a dropped
//! connection (a panic), and nothing half-written: the main tables' row counts are unchanged.

use std::collections::BTreeMap;

use diesel::prelude::*;
use latchkey::clients::ClientSpec;
use latchkey::db::DbError;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::helpers::{csrf_from, spawn_app_with, spec, TestApp, Visitor, PASSWORD};

/// Every path `routes::configure` registers, with the methods it routes explicitly.
fn route_table() -> Vec<(String, Vec<Method>)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes/mod.rs"))
        .expect("routes/mod.rs");
    let start = source.find("pub fn configure").expect("configure");
    let end = source[start..].find("\n}\n").expect("end of configure") + start;
    let body = &source[start..end];
    let mut routes: Vec<(String, Vec<Method>)> = Vec::new();
    let mut current: Option<usize> = None;
    for line in body.lines() {
        for marker in ["both(cfg, \"", "web::resource(\"", ".route(\""] {
            if let Some(i) = line.find(marker) {
                let rest = &line[i + marker.len()..];
                let path = &rest[..rest.find('"').expect("closing quote")];
                routes.push((path.to_owned(), Vec::new()));
                current = Some(routes.len() - 1);
                if marker == ".route(\"" {
                    // `.route("/x", web::get()…)` on one line.
                    let last = routes.len() - 1;
                    routes[last].1.push(Method::GET);
                }
            }
        }
        // A `both(` call on several lines: its path is on the next line.
        if line.trim_end().ends_with("both(") || line.trim() == "cfg," {
            continue;
        }
        if line.trim().starts_with('"') && line.trim().ends_with("\",") {
            let path = line.trim().trim_matches(|c| c == '"' || c == ',');
            if path.starts_with('/') {
                routes.push((path.to_owned(), Vec::new()));
                current = Some(routes.len() - 1);
            }
        }
        if let Some(i) = current {
            for (needle, method) in [
                ("web::get()", Method::GET),
                ("web::post()", Method::POST),
                ("Method::OPTIONS", Method::OPTIONS),
            ] {
                if line.contains(needle) && !routes[i].1.contains(&method) {
                    routes[i].1.push(method);
                }
            }
        }
    }
    assert!(routes.len() > 60, "parsed {} routes", routes.len());
    routes
}

/// Ids to put in a path's `{…}` segments.
struct Fixtures {
    user_id: String,
    group_id: String,
    client_id: String,
}

fn fill(path: &str, f: &Fixtures, segment: Option<&str>) -> String {
    let mut out = path.to_owned();
    let is_user_page = path.starts_with("/admin/users/");
    for (name, value) in [
        (
            "{id}",
            if is_user_page {
                f.user_id.as_str()
            } else {
                f.group_id.as_str()
            },
        ),
        ("{user_id}", f.user_id.as_str()),
        ("{group_id}", f.group_id.as_str()),
        ("{client_id}", f.client_id.as_str()),
        ("{uidb64}", "AA"),
        ("{token}", "1-0123456789abcdef0123456789abcdef"),
    ] {
        out = out.replace(name, segment.unwrap_or(value));
    }
    if path.starts_with("/account/sessions/{id}") {
        out = path.replace("{id}", segment.unwrap_or("no-such-session"));
    }
    out
}

/// Whether a form POST with a valid CSRF token and no meaningful field could change something
/// on its own (sign out, delete, end, revoke, remove, rotate): such routes get the CSRF token
/// only in bodies that cannot be parsed.
fn acts_without_fields(path: &str) -> bool {
    ["logout", "delete", "end", "revoke", "remove", "rotate"]
        .iter()
        .any(|w| path.contains(w))
}

const FORM: &str = "application/x-www-form-urlencoded";
const FIELDS: [&str; 16] = [
    "name",
    "email",
    "username",
    "password",
    "new_password1",
    "new_password2",
    "first_name",
    "last_name",
    "description",
    "redirect_uris",
    "client_id",
    "token",
    "code",
    "scope",
    "next",
    "q",
];

/// One hostile request.
struct Case {
    label: String,
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Vec<u8>>,
    /// Sent from a client of its own (no cookies, no pooled connection): the server closes the
    /// connection after answering, or sets a cookie the signed-in browser must not receive.
    own_connection: bool,
}

fn hostile_cases(path: &str, methods: &[Method], csrf: &str, bearer: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let safe_csrf = if acts_without_fields(path) { "" } else { csrf };
    let form_ct = (
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static(FORM),
    );
    let json_ct = (
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let auth = (
        reqwest::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {bearer}")).expect("header"),
    );
    let get = |label: &str, query: String, headers: Vec<(HeaderName, HeaderValue)>| Case {
        label: label.to_owned(),
        method: Method::GET,
        path: format!("{path}?{query}"),
        headers,
        body: None,
        own_connection: false,
    };
    // Query strings: every request carries the admin bearer token too (API routes).
    let fields_with = |value: &str| -> String {
        let mut q: Vec<String> = FIELDS.iter().map(|f| format!("{f}={value}")).collect();
        q.push(format!("page={value}"));
        q.push(format!("page_size={value}"));
        q.join("&")
    };
    cases.push(get(
        "query invalid UTF-8",
        fields_with("%FF%FE"),
        vec![auth.clone()],
    ));
    cases.push(get("query NUL", fields_with("%00"), vec![auth.clone()]));
    cases.push(get(
        "query duplicates",
        "page=1&page=2&q=a&q=b&client_id=a&client_id=b".into(),
        vec![auth.clone()],
    ));
    cases.push(get(
        "query 50 KB values",
        format!("q={}&search={}", "a".repeat(30_000), "%41".repeat(8_000)),
        vec![auth.clone()],
    ));
    cases.push(get(
        "query 10,000 parameters",
        (0..10_000)
            .map(|i| format!("{i:x}"))
            .collect::<Vec<_>>()
            .join("&"),
        vec![auth.clone()],
    ));
    cases.push(get(
        "query numbers out of range",
        "page=99999999999999999999999&page_size=-1&max_age=-5&prompt=none%00".into(),
        vec![auth.clone()],
    ));
    // Headers.
    cases.push(Case {
        label: "garbage Authorization and Cookie".into(),
        method: Method::GET,
        path: path.to_owned(),
        headers: vec![
            (
                reqwest::header::AUTHORIZATION,
                HeaderValue::from_bytes(b"Basic \xff\xfe\x80=garbage").expect("obs-text"),
            ),
            (
                reqwest::header::COOKIE,
                HeaderValue::from_str(&format!("latchkey_session={}", "A".repeat(4000)))
                    .expect("cookie"),
            ),
        ],
        body: None,
        // A browser of its own: the server replaces the garbage session cookie with a fresh
        // one, which must not sign the staff user's browser out.
        own_connection: true,
    });
    cases.push(Case {
        label: "huge bearer token".into(),
        method: Method::GET,
        path: path.to_owned(),
        headers: vec![(
            reqwest::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", "x".repeat(12_000))).expect("header"),
        )],
        body: None,
        own_connection: false,
    });
    cases.push(Case {
        label: "100 headers of 100 bytes".into(),
        method: Method::GET,
        path: path.to_owned(),
        headers: (0..100)
            .map(|i| {
                (
                    HeaderName::from_bytes(format!("x-junk-{i}").as_bytes()).expect("name"),
                    HeaderValue::from_bytes(&[b'\xe9'; 100]).expect("obs-text"),
                )
            })
            .collect(),
        body: None,
        // More headers than actix takes: 431, and the connection is closed.
        own_connection: true,
    });
    // Bodies, sent with POST (and to the routes that have no POST too: 405 without reading).
    let post = |label: &str, ct: Option<(HeaderName, HeaderValue)>, body: Vec<u8>| Case {
        label: label.to_owned(),
        method: Method::POST,
        path: path.to_owned(),
        // No bearer token where a bare POST acts (`/api/logout/` would revoke it).
        headers: ct
            .into_iter()
            .chain((!acts_without_fields(path)).then(|| auth.clone()))
            .collect(),
        body: Some(body),
        own_connection: false,
    };
    let form_with = |csrf: &str, value: &str| -> Vec<u8> {
        let mut parts = vec![format!("csrf_token={csrf}")];
        parts.extend(FIELDS.iter().map(|f| format!("{f}={value}")));
        parts.join("&").into_bytes()
    };
    let mut invalid = form_with(csrf, "x");
    invalid.extend_from_slice(b"&name2=\xff\xfe&email2=\xc3\x28");
    cases.push(post("form invalid UTF-8", Some(form_ct.clone()), invalid));
    cases.push(post(
        "form NUL",
        Some(form_ct.clone()),
        form_with(csrf, "a%00b"),
    ));
    cases.push(post(
        "form duplicate names",
        Some(form_ct.clone()),
        format!("csrf_token={csrf}&csrf_token={csrf}&email=a@example.com&email=b@example.com")
            .into_bytes(),
    ));
    let big = format!(
        "csrf_token={safe_csrf}&q={}&{}",
        "a".repeat(1_000_000),
        FIELDS
            .iter()
            .filter(|f| **f != "q")
            .map(|f| format!("{f}={}", "b".repeat(20_000)))
            .collect::<Vec<_>>()
            .join("&")
    );
    cases.push(post(
        "form 1 MB value",
        Some(form_ct.clone()),
        big.into_bytes(),
    ));
    let many = format!(
        "csrf_token={safe_csrf}&{}",
        (0..10_000)
            .map(|i| format!("p{i:x}=v"))
            .collect::<Vec<_>>()
            .join("&")
    );
    cases.push(post(
        "form 10,000 parameters",
        Some(form_ct.clone()),
        many.into_bytes(),
    ));
    // Wrong and broken content types.
    let plain = form_with(safe_csrf, "x");
    for (label, ct) in [
        ("text/plain", HeaderValue::from_static("text/plain")),
        (
            "multipart",
            HeaderValue::from_static("multipart/form-data; boundary=x"),
        ),
        (
            "non-ASCII content type",
            HeaderValue::from_bytes(b"application/x-www-form-urlencoded; charset=\xff")
                .expect("obs-text"),
        ),
        (
            "json with a form body",
            HeaderValue::from_static("application/json"),
        ),
    ] {
        cases.push(post(
            &format!("content type {label}"),
            Some((reqwest::header::CONTENT_TYPE, ct)),
            plain.clone(),
        ));
    }
    cases.push(post("no content type", None, plain));
    // JSON.
    let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut deep_objects = String::new();
    for _ in 0..2_000 {
        deep_objects.push_str("{\"email\":");
    }
    deep_objects.push('1');
    deep_objects.push_str(&"}".repeat(2_000));
    let keys: BTreeMap<String, u32> = (0..10_000).map(|i| (format!("k{i}"), i)).collect();
    let nul_fields: String = FIELDS
        .iter()
        .chain(["refresh_token", "mfa_token", "otp", "uid"].iter())
        .map(|f| format!("\"{f}\":\"a\\u0000@example.com\""))
        .collect::<Vec<_>>()
        .join(",");
    for (label, body) in [
        ("JSON nested arrays", deep_arrays),
        ("JSON nested objects", deep_objects),
        (
            "JSON duplicate keys",
            r#"{"email":"a@example.com","email":"b@example.com","username":"u","username":"v","password":"p","password":"q"}"#.to_owned(),
        ),
        ("JSON NUL strings", format!("{{{nul_fields}}}")),
        (
            "JSON 1 MB string",
            format!("{{\"email\":\"{}\",\"username\":\"{}\"}}", "a".repeat(1_000_000), "u".repeat(20_000)),
        ),
        ("JSON 10,000 keys", serde_json::to_string(&keys).expect("json")),
        (
            "JSON wrong types",
            r#"{"email":1,"username":[],"password":{},"code":null,"token":true}"#.to_owned(),
        ),
        ("JSON invalid UTF-8", String::from("{\"email\":\"\u{FFFD}\"}")),
    ] {
        let mut bytes = body.into_bytes();
        if label == "JSON invalid UTF-8" {
            bytes = b"{\"email\":\"\xff\xfe\"}".to_vec();
        }
        cases.push(post(label, Some(json_ct.clone()), bytes));
    }
    if methods.contains(&Method::OPTIONS) {
        cases.push(Case {
            label: "preflight with garbage origin".into(),
            method: Method::OPTIONS,
            path: path.to_owned(),
            headers: vec![
                (
                    HeaderName::from_static("origin"),
                    HeaderValue::from_bytes(b"https://\xff\x00.example")
                        .unwrap_or(HeaderValue::from_static("null")),
                ),
                (
                    HeaderName::from_static("access-control-request-method"),
                    HeaderValue::from_static("POST"),
                ),
            ],
            body: None,
            own_connection: false,
        });
    }
    cases
}

/// Row counts of the tables a refused request must not touch.
async fn row_counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    app.services
        .db
        .read(|conn| {
            use latchkey::db::schema::*;
            Ok::<_, DbError>(vec![
                ("users", users::table.count().get_result(conn)?),
                ("clients", clients::table.count().get_result(conn)?),
                ("tokens", tokens::table.count().get_result(conn)?),
                (
                    "codes",
                    authorization_codes::table.count().get_result(conn)?,
                ),
                ("consents", consents::table.count().get_result(conn)?),
                ("groups", groups::table.count().get_result(conn)?),
                (
                    "group_members",
                    group_members::table.count().get_result(conn)?,
                ),
                (
                    "signing_keys",
                    signing_keys::table.count().get_result(conn)?,
                ),
                (
                    "one_time_codes",
                    one_time_codes::table.count().get_result(conn)?,
                ),
                (
                    "user_sessions",
                    user_sessions::table.count().get_result(conn)?,
                ),
            ])
        })
        .await
        .expect("counts")
}

async fn send(visitor: &Visitor, case: &Case) -> Result<StatusCode, String> {
    let client = if case.own_connection {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    } else {
        visitor.client.clone()
    };
    let mut request = client.request(case.method.clone(), visitor.url(&case.path));
    for (name, value) in &case.headers {
        request = request.header(name.clone(), value.clone());
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            // Read the body: a handler that panics mid-stream shows up here.
            response
                .bytes()
                .await
                .map(|_| status)
                .map_err(|e| format!("body: {e}"))
        }
        Err(e) => Err(e.to_string().chars().take(200).collect()),
    }
}

#[tokio::test]
async fn hostile_input_on_every_route_never_errors_or_writes() {
    // Large bodies reach the parsers instead of stopping at the size limit.
    let app = spawn_app_with("[server]\nmax_body_bytes = 4194304").await;
    let root = app.create_staff("root").await;
    let victim = app.create_user("victim").await;
    let visitor = app.visitor("root").await;
    let (_, account) = visitor.get("/account/").await;
    let csrf = csrf_from(&account);
    let (client, _) = app
        .register(&ClientSpec {
            owner_id: Some(root.id.clone()),
            ..spec("confidential", &["authorization_code"])
        })
        .await;
    let (api_client, api_secret) = app
        .register(&ClientSpec {
            scopes: vec!["openid profile admin".into()],
            ..spec("confidential", &["password"])
        })
        .await;
    let (status, token) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "root"),
                ("password", PASSWORD),
                ("scope", "openid profile admin"),
            ],
            Some((api_client.id(), api_secret.as_deref().expect("secret"))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let bearer = token["access_token"].as_str().expect("token").to_owned();
    let group = app
        .services
        .groups
        .create(&latchkey::audit::Actor::system(), "Hostile", "")
        .await
        .expect("group");
    let fixtures = Fixtures {
        user_id: victim.id.clone(),
        group_id: group.id.clone(),
        client_id: client.id().to_owned(),
    };
    let before = row_counts(&app).await;

    let mut failures = Vec::new();
    let mut sent = 0;
    for (path, methods) in route_table() {
        let mut paths = vec![fill(&path, &fixtures, None)];
        if path.contains('{') {
            // Hostile path segments too.
            for segment in ["%00", "%FF%FE", &"z".repeat(3000)] {
                paths.push(fill(&path, &fixtures, Some(segment)));
            }
        }
        for (i, concrete) in paths.iter().enumerate() {
            let cases = if i == 0 {
                hostile_cases(concrete, &methods, &csrf, &bearer)
            } else {
                // Segment variants: one GET and one POST each.
                hostile_cases(concrete, &methods, &csrf, &bearer)
                    .into_iter()
                    .filter(|c| c.label == "query NUL" || c.label == "form NUL")
                    .collect()
            };
            for case in cases {
                sent += 1;
                match send(&visitor, &case).await {
                    Ok(status) if status.is_server_error() => failures.push(format!(
                        "{status} {} {} ({})",
                        case.method, path, case.label
                    )),
                    Ok(_) => {}
                    Err(e) => failures.push(format!(
                        "no answer: {} {} ({}): {e}",
                        case.method, path, case.label
                    )),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} hostile requests failed on {}:\n{}",
        failures.len(),
        app.backend,
        failures.join("\n")
    );
    assert_eq!(row_counts(&app).await, before, "nothing was written");
    // Still signed in (no hostile request signed the staff user out) and the server is healthy.
    let (status, _) = visitor.get("/admin/").await;
    assert_eq!(status, StatusCode::OK);
    let health = app
        .api
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::OK);
}

/// Found by the sweep: the verification page stored any typed address in the session cookie,
/// and a long one made the cookie too large to send (500).
#[tokio::test]
async fn a_huge_address_on_the_verify_page_is_refused_not_a_server_error() {
    let app = spawn_app_with("").await;
    let visitor = app.anonymous_visitor();
    let huge = format!("{}@example.com", "a".repeat(10_000));
    let response = visitor
        .submit(
            "/accounts/verify/",
            "/accounts/verify/",
            &[("email", huge.as_str()), ("otp", "123456")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.expect("page");
    assert!(page.contains("Enter a valid email address"));
}

/// Found by the sweep's reasoning about the same cookie: a long `next` was kept in the session
/// through the login-code step (500); it now falls back to `/`.
#[tokio::test]
async fn a_huge_next_through_a_login_code_is_dropped_not_a_server_error() {
    let app = spawn_app_with("[accounts]\nlogin_otp = \"all\"\n").await;
    app.create_user("coded").await;
    let visitor = app.anonymous_visitor();
    let next = format!("/account/?{}", "a".repeat(5_000));
    let response = visitor
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[
                ("username", "coded"),
                ("password", PASSWORD),
                ("next", next.as_str()),
            ],
        )
        .await;
    assert!(response.status().is_redirection(), "{}", response.status());
    let (status, page) = visitor.get("/accounts/login/code/").await;
    assert_eq!(status, StatusCode::OK, "{page}");
}

/// Found by the sweep on PostgreSQL: a `%00` path segment reached a database lookup, which
/// PostgreSQL refuses (503). Such paths name nothing: 404, a page or JSON like any unknown path.
#[tokio::test]
async fn a_nul_in_a_path_is_not_found() {
    let app = spawn_app_with("").await;
    app.create_staff("root").await;
    let visitor = app.visitor("root").await;
    for path in [
        "/admin/users/%00/",
        "/admin/groups/%00/",
        "/o/applications/%00/",
        "/o/authorized_tokens/%00/revoke/",
    ] {
        let (status, _) = visitor.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} on {}", app.backend);
    }
    let response = app
        .api
        .get(app.url("/api/users/a%00b/"))
        .send()
        .await
        .expect("api");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "not_found");
}

/// Review finding 7: the sweep above puts the hostile value in every field at once, so the
/// first field a handler checks (often the email) refuses the request and the others are never
/// reached — a NUL in a JSON name reached PostgreSQL (503) unnoticed. Here one field at a time
/// holds a NUL or a line break, the others plausible values, in a query string, a form and a
/// JSON body, on every route: never a 5xx, never a dropped connection. (Plausible values may
/// make a request act, e.g. create a group, so row counts are not compared here.)
#[tokio::test]
async fn one_hostile_field_at_a_time_never_errors() {
    let app = spawn_app_with("").await;
    let root = app.create_staff("root").await;
    let victim = app.create_user("victim").await;
    let visitor = app.visitor("root").await;
    let (_, account) = visitor.get("/account/").await;
    let csrf = csrf_from(&account);
    let (client, _) = app
        .register(&ClientSpec {
            owner_id: Some(root.id.clone()),
            ..spec("confidential", &["authorization_code"])
        })
        .await;
    let group = app
        .services
        .groups
        .create(&latchkey::audit::Actor::system(), "Hostile", "")
        .await
        .expect("group");
    let fixtures = Fixtures {
        user_id: victim.id.clone(),
        group_id: group.id.clone(),
        client_id: client.id().to_owned(),
    };
    // Plausible values; no password, so nothing signs in, changes a password or locks out.
    let plausible = |field: &str| match field {
        "email" => "sweep@example.com",
        "username" => "sweep",
        "first_name" => "Ada",
        "last_name" => "Lovelace",
        "name" => "Sweep",
        "redirect_uris" => "https://sweep.example/cb",
        "scope" => "openid",
        "next" => "/account/",
        "client_id" => "sweep-client",
        _ => "",
    };
    let fields: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|f| !f.contains("password"))
        .collect();
    let mut failures = Vec::new();
    let mut sent = 0;
    for (path, methods) in route_table() {
        let concrete = fill(&path, &fixtures, None);
        let acts = acts_without_fields(&path);
        for hostile in ["a\u{0}b", "a\nb\u{1b}[31m"] {
            for field in &fields {
                let value = |f: &str| {
                    if f == *field {
                        hostile.to_owned()
                    } else {
                        plausible(f).to_owned()
                    }
                };
                let pairs: Vec<(String, String)> = fields
                    .iter()
                    .map(|f| ((*f).to_owned(), value(f)))
                    .chain((!acts).then(|| ("csrf_token".to_owned(), csrf.clone())))
                    .collect();
                let encoded = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&pairs)
                    .finish();
                let json: serde_json::Map<String, serde_json::Value> = pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                let mut cases = Vec::new();
                if methods.contains(&Method::GET) {
                    cases.push(Case {
                        label: format!("query {field}={hostile:?}"),
                        method: Method::GET,
                        path: format!("{concrete}?{encoded}"),
                        headers: Vec::new(),
                        body: None,
                        own_connection: false,
                    });
                }
                if methods.contains(&Method::POST) {
                    for (kind, content_type, body) in [
                        ("form", FORM, encoded.clone().into_bytes()),
                        (
                            "JSON",
                            "application/json",
                            serde_json::to_vec(&json).expect("json"),
                        ),
                    ] {
                        cases.push(Case {
                            label: format!("{kind} {field}={hostile:?}"),
                            method: Method::POST,
                            path: concrete.clone(),
                            headers: vec![(
                                reqwest::header::CONTENT_TYPE,
                                HeaderValue::from_static(content_type),
                            )],
                            body: Some(body),
                            own_connection: false,
                        });
                    }
                }
                for case in cases {
                    sent += 1;
                    match send(&visitor, &case).await {
                        Ok(status) if status.is_server_error() => failures
                            .push(format!("{status} {} {path} ({})", case.method, case.label)),
                        Ok(_) => {}
                        Err(e) => failures.push(format!(
                            "no answer: {} {path} ({}): {e}",
                            case.method, case.label
                        )),
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} one-field hostile requests failed on {}:\n{}",
        failures.len(),
        app.backend,
        failures.join("\n")
    );
    let (status, _) = visitor.get("/admin/").await;
    assert_eq!(status, StatusCode::OK, "still signed in");
}
