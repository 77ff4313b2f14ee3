//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the JSON APIs — the account API
//! (`/api/me`, registration, verification, password reset, logout), the admin users API, the
//! Google token exchange, and the protocol endpoints clients call for JSON (token,
//! introspection, revocation, UserInfo).
//!
//! It is generated from the code by `utoipa`: each handler carries a `#[utoipa::path]` naming
//! every status it can answer, and the bodies are the types the handlers serialise and
//! deserialise (`ToSchema` derived on them), so the document changes with them. The error
//! bodies are [`ApiErrorBody`] (schema `ApiError`, every `/api/…` refusal) and
//! [`ErrorBody`] (schema `OAuthError`, RFC 6749 §5.2), with the reusable responses of
//! [`super::errors::responses`]. What a derive cannot say is added by [`Completion`]: the
//! security schemes, the operations registered twice under another path, and UserInfo's `POST`.
//!
//! `tests/schemathesis.sh` (run by `.ci/run`) checks a live server against the document; the
//! unit tests below check that the parameters the grants read and the claims UserInfo sends
//! are the ones documented, and that every `/api/` route is.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement};
use utoipa::openapi::server::Server;
use utoipa::openapi::Required;
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use super::errors::responses::{
    BearerRequired, BodyTooLarge, FormTooLarge, InvalidClient, OAuthServerError,
    OAuthTooManyRequests, ScopeRequired, ServerError, TooManyRequests, Unavailable,
    UnsupportedMediaType,
};
use super::errors::ApiErrorBody;
use super::oauth::forms::UserInfoForm;
use super::WebConfig;
use crate::oauth::error::ErrorBody;

/// The document, as `utoipa` derives it from the annotated handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey",
        description = "The JSON APIs of a Latchkey OAuth 2.0 / OpenID Connect server. \
            Every `/api/...` refusal is an `ApiError` (`{\"error\", \"error_description\", \
            \"fields\"?}`); the protocol endpoints (`/o/...`) answer RFC 6749 section 5.2 \
            `OAuthError` bodies. Answers carry `Cache-Control: no-store`. The `/o/...` and \
            `/api/...` paths ending in `/` answer without it too.",
    ),
    paths(
        super::api::me,
        super::api::accounts::logout,
        super::api::accounts::logout_all,
        super::api::registration::register,
        super::api::registration::verify_otp,
        super::api::registration::activate,
        super::api::registration::resend,
        super::api::password_reset::request_reset,
        super::api::password_reset::confirm_reset,
        super::api::users::list_users,
        super::api::users::show_user,
        super::api::google::exchange_google_token,
        super::oauth::token,
        super::oauth::introspect,
        super::oauth::revoke,
        super::oidc::userinfo,
    ),
    components(
        schemas(ApiErrorBody, ErrorBody, UserInfoForm),
        responses(
            BearerRequired,
            ScopeRequired,
            BodyTooLarge,
            UnsupportedMediaType,
            TooManyRequests,
            ServerError,
            Unavailable,
            InvalidClient,
            FormTooLarge,
            OAuthTooManyRequests,
            OAuthServerError,
        ),
    ),
    modifiers(&Completion),
    tags(
        (name = "account", description = "A user's own account: first-party apps."),
        (name = "admin", description = "Users, for staff holding a token with the `admin` scope."),
        (name = "oauth", description = "Tokens: RFC 6749, RFC 7662, RFC 7009, RFC 8693."),
        (name = "oidc", description = "OpenID Connect Core 1.0."),
    ),
)]
struct ApiDoc;

/// What the derive cannot say (see the module documentation).
struct Completion;

/// The security scheme of the bearer-protected routes (RFC 6750 §2.1).
const BEARER: &str = "bearer";
/// The security scheme of the protocol endpoints' client authentication (RFC 6749 §2.3.1).
const CLIENT_SECRET_BASIC: &str = "client_secret_basic";

impl Modify for Completion {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            utoipa::openapi::security::SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token from the token endpoint, in `Authorization: Bearer` \
                         (RFC 6750 section 2.1). The names in an operation's requirement are \
                         the scopes the token needs.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            CLIENT_SECRET_BASIC,
            utoipa::openapi::security::SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The client's id and secret, each form-urlencoded (RFC 6749 section \
                         2.3.1). Operations that also list no requirement take them in the \
                         body instead (`client_id`, `client_secret`: client_secret_post), or \
                         `client_id` alone from a public client; never both ways at once.",
                    ))
                    .build(),
            ),
        );
        let paths = &mut openapi.paths.paths;
        // Handlers registered under a second path (routes::configure).
        for (path, twin, operation_id) in [
            (
                "/api/resend-otp/",
                "/api/resend-activation-email/",
                "resend_activation_email",
            ),
            (
                "/api/google/",
                "/accounts/api/google/",
                "exchange_google_token_at_accounts_path",
            ),
        ] {
            if let Some(mut item) = paths.get(path).cloned() {
                if let Some(post) = item.post.as_mut() {
                    post.operation_id = Some(operation_id.to_owned());
                }
                paths.insert(twin.to_owned(), item);
            }
        }
        // UserInfo answers POST as it answers GET, the token in the header or in a form body
        // (RFC 6750 §2.2; OIDC Core §5.3.1); a body past `server.max_body_bytes` is a 413.
        if let Some(item) = paths.get_mut("/o/userinfo/") {
            if let Some(mut post) = item.get.clone() {
                post.operation_id = Some("userinfo_post".to_owned());
                post.request_body = Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/x-www-form-urlencoded",
                            Content::new(Some(Ref::from_schema_name(UserInfoForm::name()))),
                        )
                        .required(Some(Required::True))
                        .build(),
                );
                let mut bearer = post.security.take().unwrap_or_default();
                bearer.push(SecurityRequirement::default());
                post.security = Some(bearer);
                post.responses.responses.insert(
                    "413".to_owned(),
                    RefOr::Ref(Ref::from_response_name("FormTooLarge")),
                );
                item.post = Some(post);
            }
        }
    }
}

/// The document as served, less its `servers`.
fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(ApiDoc::openapi)
}

/// `GET /api/openapi.json`: the document, its one server the issuer. Public, cacheable for an
/// hour (it changes only with the server's version), readable from any origin like the
/// discovery document.
pub async fn show_document(web: web::Data<WebConfig>) -> HttpResponse {
    let mut document = document().clone();
    document.servers = Some(vec![Server::new(web.issuer.clone())]);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(document)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn json() -> Value {
        serde_json::to_value(document()).expect("the document serialises")
    }

    /// The names `source` reads from its parameters (`get("…")`, `get_all("…")`,
    /// `contains("…")`), outside its tests.
    fn parameters_read(source: &str) -> BTreeSet<String> {
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        let mut names = BTreeSet::new();
        for call in ["params.get(\"", "params.get_all(\"", "params.contains(\""] {
            for piece in code.split(call).skip(1) {
                if let Some(name) = piece.split('"').next() {
                    names.insert(name.to_owned());
                }
            }
        }
        names
    }

    /// The properties of the component schema `name`.
    fn properties(doc: &Value, name: &str) -> BTreeSet<String> {
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has properties"))
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn every_parameter_a_grant_reads_is_documented() {
        let doc = json();
        let shared = [
            ("token.rs", include_str!("../oauth/token.rs")),
            ("client_auth.rs", include_str!("../oauth/client_auth.rs")),
            ("resource.rs", include_str!("../oauth/resource.rs")),
        ]
        .iter()
        .flat_map(|(_, source)| parameters_read(source))
        // `token` is introspection's and revocation's, checked below.
        .filter(|name| name != "token")
        .collect::<BTreeSet<_>>();
        assert!(shared.contains("grant_type") && shared.contains("client_id"));
        // oxide-auth reads these three through `primitives.rs` for the code and refresh grants.
        let through_primitives = ["redirect_uri", "code_verifier", "scope"];
        for (schema, source, extra) in [
            (
                "AuthorizationCodeRequest",
                include_str!("../oauth/grant_types/authorization_code.rs"),
                &through_primitives[..2],
            ),
            (
                "RefreshTokenRequest",
                include_str!("../oauth/grant_types/refresh_token.rs"),
                &through_primitives[2..],
            ),
            (
                "PasswordRequest",
                include_str!("../oauth/grant_types/password.rs"),
                &[][..],
            ),
            (
                "MfaOtpRequest",
                include_str!("../oauth/grant_types/mfa_otp.rs"),
                &[][..],
            ),
            (
                "ClientCredentialsRequest",
                include_str!("../oauth/grant_types/client_credentials.rs"),
                &[][..],
            ),
            (
                "TokenExchangeRequest",
                include_str!("../oauth/grant_types/token_exchange.rs"),
                &[][..],
            ),
        ] {
            let documented = properties(&doc, schema);
            let read = parameters_read(source);
            assert!(!read.is_empty(), "{schema}: no parameters found");
            for name in read
                .iter()
                .chain(&shared)
                .map(String::as_str)
                .chain(extra.iter().copied())
            {
                assert!(documented.contains(name), "{schema} lacks {name}");
            }
        }
        let token_form = properties(&doc, "TokenForm");
        for name in parameters_read(include_str!("../oauth/client_auth.rs")) {
            assert!(token_form.contains(&name), "TokenForm lacks {name}");
        }
    }

    #[test]
    fn every_claim_userinfo_sends_is_documented() {
        let user = crate::accounts::Account {
            id: "u".into(),
            username: "ada".into(),
            email: "ada@example.com".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            email_verified: true,
            date_joined: chrono::NaiveDateTime::default(),
            last_login: None,
            mfa_enabled: false,
            has_password: true,
        };
        let scope = crate::domain::ScopeSet::parse("openid profile email").expect("scope");
        let claims = crate::oidc::user_claims(&user, &scope);
        let documented = properties(&json(), "UserInfoClaims");
        for claim in claims.keys() {
            assert!(documented.contains(claim), "UserInfoClaims lacks {claim}");
        }
        assert!(documented.contains(crate::upstream::DISCORD_SCOPE));
    }

    /// Every path of the route table under `/api/` is documented (those that are not JSON
    /// APIs named here), and every documented path is in the table.
    #[test]
    fn every_api_route_is_documented() {
        let table = include_str!("mod.rs");
        let routes: BTreeSet<String> = table
            .split('"')
            .filter(|s| {
                s.starts_with("/api/") || s.starts_with("/o/") || *s == "/accounts/api/google/"
            })
            .map(str::to_owned)
            .collect();
        let doc = json();
        let documented: BTreeSet<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect();
        let not_json_apis = ["/api/openapi.json"];
        for route in routes.iter().filter(|r| r.starts_with("/api/")) {
            assert!(
                documented.contains(route) || not_json_apis.contains(&route.as_str()),
                "{route} is not in the OpenAPI document"
            );
        }
        for path in &documented {
            assert!(routes.contains(path), "{path} is documented but not routed");
        }
    }

    #[test]
    fn the_users_list_documents_its_bounds() {
        let doc = json();
        let parameters = doc["paths"]["/api/users/"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .clone();
        let bound = |name: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["schema"]["maximum"].clone())
        };
        assert_eq!(
            bound("page"),
            Some(super::super::api::users::MAX_PAGE.into())
        );
        assert_eq!(
            bound("page_size"),
            Some(super::super::api::users::MAX_API_PAGE_SIZE.into())
        );
    }

    /// The document is OpenAPI 3.1, its operation ids are unique, and every `$ref` names a
    /// component that exists.
    #[test]
    fn the_document_is_whole() {
        let doc = json();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                let id = operation["operationId"].as_str().expect("an operationId");
                assert!(ids.insert(id.to_owned()), "{method} {path}: {id} twice");
                assert!(operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()));
            }
        }
        fn refs(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (key, v) in map {
                        match (key.as_str(), v) {
                            ("$ref", Value::String(r)) => out.push(r.clone()),
                            _ => refs(v, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let mut at = &doc;
            for part in r.trim_start_matches("#/").split('/') {
                at = &at[part];
            }
            assert!(!at.is_null(), "{r} does not resolve");
        }
    }
}
