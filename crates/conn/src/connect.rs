//! Connecting: [`ConnectOptions::connect`] and [`ConnectOptions::wait_until_ready`].

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::{AsyncMessage, Client, Connection, Notification};

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

impl ConnectOptions {
    /// Connects; the connection task is spawned on the current tokio runtime. Notices
    /// (`RAISE NOTICE`/`WARNING`…) are forwarded to [`Connected::notices`], asynchronous
    /// notifications (`LISTEN`/`NOTIFY`) to [`Connected::notifications`].
    ///
    /// Must be called within a tokio runtime.
    pub async fn connect(&self) -> Result<Connected, Error> {
        let tls = tls::connector(&self.tls_settings())?;
        let (client, connection) = self
            .to_tokio_postgres_config()
            .connect(tls)
            .await
            .map_err(|error| self.connect_error(error))?;
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
    /// up, shutting down or out of connection slots is retried.
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<Duration, Error> {
        const MAX_DELAY: Duration = Duration::from_secs(1);
        let start = Instant::now();
        let deadline = start + timeout;
        let tls = tls::connector(&self.tls_settings())?;
        let config = self.to_tokio_postgres_config();
        let mut delay = Duration::from_millis(50);
        let mut last_error = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, config.connect(tls.clone())).await {
                Ok(Ok((client, connection))) => {
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
                Ok(Err(e)) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
                    return Ok(start.elapsed());
                }
                Ok(Err(e)) if e.as_db_error().is_some() && !is_transient(e.code()) => {
                    return Err(self.connect_error(e));
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %describe(&e), target = %self, "server not ready yet");
                    last_error = Some(describe(&e));
                }
                Err(_elapsed) => {}
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Timeout {
                    target: self.redacted(),
                    waited: start.elapsed(),
                    last_error: last_error
                        .unwrap_or_else(|| "the connection attempt did not finish".to_owned()),
                });
            }
            // The last pause ends at the deadline, for one more attempt there.
            tokio::time::sleep(delay.min(remaining)).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    fn connect_error(&self, error: tokio_postgres::Error) -> Error {
        Error::Connect {
            target: self.redacted(),
            error,
        }
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
