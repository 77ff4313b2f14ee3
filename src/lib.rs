//! # Latchkey
//!
//! A standalone OAuth 2.0 authorization server: one binary, SQLite embedded or PostgreSQL.
//!
//! ## Architecture (read this first)
//!
//! Dependencies run one way — `routes → {oauth, accounts, clients} → db`:
//!
//! * [`routes`] — actix-web handlers and askama pages; the whole URL table is in
//!   [`routes::configure`]. Parses input, calls a service, renders. No SQL.
//! * [`oauth`] — the protocol. oxide-auth's `code_grant` state machines run the
//!   authorization-code, refresh and client-credentials flows over our diesel-backed
//!   `Registrar`/`Authorizer`/`Issuer`; our own layer parses parameters, authenticates clients and
//!   writes every RFC-shaped answer. Password grant, introspection, revocation are ours.
//! * [`accounts`] — users, argon2id passwords (bounded concurrency), login limits.
//! * [`clients`] — client registration rules and secrets (SHA-256, shown once).
//! * [`db`] — one diesel codebase over SQLite and PostgreSQL (`MultiConnection`), embedded
//!   migrations, and the one helper through which every query runs on the blocking pool.
//! * [`config`] (figment), [`cli`] (clap), [`startup`] (builds the app; tests use it too),
//!   [`telemetry`] (tracing, `audit` target), [`domain`] (validated newtypes), [`secret`].
//!
//! Nothing that nodes must share lives in memory: sessions are encrypted cookies; codes, tokens,
//! consents and rate-limit counters are rows. The living design is `docs/architecture.md`.

pub mod accounts;
pub mod cli;
pub mod clients;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod limits;
pub mod oauth;
pub mod oidc;
pub mod routes;
pub mod secret;
pub mod startup;
pub mod telemetry;
