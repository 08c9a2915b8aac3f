//! `strata console`: arguments, and the call into `pgstrata-console` (which does the work).

use std::net::SocketAddr;

use clap::Args;
use pgstrata_console::{ActionSink, Console, ConsoleOptions, DEFAULT_LISTEN};

use crate::args::Global;
use crate::{Failure, connect_options, try_load_project};

impl From<pgstrata_console::Error> for Failure {
    fn from(e: pgstrata_console::Error) -> Failure {
        if e.is_usage() {
            Failure::Usage(miette::Report::new(e))
        } else {
            Failure::Failed(miette::Report::new(e))
        }
    }
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Address to listen on (port 0: any free port). Any address other than loopback needs an access token.
    #[arg(long, value_name = "ADDR:PORT", default_value_t = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Access token (16+ letters, digits, - or _); generated and printed for a non-loopback --listen without one.
    #[arg(
        long,
        env = "STRATA_CONSOLE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Hide every button and refuse every change.
    #[arg(long)]
    pub read_only: bool,
    /// Rows per page of every listing.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub page_size: i64,
}

pub async fn console(a: ConsoleArgs, g: &Global) -> Result<(), Failure> {
    // The plan page and the drift compare with the package files when there are some; without them the console
    // shows the database alone.
    let project = match try_load_project(g) {
        Ok(p) => p,
        Err(Failure::Usage(r) | Failure::Failed(r)) => {
            eprintln!("warning: the console shows the database alone: {r}");
            None
        }
        Err(Failure::Silent) => None,
    };
    let options = connect_options(g, project.as_ref())?;
    if g.embedded {
        pgstrata::create_database(&options).await?;
    }
    let opts = ConsoleOptions {
        listen: a.listen,
        token: a.token,
        read_only: a.read_only,
        page_size: a.page_size,
        inspect_settings: crate::ops::settings(g)?,
        ..ConsoleOptions::default()
    };
    // Every change made from the page is logged, one line each, where the operator sees it.
    let sink = ActionSink::new(|action| eprintln!("{action}"));
    let console = Console::bind_with(options, project, opts, sink).await?;
    if console.token_generated() {
        eprintln!(
            "An access token was generated: open the address below once in the browser (it sets a cookie)."
        );
    }
    println!("strata console: {} (Ctrl-C stops)", console.url());
    console
        .serve(async {
            // Ctrl-C stops; if the signal cannot be watched, serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    Ok(())
}
