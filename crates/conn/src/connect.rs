//! Connecting: [`ConnectOptions::connect`] and [`ConnectOptions::wait_until_ready`].

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Connection, Notification, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::describe;
use crate::{ConnectOptions, Error, tls};

/// An open connection: the client, plus what the server sends on its own.
///
/// The connection task runs on the tokio runtime that was current in
/// [`connect`](ConnectOptions::connect); it ends when `client` is dropped or the server
/// goes away.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pgstrata_conn::ConnectOptions;
///
/// let mut conn = ConnectOptions::from_env(None)?.connect().await?;
/// conn.client
///     .batch_execute("DO $$ BEGIN RAISE NOTICE 'hello'; END $$")
///     .await?;
/// let notice = conn.notices.recv().await.ok_or("connection closed")?;
/// assert_eq!(notice.message(), "hello");
/// # Ok(())
/// # }
/// ```
pub struct Connected {
    /// The client, for queries.
    pub client: Client,
    /// Notices and warnings (`RAISE NOTICE`, `RAISE WARNING`, …), in the order received.
    /// They queue up until read; drop the receiver to discard them.
    pub notices: UnboundedReceiver<DbError>,
    /// Asynchronous notifications (`LISTEN`/`NOTIFY`).
    pub notifications: UnboundedReceiver<Notification>,
}

/// The connection as tokio-postgres returns it, over a plain or TLS stream.
type PgConnection = Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// Why one connection attempt failed.
enum Failure {
    /// The driver's error: refused, TLS failure, authentication, a server error.
    Driver(tokio_postgres::Error),
    /// The set-up of the connection to `server` did not finish within `after`.
    TimedOut { server: String, after: Duration },
}

impl Failure {
    /// Which failure to report when several addresses failed: the server's own answer
    /// says most, then a timeout (the other addresses may just be unreachable), then the
    /// last error.
    fn rank(&self) -> u8 {
        match self {
            Failure::Driver(error) if error.as_db_error().is_some() => 2,
            Failure::TimedOut { .. } => 1,
            Failure::Driver(_) => 0,
        }
    }

    fn describe(&self) -> String {
        match self {
            Failure::Driver(error) => describe(error),
            Failure::TimedOut { server, after } => format!(
                "{server} did not complete the connection set-up within {}",
                seconds(*after)
            ),
        }
    }
}

/// One place to try.
struct Attempt {
    config: tokio_postgres::Config,
    /// `host:port`, `name (address:port)` or the socket file, for messages.
    server: String,
}

impl ConnectOptions {
    /// Connects; the connection task is spawned on the current tokio runtime. Notices
    /// (`RAISE NOTICE`/`WARNING`…) are forwarded to [`Connected::notices`], asynchronous
    /// notifications (`LISTEN`/`NOTIFY`) to [`Connected::notifications`].
    ///
    /// Each attempt (each address a host name resolves to) is bounded by
    /// [`connect_timeout`](Self::connect_timeout) as a whole: TCP connect, SSL request and
    /// TLS handshake, startup and authentication. A server that accepts the connection and
    /// never answers gives [`Error::ConnectTimeout`].
    ///
    /// Must be called within a tokio runtime.
    pub async fn connect(&self) -> Result<Connected, Error> {
        let tls = tls::connector(&self.tls_settings())?;
        let (client, connection) = self
            .establish(&tls, None)
            .await
            .map_err(|failure| self.connect_error(failure))?;
        let (notice_tx, notices) = unbounded_channel();
        let (notification_tx, notifications) = unbounded_channel();
        tokio::spawn(forward_messages(connection, notice_tx, notification_tx));
        Ok(Connected {
            client,
            notices,
            notifications,
        })
    }

    /// Retries connecting until the server accepts connections or `timeout` passes (for
    /// `strata wait`), and returns how long it took. A server that answers "database does
    /// not exist" (3D000) counts as up, as in dbmate. Errors that waiting cannot fix, such as
    /// a rejected password or bad TLS files, are returned at once; a server that is starting
    /// up, shutting down or out of connection slots is retried. Each attempt is also bounded
    /// by [`connect_timeout`](Self::connect_timeout).
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<Duration, Error> {
        const MAX_DELAY: Duration = Duration::from_secs(1);
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        let tls = tls::connector(&self.tls_settings())?;
        let remaining = || {
            deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            })
        };
        let mut delay = Duration::from_millis(50);
        loop {
            match self.establish(&tls, deadline).await {
                Ok((client, connection)) => {
                    // Dropping the client makes the connection send Terminate and finish.
                    drop(client);
                    match tokio::time::timeout(Duration::from_secs(1), connection).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            tracing::debug!(error = %describe(&error), "closing the probe connection");
                        }
                        Err(_elapsed) => {
                            tracing::debug!("the probe connection did not close in time")
                        }
                    }
                    return Ok(start.elapsed());
                }
                Err(Failure::Driver(e)) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
                    return Ok(start.elapsed());
                }
                Err(Failure::Driver(e)) if e.as_db_error().is_some() && !is_transient(e.code()) => {
                    return Err(self.connect_error(Failure::Driver(e)));
                }
                Err(failure) => {
                    let last_error = failure.describe();
                    tracing::debug!(error = %last_error, target = %self.target(), "server not ready yet");
                    if remaining().is_zero() {
                        return Err(Error::Timeout {
                            target: self.target(),
                            waited: start.elapsed(),
                            last_error,
                        });
                    }
                }
            }
            // The last pause ends at the deadline, for one more attempt there.
            tokio::time::sleep(delay.min(remaining())).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    /// Tries each address in turn, each bounded by the connect timeout (and all by
    /// `deadline`), as libpq does; returns the first connection made.
    async fn establish(
        &self,
        tls: &MakeRustlsConnect,
        deadline: Option<Instant>,
    ) -> Result<(Client, PgConnection), Failure> {
        let limit = || {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match (self.connect_timeout(), left) {
                (Some(timeout), Some(left)) => Some(timeout.min(left)),
                (timeout, left) => timeout.or(left),
            }
        };
        let mut reported: Option<Failure> = None;
        for attempt in self.attempts(limit()).await? {
            let after = limit();
            let connecting = attempt.config.connect(tls.clone());
            let outcome = match after {
                Some(after) => match tokio::time::timeout(after, connecting).await {
                    Ok(outcome) => outcome.map_err(Failure::Driver),
                    Err(_elapsed) => Err(Failure::TimedOut {
                        server: attempt.server,
                        after,
                    }),
                },
                None => connecting.await.map_err(Failure::Driver),
            };
            match outcome {
                Ok(connected) => return Ok(connected),
                Err(failure) => {
                    tracing::debug!(error = %failure.describe(), "connection attempt failed");
                    if reported.as_ref().is_none_or(|r| failure.rank() >= r.rank()) {
                        reported = Some(failure);
                    }
                }
            }
            if limit().is_some_and(|left| left.is_zero()) {
                break;
            }
        }
        // `attempts` never returns an empty list, so `reported` is set; the fallback is for form.
        Err(reported.unwrap_or_else(|| Failure::TimedOut {
            server: self.server(),
            after: limit().unwrap_or_default(),
        }))
    }

    /// The addresses to try: one for a socket or an IP address, one per address of a host
    /// name (looked up here, so that each gets its own timeout).
    async fn attempts(&self, limit: Option<Duration>) -> Result<Vec<Attempt>, Failure> {
        let config = self.config_without_timeout();
        let Some(host) = self.host_to_resolve() else {
            return Ok(vec![Attempt {
                config,
                server: self.server(),
            }]);
        };
        let lookup = tokio::net::lookup_host((host, self.port()));
        let addresses = match limit {
            Some(limit) => {
                tokio::time::timeout(limit, lookup)
                    .await
                    .map_err(|_| Failure::TimedOut {
                        server: format!("{} (looking up the host name)", self.server()),
                        after: limit,
                    })?
            }
            None => lookup.await,
        };
        match addresses {
            Ok(addresses) => {
                let attempts: Vec<Attempt> = addresses
                    .map(|address| {
                        let mut config = config.clone();
                        config.hostaddr(address.ip());
                        Attempt {
                            config,
                            server: format!("{host} ({address})"),
                        }
                    })
                    .collect();
                if !attempts.is_empty() {
                    return Ok(attempts);
                }
            }
            Err(error) => tracing::debug!(%error, host, "host name lookup failed"),
        }
        // tokio-postgres looks the name up again and reports the failure in its own words.
        Ok(vec![Attempt {
            config,
            server: self.server(),
        }])
    }

    fn connect_error(&self, failure: Failure) -> Error {
        match failure {
            Failure::Driver(error) => Error::Connect {
                target: self.target(),
                error,
            },
            Failure::TimedOut { server, after } => Error::ConnectTimeout {
                target: self.target(),
                server,
                timeout: after,
                is_default: !self.connect_timeout_is_set(),
            },
        }
    }
}

/// "2s", "0.5s".
pub(crate) fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// Server errors that go away by themselves.
fn is_transient(code: Option<&SqlState>) -> bool {
    [
        SqlState::CANNOT_CONNECT_NOW, // starting up or shutting down
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
    ]
    .iter()
    .any(|transient| code == Some(transient))
}

/// Drives the connection, handing notices and notifications to the receivers.
async fn forward_messages<S, T>(
    mut connection: Connection<S, T>,
    notices: UnboundedSender<DbError>,
    notifications: UnboundedSender<Notification>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(message) = messages.next().await {
        // A send fails only when the receiver was dropped: the caller does not want them.
        match message {
            Ok(AsyncMessage::Notice(notice)) => {
                if notices.send(notice).is_err() {
                    tracing::trace!("notice discarded: receiver dropped");
                }
            }
            Ok(AsyncMessage::Notification(notification)) => {
                if notifications.send(notification).is_err() {
                    tracing::trace!("notification discarded: receiver dropped");
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "connection ended with an error");
                break;
            }
        }
    }
}
