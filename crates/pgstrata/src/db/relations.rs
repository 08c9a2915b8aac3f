//! The relations a deploy starts with: which of the names its migrations mention exist, and whether they hold rows
//! (what the linter needs to judge lock hazards, see `pgstrata_sql::lint::MigrationContext::existing`).

use std::collections::BTreeSet;

use pgstrata_sql::lint::ExistingRelation;
use pgstrata_sql::locks::RelationName;
use tokio_postgres::Client;

use crate::error::{Error, Result};

/// Relations (tables, partitioned tables, indexes, materialized views, sequences, views, foreign tables) outside
/// the system schemas whose name is one of `names`, each with whether it is empty: a table or materialized view
/// without a page of data, a partitioned table none of whose partitions has one, an index whose table is empty.
/// Views, sequences and foreign tables never count as empty. Sizes come from `pg_relation_size`, which takes the
/// weakest lock (ACCESS SHARE) on each relation looked at.
///
/// Only where a schema could be named does every relation count: in the schemas `names` holds (a qualified name's
/// schema is one of the names a migration mentions) and in `schemas` (the deploy's own). Elsewhere only an unqualified
/// name can reach a relation, and the linter matches an unqualified name with a relation of that name in any schema
/// (`pgstrata_sql::lint`): there one relation per name stands for them all, one that holds rows if any does. So a
/// tenant's deploy reads a few rows, not every tenant schema's tables (and sizes, and locks).
pub(crate) async fn existing(
    client: &Client,
    names: &BTreeSet<String>,
    schemas: &[&str],
) -> Result<Vec<ExistingRelation>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    // Whether relation `r` is empty, written once and evaluated only where a row needs it (a CTE used twice would
    // be computed for every relation).
    let empty = "CASE (SELECT relkind FROM pg_class WHERE oid = r.data_oid)
                   WHEN 'r' THEN pg_relation_size(r.data_oid) = 0
                   WHEN 'm' THEN pg_relation_size(r.data_oid) = 0
                   WHEN 'p' THEN NOT EXISTS (SELECT 1 FROM pg_partition_tree(r.data_oid) t
                                              WHERE t.isleaf AND pg_relation_size(t.relid) > 0)
                   ELSE false
                 END";
    // The relations of one name (or names) with their data's oid (an index's table), outside the system schemas.
    // Every lookup goes through pg_class's index on (relname, relnamespace): by both where the schema is known, by
    // name alone elsewhere, stopping at the first row that answers (a database with a thousand tenant schemas has
    // a thousand relations of each name, and reading them all made each tenant's deploy slower than the last).
    let relations = |condition: &str| {
        format!(
            "SELECT c.oid, n.nspname, c.relname, c.relkind,
                    CASE WHEN c.relkind IN ('i', 'I') THEN i.indrelid ELSE c.oid END AS data_oid
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_index i ON i.indexrelid = c.oid
              WHERE {condition}
                AND c.relkind IN ('r', 'p', 'i', 'I', 'm', 'S', 'v', 'f')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
        )
    };
    let exact = relations("c.relname = ANY($1) AND c.relnamespace = ANY(x.namespaces)");
    let elsewhere_with_rows =
        relations("c.relname = o.relname AND NOT c.relnamespace = ANY(x.namespaces)");
    let sql = format!(
        "WITH x AS MATERIALIZED (
               SELECT ARRAY(SELECT oid FROM pg_namespace WHERE nspname = ANY($1) OR nspname = ANY($2)) AS namespaces
             )
             SELECT r.nspname, r.relname, {empty} FROM x CROSS JOIN LATERAL ({exact}) r
             UNION ALL
             -- Elsewhere, per name: the first relation that holds rows, else any (sizes read until one is found).
             SELECT y.* FROM x CROSS JOIN (SELECT DISTINCT unnest($1::text[]) AS relname) o
             CROSS JOIN LATERAL (
               (SELECT r.nspname, r.relname, false FROM ({elsewhere_with_rows}) r WHERE NOT {empty} LIMIT 1)
               UNION ALL
               (SELECT r.nspname, r.relname, {empty} FROM ({elsewhere_with_rows}) r LIMIT 1)
               LIMIT 1
             ) y"
    );
    let rows = client
        .query(&sql, &[&names, &schemas])
        .await
        .map_err(Error::db("reading which relations exist and hold rows"))?;
    Ok(rows
        .iter()
        .map(|r| ExistingRelation {
            name: RelationName::new(Some(r.get(0)), r.get(1)),
            empty: r.get(2),
        })
        .collect())
}
