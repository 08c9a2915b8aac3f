//! `connect_timeout` bounds the whole connection set-up, against servers that accept the TCP
//! connection and then stall at each step: before answering the SSL request, in the TLS
//! handshake, after the startup message, and during authentication.

use std::time::{Duration, Instant};

use pgstrata_conn::{ConnectOptions, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::support::env_of;

/// Where a fake server stops answering.
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// Accepts, reads nothing, answers nothing.
    Silent,
    /// Accepts the SSL request ('S'), then says nothing in the TLS handshake.
    InTlsHandshake,
    /// Refuses SSL ('N') or gets none, reads the startup message, asks for a cleartext
    /// password, reads it, then says nothing.
    InAuthentication,
}

/// A loopback listener that accepts every connection and stalls it as told; the
/// connections stay open until the test ends. `reached` gets, for each connection, the last
/// step the fake server played before stalling.
async fn stalling_server(stall: Stall) -> (u16, UnboundedReceiver<&'static str>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (reached, steps) = unbounded_channel();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let step = play(&mut socket, stall)
                .await
                .unwrap_or("the client went away");
            let _ = reached.send(step);
            open.push(socket);
        }
    });
    (port, steps)
}

async fn play(socket: &mut TcpStream, stall: Stall) -> std::io::Result<&'static str> {
    const SSL_REQUEST: u32 = 80_877_103;
    match stall {
        Stall::Silent => Ok("accepted"),
        Stall::InTlsHandshake => {
            let _length = socket.read_u32().await?;
            if socket.read_u32().await? != SSL_REQUEST {
                return Ok("no SSL request");
            }
            socket.write_all(b"S").await?;
            Ok("accepted the SSL request")
        }
        Stall::InAuthentication => {
            let mut length = socket.read_u32().await?;
            if socket.read_u32().await? == SSL_REQUEST {
                socket.write_all(b"N").await?;
                length = socket.read_u32().await?;
                let _version = socket.read_u32().await?;
            }
            let mut startup = vec![0; length as usize - 8];
            socket.read_exact(&mut startup).await?;
            // AuthenticationCleartextPassword.
            socket.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await?;
            let _tag = socket.read_u8().await?;
            let length = socket.read_u32().await?;
            let mut password = vec![0; length as usize - 4];
            socket.read_exact(&mut password).await?;
            Ok("received the password")
        }
    }
}

/// Connects and returns the error and how long it took.
async fn timed_failure(opts: &ConnectOptions) -> (Error, Duration) {
    let start = Instant::now();
    // The outer bound only keeps a regression from hanging the test run.
    let outcome = tokio::time::timeout(Duration::from_secs(20), opts.connect())
        .await
        .expect("connect() must give up by itself");
    match outcome {
        Ok(_) => panic!("connected to a stalling server"),
        Err(error) => (error, start.elapsed()),
    }
}

#[tokio::test]
async fn connect_timeout_from_the_url_and_pgconnect_timeout() {
    let (port, _) = stalling_server(Stall::Silent).await;
    let url = format!("postgresql://nobody:hush@127.0.0.1:{port}/app?connect_timeout=2");
    let from_url = ConnectOptions::resolve(Some(&url), &env_of(&[])).unwrap();
    let from_env = ConnectOptions::resolve(
        Some(&format!("postgresql://nobody:hush@127.0.0.1:{port}/app")),
        &env_of(&[("PGCONNECT_TIMEOUT", "2")]),
    )
    .unwrap();
    for opts in [from_url, from_env] {
        let (error, took) = timed_failure(&opts).await;
        assert!(
            (Duration::from_secs(2)..Duration::from_secs(4)).contains(&took),
            "{took:?}"
        );
        assert!(matches!(error, Error::ConnectTimeout { .. }), "{error:?}");
        assert!(error.is_connection());
        let message = error.to_string();
        assert!(
            message.contains(&format!(
                "127.0.0.1:{port} did not complete the connection set-up"
            )),
            "{message}"
        );
        assert!(
            message.contains("within 2s (connect_timeout; 0 waits forever)"),
            "{message}"
        );
        assert!(!message.contains("hush") && !format!("{error:?}").contains("hush"));
    }
}

#[tokio::test]
async fn every_step_of_the_set_up_is_bounded() {
    let cases = [
        (Stall::Silent, "sslmode=disable", "accepted"),
        (Stall::Silent, "sslmode=require", "accepted"),
        (
            Stall::InTlsHandshake,
            "sslmode=require",
            "accepted the SSL request",
        ),
        (
            Stall::InTlsHandshake,
            "sslmode=prefer",
            "accepted the SSL request",
        ),
        (
            Stall::InAuthentication,
            "sslmode=disable",
            "received the password",
        ),
        (
            Stall::InAuthentication,
            "sslmode=prefer",
            "received the password",
        ),
    ];
    for (stall, sslmode, step) in cases {
        let (port, mut reached) = stalling_server(stall).await;
        let opts = ConnectOptions::resolve(
            Some(&format!(
                "host=127.0.0.1 port={port} user=u password=hush dbname=d {sslmode}"
            )),
            &env_of(&[]),
        )
        .unwrap()
        .with_connect_timeout(Duration::from_millis(300));
        let (error, took) = timed_failure(&opts).await;
        assert!(
            (Duration::from_millis(300)..Duration::from_secs(3)).contains(&took),
            "{stall:?} {sslmode}: {took:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("within 0.3s (connect_timeout"),
            "{stall:?} {sslmode}: {message}"
        );
        assert!(!message.contains("hush"), "{message}");
        assert_eq!(reached.try_recv(), Ok(step), "{stall:?} {sslmode}");
    }
}

#[tokio::test]
async fn zero_waits_forever() {
    let (port, _) = stalling_server(Stall::Silent).await;
    let opts = ConnectOptions::resolve(
        Some(&format!(
            "host=127.0.0.1 port={port} user=u dbname=d connect_timeout=0"
        )),
        &env_of(&[]),
    )
    .unwrap();
    assert_eq!(opts.connect_timeout(), None);
    // Still waiting after three seconds, longer than any timeout given above.
    let waited = tokio::time::timeout(Duration::from_secs(3), opts.connect()).await;
    assert!(waited.is_err(), "connect() returned early");
}

#[tokio::test]
async fn wait_until_ready_bounds_each_attempt() {
    // A stalled attempt used to hold `wait` until its whole deadline; now each attempt is
    // cut at connect_timeout and retried, and the error says why.
    let (port, _) = stalling_server(Stall::Silent).await;
    let opts = ConnectOptions::resolve(
        Some(&format!(
            "host=127.0.0.1 port={port} user=u dbname=d sslmode=disable"
        )),
        &env_of(&[]),
    )
    .unwrap()
    .with_connect_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let error = opts
        .wait_until_ready(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&format!(
            "127.0.0.1:{port} did not complete the connection set-up"
        )),
        "{error}"
    );
}
