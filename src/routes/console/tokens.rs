//! The console's token list and revocation.

use super::audit::client_names;
use super::*;

/// One row of the token list.
pub(super) struct TokenLine {
    id: String,
    /// A token of a staff or superuser account shown to a staff member who is not a superuser:
    /// no checkbox (the service refuses to revoke it anyway).
    protected: bool,
    kind: String,
    client: ClientRef,
    user: Option<Person>,
    scope: String,
    grant_type: String,
    created: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "admin/tokens.html")]
pub(super) struct TokensPage<'a> {
    who: &'a str,
    csrf_token: String,
    area: &'static str,
    tokens: Vec<TokenLine>,
    user_id: &'a str,
    /// What the user filter field shows: the username, or what was typed.
    user_login: String,
    user_error: String,
    client_id: &'a str,
    page: PageNav,
    notice: Option<String>,
}

/// `GET /admin/tokens/[?user_id=ID&client_id=ID&page=N]`: active tokens, newest first. The
/// filter form sends `user` (a username or email), which is looked up and replaced by
/// `user_id` in a redirect, so links and pages always carry the id.
pub async fn list_tokens(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let params = query(&req);
    let client_id = params.get("client_id").unwrap_or_default().trim();
    let (user_id, user_login, user_error) = match user_filter(
        &accounts,
        &params,
        "/admin/tokens/",
        &[("client_id", client_id)],
    )
    .await
    {
        Ok(UserChoice::Redirect(response)) => return response,
        Ok(UserChoice::Chosen { id, login }) => (id, login, String::new()),
        Ok(UserChoice::Unknown(login)) => (
            String::new(),
            login,
            "no user has this username or email address".to_owned(),
        ),
        Err(e) => return unavailable(&e),
    };
    let request = PageRequest::new(page_number(&params), web.page_size);
    let page = if user_error.is_empty() {
        let filter = TokenFilter {
            user_id: Some(user_id.clone()).filter(|s| !s.is_empty()),
            client_id: Some(client_id.to_owned()).filter(|s| !s.is_empty()),
        };
        match oauth.list_tokens(filter, request).await {
            Ok(p) => p,
            Err(e) => return unavailable(&e),
        }
    } else {
        Page::new(Vec::new(), request, 0)
    };
    let nav = PageNav::new(
        &page,
        "/admin/tokens/",
        &[("user_id", &user_id), ("client_id", client_id)],
    );
    let names = match client_names(
        &clients,
        page.items.iter().map(|t| t.row.client_id.as_str()),
    )
    .await
    {
        Ok(names) => names,
        Err(e) => return unavailable(&e),
    };
    let tokens = page
        .items
        .into_iter()
        .map(|listing| {
            let row = listing.row;
            TokenLine {
                protected: listing.owner_is_admin
                    && !admin.is_superuser
                    && row.user_id.as_deref() != Some(admin.id.as_str()),
                client: ClientRef {
                    name: names.get(&row.client_id).cloned().flatten(),
                    id: row.client_id,
                },
                user: row.user_id.map(|id| Person {
                    id,
                    name: listing.username,
                }),
                created: show_time(&row.created_at),
                expires: show_time(&row.expires_at),
                id: row.id,
                kind: row.kind,
                scope: row.scope,
                grant_type: row.grant_type,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &TokensPage {
            who: &admin.username,
            csrf_token: csrf_token(&session),
            area: "tokens",
            tokens,
            user_id: &user_id,
            user_login,
            user_error,
            client_id,
            page: nav,
            notice: notice(&params),
        },
    )
}

/// `POST /admin/tokens/revoke/`: the tokens ticked as `token:<row id>`. Without `confirm=yes`
/// it shows a confirmation page that posts them again; with it, it revokes them and goes back
/// to the list (keeping its `user_id` and `client_id` filters).
pub async fn revoke_tokens(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let filters = [
        ("user_id", form.get("user_id").unwrap_or_default()),
        ("client_id", form.get("client_id").unwrap_or_default()),
    ];
    let ids = ticked(&form, "token:");
    if ids.is_empty() {
        return see_other(&with_query(
            "/admin/tokens/",
            &[&filters[..], &[("done", "none_selected")]].concat(),
        ));
    }
    if form.get("confirm") != Some("yes") {
        let mut hidden: Vec<(String, String)> = ids
            .iter()
            .map(|id| (format!("token:{id}"), "on".to_owned()))
            .collect();
        hidden.extend(
            filters
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        hidden.push(("confirm".to_owned(), "yes".to_owned()));
        let how_many = count_of(i64::try_from(ids.len()).unwrap_or(i64::MAX), "token");
        return confirm_page(
            &session,
            &admin,
            "tokens",
            ConfirmText {
                title: format!("Revoke {how_many}?"),
                message: format!(
                    "The {how_many} you selected stop working at once: resource servers see them as inactive, and the applications holding them must ask their users to sign in again. This cannot be undone."
                ),
                action: "/admin/tokens/revoke/".to_owned(),
                hidden,
                button: format!("Revoke {how_many}"),
                cancel: with_query("/admin/tokens/", &filters),
            },
        );
    }
    match oauth.revoke_tokens(&actor(&req, &admin), ids).await {
        Ok(revoked) => {
            let n = revoked.to_string();
            see_other(&with_query(
                "/admin/tokens/",
                &[&filters[..], &[("done", "revoked"), ("n", &n)]].concat(),
            ))
        }
        Err(RevokeError::Forbidden(refusal)) => not_allowed(&refusal.to_string()),
        Err(RevokeError::Db(e)) => unavailable(&e),
    }
}
