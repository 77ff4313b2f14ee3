//! Who gives first-party powers and who changes whose clients (review findings 3 and 5): a
//! staff member who is not a superuser manages ordinary users' portal clients but gives no
//! first-party power and touches no operator's or admin's client; while a client holds a power,
//! where its codes go (redirect URIs, post-logout redirect URIs, CORS origins) is a
//! superuser's. Tried through the service and through the portal's pages.

use latchkey::accounts::Account;
use latchkey::accounts::AccountFlags;
use latchkey::audit::Actor;
use latchkey::clients::{Client, ClientError, ClientSpec};
use reqwest::StatusCode;

use crate::helpers::{spawn_app, spec, TestApp};

async fn create_plain_staff(app: &TestApp, username: &str) -> Account {
    let user = app.create_user(username).await;
    app.services
        .accounts
        .set_flags(
            &Actor::system(),
            &user.id,
            AccountFlags {
                is_active: true,
                is_staff: true,
                is_superuser: false,
            },
        )
        .await
        .expect("make staff")
}

fn base(owner: Option<&Account>) -> ClientSpec {
    ClientSpec {
        owner_id: owner.map(|u| u.id.clone()),
        require_pkce: true,
        scopes: vec!["profile".into()],
        ..spec("confidential", &["authorization_code"])
    }
}

/// Every first-party power, each on `base`.
fn powers(base: &ClientSpec) -> Vec<ClientSpec> {
    vec![
        ClientSpec {
            grant_types: vec!["authorization_code".into(), "password".into()],
            ..base.clone()
        },
        ClientSpec {
            scopes: vec!["profile".into(), "admin".into()],
            ..base.clone()
        },
        ClientSpec {
            skip_authorization: true,
            ..base.clone()
        },
        ClientSpec {
            introspect_all: true,
            ..base.clone()
        },
        ClientSpec {
            require_pkce: false,
            ..base.clone()
        },
        ClientSpec {
            allow_plain_pkce: true,
            ..base.clone()
        },
        ClientSpec {
            always_issue_refresh_token: true,
            ..base.clone()
        },
        ClientSpec {
            access_token_lifetime: Some(86_400),
            ..base.clone()
        },
        ClientSpec {
            resource_uris: vec!["https://api.example.com".into()],
            ..base.clone()
        },
    ]
}

async fn stored(app: &TestApp, id: &str) -> Client {
    app.services
        .clients
        .find(id)
        .await
        .expect("db")
        .expect("client exists")
}

fn forbidden(r: Result<impl std::fmt::Debug, ClientError>) -> &'static str {
    match r {
        Err(ClientError::Forbidden { field, .. }) => field,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn staff_who_are_not_superusers_give_no_powers_and_change_no_admins_clients() {
    let app = spawn_app().await;
    let clients = &app.services.clients;
    let dev = app.create_user("dev").await;
    let neds = create_plain_staff(&app, "neds").await;
    let other_staff = create_plain_staff(&app, "otto").await;
    let root = app.create_staff("root").await;
    let as_neds = Actor::user(neds.id.clone(), None);
    let as_root = Actor::user(root.id.clone(), None);

    // An ordinary user's client: staff rename it, change its URIs, rotate its secret…
    let (devs, _) = app.register(&base(Some(&dev))).await;
    clients
        .update(
            &as_neds,
            devs.id(),
            &ClientSpec {
                name: "Renamed by staff".into(),
                redirect_uris: vec!["https://dev.example.com/cb".into()],
                ..base(Some(&dev))
            },
        )
        .await
        .expect("staff edit an ordinary user's client");
    clients
        .rotate_secret(&as_neds, devs.id())
        .await
        .expect("staff rotate an ordinary user's secret");
    // … but give it no first-party power, and nothing changes.
    let before = stored(&app, devs.id()).await;
    for power in powers(&ClientSpec {
        name: "Renamed by staff".into(),
        redirect_uris: vec!["https://dev.example.com/cb".into()],
        ..base(Some(&dev))
    }) {
        forbidden(clients.update(&as_neds, devs.id(), &power).await);
    }
    assert_eq!(stored(&app, devs.id()).await, before);

    // Staff register only clients of their own, without powers.
    forbidden(clients.register(&as_neds, &base(None)).await);
    forbidden(clients.register(&as_neds, &base(Some(&dev))).await);
    for power in powers(&base(Some(&neds))) {
        forbidden(clients.register(&as_neds, &power).await);
    }
    let (own, _) = clients
        .register(&as_neds, &base(Some(&neds)))
        .await
        .expect("staff register their own");

    // An operator's client, a superuser's and another staff member's are a superuser's.
    let (operators, _) = app.register(&base(None)).await;
    let (roots, _) = app.register(&base(Some(&root))).await;
    let (ottos, _) = app.register(&base(Some(&other_staff))).await;
    for (client, owner) in [
        (&operators, None),
        (&roots, Some(&root)),
        (&ottos, Some(&other_staff)),
    ] {
        let before = stored(&app, client.id()).await;
        let rename = ClientSpec {
            name: "Taken over".into(),
            ..base(owner)
        };
        assert_eq!(
            forbidden(clients.update(&as_neds, client.id(), &rename).await),
            "owner"
        );
        assert_eq!(
            forbidden(clients.rotate_secret(&as_neds, client.id()).await),
            "owner"
        );
        assert_eq!(
            forbidden(clients.delete(&as_neds, client.id()).await),
            "owner"
        );
        assert_eq!(stored(&app, client.id()).await, before);
        // A superuser may.
        clients
            .update(&as_root, client.id(), &rename)
            .await
            .expect("a superuser edits any client");
    }

    // A superuser gives the powers, to an ordinary user's client and to a staff member's.
    for power in powers(&base(Some(&dev))) {
        clients
            .update(&as_root, devs.id(), &power)
            .await
            .expect("a superuser gives powers");
    }
    let powered = ClientSpec {
        skip_authorization: true,
        ..base(Some(&neds))
    };
    clients
        .update(&as_root, own.id(), &powered)
        .await
        .expect("a superuser gives powers");
    // What a superuser set, staff keep when saving other fields, and may take away.
    let mut kept = ClientSpec::from_client(&stored(&app, devs.id()).await);
    kept.name = "Kept".into();
    clients
        .update(&as_neds, devs.id(), &kept)
        .await
        .expect("staff keep what a superuser set");
    kept.skip_authorization = false;
    clients
        .update(&as_neds, devs.id(), &kept)
        .await
        .expect("staff take a power away");
    assert!(!stored(&app, devs.id()).await.skip_authorization());

    // Someone demoted meanwhile has no staff powers left.
    app.services
        .accounts
        .set_flags(
            &Actor::system(),
            &neds.id,
            AccountFlags {
                is_active: true,
                is_staff: false,
                is_superuser: false,
            },
        )
        .await
        .expect("demote");
    assert!(matches!(
        clients.update(&as_neds, devs.id(), &kept).await,
        Err(ClientError::NotFound)
    ));
}

#[tokio::test]
async fn the_owner_of_a_powered_client_cannot_move_where_its_codes_go() {
    let app = spawn_app().await;
    let clients = &app.services.clients;
    let dev = app.create_user("dev").await;
    let neds = create_plain_staff(&app, "neds").await;
    let root = app.create_staff("root").await;
    let as_dev = Actor::user(dev.id.clone(), None);
    let as_neds = Actor::user(neds.id.clone(), None);
    let as_root = Actor::user(root.id.clone(), None);
    let (devs, _) = clients
        .register(&as_dev, &base(Some(&dev)))
        .await
        .expect("register");
    // Without powers the owner moves the URIs freely.
    let moved = ClientSpec {
        redirect_uris: vec!["https://new.example.com/cb".into()],
        ..base(Some(&dev))
    };
    clients
        .update(&as_dev, devs.id(), &moved)
        .await
        .expect("a plain client's owner moves its URIs");

    for power in powers(&moved) {
        clients
            .update(&as_root, devs.id(), &power)
            .await
            .expect("a superuser gives a power");
        let before = stored(&app, devs.id()).await;
        let now = ClientSpec::from_client(&stored(&app, devs.id()).await);
        let changes = [
            (
                "redirect_uris",
                ClientSpec {
                    redirect_uris: vec!["https://evil.example/cb".into()],
                    ..now.clone()
                },
            ),
            (
                "post_logout_redirect_uris",
                ClientSpec {
                    post_logout_redirect_uris: vec!["https://evil.example/bye".into()],
                    ..now.clone()
                },
            ),
            (
                "allowed_origins",
                ClientSpec {
                    allowed_origins: vec!["https://evil.example".into()],
                    ..now.clone()
                },
            ),
        ];
        for (field, change) in &changes {
            for actor in [&as_dev, &as_neds] {
                match clients.update(actor, devs.id(), change).await {
                    Err(ClientError::Forbidden { field: f, message }) => {
                        assert_eq!(&f, field);
                        assert!(message.contains("ask an administrator"), "{message}");
                    }
                    other => panic!("{field} by {actor:?}: {:?}", other.map(|_| ())),
                }
            }
        }
        assert_eq!(stored(&app, devs.id()).await, before);
        // The owner still renames it; a superuser moves it (and back).
        clients
            .update(
                &as_dev,
                devs.id(),
                &ClientSpec {
                    name: "Renamed".into(),
                    ..now.clone()
                },
            )
            .await
            .expect("the owner renames a powered client");
        clients
            .update(&as_root, devs.id(), &changes[0].1)
            .await
            .expect("a superuser moves it");
        clients
            .update(&as_root, devs.id(), &moved)
            .await
            .expect("a superuser takes the power away");
    }
}

#[tokio::test]
async fn the_portal_shows_staff_and_owners_only_what_they_may_change() {
    let app = spawn_app().await;
    let dev = app.create_user("dev").await;
    create_plain_staff(&app, "neds").await;
    let root = app.create_staff("root").await;
    let (operators, _) = app.register(&base(None)).await;
    let (devs, _) = app.register(&base(Some(&dev))).await;
    let neds = app.visitor("neds").await;
    let operators_before = stored(&app, operators.id()).await;

    // An operator's client: seen, without the buttons, and every form 403 with nothing changed.
    let detail = format!("/o/applications/{}/", operators.id());
    let (status, html) = neds.get(&detail).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("/update/\">Edit"), "{html}");
    assert!(!html.contains("rotate_secret/"), "{html}");
    assert!(html.contains("only a superuser can change"), "{html}");
    for suffix in ["update/", "delete/", "rotate_secret/"] {
        let (status, _) = neds.get(&format!("{detail}{suffix}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{suffix}");
        let (_, page) = neds.get("/o/applications/").await;
        let response = neds
            .post_with_csrf_of(
                &page,
                &format!("{detail}{suffix}"),
                &[
                    ("name", "Taken over"),
                    ("grant:authorization_code", "on"),
                    ("redirect_uris", "https://evil.example/cb"),
                    ("scope:profile", "on"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{suffix}");
    }
    assert_eq!(stored(&app, operators.id()).await, operators_before);

    // An ordinary user's client: staff edit it, but the powers are shown disabled and the
    // ticks are ignored.
    let form = format!("/o/applications/{}/update/", devs.id());
    let (status, html) = neds.get(&form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("disabled"), "{html}");
    assert!(html.contains("Only a superuser can give"), "{html}");
    let response = neds
        .submit(
            &form,
            &form,
            &[
                ("name", "Staff edit"),
                ("token_endpoint_auth_method", "client_secret_basic"),
                ("grant:authorization_code", "on"),
                ("redirect_uris", "https://dev.example.com/cb"),
                ("scope:profile", "on"),
                ("skip_authorization", "on"),
                ("introspect_all", "on"),
                ("resource_uris", "https://api.example.com"),
                ("access_token_lifetime", "999999"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let row = ClientSpec::from_client(&stored(&app, devs.id()).await);
    assert_eq!(row.name, "Staff edit");
    assert_eq!(row.redirect_uris, ["https://dev.example.com/cb"]);
    assert!(!row.skip_authorization && !row.introspect_all);
    assert!(row.resource_uris.is_empty() && row.access_token_lifetime.is_none());

    // Once a superuser made it trusted, its owner sees its URIs read-only and cannot move them.
    app.services
        .clients
        .update(
            &Actor::user(root.id.clone(), None),
            devs.id(),
            &ClientSpec {
                skip_authorization: true,
                ..ClientSpec::from_client(&stored(&app, devs.id()).await)
            },
        )
        .await
        .expect("a superuser gives a power");
    let owner = app.visitor("dev").await;
    let (status, html) = owner.get(&form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("readonly"), "{html}");
    assert!(html.contains("ask an administrator"), "{html}");
    let response = owner
        .submit(
            &form,
            &form,
            &[
                ("name", "Owner edit"),
                ("token_endpoint_auth_method", "client_secret_basic"),
                ("grant:authorization_code", "on"),
                ("redirect_uris", "https://evil.example/cb"),
                ("post_logout_redirect_uris", "https://evil.example/bye"),
                ("allowed_origins", "https://evil.example"),
                ("scope:profile", "on"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let row = ClientSpec::from_client(&stored(&app, devs.id()).await);
    assert_eq!(row.name, "Owner edit");
    assert_eq!(row.redirect_uris, ["https://dev.example.com/cb"]);
    assert!(row.post_logout_redirect_uris.is_empty() && row.allowed_origins.is_empty());
    assert!(row.skip_authorization, "the owner keeps the power");
}
