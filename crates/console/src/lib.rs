//! # pgstrata-console — `strata console`
//!
//! A local web page over the libraries: Strata's history (every run, a run's migrations with their SQL), what
//! `strata up` would do now (plan, lock report, lint), the `inspect` verdicts with per-package drift, and
//! MiniPaaS's queues (depth, in flight, dead letters; redrive and delete) and streams (consumer-group lag,
//! recent events). Every read page has a JSON twin under `/api/…`.
//!
//! - Server-rendered HTML ([`maud`]) that works without JavaScript; a small embedded script only refreshes the
//!   tables marked for it. Style sheet and script are compiled into the binary; charts are inline SVG drawn by
//!   the server from samples the console takes while it runs.
//! - Security ([`ConsoleOptions`]): loopback only unless an address is given explicitly, and then only with an
//!   access token (cookie after the first visit); state changes are POSTs with a CSRF token and a confirmation
//!   step, refused in read-only mode, and each is reported to the [`ActionSink`]; a strict
//!   Content-Security-Policy on every response; connection strings are shown without their password.
//! - State changes go through MiniPaaS's SQL functions (`queue_redrive`, `queue_delete_dead`), never its tables.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgstrata_console::Error> {
//! let conn = pgstrata_conn::ConnectOptions::from_env(None)?;
//! let console = pgstrata_console::Console::bind(conn, None, pgstrata_console::ConsoleOptions::default()).await?;
//! println!("{}", console.url());
//! console.serve(std::future::pending()).await
//! # }
//! ```
#![deny(missing_docs)]

mod audit;
mod error;
mod pool;
mod routes;
mod sampler;
mod security;
mod views;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use audit::{Action, ActionKind, ActionSink};
pub use error::{Error, Result};

/// The address the console listens on unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7373);

/// How the console serves.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Where to listen (default 127.0.0.1:7373; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The access token every request must carry (as a cookie after the first visit). Required for a
    /// non-loopback address; `None` there generates one ([`Console::token`]).
    pub token: Option<String>,
    /// Hide every button and refuse every POST.
    pub read_only: bool,
    /// How often queue depths are sampled for the charts (the charts cover the last hour).
    pub sample_every: Duration,
    /// How often the `inspect` checks run again for the overview.
    pub inspect_every: Duration,
    /// Rows per page of every listing.
    pub page_size: i64,
    /// Thresholds of the `inspect` verdicts (`[inspect]` of strata.toml).
    pub inspect_settings: pgstrata_ops::inspect::InspectSettings,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            listen: DEFAULT_LISTEN,
            token: None,
            read_only: false,
            sample_every: Duration::from_secs(10),
            inspect_every: Duration::from_secs(60),
            page_size: 50,
            inspect_settings: Default::default(),
        }
    }
}

/// A console bound to its address, ready to serve.
pub struct Console {
    listener: tokio::net::TcpListener,
    state: Arc<routes::AppState>,
    addr: SocketAddr,
}

impl Console {
    /// Check the options, connect once (so a wrong connection string fails here, not on the first page), and bind
    /// the address. `project`, when given, is what the plan page plans and what drift is measured against.
    ///
    /// Fails when a non-loopback address comes without a token-capable setup (never: one is generated), when the
    /// address cannot be bound, or when the database cannot be reached.
    pub async fn bind(
        conn: pgstrata_conn::ConnectOptions,
        project: Option<pgstrata::Project>,
        opts: ConsoleOptions,
    ) -> Result<Console> {
        Console::bind_with(conn, project, opts, ActionSink::default()).await
    }

    /// [`Console::bind`], reporting every state change to `sink`.
    pub async fn bind_with(
        conn: pgstrata_conn::ConnectOptions,
        project: Option<pgstrata::Project>,
        opts: ConsoleOptions,
        sink: ActionSink,
    ) -> Result<Console> {
        if opts.page_size < 1 {
            return Err(Error::Usage {
                message: format!("page size {} is not a positive number", opts.page_size),
                help: None,
            });
        }
        let access = security::Access::new(&opts)?;
        let pool = pool::Pool::new(conn);
        // Fail early on a wrong connection string or an unreachable server.
        drop(pool.get().await?);
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: opts.listen,
            source,
        })?;
        let state = Arc::new(routes::AppState::new(
            pool, project, opts, access, addr, sink,
        ));
        Ok(Console {
            listener,
            state,
            addr,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The access token in force, if any.
    pub fn token(&self) -> Option<&str> {
        self.state.access.token()
    }

    /// Whether the token was generated (not given): the caller should print [`Console::url`], which carries it.
    pub fn token_generated(&self) -> bool {
        self.state.access.generated()
    }

    /// The URL to open: with the token as a query parameter when one is in force (the first visit trades it for a
    /// cookie and drops it from the address bar).
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
            IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        match self.token() {
            Some(t) => format!("http://{host}:{}/?token={t}", self.addr.port()),
            None => format!("http://{host}:{}/", self.addr.port()),
        }
    }

    /// Serve until `shutdown` completes. The samplers (queue depths, inspect) run meanwhile.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let background = sampler::spawn(self.state.clone());
        let app = routes::router(self.state.clone());
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| Error::Serve { source });
        background.abort();
        result
    }
}
