//! The console's dashboard `/admin/`.

use super::audit::{event_lines, EventLine};
use super::*;

/// How many audit events the dashboard shows.
pub(super) const DASHBOARD_EVENTS: i64 = 10;

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
pub(super) struct DashboardPage<'a> {
    who: &'a str,
    csrf_token: String,
    area: &'static str,
    users: i64,
    applications: i64,
    active_tokens: i64,
    logins_24h: i64,
    events: Vec<EventLine>,
    jobs: Vec<JobLine>,
}

/// One scheduled job on the dashboard (`jobs` rows, see `crate::scheduler`).
pub(super) struct JobLine {
    name: String,
    /// "running", "failing" or "ok"; `None` before the first run.
    status: Option<&'static str>,
    last_run: Option<String>,
    next_run: String,
    failures: i64,
    last_error: Option<String>,
}

impl JobLine {
    fn from_row(row: JobRow, now: chrono::NaiveDateTime) -> Self {
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
            last_run: row.last_started_at.as_ref().map(show_time),
            next_run: show_time(&row.next_run_at),
            failures: row.failures,
            last_error: row.last_error,
        }
    }
}

/// `GET /admin/`: counts of users, applications, active tokens and recent logins, the latest
/// audit events, and the scheduled jobs (last run, next run, last error).
#[allow(clippy::too_many_arguments)] // actix extractors
pub async fn show_dashboard(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    oauth: web::Data<OAuth>,
    audit: web::Data<Audit>,
    jobs: web::Data<Jobs>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let now = crate::db::now();
    let since = now - chrono::Duration::hours(24);
    let loaded = async {
        Ok::<_, DbError>((
            accounts.count().await?,
            clients.count().await?,
            oauth.count_active_tokens().await?,
            audit.count_since("login.success", since).await?,
            audit
                .list(
                    AuditFilter::default(),
                    PageRequest::new(None, DASHBOARD_EVENTS),
                )
                .await?,
            jobs.list().await?,
        ))
    }
    .await;
    let (users, applications, active_tokens, logins_24h, latest, job_rows) = match loaded {
        Ok(all) => all,
        Err(e) => return unavailable(&e),
    };
    let events = match event_lines(&accounts, &clients, latest.items).await {
        Ok(lines) => lines,
        Err(e) => return unavailable(&e),
    };
    render(
        StatusCode::OK,
        &DashboardPage {
            who: &admin.username,
            csrf_token: csrf_token(&session),
            area: "dashboard",
            users,
            applications,
            active_tokens,
            logins_24h,
            events,
            jobs: job_rows
                .into_iter()
                .map(|row| JobLine::from_row(row, now))
                .collect(),
        },
    )
}
