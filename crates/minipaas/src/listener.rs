//! A dedicated connection that receives NOTIFY wake-ups.

use futures_util::future::poll_fn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Notification};

use crate::error::Result;

/// A connection kept for `LISTEN`, with its notifications as a stream.
///
/// LISTEN needs a connection of its own: notifications arrive on the connection that listens, between
/// queries, and a pooled or busy connection would hold them back or drop them with the session.
///
/// ```no_run
/// # async fn demo() -> minipaas::Result<()> {
/// let (client, connection) = tokio_postgres::connect("postgresql://localhost/app", tokio_postgres::NoTls).await?;
/// let mut listener = minipaas::Listener::new(client, connection);
/// listener.listen("minipaas.queue.emails").await?;
/// while let Some(notification) = listener.recv().await {
///     println!("wake-up on {}", notification.channel());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Listener {
    client: Client,
    notifications: mpsc::UnboundedReceiver<Notification>,
    ended: bool,
}

impl Listener {
    /// Takes over a freshly connected client and its connection, and spawns the task that drives the
    /// connection and forwards its notifications (on the current tokio runtime).
    pub fn new<S, T>(client: Client, mut connection: Connection<S, T>) -> Listener
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, notifications) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(notification))) => {
                        if sender.send(notification).is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "minipaas: the LISTEN connection failed");
                        break;
                    }
                    None => break,
                }
            }
        });
        Listener {
            client,
            notifications,
            ended: false,
        }
    }

    /// Connects without TLS (e.g. a Unix socket or a local server) and wraps the connection. For TLS, connect
    /// yourself and use [`Listener::new`].
    pub async fn connect(config: &str) -> Result<Listener> {
        let (client, connection) = tokio_postgres::connect(config, NoTls).await?;
        Ok(Listener::new(client, connection))
    }

    /// Starts listening on a channel (quoted as an identifier, so any name works).
    pub async fn listen(&self, channel: &str) -> Result<()> {
        let quoted = format!("\"{}\"", channel.replace('"', "\"\""));
        self.client
            .batch_execute(&format!("LISTEN {quoted}"))
            .await?;
        Ok(())
    }

    /// The next notification; `None` once the connection is gone.
    pub async fn recv(&mut self) -> Option<Notification> {
        let next = self.notifications.recv().await;
        self.ended |= next.is_none();
        next
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.ended || self.client.is_closed()
    }
}
