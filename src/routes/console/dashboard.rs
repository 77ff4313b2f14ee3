//! The console's dashboard `/admin/`: counts of users, applications, active tokens and recent
//! logins, the latest audit events, and the scheduled jobs.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::audit::{event_lines, EventLine};
use crate::accounts::Accounts;
use crate::audit::Audit;
use crate::clients::Clients;
use crate::db::audit_events::AuditFilter;
use crate::db::jobs::JobRow;
use crate::domain::PageRequest;
use crate::oauth::OAuth;
use crate::routes::chrome::{page, AdminArea, Chrome, Section};
use crate::routes::errors::PageError;
use crate::routes::extract::Staff;
use crate::routes::format::Moment;
use crate::scheduler::Jobs;

/// How many audit events the dashboard shows.
const DASHBOARD_EVENTS: i64 = 10;

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    users: i64,
    applications: i64,
    active_tokens: i64,
    logins_24h: i64,
    events: Vec<EventLine>,
    jobs: Vec<JobLine>,
}

/// One scheduled job on the dashboard (`jobs` rows, see `crate::scheduler`); the Discord page
/// lists its jobs the same way.
pub(super) struct JobLine {
    pub(super) name: String,
    /// "running", "failing" or "ok"; `None` before the first run.
    pub(super) status: Option<&'static str>,
    pub(super) last_run: Option<Moment>,
    pub(super) next_run: Moment,
    /// Off: not due on its own (it runs when asked).
    pub(super) off: bool,
    pub(super) failures: i64,
    pub(super) last_error: Option<String>,
}

impl JobLine {
    pub(super) fn from_row(row: JobRow, now: chrono::NaiveDateTime) -> Self {
        let status = if row.running_until.is_some_and(|u| u >= now) {
            Some("running")
        } else if row.last_error.is_some() {
            Some("failing")
        } else if row.last_finished_at.is_some() {
            Some("ok")
        } else {
            None
        };
        Self {
            name: row.name,
            status,
            last_run: row.last_started_at.as_ref().map(Moment::of),
            next_run: Moment::of(&row.next_run_at),
            off: row.every_seconds == Some(0)
                || row.next_run_at > now + chrono::TimeDelta::days(365),
            failures: row.failures,
            last_error: row.last_error,
        }
    }
}

/// `GET /admin/`: counts of users, applications, active tokens and recent logins, the latest
/// audit events, and the scheduled jobs (last run, next run, last error).
pub async fn show_dashboard(
    admin: Staff,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    oauth: web::Data<OAuth>,
    audit: web::Data<Audit>,
    jobs: web::Data<Jobs>,
) -> Result<HttpResponse, PageError> {
    let now = crate::db::now();
    let since = now - chrono::Duration::hours(24);
    let latest = audit
        .list(
            AuditFilter::default(),
            PageRequest::new(None, DASHBOARD_EVENTS),
        )
        .await?;
    Ok(page(&DashboardPage {
        chrome: admin.chrome(Section::Admin(AdminArea::Dashboard)),
        users: accounts.count().await?,
        applications: clients.count().await?,
        active_tokens: oauth.count_active_tokens().await?,
        logins_24h: audit.count_since("login.success", since).await?,
        events: event_lines(&accounts, &clients, latest.items).await?,
        jobs: jobs
            .list()
            .await?
            .into_iter()
            .map(|row| JobLine::from_row(row, now))
            .collect(),
    }))
}
