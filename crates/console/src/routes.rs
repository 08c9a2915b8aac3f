//! Routes: each read page loads one serialisable data value, rendered as HTML (`views`) or returned as JSON under
//! `/api/…`; the two POST routes change a queue through MiniPaaS's SQL functions.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use pgstrata::history::RunRecord;
use pgstrata::history::{RunDetail, RunFilter, RunMigration, RunPage};
use pgstrata::lint::LintReport;
use pgstrata::{LockReport, Plan, RunOutcome};
use pgstrata_ops::inspect::InspectReport;
use pgstrata_ops::minipaas::{
    MessageState, Page, QueueMessage, QueueState, StreamEvent, StreamState,
};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

use crate::audit::{Action, ActionKind, ActionSink, Audit};
use crate::error::Error;
use crate::pool::Pool;
use crate::sampler::{Inspection, Samples, lock};
use crate::security::{self, Access};
use crate::{ConsoleOptions, views};

pub(crate) struct AppState {
    pub pool: Pool,
    pub project: Option<pgstrata::Project>,
    pub opts: ConsoleOptions,
    pub access: Access,
    pub samples: Mutex<Samples>,
    pub inspection: Mutex<Inspection>,
    pub audit: Audit,
}

impl AppState {
    pub(crate) fn new(
        pool: Pool,
        project: Option<pgstrata::Project>,
        opts: ConsoleOptions,
        access: Access,
        addr: SocketAddr,
        sink: ActionSink,
    ) -> AppState {
        AppState {
            pool,
            project,
            opts,
            access: access.bound(addr),
            samples: Mutex::new(Samples::default()),
            inspection: Mutex::new(Inspection::default()),
            audit: Audit::new(sink),
        }
    }

    /// What every page's frame shows.
    pub(crate) fn frame(&self) -> views::Frame {
        views::Frame {
            target: self.pool.target(),
            read_only: self.opts.read_only,
            csrf: self.access.csrf().to_string(),
        }
    }
}

pub(crate) fn router(
    state: Arc<AppState>,
) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, SocketAddr> {
    Router::new()
        .route("/", get(overview_html))
        .route("/api/overview", get(overview_api))
        .route("/runs", get(runs_html))
        .route("/api/runs", get(runs_api))
        .route("/runs/{id}", get(run_html))
        .route("/api/runs/{id}", get(run_api))
        .route("/plan", get(plan_html))
        .route("/api/plan", get(plan_api))
        .route("/queues", get(queues_html))
        .route("/api/queues", get(queues_api))
        .route("/queues/{name}", get(queue_html))
        .route("/api/queues/{name}", get(queue_api))
        .route("/queues/{name}/redrive", post(redrive))
        .route("/queues/{name}/messages/{id}/delete", post(delete_message))
        .route("/streams", get(streams_html))
        .route("/api/streams", get(streams_api))
        .route("/streams/{name}", get(stream_html))
        .route("/api/streams/{name}", get(stream_api))
        .route("/assets/style.css", get(style))
        .route("/assets/console.js", get(script))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .with_state(state)
        .into_make_service_with_connect_info::<SocketAddr>()
}

// ---- Errors of a page.

pub(crate) enum PageError {
    NotFound(String),
    BadRequest(String),
    Forbidden(String),
    Failed(Error),
}

impl From<Error> for PageError {
    fn from(e: Error) -> PageError {
        PageError::Failed(e)
    }
}

impl From<pgstrata::Error> for PageError {
    fn from(e: pgstrata::Error) -> PageError {
        PageError::Failed(e.into())
    }
}

impl From<pgstrata_ops::Error> for PageError {
    fn from(e: pgstrata_ops::Error) -> PageError {
        PageError::Failed(e.into())
    }
}

impl PageError {
    fn respond(self, api: bool) -> Response {
        let (status, title, text) = match self {
            PageError::NotFound(t) => (StatusCode::NOT_FOUND, "Not found", t),
            PageError::BadRequest(t) => (StatusCode::BAD_REQUEST, "Bad request", t),
            PageError::Forbidden(t) => (StatusCode::FORBIDDEN, "Refused", t),
            PageError::Failed(e) => {
                tracing::warn!("console: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The database query failed",
                    e.to_string(),
                )
            }
        };
        if api {
            (
                status,
                axum::Json(serde_json::json!({ "error": title, "detail": text })),
            )
                .into_response()
        } else {
            (status, views::layout::message_page(title, &text)).into_response()
        }
    }
}

type PageResult<T> = Result<T, PageError>;

fn html<T>(
    state: &AppState,
    data: PageResult<T>,
    view: fn(&views::Frame, &T) -> maud::Markup,
) -> Response {
    match data {
        Ok(d) => view(&state.frame(), &d).into_response(),
        Err(e) => e.respond(false),
    }
}

fn json<T: Serialize>(data: PageResult<T>) -> Response {
    match data {
        Ok(d) => axum::Json(d).into_response(),
        Err(e) => e.respond(true),
    }
}

async fn not_found() -> Response {
    PageError::NotFound("There is no such page here.".into()).respond(false)
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/style.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/console.js"),
    )
        .into_response()
}

/// The page count of `total` rows.
pub(crate) fn pages(total: i64, size: i64) -> i64 {
    ((total + size - 1) / size.max(1)).max(1)
}

fn page_number(p: Option<i64>) -> PageResult<i64> {
    match p {
        None => Ok(1),
        Some(n) if n >= 1 => Ok(n),
        Some(n) => Err(PageError::BadRequest(format!(
            "page {n}: pages count from 1"
        ))),
    }
}

// ---- Overview.

/// The overview: where, which server, the last runs, and the last inspection.
#[derive(Serialize)]
pub(crate) struct Overview {
    pub database: String,
    pub user: String,
    pub server_version: String,
    pub runs: Vec<RunRecord>,
    pub inspection: Option<InspectReport>,
    pub inspection_error: Option<String>,
    pub project: bool,
}

async fn load_overview(state: &AppState) -> PageResult<Overview> {
    let db = state.pool.get().await?;
    let row = db
        .client()
        .query_one(
            "SELECT current_database()::text, current_user::text, current_setting('server_version')",
            &[],
        )
        .await
        .map_err(Error::db("reading the server version"))?;
    let runs = pgstrata::history::runs(db.client(), 10).await?;
    let (inspection, inspection_error) = {
        let slot = lock(&state.inspection);
        (slot.report.clone(), slot.error.clone())
    };
    Ok(Overview {
        database: row.get(0),
        user: row.get(1),
        server_version: row.get(2),
        runs,
        inspection,
        inspection_error,
        project: state.project.is_some(),
    })
}

async fn overview_html(State(s): State<Arc<AppState>>) -> Response {
    html(&s, load_overview(&s).await, views::overview::page)
}

async fn overview_api(State(s): State<Arc<AppState>>) -> Response {
    json(load_overview(&s).await)
}

// ---- Runs.

#[derive(Deserialize, Default)]
pub(crate) struct RunsQuery {
    package: Option<String>,
    outcome: Option<String>,
    page: Option<i64>,
}

/// A page of runs with the filter that chose them.
#[derive(Serialize)]
pub(crate) struct Runs {
    pub package: Option<String>,
    pub outcome: Option<RunOutcome>,
    pub page: i64,
    pub pages: i64,
    pub packages: Vec<String>,
    #[serde(flatten)]
    pub runs: RunPage,
}

async fn load_runs(state: &AppState, q: RunsQuery) -> PageResult<Runs> {
    let page = page_number(q.page)?;
    let package = q.package.filter(|p| !p.is_empty());
    let outcome = match q.outcome.as_deref().filter(|o| !o.is_empty()) {
        None => None,
        Some(o) => Some(
            o.parse::<RunOutcome>()
                .map_err(|e| PageError::BadRequest(format!("outcome: {e}")))?,
        ),
    };
    let size = state.opts.page_size;
    let db = state.pool.get().await?;
    let filter = RunFilter {
        package: package.clone(),
        outcome,
        offset: (page - 1).saturating_mul(size),
        limit: size,
    };
    let runs = pgstrata::history::run_page(db.client(), &filter).await?;
    let packages = pgstrata::history::run_packages(db.client()).await?;
    Ok(Runs {
        package,
        outcome,
        page,
        pages: pages(runs.total, size),
        packages,
        runs,
    })
}

async fn runs_html(State(s): State<Arc<AppState>>, Query(q): Query<RunsQuery>) -> Response {
    html(&s, load_runs(&s, q).await, views::runs::list)
}

async fn runs_api(State(s): State<Arc<AppState>>, Query(q): Query<RunsQuery>) -> Response {
    json(load_runs(&s, q).await)
}

/// One run and its migrations.
#[derive(Serialize)]
pub(crate) struct Run {
    #[serde(flatten)]
    pub run: RunDetail,
    pub migrations: Vec<RunMigration>,
}

async fn load_run(state: &AppState, id: &str) -> PageResult<Run> {
    let id: i64 = id
        .parse()
        .map_err(|_| PageError::BadRequest(format!("`{id}` is not a run id (a number)")))?;
    let db = state.pool.get().await?;
    let run = pgstrata::history::run(db.client(), id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("No run {id} is recorded in strata.run.")))?;
    let migrations = pgstrata::history::run_migrations(db.client(), id).await?;
    Ok(Run { run, migrations })
}

async fn run_html(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    html(&s, load_run(&s, &id).await, views::runs::detail)
}

async fn run_api(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    json(load_run(&s, &id).await)
}

// ---- Plan.

/// What `strata up` would do for the packages the console was given.
#[derive(Serialize)]
pub(crate) struct PlanPage {
    pub packages_given: bool,
    pub plan: Option<Plan>,
    pub locks: Option<LockReport>,
    pub lint: Option<LintReport>,
    pub code: Vec<pgstrata::managed::PackageCode>,
}

async fn load_plan(state: &AppState) -> PageResult<PlanPage> {
    let Some(project) = &state.project else {
        return Ok(PlanPage {
            packages_given: false,
            plan: None,
            locks: None,
            lint: None,
            code: Vec::new(),
        });
    };
    let db = state.pool.get().await?;
    let plan = pgstrata::plan(&db, project, &pgstrata::PlanOptions::default()).await?;
    let locks = pgstrata::lock_report(Some(&db), project, &plan).await?;
    let version = pgstrata::lint::server_version(&db).await?;
    let lint = pgstrata::lint::lint_plan(project, &plan, Some(&version))?;
    let code = pgstrata::managed::status(&db, project).await?;
    Ok(PlanPage {
        packages_given: true,
        plan: Some(plan),
        locks: Some(locks),
        lint: Some(lint),
        code,
    })
}

async fn plan_html(State(s): State<Arc<AppState>>) -> Response {
    html(&s, load_plan(&s).await, views::plan::page)
}

async fn plan_api(State(s): State<Arc<AppState>>) -> Response {
    json(load_plan(&s).await)
}

// ---- Queues.

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    q: Option<String>,
    page: Option<i64>,
}

/// A time series for a chart: (when, value).
pub(crate) type Series = Vec<(DateTime<Utc>, f64)>;

/// A page of queues, and the samples of all queues together.
#[derive(Serialize)]
pub(crate) struct Queues {
    pub installed: bool,
    pub filter: String,
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub queues: Vec<QueueState>,
    /// Ready, delayed and waiting messages of all queues, sampled.
    pub depth: Series,
    /// Messages enqueued per minute into any queue, between samples.
    pub enqueued_per_minute: Series,
}

async fn load_queues(state: &AppState, q: ListQuery) -> PageResult<Queues> {
    let page = page_number(q.page)?;
    let filter = q.q.unwrap_or_default();
    let size = state.opts.page_size;
    let db = state.pool.get().await?;
    if !pgstrata_ops::minipaas::installed(db.client()).await? {
        return Ok(Queues {
            installed: false,
            filter,
            page,
            pages: 1,
            total: 0,
            queues: Vec::new(),
            depth: Vec::new(),
            enqueued_per_minute: Vec::new(),
        });
    }
    let (queues, total) =
        pgstrata_ops::minipaas::queues(db.client(), &filter, Page::numbered(page, size)).await?;
    let (depth, rate) = {
        let samples = lock(&state.samples);
        let depth = samples
            .total
            .iter()
            .map(|t| (t.at, t.depth as f64))
            .collect();
        let rate = samples
            .total
            .iter()
            .zip(samples.total.iter().skip(1))
            .filter_map(|(a, b)| {
                let (ea, eb) = (a.enqueued?, b.enqueued?);
                let minutes = (b.at - a.at).num_milliseconds() as f64 / 60_000.0;
                (minutes > 0.0).then(|| (b.at, (eb - ea).max(0) as f64 / minutes))
            })
            .collect();
        (depth, rate)
    };
    Ok(Queues {
        installed: true,
        filter,
        page,
        pages: pages(total, size),
        total,
        queues,
        depth,
        enqueued_per_minute: rate,
    })
}

async fn queues_html(State(s): State<Arc<AppState>>, Query(q): Query<ListQuery>) -> Response {
    html(&s, load_queues(&s, q).await, views::queues::list)
}

async fn queues_api(State(s): State<Arc<AppState>>, Query(q): Query<ListQuery>) -> Response {
    json(load_queues(&s, q).await)
}

#[derive(Deserialize, Default)]
pub(crate) struct QueueQuery {
    state: Option<String>,
    page: Option<i64>,
    action: Option<u64>,
}

/// One queue: its figures, one page of its messages in one state, its samples, the console's actions on it.
#[derive(Serialize)]
pub(crate) struct QueuePage {
    pub queue: QueueState,
    pub state: MessageState,
    pub page: i64,
    pub pages: i64,
    pub messages: Vec<QueueMessage>,
    /// Ready, delayed and waiting, sampled.
    pub depth: Series,
    /// Leased, sampled.
    pub in_flight: Series,
    /// Dead, sampled.
    pub dead: Series,
    /// The action just done (after a redirect from a POST).
    pub done: Option<Action>,
    /// What this console did to the queue, newest first.
    pub actions: Vec<Action>,
}

/// Characters of a payload shown in listings.
const PREVIEW: i32 = 240;

async fn load_queue(state: &AppState, name: &str, q: QueueQuery) -> PageResult<QueuePage> {
    let page = page_number(q.page)?;
    let db = state.pool.get().await?;
    if !pgstrata_ops::minipaas::installed(db.client()).await? {
        return Err(PageError::NotFound(
            "MiniPaaS is not installed in this database.".into(),
        ));
    }
    let queue = pgstrata_ops::minipaas::queue(db.client(), name)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no queue named `{name}`.")))?;
    let msg_state = match q.state.as_deref() {
        Some(s) => MessageState::parse(s).ok_or_else(|| {
            let names: Vec<&str> = MessageState::ALL.iter().map(|s| s.name()).collect();
            PageError::BadRequest(format!("state `{s}`: one of {}", names.join(", ")))
        })?,
        // The state worth a look first: dead letters when there are some.
        None if queue.dead > 0 => MessageState::Dead,
        None => MessageState::Ready,
    };
    let size = state.opts.page_size;
    let messages = pgstrata_ops::minipaas::messages(
        db.client(),
        name,
        msg_state,
        Page::numbered(page, size),
        PREVIEW,
    )
    .await?;
    let (depth, in_flight, dead) = {
        let samples = lock(&state.samples);
        let points = samples.queues.get(name);
        let series = |f: fn(&crate::sampler::Point) -> i64| -> Series {
            points
                .map(|ps| ps.iter().map(|p| (p.at, f(p) as f64)).collect())
                .unwrap_or_default()
        };
        (
            series(|p| p.depth),
            series(|p| p.in_flight),
            series(|p| p.dead),
        )
    };
    Ok(QueuePage {
        pages: pages(msg_state.count(&queue), size),
        queue,
        state: msg_state,
        page,
        messages,
        depth,
        in_flight,
        dead,
        done: q
            .action
            .and_then(|id| state.audit.get(id))
            .filter(|a| a.queue == name),
        actions: state.audit.for_queue(name),
    })
}

async fn queue_html(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<QueueQuery>,
) -> Response {
    html(&s, load_queue(&s, &name, q).await, views::queues::detail)
}

async fn queue_api(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<QueueQuery>,
) -> Response {
    json(load_queue(&s, &name, q).await)
}

// ---- Queue actions.

/// The fields of an action's form.
#[derive(Deserialize, Default)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    id: String,
}

/// What a confirmation page asks.
pub(crate) struct Confirm {
    pub question: String,
    pub action: String,
    pub id: Option<i64>,
    pub back: String,
}

pub(crate) fn queue_path(name: &str) -> String {
    format!("/queues/{}", views::encode(name))
}

async fn act(
    state: &AppState,
    client: SocketAddr,
    name: &str,
    kind: ActionKind,
    form: ActionForm,
    path_id: Option<&str>,
) -> Response {
    if !security::same(&form.csrf, state.access.csrf()) {
        return PageError::Forbidden(
            "The form's CSRF token is missing or stale: reload the page and try again. Nothing was changed.".into(),
        )
        .respond(false);
    }
    let id_text = path_id
        .map(str::to_string)
        .or_else(|| Some(form.id.clone()).filter(|s| !s.is_empty()));
    let id = match id_text.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return PageError::BadRequest(format!(
                "`{}` is not a message id",
                id_text.unwrap_or_default()
            ))
            .respond(false);
        }
    };
    let result: PageResult<Response> = async {
        let db = state.pool.get().await?;
        let queue = pgstrata_ops::minipaas::queue(db.client(), name)
            .await?
            .ok_or_else(|| PageError::NotFound(format!("There is no queue named `{name}`.")))?;
        if form.confirm != "yes" {
            let what = match (kind, id) {
                (ActionKind::Redrive, None) => format!(
                    "Redrive all {} dead message(s) of queue `{name}`? They become deliverable again with a fresh \
                     attempt budget.",
                    queue.dead
                ),
                (ActionKind::Redrive, Some(id)) => format!(
                    "Redrive dead message {id} of queue `{name}`? It becomes deliverable again with a fresh attempt \
                     budget."
                ),
                (ActionKind::DeleteDead, Some(id)) => {
                    format!("Delete dead message {id} of queue `{name}`? Its payload and error history are lost.")
                }
                (ActionKind::DeleteDead, None) => {
                    return Err(PageError::BadRequest("delete needs a message id".into()));
                }
            };
            let action = match (kind, id) {
                (ActionKind::DeleteDead, Some(id)) => format!("{}/messages/{id}/delete", queue_path(name)),
                _ => format!("{}/redrive", queue_path(name)),
            };
            let confirm = Confirm {
                question: what,
                action,
                id: if kind == ActionKind::Redrive { id } else { None },
                back: format!("{}?state=dead", queue_path(name)),
            };
            return Ok(views::queues::confirm(&state.frame(), &confirm).into_response());
        }
        let ids: Option<Vec<i64>> = id.map(|i| vec![i]);
        let outcome = match kind {
            ActionKind::Redrive => db
                .client()
                .query_typed_one(
                    "SELECT minipaas.queue_redrive($1, $2)",
                    &[(&name, Type::TEXT), (&ids, Type::INT8_ARRAY)],
                )
                .await,
            ActionKind::DeleteDead => db
                .client()
                .query_typed_one(
                    "SELECT minipaas.queue_delete_dead($1, $2)",
                    &[(&name, Type::TEXT), (&ids, Type::INT8_ARRAY)],
                )
                .await,
        }
        .map(|row| row.get::<_, i64>(0))
        .map_err(|e| Error::db(format!("{kind} on queue {name}"))(e).to_string());
        let action = state.audit.record(kind, name, ids.unwrap_or_default(), outcome, client);
        Ok(Redirect::to(&format!("{}?state=dead&action={}", queue_path(name), action.id)).into_response())
    }
    .await;
    result.unwrap_or_else(|e| e.respond(false))
}

async fn redrive(
    State(s): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = form.map(|f| f.0).unwrap_or_default();
    act(&s, client, &name, ActionKind::Redrive, form, None).await
}

async fn delete_message(
    State(s): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((name, id)): Path<(String, String)>,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = form.map(|f| f.0).unwrap_or_default();
    act(&s, client, &name, ActionKind::DeleteDead, form, Some(&id)).await
}

// ---- Streams.

/// A page of streams.
#[derive(Serialize)]
pub(crate) struct Streams {
    pub installed: bool,
    pub filter: String,
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub streams: Vec<StreamState>,
}

async fn load_streams(state: &AppState, q: ListQuery) -> PageResult<Streams> {
    let page = page_number(q.page)?;
    let filter = q.q.unwrap_or_default();
    let size = state.opts.page_size;
    let db = state.pool.get().await?;
    if !pgstrata_ops::minipaas::installed(db.client()).await? {
        return Ok(Streams {
            installed: false,
            filter,
            page,
            pages: 1,
            total: 0,
            streams: Vec::new(),
        });
    }
    let (streams, total) =
        pgstrata_ops::minipaas::streams(db.client(), &filter, Page::numbered(page, size)).await?;
    Ok(Streams {
        installed: true,
        filter,
        page,
        pages: pages(total, size),
        total,
        streams,
    })
}

async fn streams_html(State(s): State<Arc<AppState>>, Query(q): Query<ListQuery>) -> Response {
    html(&s, load_streams(&s, q).await, views::streams::list)
}

async fn streams_api(State(s): State<Arc<AppState>>, Query(q): Query<ListQuery>) -> Response {
    json(load_streams(&s, q).await)
}

/// One stream and a page of its events, newest first.
#[derive(Serialize)]
pub(crate) struct StreamPage {
    pub stream: StreamState,
    pub page: i64,
    pub pages: i64,
    pub events: Vec<StreamEvent>,
}

async fn load_stream(state: &AppState, name: &str, q: ListQuery) -> PageResult<StreamPage> {
    let page = page_number(q.page)?;
    let db = state.pool.get().await?;
    if !pgstrata_ops::minipaas::installed(db.client()).await? {
        return Err(PageError::NotFound(
            "MiniPaaS is not installed in this database.".into(),
        ));
    }
    let stream = pgstrata_ops::minipaas::stream(db.client(), name)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no stream named `{name}`.")))?;
    let size = state.opts.page_size;
    let events =
        pgstrata_ops::minipaas::events(db.client(), name, Page::numbered(page, size), PREVIEW)
            .await?;
    Ok(StreamPage {
        pages: pages(stream.events, size),
        stream,
        page,
        events,
    })
}

async fn stream_html(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    html(&s, load_stream(&s, &name, q).await, views::streams::detail)
}

async fn stream_api(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    json(load_stream(&s, &name, q).await)
}
