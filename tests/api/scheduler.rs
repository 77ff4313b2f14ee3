//! The scheduler (`src/scheduler.rs`) on the test's database: each slot runs on exactly one of
//! several nodes, failures are recorded, shown on the dashboard and retried with backoff, a
//! crashed node's lease lapses, the maintenance jobs do their work, and `latchkey serve` runs
//! them and stops gracefully. Time is a fake clock stepped by the tests (no sleeping), except in
//! the `serve` test.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use latchkey::config::SchedulerSettings;
use latchkey::db::jobs::{self, JobRow};
use latchkey::db::tokens::TokenRow;
use latchkey::db::{self, DatabaseUrl, Db, DbError};
use latchkey::maintenance::{self, MaintenancePlan};
use latchkey::scheduler::{Clock, JobError, Scheduler};
use reqwest::StatusCode;

use crate::helpers::{spawn_app, spec, TestApp, TEST_KEY};

/// A clock the test moves by hand.
#[derive(Clone)]
struct FakeClock {
    base: NaiveDateTime,
    seconds: Arc<AtomicI64>,
}

impl FakeClock {
    fn new() -> Self {
        Self {
            base: db::now(),
            seconds: Arc::new(AtomicI64::new(0)),
        }
    }

    fn clock(&self) -> Clock {
        let this = self.clone();
        Arc::new(move || this.now())
    }

    fn now(&self) -> NaiveDateTime {
        self.base + TimeDelta::seconds(self.seconds.load(Ordering::SeqCst))
    }

    fn set(&self, seconds: i64) {
        self.seconds.store(seconds, Ordering::SeqCst);
    }
}

fn settings(retry: u64, lease: u64) -> SchedulerSettings {
    SchedulerSettings {
        enabled: true,
        cleanup_interval: None,
        retry: Duration::from_secs(retry),
        lease: Duration::from_secs(lease),
    }
}

/// A second connection pool on the test's database: another node.
async fn another_node(app: &TestApp) -> Db {
    let url = DatabaseUrl::parse(&app.db_url).expect("url");
    tokio::task::spawn_blocking(move || Db::connect(&url, 2))
        .await
        .expect("task")
        .expect("second pool")
}

async fn job_row(db: &Db, name: &str) -> JobRow {
    let name = name.to_owned();
    db.read(move |conn| jobs::all(conn).map_err(DbError::from))
        .await
        .expect("jobs")
        .into_iter()
        .find(|r| r.name == name)
        .expect("the job has a row")
}

/// Registers a job named `name` every `every` seconds that counts its runs in `runs`.
fn counting(scheduler: &mut Scheduler, name: &str, every: u64, runs: &Arc<AtomicUsize>) {
    let runs = runs.clone();
    scheduler
        .register(name, Duration::from_secs(every), move || {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, JobError>("counted".to_owned())
            }
        })
        .expect("register");
}

#[tokio::test]
async fn several_nodes_on_one_database_run_each_slot_exactly_once() {
    let app = spawn_app().await;
    let clock = FakeClock::new();
    let runs = Arc::new(AtomicUsize::new(0));
    // Three nodes: the app's pool and two more, each with its own scheduler instance.
    let mut nodes = Vec::new();
    for db in [
        app.services.db.clone(),
        another_node(&app).await,
        another_node(&app).await,
    ] {
        let mut scheduler = Scheduler::new(db, &settings(30, 60)).with_clock(clock.clock());
        counting(&mut scheduler, "counter", 60, &runs);
        nodes.push(Arc::new(scheduler));
    }
    let slots: i64 = 12;
    let mut reported = 0;
    for slot in 0..slots {
        // Every node passes twice per slot, all at once, a few seconds into the slot.
        clock.set(slot * 60 + 5);
        let passes: Vec<_> = nodes
            .iter()
            .chain(nodes.iter())
            .map(|node| {
                let node = node.clone();
                tokio::spawn(async move { node.run_due().await.expect("pass") })
            })
            .collect();
        for pass in passes {
            reported += pass.await.expect("task").len();
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            usize::try_from(slot + 1).expect("small"),
            "slot {slot} on {}",
            app.backend
        );
    }
    assert_eq!(reported, usize::try_from(slots).expect("small"));
    let row = job_row(&app.services.db, "counter").await;
    assert_eq!(row.next_run_at, clock.now() + TimeDelta::seconds(60));
    assert!(row.running_until.is_none() && row.lease_owner.is_none());
    assert_eq!(row.failures, 0);
    // Not due again within the slot.
    assert!(nodes[1].run_due().await.expect("pass").is_empty());
}

#[tokio::test]
async fn a_failing_job_records_its_error_and_is_retried_with_backoff() {
    let app = spawn_app().await;
    let clock = FakeClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut scheduler =
        Scheduler::new(app.services.db.clone(), &settings(30, 60)).with_clock(clock.clock());
    let counted = calls.clone();
    scheduler
        .register("flaky", Duration::from_secs(300), move || {
            let calls = counted.clone();
            async move {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => {
                        Err::<String, JobError>(std::io::Error::other("the disk is on fire").into())
                    }
                    2 => panic!("a bug in the job"),
                    _ => Ok("fine".to_owned()),
                }
            }
        })
        .expect("register");
    let mut other_calls = 0;
    let other = Arc::new(AtomicUsize::new(0));
    counting(&mut scheduler, "steady", 300, &other);

    // t = 0: both run, the flaky one fails.
    let runs = scheduler.run_due().await.expect("pass");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].outcome, Err("the disk is on fire".to_owned()));
    other_calls += 1;
    let row = job_row(&app.services.db, "flaky").await;
    assert_eq!(row.last_error.as_deref(), Some("the disk is on fire"));
    assert_eq!(row.failures, 1);
    assert_eq!(row.next_run_at, clock.now() + TimeDelta::seconds(30));
    assert_eq!(row.last_finished_at, Some(clock.now()));

    // Retried after 30 s, not before; then after 60 s more (doubled).
    clock.set(29);
    assert!(scheduler.run_due().await.expect("pass").is_empty());
    clock.set(30);
    let runs = scheduler.run_due().await.expect("pass");
    assert_eq!(runs.len(), 1, "only the failed job is retried");
    let row = job_row(&app.services.db, "flaky").await;
    assert_eq!(row.failures, 2);
    assert_eq!(row.next_run_at, clock.now() + TimeDelta::seconds(60));
    // A panic is a failure like any other, and the scheduler goes on.
    clock.set(90);
    let runs = scheduler.run_due().await.expect("pass");
    assert_eq!(runs[0].outcome, Err("the job panicked".to_owned()));
    let row = job_row(&app.services.db, "flaky").await;
    assert_eq!(row.failures, 3);
    assert_eq!(row.next_run_at, clock.now() + TimeDelta::seconds(120));
    // The retry that succeeds clears the error and plans the next regular run.
    clock.set(210);
    let runs = scheduler.run_due().await.expect("pass");
    assert_eq!(runs[0].outcome, Ok("fine".to_owned()));
    let row = job_row(&app.services.db, "flaky").await;
    assert_eq!((row.failures, row.last_error), (0, None));
    assert_eq!(row.next_run_at, clock.now() + TimeDelta::seconds(300));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // The steady job kept its own schedule meanwhile.
    clock.set(300);
    assert_eq!(scheduler.run_due().await.expect("pass").len(), 1);
    other_calls += 1;
    assert_eq!(other.load(Ordering::SeqCst), other_calls);
}

#[tokio::test]
async fn a_crashed_nodes_lease_lapses_and_its_late_answer_changes_nothing() {
    let app = spawn_app().await;
    let clock = FakeClock::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut scheduler =
        Scheduler::new(app.services.db.clone(), &settings(30, 120)).with_clock(clock.clock());
    counting(&mut scheduler, "leased", 60, &runs);
    assert_eq!(scheduler.run_due().await.expect("first run").len(), 1);
    // Another node claims the next slot at t = 60 with a 120 s lease, then dies.
    let start = clock.now();
    let claimed = app
        .services
        .db
        .write(move |conn| {
            jobs::claim(
                conn,
                "leased",
                "dead-node",
                start + TimeDelta::seconds(60),
                start + TimeDelta::seconds(120),
                start + TimeDelta::seconds(180),
            )
            .map_err(DbError::from)
        })
        .await
        .expect("claim");
    assert!(claimed);
    // Due again at 120, but the lease holds until 180.
    clock.set(150);
    assert!(scheduler.run_due().await.expect("pass").is_empty());
    clock.set(181);
    assert_eq!(scheduler.run_due().await.expect("pass").len(), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // The dead node's late report cannot overwrite the run that replaced it.
    let late = app
        .services
        .db
        .write(move |conn| {
            jobs::finish(
                conn,
                "leased",
                "dead-node",
                start + TimeDelta::seconds(200),
                Some(("stale", start)),
            )
            .map_err(DbError::from)
        })
        .await
        .expect("finish");
    assert!(!late);
    let row = job_row(&app.services.db, "leased").await;
    assert_eq!(row.last_error, None);
    assert_eq!(row.next_run_at, clock.now() + TimeDelta::seconds(60));
}

#[tokio::test]
async fn a_shortened_interval_takes_effect_at_once() {
    let app = spawn_app().await;
    let clock = FakeClock::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut daily =
        Scheduler::new(app.services.db.clone(), &settings(30, 60)).with_clock(clock.clock());
    counting(&mut daily, "resized", 86_400, &runs);
    assert_eq!(daily.run_due().await.expect("pass").len(), 1);
    // Restarted with a 5-minute interval: the next run is 5 minutes away, not a day.
    let mut often =
        Scheduler::new(app.services.db.clone(), &settings(30, 60)).with_clock(clock.clock());
    counting(&mut often, "resized", 300, &runs);
    clock.set(10);
    assert!(often.run_due().await.expect("pass").is_empty());
    assert_eq!(
        job_row(&app.services.db, "resized").await.next_run_at,
        clock.now() + TimeDelta::seconds(300)
    );
    clock.set(310);
    assert_eq!(often.run_due().await.expect("pass").len(), 1);
}

#[tokio::test]
async fn the_dashboard_shows_each_job_with_its_last_error() {
    let app = spawn_app().await;
    app.create_staff("root").await;
    let visitor = app.visitor("root").await;
    let (status, page) = visitor.get("/admin/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Scheduled jobs") && page.contains("No job has been scheduled"));
    let mut scheduler = Scheduler::new(app.services.db.clone(), &settings(30, 60));
    scheduler
        .register("broken", Duration::from_secs(600), || async {
            Err::<String, JobError>("cannot reach <the relay> & friends".into())
        })
        .expect("register");
    let runs = Arc::new(AtomicUsize::new(0));
    counting(&mut scheduler, "healthy", 600, &runs);
    scheduler.run_due().await.expect("pass");
    let (status, page) = visitor.get("/admin/").await;
    assert_eq!(status, StatusCode::OK);
    let panel = &page[page.find("Scheduled jobs").expect("panel")..];
    let broken = &panel[panel.find("<code>broken</code>").expect("broken row")..];
    let broken = &broken[..broken.find("</tr>").expect("row end")];
    assert!(broken.contains("failing"), "{broken}");
    assert!(
        broken.contains("cannot reach &#60;the relay&#62; &#38; friends"),
        "escaped error: {broken}"
    );
    let healthy = &panel[panel.find("<code>healthy</code>").expect("healthy row")..];
    let healthy = &healthy[..healthy.find("</tr>").expect("row end")];
    assert!(
        healthy.contains("badge ok") && !healthy.contains("never"),
        "{healthy}"
    );
    // Non-staff do not see it.
    app.create_user("pat").await;
    let (status, _) = app.visitor("pat").await.get("/admin/").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn signing_keys_are_rotated_when_due_and_once() {
    let app = spawn_app().await;
    let clock = FakeClock::new();
    let plan = MaintenancePlan {
        cleanup_every: None,
        rotate_keys_after: Some(Duration::from_secs(90 * 86_400)),
    };
    // Two nodes, as in a cluster.
    let mut nodes = Vec::new();
    for db in [app.services.db.clone(), another_node(&app).await] {
        let mut scheduler = Scheduler::new(db, &settings(30, 60)).with_clock(clock.clock());
        maintenance::register(&mut scheduler, &app.services.oauth, &plan).expect("register");
        nodes.push(scheduler);
    }
    let runs = nodes[0].run_due().await.expect("pass");
    assert_eq!(
        runs[0].outcome,
        Ok("no signing key is due".to_owned()),
        "fresh keys"
    );
    let kids_before = app.services.keys.list().await.expect("keys");
    assert_eq!(kids_before.len(), 3);
    // The RS256 and EdDSA keys have signed for 91 days.
    app.services
        .db
        .write(|conn| {
            use latchkey::db::schema::signing_keys as k;
            diesel::update(k::table.filter(k::alg.eq_any(["RS256", "EdDSA"])))
                .set((
                    k::created_at.eq(db::now() - TimeDelta::days(91)),
                    k::activates_at.eq(db::now() - TimeDelta::days(91)),
                ))
                .execute(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("age the keys");
    clock.set(3600);
    let mut rotated = Vec::new();
    for node in &nodes {
        rotated.extend(node.run_due().await.expect("pass"));
    }
    assert_eq!(rotated.len(), 1, "one node ran the slot");
    let summary = rotated[0].outcome.clone().expect("rotated");
    assert!(summary.starts_with("rotated in signing keys"), "{summary}");
    let keys = app.services.keys.list().await.expect("keys");
    assert_eq!(
        keys.len(),
        5,
        "a new RS256 and EdDSA key; ES256 was not due"
    );
    let retired: Vec<&str> = keys
        .iter()
        .filter(|k| k.retired_at.is_some())
        .map(|k| k.alg.as_str())
        .collect();
    assert_eq!(retired.len(), 2);
    assert!(retired.contains(&"RS256") && retired.contains(&"EdDSA"));
    // The retired keys stay in the JWKS (tokens they signed still verify).
    let jwks: serde_json::Value = app
        .api
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks["keys"].as_array().expect("keys").len(), 5);
    // The next check finds nothing due: the new keys are young.
    clock.set(7200);
    let runs = nodes[1].run_due().await.expect("pass");
    assert_eq!(runs[0].outcome, Ok("no signing key is due".to_owned()));
    assert_eq!(app.services.keys.list().await.expect("keys").len(), 5);
}

/// An access token row that expired an hour ago.
async fn insert_expired_token(app: &TestApp) -> String {
    let (client, _) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let now = db::now();
    let row = TokenRow {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: "ab".repeat(32),
        kind: "access".into(),
        client_id: client.id().to_owned(),
        user_id: None,
        scope: "read".into(),
        grant_type: "client_credentials".into(),
        family_id: "expired".into(),
        created_at: now - TimeDelta::hours(2),
        expires_at: now - TimeDelta::hours(1),
        revoked_at: None,
        rotated_at: None,
        auth_time: None,
        amr: None,
        resources: String::new(),
        signing_kid: None,
        idp: None,
    };
    let id = row.id.clone();
    app.services
        .db
        .write(move |conn| db::tokens::insert(conn, &row).map_err(DbError::from))
        .await
        .expect("insert");
    id
}

async fn token_exists(app: &TestApp, id: &str) -> bool {
    let id = id.to_owned();
    app.services
        .db
        .read(move |conn| {
            db::tokens::find_ids(conn, &[id])
                .map(|rows| !rows.is_empty())
                .map_err(DbError::from)
        })
        .await
        .expect("lookup")
}

#[tokio::test]
async fn the_cleanup_job_deletes_what_cleartokens_deletes() {
    let app = spawn_app().await;
    let expired = insert_expired_token(&app).await;
    let mut scheduler = Scheduler::new(app.services.db.clone(), &settings(30, 60));
    maintenance::register(
        &mut scheduler,
        &app.services.oauth,
        &MaintenancePlan {
            cleanup_every: Some(Duration::from_secs(300)),
            rotate_keys_after: None,
        },
    )
    .expect("register");
    assert_eq!(scheduler.job_names(), [maintenance::CLEANUP]);
    let runs = scheduler.run_due().await.expect("pass");
    let summary = runs[0].outcome.clone().expect("cleanup ran");
    assert!(summary.starts_with("deleted 1 tokens"), "{summary}");
    assert!(!token_exists(&app, &expired).await);
}

/// A `latchkey serve` process (killed if the test fails before stopping it).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_runs_the_cleanup_on_schedule_and_stops_gracefully() {
    let app = spawn_app().await;
    let expired = insert_expired_token(&app).await;
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let log = dir.path().join("serve.log");
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("serve")
            .env("LATCHKEY_DATABASE__URL", &app.db_url)
            .env("LATCHKEY_SECRETS__SECRET_KEY", TEST_KEY)
            .env("LATCHKEY_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_SERVER__WORKERS", "1")
            .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
            .env("LATCHKEY_SCHEDULER__CLEANUP_INTERVAL_SECONDS", "60")
            .env("LATCHKEY_LOG__LEVEL", "info")
            .env("LATCHKEY_LOG__FORMAT", "text")
            .env_remove("LATCHKEY_TEST_POSTGRES_URL")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start latchkey serve"),
    );
    // The first cleanup is due at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = app
            .services
            .jobs
            .list()
            .await
            .expect("jobs")
            .into_iter()
            .any(|r| r.name == maintenance::CLEANUP && r.last_finished_at.is_some());
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "no cleanup ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!token_exists(&app, &expired).await);
    let row = job_row(&app.services.db, maintenance::CLEANUP).await;
    assert_eq!(row.last_error, None);
    let planned = row.next_run_at - row.last_started_at.expect("started");
    assert_eq!(planned, TimeDelta::seconds(60));

    // SIGTERM: actix drains, then the scheduler stops; the process exits cleanly.
    let pid = server.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("scheduler started"), "{log}");
    assert!(log.contains("scheduled job done"), "{log}");
    assert!(log.contains("scheduler stopped"), "{log}");
}
