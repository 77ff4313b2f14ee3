//! The HTTP layer: the route table (all of it, in [`configure`]), extractors-free handlers that
//! parse input, call a service, and render JSON or an askama page. No SQL lives here.

mod account;
mod api;
mod apps;
mod browser;
mod chrome;
mod console;
mod demo;
mod errors;
mod extract;
mod format;
mod health;
mod http;
mod login;
mod methods;
pub mod metrics;
mod oauth;
mod oidc;
mod openapi;
mod pages;
pub mod request_id;

use actix_web::web;

use methods::Methods;

/// What the web layer needs from the configuration.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Issuer URL without trailing slash.
    pub issuer: String,
    /// Largest accepted body in bytes.
    pub max_body_bytes: usize,
    /// Whether `serve --demo` is running (enables `/demo/callback`).
    pub demo: bool,
    /// How long a login lasts, in seconds.
    pub session_max_age_seconds: i64,
    /// Rows per page in the console's lists.
    pub page_size: i64,
    /// Proxies whose forwarding header gives the client's address (see [`http::peer_ip`]).
    pub trusted_proxies: crate::domain::TrustedProxies,
    /// The product name, logo and accent stylesheet every page shows (`[branding]`).
    pub brand: std::sync::Arc<Brand>,
    /// The live set of upstream identity providers (the configuration file's and the
    /// console's), for the sign-in page's buttons.
    pub upstream: crate::upstream::ProviderSet,
}

/// Registers every URL Latchkey answers. Paths taken from django-oauth-toolkit answer with and
/// without their trailing slash. A resource names each method it answers once ([`Methods`]);
/// any other method gets its area's `405` with `Allow` listing those (RFC 9110 §15.5.6).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::home))
        .route("/static/style.css", web::get().to(pages::stylesheet))
        .route(
            chrome::BRANDING_STYLESHEET_PATH,
            web::get().to(pages::branding_stylesheet),
        )
        .route(
            "/static/form_post.js",
            web::get().to(pages::form_post_script),
        )
        .route("/static/copy.js", web::get().to(pages::copy_script))
        .route("/static/favicon.svg", web::get().to(pages::favicon))
        .route("/favicon.ico", web::get().to(pages::favicon))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        // Prometheus metrics (routes/metrics.rs): a 404 unless `[metrics]` serves them on the
        // main listener; `configure_metrics_listener` is the table of `metrics.listen`.
        .service(
            Methods::new("/metrics")
                .get(metrics::scrape)
                .otherwise(api::method_not_allowed),
        )
        .route("/demo/callback", web::get().to(demo::callback))
        .service(
            Methods::new("/.well-known/oauth-authorization-server")
                .get(oidc::discovery)
                .otherwise(oauth::method_not_allowed),
        )
        .service(
            Methods::new("/.well-known/openid-configuration")
                .get(oidc::discovery)
                .otherwise(oauth::method_not_allowed),
        )
        .service(
            Methods::new("/.well-known/jwks.json")
                .get(oidc::jwks)
                .otherwise(oauth::method_not_allowed),
        );
    // django-oauth-toolkit serves its OIDC documents under /o/.
    both(cfg, "/o/.well-known/openid-configuration/", |r| {
        r.get(oidc::discovery).otherwise(oauth::method_not_allowed)
    });
    cfg.service(
        Methods::new("/o/.well-known/jwks.json")
            .get(oidc::jwks)
            .otherwise(oauth::method_not_allowed),
    );
    both(cfg, "/o/userinfo/", |r| {
        r.get(oidc::userinfo)
            .post(oidc::userinfo)
            .options(oidc::userinfo_preflight)
            .otherwise(oauth::method_not_allowed)
    });
    both(cfg, "/o/logout/", |r| {
        r.get(oidc::end_session)
            .post(oidc::end_session)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/o/authorize/", |r| {
        r.get(oauth::authorize::show)
            .post(oauth::authorize::decide)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/o/token/", |r| {
        r.post(oauth::token)
            .options(oauth::preflight)
            .otherwise(oauth::method_not_allowed)
    });
    both(cfg, "/o/revoke_token/", |r| {
        r.post(oauth::revoke)
            .options(oauth::preflight)
            .otherwise(oauth::method_not_allowed)
    });
    both(cfg, "/o/introspect/", |r| {
        r.post(oauth::introspect)
            .otherwise(oauth::method_not_allowed)
    });
    both(cfg, "/accounts/login/", |r| {
        r.get(login::show_login_form)
            .post(login::submit_login)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/accounts/upstream/{provider}/login/", |r| {
        r.get(login::upstream::start)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/accounts/upstream/{provider}/link/", |r| {
        r.post(login::upstream::start_link)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/account/linked/", |r| {
        r.get(login::upstream::linked_accounts)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/account/linked/{provider}/unlink/", |r| {
        r.post(login::upstream::unlink)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/accounts/upstream/{provider}/callback/", |r| {
        r.get(login::upstream::callback)
            .otherwise(pages::method_not_allowed)
    });
    // The Discord logins Latchkey replaces (seeds 000 and 003; routes/login/discord.rs), and
    // seed 000's profile of the signed-in user (routes/api/discord.rs). The callbacks are
    // `domain::upstream::DISCORD_LEGACY_CALLBACK_PATHS`.
    both(cfg, "/oauth2/login/", |r| {
        r.get(login::discord::start_legacy_sign_in)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/oauth2/login/redirect/", |r| {
        r.get(login::discord::finish_legacy_sign_in)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/discord/sso/callback/", |r| {
        r.get(login::discord::finish_legacy_sign_in)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/auth/", |r| {
        r.get(api::discord::show_discord_profile)
            .otherwise(api::method_not_allowed)
    });
    both(cfg, "/accounts/logout/", |r| {
        r.post(login::logout).otherwise(pages::method_not_allowed)
    });
    // The admin console, staff only (routes/console/). Applications are the portal's.
    both(cfg, "/admin/", |r| {
        r.get(console::dashboard::show_dashboard)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/", |r| {
        r.get(console::users::list_users)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/{id}/", |r| {
        r.get(console::users::show_user)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/{id}/profile/", |r| {
        r.post(console::users::update_user_profile)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/{id}/flags/", |r| {
        r.post(console::users::update_user_flags)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/{id}/groups/", |r| {
        r.post(console::users::add_user_to_group)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/{id}/groups/{group_id}/remove/", |r| {
        r.post(console::users::remove_user_from_group)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/{id}/links/{provider}/remove/", |r| {
        r.post(console::users::remove_link)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/{id}/end_sessions/", |r| {
        r.get(console::users::confirm_end_sessions)
            .post(console::users::end_sessions)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/{id}/send_password_reset/", |r| {
        r.post(console::user_actions::send_password_reset)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/{id}/resend_verification/", |r| {
        r.post(console::user_actions::resend_verification)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/users/{id}/delete/", |r| {
        r.get(console::user_actions::confirm_delete_user)
            .post(console::user_actions::delete_user)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/groups/", |r| {
        r.get(console::groups::list_groups)
            .post(console::groups::create_group)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/groups/{id}/", |r| {
        r.get(console::groups::show_group)
            .post(console::groups::update_group)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/groups/{id}/members/add/", |r| {
        r.post(console::groups::add_group_member)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/groups/{id}/members/{user_id}/remove/", |r| {
        r.post(console::groups::remove_group_member)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/groups/{id}/delete/", |r| {
        r.get(console::groups::confirm_delete_group)
            .post(console::groups::delete_group)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/providers/", |r| {
        r.get(console::providers::list_providers)
            .post(console::providers::create_provider)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/providers/{id}/", |r| {
        r.get(console::providers::show_provider)
            .post(console::providers::update_provider)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/providers/{id}/delete/", |r| {
        r.get(console::providers::confirm_delete_provider)
            .post(console::providers::delete_provider)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/tokens/", |r| {
        r.get(console::tokens::list_tokens)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/tokens/revoke/", |r| {
        r.post(console::tokens::revoke_tokens)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/audit/", |r| {
        r.get(console::audit::list_audit_events)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/discord/", |r| {
        r.get(console::discord::show_discord)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/discord/settings/", |r| {
        r.post(console::discord::save_settings)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/discord/test/", |r| {
        r.post(console::discord::test_connection)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/discord/roles/sync/", |r| {
        r.post(console::discord::sync_roles)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/discord/mappings/", |r| {
        r.post(console::discord::map_role)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/discord/mappings/remove/", |r| {
        r.post(console::discord::unmap_role)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/discord/groups/", |r| {
        r.post(console::discord::create_groups)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/admin/discord/jobs/{name}/run/", |r| {
        r.post(console::discord::run_job)
            .otherwise(pages::method_not_allowed)
    });
    // The developer portal (django-oauth-toolkit's paths).
    both(cfg, "/o/applications/", |r| {
        r.get(apps::list_applications)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/o/applications/register/", |r| {
        r.get(apps::show_register_form)
            .post(apps::register_application)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/o/applications/{client_id}/", |r| {
        r.get(apps::show_application)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/o/applications/{client_id}/update/", |r| {
        r.get(apps::show_update_form)
            .post(apps::update_application)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/o/applications/{client_id}/delete/", |r| {
        r.get(apps::confirm_delete)
            .post(apps::delete_application)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/o/applications/{client_id}/secret/", |r| {
        r.get(apps::show_new_secret)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/o/applications/{client_id}/rotate_secret/", |r| {
        r.get(apps::confirm_rotate_secret)
            .post(apps::rotate_secret)
            .otherwise(pages::method_not_allowed)
    });
    // Every signed-in user: the applications they authorized (django-oauth-toolkit's path)
    // and their account.
    both(cfg, "/o/authorized_tokens/", |r| {
        r.get(account::authorized::list_authorized_apps)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/o/authorized_tokens/{client_id}/revoke/", |r| {
        r.get(account::authorized::confirm_revoke_authorization)
            .post(account::authorized::revoke_authorization)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/account/", |r| {
        r.get(account::show_account)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/account/profile/", |r| {
        r.get(account::back_to_account)
            .post(account::update_profile)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/account/password/", |r| {
        r.get(account::back_to_account)
            .post(account::change_password)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/account/sessions/end/", |r| {
        r.get(account::confirm_end_sessions)
            .post(account::end_sessions)
            .otherwise(pages::method_not_allowed)
    });
    // Password reset (routes/login/reset.rs): the email form, "check your email", the link's
    // new-password form, "password changed"; the same two steps as a JSON API
    // (routes/api/password_reset.rs).
    both(cfg, "/accounts/password-reset/", |r| {
        r.get(login::reset::show_request_form)
            .post(login::reset::submit_request)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/accounts/password-reset/done/", |r| {
        r.get(login::reset::show_request_done)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/accounts/password-reset/complete/", |r| {
        r.get(login::reset::show_reset_complete)
            .otherwise(pages::method_not_allowed)
    });
    both(
        cfg,
        "/accounts/password-reset-confirm/{uidb64}/{token}/",
        |r| {
            r.get(login::reset::show_new_password_form)
                .post(login::reset::submit_new_password)
                .otherwise(pages::method_not_allowed)
        },
    );
    both(cfg, "/api/password-reset/", |r| {
        r.post(api::password_reset::request_reset)
            .otherwise(api::method_not_allowed)
    });
    both(cfg, "/api/password-reset-confirm/{uidb64}/{token}/", |r| {
        r.post(api::password_reset::confirm_reset)
            .otherwise(api::method_not_allowed)
    });
    // Emailed one-time codes at login (routes/login/code.rs: the hosted login's code step) and
    // the account page's switch for them (routes/account_mfa.rs). The API side is the
    // password grant and the mfa-otp grant at /o/token/.
    both(cfg, "/accounts/login/code/", |r| {
        r.get(login::code::show_code_form)
            .post(login::code::submit_code)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/accounts/login/code/resend/", |r| {
        r.get(login::code::back_to_code_form)
            .post(login::code::resend_code)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/account/login_code/", |r| {
        r.get(account::back_to_account)
            .post(account::sign_in_codes::set_login_code)
            .otherwise(pages::method_not_allowed)
    });
    // Sessions and logout (routes/account/sessions.rs, routes/api/accounts.rs): ending one
    // browser session or all the others from the account page; the logout API; the admin users
    // API (routes/api/users.rs). `end_others` is registered before `{id}/end/`, though the two
    // cannot overlap.
    both(cfg, "/account/sessions/end_others/", |r| {
        r.post(account::sessions::end_other_sessions)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/account/sessions/{id}/end/", |r| {
        r.post(account::sessions::end_session)
            .otherwise(pages::method_not_allowed)
    });
    // A mobile app's Google token traded for Latchkey tokens (routes/api/google.rs; RFC 8693
    // token exchange at /o/token/ in seed 002's shape and paths).
    both(cfg, "/api/google/", |r| {
        r.post(api::google::exchange_google_token)
            .otherwise(api::google::method_not_allowed)
    });
    both(cfg, "/accounts/api/google/", |r| {
        r.post(api::google::exchange_google_token)
            .otherwise(api::google::method_not_allowed)
    });
    both(cfg, "/api/logout/", |r| {
        r.post(api::accounts::logout)
            .otherwise(api::method_not_allowed)
    });
    both(cfg, "/api/logout_all/", |r| {
        r.post(api::accounts::logout_all)
            .otherwise(api::method_not_allowed)
    });
    both(cfg, "/api/users/", |r| {
        r.get(api::users::list_users)
            .otherwise(api::method_not_allowed)
    });
    both(cfg, "/api/users/{id}/", |r| {
        r.get(api::users::show_user)
            .otherwise(api::method_not_allowed)
    });
    // Self-registration and email verification: the pages (routes/login/register.rs and
    // verify.rs) and the JSON API (routes/api/registration.rs).
    both(cfg, "/accounts/register/", |r| {
        r.get(login::register::show_register_form)
            .post(login::register::submit_register)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/accounts/verify/", |r| {
        r.get(login::verify::show_verify_form)
            .post(login::verify::submit_verify)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/accounts/activate/{uidb64}/{token}/", |r| {
        r.get(login::verify::activate_page)
            .otherwise(pages::method_not_allowed)
    });
    both(cfg, "/api/register/", |r| {
        r.post(api::registration::register)
            .otherwise(api::method_not_allowed)
    });
    both(cfg, "/api/verify-otp/", |r| {
        r.post(api::registration::verify_otp)
            .otherwise(api::method_not_allowed)
    });
    both(cfg, "/api/activate/{uidb64}/{token}/", |r| {
        r.get(api::registration::activate)
            .otherwise(api::method_not_allowed)
    });
    both(cfg, "/api/resend-otp/", |r| {
        r.post(api::registration::resend)
            .otherwise(api::method_not_allowed)
    });
    both(cfg, "/api/resend-activation-email/", |r| {
        r.post(api::registration::resend)
            .otherwise(api::method_not_allowed)
    });
    cfg.service(
        Methods::new("/api/me")
            .get(api::me)
            .otherwise(api::method_not_allowed),
    );
    // The OpenAPI 3.1 document of the JSON APIs (routes/openapi.rs).
    cfg.service(
        Methods::new("/api/openapi.json")
            .get(openapi::show_document)
            .otherwise(api::method_not_allowed),
    );
}

/// Registers every URL of the separate metrics listener (`metrics.listen`): `/metrics` alone.
pub fn configure_metrics_listener(cfg: &mut web::ServiceConfig) {
    cfg.service(
        Methods::new("/metrics")
            .get(metrics::scrape)
            .otherwise(api::method_not_allowed),
    );
}

/// Registers `path` (ending in `/`) and the same path without the slash.
fn both(cfg: &mut web::ServiceConfig, path: &str, build: impl Fn(Methods) -> actix_web::Resource) {
    cfg.service(build(Methods::new(path)));
    cfg.service(build(Methods::new(path.trim_end_matches('/'))));
}

pub use chrome::Brand;
pub use errors::brand_error_pages;
pub use pages::{not_found, refuse_nul_in_path};
