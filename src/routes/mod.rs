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
pub mod metrics;
mod oauth;
mod oidc;
mod openapi;
mod pages;
pub mod request_id;

use actix_web::web;

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
/// without their trailing slash.
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
            web::resource("/metrics")
                .route(web::get().to(metrics::scrape))
                .default_service(web::to(api::method_not_allowed)),
        )
        .route("/demo/callback", web::get().to(demo::callback))
        .service(
            web::resource("/.well-known/oauth-authorization-server")
                .route(web::get().to(oidc::discovery))
                .default_service(web::to(oauth::method_not_allowed)),
        )
        .service(
            web::resource("/.well-known/openid-configuration")
                .route(web::get().to(oidc::discovery))
                .default_service(web::to(oauth::method_not_allowed)),
        )
        .service(
            web::resource("/.well-known/jwks.json")
                .route(web::get().to(oidc::jwks))
                .default_service(web::to(oauth::method_not_allowed)),
        );
    // django-oauth-toolkit serves its OIDC documents under /o/.
    both(cfg, "/o/.well-known/openid-configuration/", |r| {
        r.route(web::get().to(oidc::discovery))
            .default_service(web::to(oauth::method_not_allowed))
    });
    cfg.service(
        web::resource("/o/.well-known/jwks.json")
            .route(web::get().to(oidc::jwks))
            .default_service(web::to(oauth::method_not_allowed)),
    );
    both(cfg, "/o/userinfo/", |r| {
        r.route(web::get().to(oidc::userinfo))
            .route(web::post().to(oidc::userinfo))
            .route(web::method(actix_web::http::Method::OPTIONS).to(oidc::userinfo_preflight))
            .default_service(web::to(oauth::method_not_allowed))
    });
    both(cfg, "/o/logout/", |r| {
        r.route(web::get().to(oidc::end_session))
            .route(web::post().to(oidc::end_session))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/o/authorize/", |r| {
        r.route(web::get().to(oauth::authorize::show))
            .route(web::post().to(oauth::authorize::decide))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/o/token/", |r| {
        r.route(web::post().to(oauth::token))
            .route(web::method(actix_web::http::Method::OPTIONS).to(oauth::preflight))
            .default_service(web::to(oauth::method_not_allowed))
    });
    both(cfg, "/o/revoke_token/", |r| {
        r.route(web::post().to(oauth::revoke))
            .route(web::method(actix_web::http::Method::OPTIONS).to(oauth::preflight))
            .default_service(web::to(oauth::method_not_allowed))
    });
    both(cfg, "/o/introspect/", |r| {
        r.route(web::post().to(oauth::introspect))
            .default_service(web::to(oauth::method_not_allowed))
    });
    both(cfg, "/accounts/login/", |r| {
        r.route(web::get().to(login::show_login_form))
            .route(web::post().to(login::submit_login))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/accounts/upstream/{provider}/login/", |r| {
        r.route(web::get().to(login::upstream::start))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/accounts/upstream/{provider}/link/", |r| {
        r.route(web::post().to(login::upstream::start_link))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/account/linked/", |r| {
        r.route(web::get().to(login::upstream::linked_accounts))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/account/linked/{provider}/unlink/", |r| {
        r.route(web::post().to(login::upstream::unlink))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/accounts/upstream/{provider}/callback/", |r| {
        r.route(web::get().to(login::upstream::callback))
            .default_service(web::to(pages::method_not_allowed))
    });
    // The Discord logins Latchkey replaces (seeds 000 and 003; routes/login/discord.rs), and
    // seed 000's profile of the signed-in user (routes/api/discord.rs). The callbacks are
    // `domain::upstream::DISCORD_LEGACY_CALLBACK_PATHS`.
    both(cfg, "/oauth2/login/", |r| {
        r.route(web::get().to(login::discord::start_legacy_sign_in))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/oauth2/login/redirect/", |r| {
        r.route(web::get().to(login::discord::finish_legacy_sign_in))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/discord/sso/callback/", |r| {
        r.route(web::get().to(login::discord::finish_legacy_sign_in))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/auth/", |r| {
        r.route(web::get().to(api::discord::show_discord_profile))
            .default_service(web::to(api::method_not_allowed))
    });
    both(cfg, "/accounts/logout/", |r| {
        r.route(web::post().to(login::logout))
            .default_service(web::to(pages::method_not_allowed))
    });
    // The admin console, staff only (routes/console/). Applications are the portal's.
    both(cfg, "/admin/", |r| {
        r.route(web::get().to(console::dashboard::show_dashboard))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/", |r| {
        r.route(web::get().to(console::users::list_users))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/{id}/", |r| {
        r.route(web::get().to(console::users::show_user))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/{id}/profile/", |r| {
        r.route(web::post().to(console::users::update_user_profile))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/{id}/flags/", |r| {
        r.route(web::post().to(console::users::update_user_flags))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/{id}/groups/", |r| {
        r.route(web::post().to(console::users::add_user_to_group))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/{id}/groups/{group_id}/remove/", |r| {
        r.route(web::post().to(console::users::remove_user_from_group))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/{id}/links/{provider}/remove/", |r| {
        r.route(web::post().to(console::users::remove_link))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/{id}/end_sessions/", |r| {
        r.route(web::get().to(console::users::confirm_end_sessions))
            .route(web::post().to(console::users::end_sessions))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/{id}/send_password_reset/", |r| {
        r.route(web::post().to(console::user_actions::send_password_reset))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/{id}/resend_verification/", |r| {
        r.route(web::post().to(console::user_actions::resend_verification))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/users/{id}/delete/", |r| {
        r.route(web::get().to(console::user_actions::confirm_delete_user))
            .route(web::post().to(console::user_actions::delete_user))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/groups/", |r| {
        r.route(web::get().to(console::groups::list_groups))
            .route(web::post().to(console::groups::create_group))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/groups/{id}/", |r| {
        r.route(web::get().to(console::groups::show_group))
            .route(web::post().to(console::groups::update_group))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/groups/{id}/members/add/", |r| {
        r.route(web::post().to(console::groups::add_group_member))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/groups/{id}/members/{user_id}/remove/", |r| {
        r.route(web::post().to(console::groups::remove_group_member))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/groups/{id}/delete/", |r| {
        r.route(web::get().to(console::groups::confirm_delete_group))
            .route(web::post().to(console::groups::delete_group))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/providers/", |r| {
        r.route(web::get().to(console::providers::list_providers))
            .route(web::post().to(console::providers::create_provider))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/providers/{id}/", |r| {
        r.route(web::get().to(console::providers::show_provider))
            .route(web::post().to(console::providers::update_provider))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/providers/{id}/delete/", |r| {
        r.route(web::get().to(console::providers::confirm_delete_provider))
            .route(web::post().to(console::providers::delete_provider))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/tokens/", |r| {
        r.route(web::get().to(console::tokens::list_tokens))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/tokens/revoke/", |r| {
        r.route(web::post().to(console::tokens::revoke_tokens))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/audit/", |r| {
        r.route(web::get().to(console::audit::list_audit_events))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/discord/", |r| {
        r.route(web::get().to(console::discord::show_discord))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/discord/settings/", |r| {
        r.route(web::post().to(console::discord::save_settings))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/discord/test/", |r| {
        r.route(web::post().to(console::discord::test_connection))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/discord/roles/sync/", |r| {
        r.route(web::post().to(console::discord::sync_roles))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/discord/mappings/", |r| {
        r.route(web::post().to(console::discord::map_role))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/discord/mappings/remove/", |r| {
        r.route(web::post().to(console::discord::unmap_role))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/discord/groups/", |r| {
        r.route(web::post().to(console::discord::create_groups))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/admin/discord/jobs/{name}/run/", |r| {
        r.route(web::post().to(console::discord::run_job))
            .default_service(web::to(pages::method_not_allowed))
    });
    // The developer portal (django-oauth-toolkit's paths).
    both(cfg, "/o/applications/", |r| {
        r.route(web::get().to(apps::list_applications))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/o/applications/register/", |r| {
        r.route(web::get().to(apps::show_register_form))
            .route(web::post().to(apps::register_application))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/o/applications/{client_id}/", |r| {
        r.route(web::get().to(apps::show_application))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/o/applications/{client_id}/update/", |r| {
        r.route(web::get().to(apps::show_update_form))
            .route(web::post().to(apps::update_application))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/o/applications/{client_id}/delete/", |r| {
        r.route(web::get().to(apps::confirm_delete))
            .route(web::post().to(apps::delete_application))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/o/applications/{client_id}/secret/", |r| {
        r.route(web::get().to(apps::show_new_secret))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/o/applications/{client_id}/rotate_secret/", |r| {
        r.route(web::get().to(apps::confirm_rotate_secret))
            .route(web::post().to(apps::rotate_secret))
            .default_service(web::to(pages::method_not_allowed))
    });
    // Every signed-in user: the applications they authorized (django-oauth-toolkit's path)
    // and their account.
    both(cfg, "/o/authorized_tokens/", |r| {
        r.route(web::get().to(account::authorized::list_authorized_apps))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/o/authorized_tokens/{client_id}/revoke/", |r| {
        r.route(web::get().to(account::authorized::confirm_revoke_authorization))
            .route(web::post().to(account::authorized::revoke_authorization))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/account/", |r| {
        r.route(web::get().to(account::show_account))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/account/profile/", |r| {
        r.route(web::get().to(account::back_to_account))
            .route(web::post().to(account::update_profile))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/account/password/", |r| {
        r.route(web::get().to(account::back_to_account))
            .route(web::post().to(account::change_password))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/account/sessions/end/", |r| {
        r.route(web::get().to(account::confirm_end_sessions))
            .route(web::post().to(account::end_sessions))
            .default_service(web::to(pages::method_not_allowed))
    });
    // Password reset (routes/login/reset.rs): the email form, "check your email", the link's
    // new-password form, "password changed"; the same two steps as a JSON API
    // (routes/api/password_reset.rs).
    both(cfg, "/accounts/password-reset/", |r| {
        r.route(web::get().to(login::reset::show_request_form))
            .route(web::post().to(login::reset::submit_request))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/accounts/password-reset/done/", |r| {
        r.route(web::get().to(login::reset::show_request_done))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/accounts/password-reset/complete/", |r| {
        r.route(web::get().to(login::reset::show_reset_complete))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(
        cfg,
        "/accounts/password-reset-confirm/{uidb64}/{token}/",
        |r| {
            r.route(web::get().to(login::reset::show_new_password_form))
                .route(web::post().to(login::reset::submit_new_password))
                .default_service(web::to(pages::method_not_allowed))
        },
    );
    both(cfg, "/api/password-reset/", |r| {
        r.route(web::post().to(api::password_reset::request_reset))
            .default_service(web::to(api::method_not_allowed))
    });
    both(cfg, "/api/password-reset-confirm/{uidb64}/{token}/", |r| {
        r.route(web::post().to(api::password_reset::confirm_reset))
            .default_service(web::to(api::method_not_allowed))
    });
    // Emailed one-time codes at login (routes/login/code.rs: the hosted login's code step) and
    // the account page's switch for them (routes/account_mfa.rs). The API side is the
    // password grant and the mfa-otp grant at /o/token/.
    both(cfg, "/accounts/login/code/", |r| {
        r.route(web::get().to(login::code::show_code_form))
            .route(web::post().to(login::code::submit_code))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/accounts/login/code/resend/", |r| {
        r.route(web::get().to(login::code::back_to_code_form))
            .route(web::post().to(login::code::resend_code))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/account/login_code/", |r| {
        r.route(web::get().to(account::back_to_account))
            .route(web::post().to(account::sign_in_codes::set_login_code))
            .default_service(web::to(pages::method_not_allowed))
    });
    // Sessions and logout (routes/account/sessions.rs, routes/api/accounts.rs): ending one
    // browser session or all the others from the account page; the logout API; the admin users
    // API (routes/api/users.rs). `end_others` is registered before `{id}/end/`, though the two
    // cannot overlap.
    both(cfg, "/account/sessions/end_others/", |r| {
        r.route(web::post().to(account::sessions::end_other_sessions))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/account/sessions/{id}/end/", |r| {
        r.route(web::post().to(account::sessions::end_session))
            .default_service(web::to(pages::method_not_allowed))
    });
    // A mobile app's Google token traded for Latchkey tokens (routes/api/google.rs; RFC 8693
    // token exchange at /o/token/ in seed 002's shape and paths).
    both(cfg, "/api/google/", |r| {
        r.route(web::post().to(api::google::exchange_google_token))
            .default_service(web::to(api::google::method_not_allowed))
    });
    both(cfg, "/accounts/api/google/", |r| {
        r.route(web::post().to(api::google::exchange_google_token))
            .default_service(web::to(api::google::method_not_allowed))
    });
    both(cfg, "/api/logout/", |r| {
        r.route(web::post().to(api::accounts::logout))
            .default_service(web::to(api::method_not_allowed))
    });
    both(cfg, "/api/logout_all/", |r| {
        r.route(web::post().to(api::accounts::logout_all))
            .default_service(web::to(api::method_not_allowed))
    });
    both(cfg, "/api/users/", |r| {
        r.route(web::get().to(api::users::list_users))
            .default_service(web::to(api::method_not_allowed))
    });
    both(cfg, "/api/users/{id}/", |r| {
        r.route(web::get().to(api::users::show_user))
            .default_service(web::to(api::method_not_allowed))
    });
    // Self-registration and email verification: the pages (routes/login/register.rs and
    // verify.rs) and the JSON API (routes/api/registration.rs).
    both(cfg, "/accounts/register/", |r| {
        r.route(web::get().to(login::register::show_register_form))
            .route(web::post().to(login::register::submit_register))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/accounts/verify/", |r| {
        r.route(web::get().to(login::verify::show_verify_form))
            .route(web::post().to(login::verify::submit_verify))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/accounts/activate/{uidb64}/{token}/", |r| {
        r.route(web::get().to(login::verify::activate_page))
            .default_service(web::to(pages::method_not_allowed))
    });
    both(cfg, "/api/register/", |r| {
        r.route(web::post().to(api::registration::register))
            .default_service(web::to(api::method_not_allowed))
    });
    both(cfg, "/api/verify-otp/", |r| {
        r.route(web::post().to(api::registration::verify_otp))
            .default_service(web::to(api::method_not_allowed))
    });
    both(cfg, "/api/activate/{uidb64}/{token}/", |r| {
        r.route(web::get().to(api::registration::activate))
            .default_service(web::to(api::method_not_allowed))
    });
    both(cfg, "/api/resend-otp/", |r| {
        r.route(web::post().to(api::registration::resend))
            .default_service(web::to(api::method_not_allowed))
    });
    both(cfg, "/api/resend-activation-email/", |r| {
        r.route(web::post().to(api::registration::resend))
            .default_service(web::to(api::method_not_allowed))
    });
    cfg.service(
        web::resource("/api/me")
            .route(web::get().to(api::me))
            .default_service(web::to(api::method_not_allowed)),
    );
    // The OpenAPI 3.1 document of the JSON APIs (routes/openapi.rs).
    cfg.service(
        web::resource("/api/openapi.json")
            .route(web::get().to(openapi::show_document))
            .default_service(web::to(api::method_not_allowed)),
    );
}

/// Registers every URL of the separate metrics listener (`metrics.listen`): `/metrics` alone.
pub fn configure_metrics_listener(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(metrics::scrape))
            .default_service(web::to(api::method_not_allowed)),
    );
}

/// Registers `path` (ending in `/`) and the same path without the slash.
fn both(
    cfg: &mut web::ServiceConfig,
    path: &str,
    build: impl Fn(actix_web::Resource) -> actix_web::Resource,
) {
    cfg.service(build(web::resource(path)));
    cfg.service(build(web::resource(path.trim_end_matches('/'))));
}

pub use chrome::Brand;
pub use errors::brand_error_pages;
pub use pages::{not_found, refuse_nul_in_path};
