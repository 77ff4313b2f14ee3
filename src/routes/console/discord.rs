//! The console's Discord connector page (`/admin/discord/`, issue 12): the connector's
//! settings and queue, "test connection", "sync roles from Discord", the guild's roles with the
//! groups mapped to each and why a role cannot be mapped, the mapping form, and "create a local
//! group per role". Every action is a superuser's: the connector's service refuses anyone else
//! (a staff member gets the 403 page).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::dashboard::JobLine;
use super::{group_not_found, not_allowed};
use crate::db::groups::GroupRow;
use crate::discord::{
    ConnectionReport, ConnectorStatus, DiscordConnector, DiscordError, EditableSettings,
    JobSchedules, SettingsChange,
};
use crate::groups::Groups;
use crate::routes::chrome::{flash, render, AdminArea, Chrome, Notice, Section};
use crate::routes::errors::{FieldErrors, PageError};
use crate::routes::extract::{Form, Staff};
use crate::routes::format::Moment;
use crate::routes::http::see_other;

/// The page's address.
const DISCORD_PATH: &str = "/admin/discord/";

/// One guild role on the page.
struct RoleView {
    id: String,
    name: String,
    color: Option<String>,
    position: i64,
    managed: bool,
    unmappable: Option<String>,
    /// Mapped groups: (id, name).
    groups: Vec<(String, String)>,
}

/// A queued change that failed at least once.
struct TroubleView {
    username: String,
    role: String,
    attempts: i64,
    failed: bool,
    error: String,
    next_attempt: Moment,
}

#[derive(Template)]
#[template(path = "admin/discord.html")]
struct DiscordPage {
    chrome: Chrome,
    /// `None` when `[discord]` is off.
    status: Option<ConnectorStatus>,
    roles: Vec<RoleView>,
    troubles: Vec<TroubleView>,
    synced: Option<Moment>,
    /// The result of "test connection", when just run.
    report: Option<ConnectionReport>,
    groups: Vec<GroupRow>,
    /// The connector's scheduled jobs.
    jobs: Vec<JobLine>,
    /// The settings form's values (the settings in effect, or what was typed).
    form: EditableSettings,
    /// The mapping form's message (`mapping`).
    errors: FieldErrors,
}

impl DiscordPage {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors.first(field)
    }
}

/// The page for a connector failure the handler has no better answer to.
fn discord_failure(e: DiscordError) -> PageError {
    match e {
        DiscordError::Off => PageError::not_found(
            "Discord connector off",
            "The Discord connector is off: set [discord] enabled = true (see the README's Discord connector section).",
        ),
        DiscordError::Forbidden(refusal) => not_allowed(&refusal.to_string()),
        DiscordError::NotFound => group_not_found(),
        DiscordError::Db(e) => e.into(),
        DiscordError::Api(e) => {
            tracing::warn!(error = %e, "a Discord call from the console failed");
            PageError::BadGateway {
                title: "Discord did not answer as asked",
                message: format!("{e}. Nothing was changed."),
            }
        }
        DiscordError::Stopped(m) => PageError::BadGateway {
            title: "Discord refused the bot",
            message: format!("{m}."),
        },
        DiscordError::Misconfigured(m) | DiscordError::Invalid(m) => {
            PageError::bad_request("Not done", format!("{m}."))
        }
    }
}

/// Renders the page with `report` and the mapping form's `errors` (422 when there are some).
async fn discord_page(
    admin: &Staff,
    connector: &DiscordConnector,
    groups: &Groups,
    report: Option<ConnectionReport>,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    discord_page_with(admin, connector, groups, report, errors, None).await
}

/// [`discord_page`] with the settings form showing `typed` instead of the settings in effect.
async fn discord_page_with(
    admin: &Staff,
    connector: &DiscordConnector,
    groups: &Groups,
    report: Option<ConnectionReport>,
    errors: FieldErrors,
    typed: Option<EditableSettings>,
) -> Result<HttpResponse, PageError> {
    let status = match connector.status(&admin.actor()).await {
        Ok(status) => Some(status),
        Err(DiscordError::Off) => None,
        Err(e) => return Err(discord_failure(e)),
    };
    let now = crate::db::now();
    let jobs = if status.is_some() {
        connector
            .jobs(&admin.actor())
            .await
            .map_err(discord_failure)?
            .into_iter()
            .map(|row| JobLine::from_row(row, now))
            .collect()
    } else {
        Vec::new()
    };
    let names: std::collections::HashMap<i64, String> = status
        .iter()
        .flat_map(|s| &s.roles)
        .map(|r| (r.id, r.name.clone()))
        .collect();
    let roles = status
        .iter()
        .flat_map(|s| &s.roles)
        .map(|line| RoleView {
            id: line.id.to_string(),
            name: line.name.clone(),
            color: line.color_hex(),
            position: line.position,
            managed: line.managed,
            unmappable: line.unmappable.clone(),
            groups: line.groups.clone(),
        })
        .collect();
    let troubles = status
        .iter()
        .flat_map(|s| &s.troubled)
        .map(|t| TroubleView {
            username: t.username.clone(),
            role: names
                .get(&t.role_id)
                .cloned()
                .unwrap_or_else(|| t.role_id.to_string()),
            attempts: t.attempts,
            failed: t.failed,
            error: t.last_error.clone(),
            next_attempt: Moment::of(&t.next_attempt_at),
        })
        .collect();
    let synced = status
        .as_ref()
        .and_then(|s| s.roles.first())
        .map(|r| Moment::of(&r.synced_at));
    let form = typed
        .or_else(|| status.as_ref().map(|s| s.settings.clone()))
        .unwrap_or_default();
    let code = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(render(
        code,
        &DiscordPage {
            chrome: admin.chrome(Section::Admin(AdminArea::Discord)),
            status,
            roles,
            troubles,
            synced,
            report,
            groups: groups.all().await?,
            form,
            jobs,
            errors,
        },
    ))
}

/// `GET /admin/discord/`: the connector's page.
pub async fn show_discord(
    admin: Staff,
    connector: web::Data<DiscordConnector>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, PageError> {
    discord_page(&admin, &connector, &groups, None, FieldErrors::new()).await
}

/// `POST /admin/discord/test/`: tests the bot token, the bot's membership and its permissions,
/// and shows what it found.
pub async fn test_connection(
    admin: Staff,
    _form: Form,
    connector: web::Data<DiscordConnector>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, PageError> {
    let report = connector
        .test_connection(&admin.actor())
        .await
        .map_err(discord_failure)?;
    discord_page(
        &admin,
        &connector,
        &groups,
        Some(report),
        FieldErrors::new(),
    )
    .await
}

/// `POST /admin/discord/roles/sync/`: reads the guild's roles from Discord.
pub async fn sync_roles(
    admin: Staff,
    _form: Form,
    connector: web::Data<DiscordConnector>,
) -> Result<HttpResponse, PageError> {
    let count = connector
        .sync_roles(&admin.actor())
        .await
        .map_err(discord_failure)?;
    flash(
        admin.session(),
        Notice::success(format!("{count} roles were read from Discord.")),
    );
    Ok(see_other(DISCORD_PATH))
}

/// The role id of a form, when it is one.
fn role_of(form: &crate::oauth::Params) -> Option<i64> {
    form.get("role_id")
        .and_then(|r| r.trim().parse::<i64>().ok())
        .filter(|r| *r > 0)
}

/// `POST /admin/discord/mappings/`: maps `group_id` to `role_id`; a refused role comes back
/// with the reason next to the form (422).
pub async fn map_role(
    admin: Staff,
    Form(form): Form,
    connector: web::Data<DiscordConnector>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, PageError> {
    let group = form.get("group_id").unwrap_or_default().to_owned();
    let message = match role_of(&form) {
        None => "choose a role".to_owned(),
        Some(role) => match connector.map_role(&admin.actor(), &group, role).await {
            Ok(new) => {
                let notice = if new {
                    Notice::success("The group was mapped to the role; its members get it.")
                } else {
                    Notice::info("The group was already mapped to that role.")
                };
                flash(admin.session(), notice);
                return Ok(see_other(DISCORD_PATH));
            }
            Err(DiscordError::Invalid(why)) => why,
            Err(DiscordError::NotFound) => "choose a group".to_owned(),
            Err(e) => return Err(discord_failure(e)),
        },
    };
    discord_page(
        &admin,
        &connector,
        &groups,
        None,
        FieldErrors::one("mapping", message),
    )
    .await
}

/// `POST /admin/discord/mappings/remove/`: removes a mapping; the members lose the role
/// unless another of their groups gives it.
pub async fn unmap_role(
    admin: Staff,
    Form(form): Form,
    connector: web::Data<DiscordConnector>,
) -> Result<HttpResponse, PageError> {
    let group = form.get("group_id").unwrap_or_default().to_owned();
    let Some(role) = role_of(&form) else {
        return Err(PageError::bad_request("Not done", "No role was given."));
    };
    if connector
        .unmap_role(&admin.actor(), &group, role)
        .await
        .map_err(discord_failure)?
    {
        flash(admin.session(), Notice::success("The mapping was removed."));
    }
    Ok(see_other(DISCORD_PATH))
}

/// `POST /admin/discord/groups/`: a new local group for each mappable role that has none (an
/// existing group of the role's name is listed as a clash, never adopted).
pub async fn create_groups(
    admin: Staff,
    _form: Form,
    connector: web::Data<DiscordConnector>,
) -> Result<HttpResponse, PageError> {
    let report = connector
        .create_groups_for_roles(&admin.actor())
        .await
        .map_err(discord_failure)?;
    let mut message = format!(
        "{} groups were created and mapped to roles of the same name.",
        report.created
    );
    if !report.clashes.is_empty() {
        message.push_str(&format!(
            " {} roles have the name of an existing group, which was not used: see “Roles whose name a group has” to map them yourself.",
            report.clashes.len()
        ));
    }
    flash(admin.session(), Notice::success(message));
    Ok(see_other(DISCORD_PATH))
}

/// `POST /admin/discord/jobs/{name}/run/`: the job runs at the scheduler's next pass.
pub async fn run_job(
    admin: Staff,
    _form: Form,
    path: web::Path<String>,
    connector: web::Data<DiscordConnector>,
) -> Result<HttpResponse, PageError> {
    let notice = if connector
        .run_job_soon(&admin.actor(), &path)
        .await
        .map_err(discord_failure)?
    {
        Notice::success(format!(
            "{} runs within a minute, on one node.",
            path.as_str()
        ))
    } else {
        Notice::problem(format!(
            "No node schedules {} (is scheduler.enabled false?); `latchkey discord` runs it now.",
            path.as_str()
        ))
    };
    flash(admin.session(), notice);
    Ok(see_other(DISCORD_PATH))
}

/// `POST /admin/discord/settings/`: saves the connector's settings (the bot token sealed;
/// empty keeps the one in use); a refused value comes back with the reason (422).
pub async fn save_settings(
    admin: Staff,
    Form(form): Form,
    connector: web::Data<DiscordConnector>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, PageError> {
    let field = |name: &str| form.get(name).unwrap_or_default().trim().to_owned();
    let change = SettingsChange {
        provider: field("provider"),
        guild_id: field("guild_id"),
        invite_link: field("invite_link"),
        remote_priority: form.get("remote_priority") == Some("on"),
        bot_token: Some(field("bot_token"))
            .filter(|t| !t.is_empty())
            .map(secrecy::SecretString::from),
        // The form always sends it; empty (which form parsing cannot tell from absent) is
        // none.
        nickname_template: Some(field("nickname_template")),
        schedules: JobSchedules {
            verify: field("verify_minutes"),
            remote_sync: field("remote_sync_minutes"),
            sync_accounts: field("sync_accounts_minutes"),
            enforce_nicknames: field("enforce_nicknames_minutes"),
        },
    };
    let typed = EditableSettings {
        provider: change.provider.clone(),
        guild_id: change.guild_id.parse().ok(),
        invite_link: change.invite_link.clone(),
        remote_priority: change.remote_priority,
        has_token: false,
        saved_in_console: false,
        nickname_template: change.nickname_template.clone().unwrap_or_default(),
        schedules: change.schedules.clone(),
    };
    match connector.save_settings(&admin.actor(), change).await {
        Ok(()) => {
            flash(admin.session(), Notice::success("The settings were saved."));
            Ok(see_other(DISCORD_PATH))
        }
        Err(DiscordError::Invalid(why)) => {
            discord_page_with(
                &admin,
                &connector,
                &groups,
                None,
                FieldErrors::one("settings", why),
                Some(typed),
            )
            .await
        }
        Err(e) => Err(discord_failure(e)),
    }
}
