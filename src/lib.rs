//! # Latchkey
//!
//! A standalone OAuth 2.0 authorization server and OpenID Provider: one binary, SQLite embedded
//! or PostgreSQL.
//!
//! ## Architecture (read this first)
//!
//! Dependencies run one way — `routes → oauth → oidc → {accounts, clients, groups} → audit → db`
//! (the layer table is in `docs/architecture.md`; `tests/api/layers.rs` holds the code to it):
//!
//! * [`routes`] — actix-web handlers and askama pages, in folders by area (console, account,
//!   login, apps, oauth, oidc, api); the whole URL table is in [`routes::configure`]. A handler
//!   takes extractors (signed-in user, CSRF-checked form, API body or bearer token), calls a
//!   service with `?` and renders; errors render themselves (`PageError`, `ApiError`). No SQL.
//! * [`oauth`] — the protocol. oxide-auth's `code_grant` state machines run the token
//!   endpoint's authorization-code exchange and refresh over our diesel-backed
//!   `Registrar`/`Authorizer`/`Issuer`; the authorization endpoint, the password, mfa-otp and
//!   client-credentials grants, minting (`oauth::mint`), introspection and revocation are ours,
//!   and so are parameter parsing, client authentication, every RFC-shaped answer and RFC 8707
//!   resource indicators (a token's audience; resource servers introspect theirs). Each rule is
//!   checked once (the table in `docs/architecture.md`).
//! * [`oidc`] — OpenID Connect on top of `oauth`: signing keys (generated into the database,
//!   private parts sealed with a key derived from the secret key, rotated with overlap), the
//!   JWKS, ID-token / UserInfo / RFC 9068 access-token claims, RP-initiated logout. The
//!   authorization endpoint stores `nonce`, `auth_time` and `amr` with the code; minting carries
//!   them onto the tokens; an ID token is signed after the token
//!   transaction commits.
//! * [`accounts`] — users, argon2id passwords (bounded concurrency, Django-equivalent
//!   validators), login limits, registration, email verification (code and signed link),
//!   emailed login codes (hosted step and the mfa-otp grant), password reset, server-side
//!   browser sessions, admin flags and who may change whose account (`accounts::privileges`),
//!   an admin's actions on a user (reset and verification emails, deletion: `accounts::admin`),
//!   "sign out everywhere". [`mail`] sends their emails (SMTP or the development outbox).
//! * [`clients`] — client registration rules and secrets (SHA-256, shown once).
//! * [`groups`] — groups of users for admins (upstream connectors map them to outside roles).
//! * [`discord`] — the Discord connector (issue 12): groups mapped to guild roles, role changes
//!   queued with membership changes and applied by a bot (twilight's REST client), jobs on the
//!   scheduler.
//! * [`upstream`] — sign-in through Discord, Google and OpenID Connect providers (issue 11):
//!   providers from the configuration and the console (one live set), the relying party
//!   (`oauth2` over reqwest, ID tokens verified with `jsonwebtoken` against the JWKS), linked
//!   accounts and the linking rule, the Discord profile, kept upstream tokens, and Google
//!   token exchange for first-party apps; the hosted flow is `routes/login/upstream.rs`.
//! * [`audit`] — the audit log: services record security events with [`audit::record`] inside
//!   the transaction of the change they describe; the admin console lists them. The web pages
//!   (developer portal, account, admin console) are in [`routes`] and only call services.
//! * [`db`] — one diesel codebase over SQLite and PostgreSQL (`MultiConnection`), embedded
//!   migrations, and the one helper through which every query runs: reads on the blocking pool
//!   (lookups by key on SQLite on the calling thread, `Db::lookup`), SQLite writes on one
//!   writer thread that commits them in groups (`db::writer`); client-credentials tokens made
//!   before storage is asked and, on PostgreSQL, inserted in groups, and introspected tokens
//!   looked up in groups (`db::grouped`).
//! * [`scheduler`] — jobs every node may run, each run claimed by exactly one node through a
//!   conditional update of its `jobs` row; [`maintenance`] registers cleanup and key rotation.
//! * [`config`] (figment), [`cli`] (clap), [`startup`] (builds the app; tests use it too),
//!   [`telemetry`] (tracing, `audit` target; every request's log lines carry its request id),
//!   [`metrics`] (Prometheus metrics every layer records to, rendered at `/metrics`),
//!   [`domain`] (validated newtypes), [`secret`].
//!
//! Nothing that nodes must share lives in memory: a session cookie holds only a handle to a
//! `user_sessions` row; codes (authorization and one-time), tokens, consents, rate-limit
//! counters, audit events, scheduled jobs and signing keys are rows (each node caches the keys
//! for `oidc.key_cache_seconds`, and confirms a cached key still exists before it signs or
//! verifies with it, so a revoked key stops at once). The living design is
//! `docs/architecture.md`.

pub mod accounts;
pub mod audit;
pub mod cli;
pub mod clients;
pub mod config;
pub mod db;
pub mod demo;
pub mod discord;
pub mod domain;
pub mod error;
pub mod groups;
pub mod limits;
pub mod mail;
pub mod maintenance;
pub mod metrics;
pub mod oauth;
pub mod oidc;
#[cfg(test)]
mod properties;
pub mod routes;
pub mod scheduler;
pub mod secret;
pub mod services;
pub mod startup;
pub mod telemetry;
pub mod upstream;
