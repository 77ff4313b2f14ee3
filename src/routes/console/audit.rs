//! The console's audit log (`/admin/audit/`), and the event lines the dashboard shows too.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{query, user_filter, ClientRef, Person, UserChoice, UserFilterField};
use crate::accounts::Accounts;
use crate::audit::Audit;
use crate::clients::Clients;
use crate::db::audit_events::{AuditFilter, AuditRow};
use crate::db::DbError;
use crate::domain::{Page, PageRequest};
use crate::routes::chrome::{page, AdminArea, Chrome, Section};
use crate::routes::errors::PageError;
use crate::routes::extract::Staff;
use crate::routes::format::{page_number, Moment, PageNav};
use crate::routes::WebConfig;

/// One row of the audit log.
pub(super) struct EventLine {
    /// When it happened.
    pub(super) time: Moment,
    pub(super) event: String,
    pub(super) actor: Option<Person>,
    /// Who acted when no user did: the client (at the token endpoints), "anonymous" (a
    /// visitor with an address) or "system" (neither: the CLI, jobs).
    pub(super) nobody: &'static str,
    pub(super) user: Option<Person>,
    pub(super) client: Option<ClientRef>,
    pub(super) ip: Option<String>,
    /// The details object's members as `(name, value)`: strings as they are, other values as
    /// JSON text.
    pub(super) details: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage<'a> {
    chrome: Chrome,
    events: Vec<EventLine>,
    event: &'a str,
    user_id: &'a str,
    user_login: String,
    user_error: String,
    client_id: &'a str,
    ip: &'a str,
    page: PageNav,
}

impl AuditPage<'_> {
    fn filtered(&self) -> bool {
        !(self.event.is_empty()
            && self.user_id.is_empty()
            && self.client_id.is_empty()
            && self.ip.is_empty()
            && self.user_error.is_empty())
    }
}

/// `GET /admin/audit/[?event=NAME|PREFIX.&user_id=ID&client_id=ID&ip=ADDR&page=N]`: the audit
/// log, newest first. `event` ending in `.` matches every event with that prefix; `user_id`
/// matches events the user caused or was the subject of. Like the token list, the form's `user`
/// field (username or email) becomes `user_id` in a redirect.
pub async fn list_audit_events(
    admin: Staff,
    req: HttpRequest,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    audit: web::Data<Audit>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let params = query(&req);
    let event = params.get("event").unwrap_or_default().trim();
    let client_id = params.get("client_id").unwrap_or_default().trim();
    let ip = params.get("ip").unwrap_or_default().trim();
    let others = [("event", event), ("client_id", client_id), ("ip", ip)];
    let (user_id, user_login, user_error) =
        match user_filter(&accounts, &params, "/admin/audit/", &others).await? {
            UserChoice::Redirect(response) => return Ok(response),
            UserChoice::Show(UserFilterField { id, login, error }) => (id, login, error),
        };
    let request = PageRequest::new(page_number(&params), web.page_size);
    let found = if user_error.is_empty() {
        let filter = AuditFilter {
            event: Some(event.to_owned()).filter(|s| !s.is_empty()),
            user_id: Some(user_id.clone()).filter(|s| !s.is_empty()),
            client_id: Some(client_id.to_owned()).filter(|s| !s.is_empty()),
            ip: Some(ip.to_owned()).filter(|s| !s.is_empty()),
            since: None,
        };
        audit.list(filter, request).await?
    } else {
        Page::new(Vec::new(), request, 0)
    };
    let nav = PageNav::new(
        &found,
        "/admin/audit/",
        &[
            ("event", event),
            ("user_id", &user_id),
            ("client_id", client_id),
            ("ip", ip),
        ],
    );
    let events = event_lines(&accounts, &clients, found.items).await?;
    Ok(page(&AuditPage {
        chrome: admin.chrome(Section::Admin(AdminArea::Audit)),
        events,
        event,
        user_id: &user_id,
        user_login,
        user_error,
        client_id,
        ip,
        page: nav,
    }))
}

/// Whether a client application itself did what `event` records (token requests, client
/// authentication), as opposed to a change made to a client by someone else.
fn client_acted(event: &str) -> bool {
    ["token.", "client_auth.", "code.", "refresh_token."]
        .iter()
        .any(|prefix| event.starts_with(prefix))
}

/// Usernames of `ids`, each looked up once (`None`: the user is gone).
async fn usernames<'a>(
    accounts: &Accounts,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Option<String>>, DbError> {
    let mut names = HashMap::new();
    for id in ids {
        if !names.contains_key(id) {
            let name = accounts.find(id.to_owned()).await?.map(|u| u.username);
            names.insert(id.to_owned(), name);
        }
    }
    Ok(names)
}

/// Client names of `ids`, each looked up once (`None`: the client is gone).
pub(super) async fn client_names<'a>(
    clients: &Clients,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Option<String>>, DbError> {
    let mut names = HashMap::new();
    for id in ids {
        if !names.contains_key(id) {
            let name = clients.find(id).await?.map(|c| c.name().to_owned());
            names.insert(id.to_owned(), name);
        }
    }
    Ok(names)
}

/// The members of an audit event's details object, for display (text that is not an object,
/// which the audit module never writes, is shown whole).
pub(super) fn detail_pairs(details: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(details) {
        Ok(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        Err(_) => vec![(String::new(), details.to_owned())],
    }
}

/// Audit rows as the tables show them, with user and client names.
pub(super) async fn event_lines(
    accounts: &Accounts,
    clients: &Clients,
    rows: Vec<AuditRow>,
) -> Result<Vec<EventLine>, DbError> {
    let users = usernames(
        accounts,
        rows.iter()
            .flat_map(|r| [r.actor_id.as_deref(), r.user_id.as_deref()])
            .flatten(),
    )
    .await?;
    let apps = client_names(clients, rows.iter().filter_map(|r| r.client_id.as_deref())).await?;
    let person = |id: String| Person {
        name: users.get(&id).cloned().flatten(),
        id,
    };
    Ok(rows
        .into_iter()
        .map(|row| EventLine {
            time: Moment::of(&row.occurred_at),
            nobody: if row.client_id.is_some() && client_acted(&row.event) {
                "client"
            } else if row.ip.is_some() {
                "anonymous"
            } else {
                "system"
            },
            actor: row.actor_id.map(person),
            user: row.user_id.map(person),
            event: row.event,
            client: row.client_id.map(|id| ClientRef {
                name: apps.get(&id).cloned().flatten(),
                id,
            }),
            ip: row.ip,
            details: detail_pairs(&row.details),
        })
        .collect())
}
