//! Latchkey's integration tests: each test spawns the real server on a random port with its own
//! database (SQLite in a temporary directory, or a fresh PostgreSQL database when
//! `LATCHKEY_TEST_POSTGRES_URL` is set) and drives it over HTTP like a client would.

mod account;
mod admin;
mod admin_privileges;
mod admin_user_actions;
mod api_errors;
mod api_users;
mod audit;
mod authorization_code;
mod authorize_redirects;
mod bad_input;
mod branding;
mod browser;
mod cli;
mod client_credentials;
mod client_metadata;
mod client_powers;
mod config_bounds;
mod cors;
mod error_bodies;
mod helpers;
mod hostile;
mod introspection_revocation;
mod keys;
mod layers;
mod login_code;
mod login_limits;
mod metadata_health;
mod migrations;
mod oidc;
mod oidc_flows;
mod password;
mod password_reset;
mod portal;
mod proxies;
mod races;
mod refresh;
mod registration;
mod resource;
mod resource_indicators;
mod scheduler;
mod sessions;
mod sign_in_context;
mod smtp;
mod upstream_links;
