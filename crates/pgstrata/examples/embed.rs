//! Deploy a package embedded in the binary at start-up, as an application would before serving requests.
//!
//! ```sh
//! DATABASE_URL=postgresql://localhost/app cargo run -p pgstrata --example embed
//! # or against the embedded dev server, in the database `strata up --embedded -p examples/billing` uses:
//! DATABASE_URL=$(cargo run -q -- dev url -p examples/billing) cargo run -p pgstrata --example embed
//! ```

use include_dir::{Dir, include_dir};

static BILLING: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/billing");

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match deploy().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error and its causes, as a sentence: what an application would log.
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("embed: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn deploy() -> Result<(), pgstrata::Error> {
    let project = pgstrata::Project::new(vec![pgstrata::Package::embedded(&BILLING)?])?;
    let options =
        pgstrata_conn::ConnectOptions::from_env(std::env::var("DATABASE_URL").ok().as_deref())?;
    let mut db = pgstrata::Database::connect(&options).await?;
    let report = pgstrata::up(
        &mut db,
        &project,
        &pgstrata::UpOptions::default(),
        &mut pgstrata::Quiet,
    )
    .await?;
    println!(
        "{:?}: {} migration(s)",
        report.outcome,
        report.migrations.len()
    );
    for t in &report.packages {
        println!(
            "{}: {} → {}",
            t.package,
            t.from.as_deref().unwrap_or("(nothing)"),
            t.to.as_deref().unwrap_or("(nothing)")
        );
    }
    Ok(())
}
