//! Running a plan's sections against a database: a transactional section in one transaction, a no-transaction
//! section statement by statement (as `strata up` runs a migration's sections).

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::plan::Section;

/// Run `sections` in order on `client`. A transactional section that fails is rolled back; statements of
/// no-transaction sections that ran before a failure stay applied.
pub async fn apply(client: &Client, sections: &[Section]) -> Result<()> {
    let mut index = 0;
    for section in sections {
        if !section.no_transaction {
            client
                .batch_execute("BEGIN")
                .await
                .map_err(Error::db("starting the migration's transaction"))?;
        }
        for sql in &section.statements {
            index += 1;
            if let Err(source) = client.batch_execute(sql).await {
                if !section.no_transaction {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                return Err(Error::Apply {
                    index,
                    sql: sql.clone(),
                    source,
                });
            }
        }
        if !section.no_transaction {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(Error::db("committing the migration"))?;
        }
    }
    Ok(())
}
