//! One schema and one role per package.
//!
//! Each package gets a role (`NOLOGIN NOINHERIT`: a role granted to it lends it nothing) named after it,
//! [`package_role`]. The role owns the package's schema;
//! migrations and managed code run as it (`SET LOCAL ROLE`), so everything they create belongs to it, and without
//! `uses` it has no right on any other package's schema. Extensions are still created by the deploying login, and
//! Strata's own bookkeeping runs as the login too.
//!
//! `uses = ["B"]` grants A's role `USAGE` on B's schema, `SELECT` and `REFERENCES` (foreign keys) on its tables and
//! views and `EXECUTE` on its routines, now and (through default privileges) for what B creates later — never
//! write access. Removing the use revokes all of that.
//!
//! All of this is idempotent and checks before it writes: a deploy with nothing new changes nothing in the catalog.
//! A package can opt out with `[security] package_role = false` (its objects then belong to the deploying login).
//!
//! A package role never takes a schema over silently ([`check_schemas`]): a schema `strata.package` records for
//! another package is refused, and so is an existing schema holding objects that no deploy of this package
//! created, unless the manifest says `adopt_schema = true` (`strata plan` lists what would be adopted). System
//! schemas and `public` are refused when the manifest is read.

use std::collections::{BTreeMap, BTreeSet};

use postgres_protocol::escape::{escape_identifier, escape_literal};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use crate::db::history;
use crate::db::role_privileges::RoleFacts;
use crate::error::{Error, Result};
use crate::source::STRATA_PACKAGE;
use crate::source::package::Package;

/// PostgreSQL's limit on identifier length (NAMEDATALEN - 1).
const MAX_IDENT: usize = 63;

/// The role that owns a package's schema: `$` followed by the package name (as pgpkg does). A name longer than
/// PostgreSQL's 63 bytes is cut, and `~` plus 8 hex digits of the full name's SHA-256 is appended, so two long
/// names never collide silently (a package name cannot contain `~`, so a cut name never equals an uncut one).
///
/// ```
/// assert_eq!(pgstrata::package_role("github.com/acme/billing"), "$github.com/acme/billing");
/// let long = format!("github.com/acme/{}", "x".repeat(80));
/// let role = pgstrata::package_role(&long);
/// assert_eq!(role.len(), 63);
/// assert_ne!(role, pgstrata::package_role(&format!("{long}y")));
/// ```
pub fn package_role(package: &str) -> String {
    fit_identifier(format!("${package}"), package)
}

/// The database a package gets on the local dev server (`strata … --embedded`, `strata dev url`): the package's
/// name itself, cut like [`package_role`]'s when longer than 63 bytes. Each package gets its own, so packages that
/// use the same schema name (the README's example and the tour's `billing`) do not collide.
///
/// ```
/// assert_eq!(pgstrata::dev_database_name("github.com/acme/billing"), "github.com/acme/billing");
/// let long = format!("github.com/acme/{}", "x".repeat(80));
/// assert_eq!(pgstrata::dev_database_name(&long).len(), 63);
/// ```
pub fn dev_database_name(package: &str) -> String {
    fit_identifier(package.to_string(), package)
}

/// `full` if it fits PostgreSQL's 63 bytes, else its start and `~` plus 8 hex digits of `package`'s SHA-256.
fn fit_identifier(full: String, package: &str) -> String {
    if full.len() <= MAX_IDENT {
        return full;
    }
    let digest = hex::encode(Sha256::digest(package.as_bytes()));
    let keep = MAX_IDENT - 9;
    let mut cut = keep;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{}", &full[..cut], &digest[..8])
}

/// The role a package's SQL runs as, if it has one.
pub(crate) fn role_of(package: &Package) -> Option<String> {
    (package.name() != STRATA_PACKAGE && package.manifest().security.package_role)
        .then(|| package_role(package.name()))
}

/// `SET [LOCAL] ROLE role`, or `RESET ROLE` for `None`.
pub(crate) fn set_role_sql(role: Option<&str>, local: bool) -> String {
    match role {
        Some(r) => format!(
            "SET {}ROLE {}",
            if local { "LOCAL " } else { "" },
            escape_identifier(r)
        ),
        None => "RESET ROLE".to_string(),
    }
}

/// Counts the objects of schema `n` (tables, views, sequences, routines, types; not extension members).
///
/// Through `pg_depend`'s index on the referenced object (every relation and routine records a dependency on its
/// schema) rather than by `relnamespace`/`pronamespace`, which have no index: a database with a thousand tenant
/// schemas would otherwise scan every tenant's relations to count one schema's.
const SCHEMA_OBJECTS_SQL: &str = "(SELECT count(*) FROM pg_catalog.pg_depend dn
                 JOIN pg_catalog.pg_class c ON c.oid = dn.objid
                WHERE dn.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND dn.refobjid = n.oid
                  AND dn.refobjsubid = 0 AND dn.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  AND c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_class'::regclass
                                     AND d.objid = c.oid AND d.deptype = 'e'))
             + (SELECT count(*) FROM pg_catalog.pg_depend dn
                 JOIN pg_catalog.pg_proc p ON p.oid = dn.objid
                WHERE dn.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND dn.refobjid = n.oid
                  AND dn.refobjsubid = 0 AND dn.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                  AND p.pronamespace = n.oid
                  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                     AND d.objid = p.oid AND d.deptype = 'e'))";

/// What the catalog says about a package's schema: its owner (None: it does not exist) and, when the package role
/// does not own it, how many objects are in it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SchemaFacts {
    pub owner: Option<String>,
    pub objects: Option<i64>,
}

/// A schema a package role would take over: it exists, owned by someone else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaAdoption {
    /// The package.
    pub package: String,
    /// Its schema.
    pub schema: String,
    /// Who owns the schema now.
    pub owner: String,
    /// Objects in it that would change owner.
    pub objects: i64,
    /// The package `strata.package` records for the schema, if any (this one: an earlier deploy created it).
    pub recorded_for: Option<String>,
}

/// Refuse taking a schema over unless the manifest allows it: a schema `strata.package` records for another
/// package, or an existing schema with objects that no deploy of this package created, needs
/// `adopt_schema = true`. Returns the schemas that will be adopted.
pub(crate) fn check_schemas(
    with_roles: &[(&Package, String)],
    pairs: &[(usize, &str)],
    facts: &[SchemaFacts],
    claims: &[(String, String)],
) -> Result<Vec<SchemaAdoption>> {
    let mut out = Vec::new();
    for ((k, schema), fact) in pairs.iter().zip(facts) {
        let (pkg, role) = &with_roles[*k];
        let schema = *schema;
        let allowed = pkg.manifest().security.adopt_schema;
        let claimed_by: Vec<&str> = claims
            .iter()
            .filter(|(s, _)| s == schema)
            .map(|(_, p)| p.as_str())
            .collect();
        if let Some(other) = claimed_by.iter().find(|p| **p != pkg.name())
            && !allowed
        {
            return Err(Error::refused(
                format!(
                    "schema {} belongs to package {other} (recorded in strata.package): package {} cannot take it \
                     over",
                    schema,
                    pkg.name()
                ),
                format!(
                    "give the package a schema of its own. If package {other} was renamed to this one, or is gone \
                     for good, set `adopt_schema = true` under [security] to hand the schema and its objects to \
                     this package's role. Nothing was run."
                ),
            ));
        }
        let Some(owner) = fact.owner.clone().filter(|o| o != role) else {
            continue;
        };
        let objects = fact.objects.unwrap_or(0);
        let ours = claimed_by.contains(&pkg.name());
        if !ours && objects > 0 && !allowed {
            return Err(Error::refused(
                format!(
                    "schema {} already exists (owned by {owner}) with {objects} object(s) that no deploy of package \
                     {} created: its role {role} would take them over",
                    schema,
                    pkg.name()
                ),
                "give the package a schema of its own, or, if this package is meant to own that schema and \
                 everything in it, set `adopt_schema = true` under [security] in strata.toml (`strata plan` shows \
                 what would be adopted). Nothing was run.",
            ));
        }
        out.push(SchemaAdoption {
            package: pkg.name().to_string(),
            schema: schema.to_string(),
            owner,
            objects,
            recorded_for: claimed_by.first().map(|p| p.to_string()),
        });
    }
    Ok(out)
}

/// The schemas `prepare` would adopt, without changing anything (for `strata plan`); refuses what it would
/// refuse.
pub(crate) async fn schema_adoptions(
    client: &Client,
    packages: &[Package],
) -> Result<Vec<SchemaAdoption>> {
    let with_roles: Vec<(&Package, String)> = packages
        .iter()
        .filter_map(|p| role_of(p).map(|r| (p, r)))
        .collect();
    if with_roles.is_empty() {
        return Ok(Vec::new());
    }
    let pairs = schema_pairs(&with_roles);
    let roles: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| with_roles[*k].1.as_str())
        .collect();
    let schemas: Vec<&str> = pairs.iter().map(|(_, s)| *s).collect();
    let rows = client
        .query_typed(
            &format!(
                "SELECT (SELECT pg_catalog.pg_get_userbyid(n.nspowner)::text FROM pg_catalog.pg_namespace n
                          WHERE n.nspname = s.schema),
                        (SELECT {SCHEMA_OBJECTS_SQL} FROM pg_catalog.pg_namespace n
                          WHERE n.nspname = s.schema AND pg_catalog.pg_get_userbyid(n.nspowner) <> s.role),
                        to_regclass('strata.package') IS NOT NULL
                   FROM unnest($1::text[], $2::text[]) AS s(role, schema)"
            ),
            &[(&roles, Type::TEXT_ARRAY), (&schemas, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(Error::db("reading package schemas"))?;
    let facts: Vec<SchemaFacts> = rows
        .iter()
        .map(|r| SchemaFacts {
            owner: r.get(0),
            objects: r.get(1),
        })
        .collect();
    let history = rows.first().is_some_and(|r| r.get::<_, bool>(2));
    let claims = if history {
        history::schema_claims(client, &schemas)
            .await
            .map_err(Error::db("reading strata.package"))?
    } else {
        Vec::new()
    };
    check_schemas(&with_roles, &pairs, &facts, &claims)
}

/// One entry per (package, schema) — a package may own several schemas — as an index into `with_roles`.
fn schema_pairs<'a>(with_roles: &'a [(&'a Package, String)]) -> Vec<(usize, &'a str)> {
    with_roles
        .iter()
        .enumerate()
        .flat_map(|(k, (p, _))| p.schemas().iter().map(move |s| (k, s.as_str())))
        .collect()
}

/// What [`prepare`] found and did.
#[derive(Debug, Default, Clone)]
pub(crate) struct Prepared {
    /// Package → the used packages its role is granted on (to record in `strata.package.granted_uses`).
    pub granted: BTreeMap<String, Vec<String>>,
    /// Human-readable actions taken (role created, schema adopted, grants).
    pub actions: Vec<String>,
    /// Existing schemas handed over to their package role.
    pub adoptions: Vec<SchemaAdoption>,
}

/// Create missing package roles and schemas, hand existing schemas (and what is in them) over to their package
/// role, and grant or revoke what `uses` asks for. Runs in the deploy transaction, before migrations.
///
/// `history_exists`: Strata's history tables existed when the deploy began (else nothing was granted before).
pub(crate) async fn prepare(
    client: &Client,
    packages: &[Package],
    history_exists: bool,
) -> Result<Prepared> {
    let with_roles: Vec<(&Package, String)> = packages
        .iter()
        .filter_map(|p| role_of(p).map(|r| (p, r)))
        .collect();
    let mut out = Prepared::default();
    if with_roles.is_empty() {
        return Ok(out);
    }
    // One row per (package, schema): a package may own several schemas.
    let pairs = schema_pairs(&with_roles);
    let roles: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| with_roles[*k].1.as_str())
        .collect();
    let schemas: Vec<&str> = pairs.iter().map(|(_, s)| *s).collect();
    // Both reads in one round trip (tokio-postgres pipelines concurrent queries).
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] =
        [(&roles, Type::TEXT_ARRAY), (&schemas, Type::TEXT_ARRAY)];
    let roles_sql = format!(
        "SELECT s.role,
                EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = s.role),
                -- A superuser may SET ROLE to any role: no membership needed.
                (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
                OR coalesce((SELECT {can_set} FROM pg_catalog.pg_roles r WHERE r.rolname = s.role), false),
                (SELECT pg_catalog.pg_get_userbyid(n.nspowner)::text FROM pg_catalog.pg_namespace n
                  WHERE n.nspname = s.schema),
                current_setting('server_version_num')::int,
                -- What the login may do, for the check before anything changes (`role_privileges`).
                (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
                (SELECT rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = current_user),
                coalesce((SELECT pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER WITH ADMIN OPTION')
                            FROM pg_catalog.pg_roles r WHERE r.rolname = s.role), false),
                current_user::text,
                current_database()::text,
                pg_catalog.has_database_privilege(current_database(), 'CREATE'),
                -- objects in an existing schema the role does not own (what adopting it would hand over)
                (SELECT {objects} FROM pg_catalog.pg_namespace n
                  WHERE n.nspname = s.schema AND pg_catalog.pg_get_userbyid(n.nspowner) <> s.role)
           FROM unnest($1::text[], $2::text[]) AS s(role, schema)",
        can_set = crate::db::pg_versions::can_set_role_sql("r.oid"),
        objects = SCHEMA_OBJECTS_SQL,
    );
    let roles_read = client.query_typed(&roles_sql, &params);
    // What the last deploy granted (nothing before the history exists).
    let names: Vec<&str> = with_roles.iter().map(|(p, _)| p.name()).collect();
    let granted_read = async {
        if !history_exists {
            return Ok(BTreeMap::new());
        }
        history::granted_uses(client, &names).await
    };
    let claims_read = async {
        if !history_exists {
            return Ok(Vec::new());
        }
        history::schema_claims(client, &schemas).await
    };
    let (rows, granted, claims) = tokio::join!(roles_read, granted_read, claims_read);
    let rows = rows.map_err(Error::db("reading package roles"))?;
    let claims = claims.map_err(Error::db("reading strata.package"))?;
    // Before anything changes: no schema is taken over unless the manifest says so.
    let facts: Vec<SchemaFacts> = rows
        .iter()
        .map(|r| SchemaFacts {
            owner: r.get(3),
            objects: r.get(11),
        })
        .collect();
    out.adoptions = check_schemas(&with_roles, &pairs, &facts, &claims)?;
    let previous: BTreeMap<String, BTreeSet<String>> = granted
        .map_err(Error::db("reading strata.package"))?
        .into_iter()
        .map(|(name, uses)| (name, uses.into_iter().collect()))
        .collect();
    // One fact per (package, schema): a package of several schemas may lack CREATE for any of them.
    let facts: Vec<RoleFacts> = pairs
        .iter()
        .zip(&rows)
        .map(|((k, schema), row)| RoleFacts {
            package: with_roles[*k].0.name().to_string(),
            role: with_roles[*k].1.clone(),
            schema: schema.to_string(),
            exists: row.get(1),
            can_set: row.get(2),
            schema_exists: row.get::<_, Option<String>>(3).is_some(),
            server_version_num: row.get(4),
            superuser: row.get::<_, Option<bool>>(5).unwrap_or_default(),
            createrole: row.get::<_, Option<bool>>(6).unwrap_or_default(),
            admin: row.get(7),
            login: row.get(8),
            database: row.get(9),
            create_on_database: row.get(10),
        })
        .collect();
    // Before the first CREATE ROLE: a login that lacks a privilege is told what and how, and nothing changed.
    crate::db::role_privileges::check(&facts)?;
    let mut seen_roles = BTreeSet::new();
    for ((k, schema), row) in pairs.iter().zip(&rows) {
        let role = &with_roles[*k].1;
        let exists: bool = row.get(1);
        let member: bool = row.get(2);
        let owner: Option<String> = row.get(3);
        let server_version_num: i32 = row.get(4);
        let r = escape_identifier(role);
        // The role's rows repeat for each of its package's schemas: create and grant it once.
        if seen_roles.insert(role.as_str()) {
            if !exists {
                // Roles are shared by every database of the cluster: another deploy may create the same one meanwhile.
                client
                    .batch_execute(&format!(
                        "DO $strata$ BEGIN CREATE ROLE {r} NOLOGIN NOINHERIT;
                         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $strata$"
                    ))
                    .await
                    .map_err(role_error(role, "creating the package role"))?;
                // Not in `actions`: roles belong to the cluster, so whether this deploy or another one created it
                // says nothing about this database.
                tracing::info!("created role {role}");
            }
            if !member {
                client
                    .batch_execute(&crate::db::pg_versions::grant_role_to_login_sql(
                        &r,
                        server_version_num,
                    ))
                    .await
                    .map_err(role_error(
                        role,
                        "granting the package role to the deploying login",
                    ))?;
            }
        }
        let s = escape_identifier(schema);
        match owner {
            None => {
                client
                    .batch_execute(&format!("CREATE SCHEMA {s} AUTHORIZATION {r}"))
                    .await
                    .map_err(Error::db(format!("creating schema {schema}")))?;
                out.actions
                    .push(format!("created schema {schema} owned by {role}"));
            }
            Some(o) if &o != role => {
                adopt_schema(client, schema, role).await?;
                out.actions.push(format!(
                    "schema {schema} and its objects now belong to {role}"
                ));
            }
            Some(_) => {}
        }
    }
    grant_uses(client, packages, &with_roles, previous, &mut out).await?;
    Ok(out)
}

fn role_error(role: &str, doing: &str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let context = format!(
        "{doing} {role} ({})",
        crate::db::pg_versions::ROLE_PRIVILEGES
    );
    move |source| Error::Database { context, source }
}

/// The `ALTER … OWNER TO` statements (one per row) that hand the objects of schema $1 over to role $2: tables,
/// views, sequences not owned by a column, routines, types — not extension members. Also run by the psql script of
/// `strata export`.
///
/// The schema's objects are found through `pg_depend`'s index on the referenced object (each records a dependency
/// on its schema), extension membership through its index on the dependent object: a schema's adoption costs the
/// same in a database with a thousand tenant schemas as in an empty one.
pub(crate) const ADOPT_SQL: &str = "WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1::text),
                  member AS (
                      SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
                       WHERE d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                         AND d.refobjid = (SELECT oid FROM ns) AND d.refobjsubid = 0
                         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                          WHERE e.classid = d.classid AND e.objid = d.objid AND e.deptype = 'e'))
             SELECT format('ALTER %s %s OWNER TO %I',
                           CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                          WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                           c.oid::regclass, $2::text)
               FROM member m JOIN pg_catalog.pg_class c ON c.oid = m.objid
              WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                AND c.relowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $2::text::text)
                AND NOT (c.relkind = 'S' AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_class'::regclass
                           AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
             UNION ALL
             SELECT format('ALTER %s %s OWNER TO %I',
                           CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
                           p.oid::regprocedure, $2::text)
               FROM member m JOIN pg_catalog.pg_proc p ON p.oid = m.objid
              WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                AND p.pronamespace = (SELECT oid FROM ns)
                AND p.proowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $2::text::text)
             UNION ALL
             SELECT format('ALTER %s %s OWNER TO %I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                           t.oid::regtype, $2::text)
               FROM member m JOIN pg_catalog.pg_type t ON t.oid = m.objid
              WHERE m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
                AND t.typnamespace = (SELECT oid FROM ns) AND t.typtype IN ('c', 'd', 'e', 'r', 'm')
                AND (t.typrelid = 0 OR (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c')
                AND t.typowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $2::text::text)
                -- a multirange follows its range type from PostgreSQL 17 on (which refuses to alter it alone);
                -- before, it keeps its owner unless altered itself
                AND (t.typtype <> 'm' OR pg_catalog.current_setting('server_version_num')::int < 170000)";

/// Make `role` own the schema and every object in it (tables, views, sequences not owned by a column, routines,
/// types), so migrations running as the role can change what earlier deploys created as the login.
async fn adopt_schema(client: &Client, schema: &str, role: &str) -> Result<()> {
    let rows = client
        .query(ADOPT_SQL, &[&schema, &role])
        .await
        .map_err(Error::db(format!("listing the objects of schema {schema}")))?;
    let mut sql = format!(
        "ALTER SCHEMA {} OWNER TO {};",
        escape_identifier(schema),
        escape_identifier(role)
    );
    for r in rows {
        let stmt: String = r.get(0);
        sql.push_str(&stmt);
        sql.push(';');
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(Error::db(format!("handing schema {schema} over to {role}")))
}

/// Grant each package role what its `uses` ask for and revoke what it no longer uses, compared with what the last
/// deploy granted (`strata.package.granted_uses`).
async fn grant_uses(
    client: &Client,
    packages: &[Package],
    with_roles: &[(&Package, String)],
    mut previous: BTreeMap<String, BTreeSet<String>>,
    out: &mut Prepared,
) -> Result<()> {
    let by_name: BTreeMap<&str, &Package> = packages.iter().map(|p| (p.name(), p)).collect();
    let mut sql = String::new();
    for (pkg, role) in with_roles {
        let wanted = wanted_uses(pkg, packages);
        let before = previous.remove(pkg.name()).unwrap_or_default();
        for used in wanted.difference(&before) {
            if let Some(target) = by_name.get(used.as_str()) {
                sql.push_str(&grant_sql(target, role));
                out.actions.push(format!(
                    "granted {role} the use of {}",
                    target.schemas().join(", ")
                ));
            }
        }
        for dropped in before.difference(&wanted) {
            // The used package may be gone from the project; its schema and role are named as recorded.
            let (schemas, owner) = match by_name.get(dropped.as_str()) {
                Some(t) => (t.schemas().to_vec(), package_role(t.name())),
                None => match schema_of(client, dropped).await? {
                    Some(s) => (vec![s], package_role(dropped)),
                    None => continue,
                },
            };
            for schema in schemas {
                sql.push_str(&revoke_sql(&schema, &owner, role));
                out.actions
                    .push(format!("revoked the use of {schema} from {role}"));
            }
        }
        out.granted
            .insert(pkg.name().to_string(), wanted.into_iter().collect());
    }
    if !sql.is_empty() {
        client
            .batch_execute(&sql)
            .await
            .map_err(Error::db("granting what `uses` asks for"))?;
    }
    Ok(())
}

/// The packages whose schema a package's role is granted the use of: its `uses` that are deployed with it and have a
/// role themselves.
pub(crate) fn wanted_uses(pkg: &Package, packages: &[Package]) -> BTreeSet<String> {
    pkg.uses()
        .iter()
        .filter(|u| {
            packages
                .iter()
                .any(|p| p.name() == u.name && role_of(p).is_some())
        })
        .map(|u| u.name.clone())
        .collect()
}

async fn schema_of(client: &Client, package: &str) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "SELECT schema_name FROM strata.package WHERE name = $1",
            &[&package],
        )
        .await
        .map_err(Error::db("reading strata.package"))?;
    Ok(row.map(|r| r.get(0)))
}

/// What a package role is granted on a used package's schemas (see the module docs).
pub(crate) fn grant_sql(target: &Package, grantee: &str) -> String {
    let g = escape_identifier(grantee);
    let owner = escape_identifier(&package_role(target.name()));
    let mut sql = String::new();
    for schema in target.schemas() {
        let s = escape_identifier(schema);
        sql.push_str(&format!(
            "GRANT USAGE ON SCHEMA {s} TO {g};
         GRANT SELECT, REFERENCES ON ALL TABLES IN SCHEMA {s} TO {g};
         GRANT EXECUTE ON ALL ROUTINES IN SCHEMA {s} TO {g};
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} GRANT SELECT, REFERENCES ON TABLES TO {g};
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} GRANT EXECUTE ON ROUTINES TO {g};"
        ));
    }
    sql
}

/// Revoke everything [`grant_sql`] granted (a no-op for a schema that is gone).
pub(crate) fn revoke_sql(schema: &str, owner: &str, grantee: &str) -> String {
    let s = escape_identifier(schema);
    let g = escape_identifier(grantee);
    let o = escape_identifier(owner);
    format!(
        "DO $strata$ BEGIN
           IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {sl}) THEN
             REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {g};
             REVOKE ALL ON ALL ROUTINES IN SCHEMA {s} FROM {g};
             REVOKE USAGE ON SCHEMA {s} FROM {g};
             IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {ol}) THEN
               ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} REVOKE SELECT, REFERENCES ON TABLES FROM {g};
               ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} REVOKE EXECUTE ON ROUTINES FROM {g};
             END IF;
           END IF;
         END $strata$;",
        sl = escape_literal(schema),
        ol = escape_literal(owner),
    )
}

/// Objects owned by package roles ($1) outside their schemas ($2, in the same order; a role with several schemas is
/// listed once per schema): rows of (role, `schema is s` or `schemas are s1, s2`, object description), at most 20.
/// Also run by the psql script of `strata export`.
///
/// A role's objects are found through `pg_shdepend`'s index on the referenced role (PostgreSQL records every
/// owner there, except the bootstrap superuser's, which no package role is), not by scanning `pg_class`, `pg_proc`
/// and `pg_type` for an owner: with a role per tenant schema, the scan grew with every tenant in the database.
pub(crate) const CONTAINMENT_SQL: &str = "WITH pkg AS (
                 SELECT r.oid AS role, s.role AS role_name,
                        CASE WHEN count(*) > 1 THEN 'schemas are ' ELSE 'schema is ' END
                            || array_to_string(array_agg(s.schema), ', ') AS schema,
                        array_agg(s.schema) AS schemas
                   FROM unnest($1::text[], $2::text[]) AS s(role, schema)
                   JOIN pg_catalog.pg_roles r ON r.rolname = s.role
                  GROUP BY r.oid, s.role
             ), owned AS (
                 SELECT pkg.role, pkg.role_name, pkg.schema, pkg.schemas, d.classid, d.objid
                   FROM pkg JOIN pg_catalog.pg_shdepend d
                     ON d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass AND d.refobjid = pkg.role
                  WHERE d.deptype = 'o'
                    AND d.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
             ), temp AS (
                 -- temporary schemas, and TOAST storage (it follows its table)
                 SELECT oid FROM pg_catalog.pg_namespace
                  WHERE nspname LIKE 'pg\\_temp\\_%' OR nspname LIKE 'pg\\_toast%'
             )
             SELECT o.role_name, o.schema, pg_catalog.pg_describe_object('pg_class'::regclass, c.oid, 0)
               FROM owned o JOIN pg_catalog.pg_class c ON c.oid = o.objid AND c.relowner = o.role
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE o.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND n.nspname <> ALL (o.schemas) AND c.relnamespace NOT IN (SELECT oid FROM temp)
             UNION ALL
             SELECT o.role_name, o.schema, pg_catalog.pg_describe_object('pg_proc'::regclass, p.oid, 0)
               FROM owned o JOIN pg_catalog.pg_proc p ON p.oid = o.objid AND p.proowner = o.role
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE o.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                AND n.nspname <> ALL (o.schemas) AND p.pronamespace NOT IN (SELECT oid FROM temp)
             UNION ALL
             SELECT o.role_name, o.schema, pg_catalog.pg_describe_object('pg_type'::regclass, t.oid, 0)
               FROM owned o JOIN pg_catalog.pg_type t ON t.oid = o.objid AND t.typowner = o.role
               JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
              WHERE o.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
                -- (array and table row types record no owner: they follow their element type or table; a
                -- composite type's owner is recorded for its type, not for its pg_class row)
                AND n.nspname <> ALL (o.schemas) AND t.typnamespace NOT IN (SELECT oid FROM temp)
             UNION ALL
             SELECT o.role_name, o.schema, 'schema ' || n.nspname
               FROM owned o JOIN pg_catalog.pg_namespace n ON n.oid = o.objid AND n.nspowner = o.role
              WHERE o.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                AND n.nspname <> ALL (o.schemas) AND n.oid NOT IN (SELECT oid FROM temp)
              LIMIT 20";

/// After install: no object owned by a package role may exist outside the package's schema.
pub(crate) async fn check_containment(client: &Client, packages: &[Package]) -> Result<()> {
    let pairs: Vec<(String, &str)> = packages
        .iter()
        .filter_map(|p| role_of(p).map(|r| (r, p)))
        .flat_map(|(r, p)| p.schemas().iter().map(move |s| (r.clone(), s.as_str())))
        .collect();
    if pairs.is_empty() {
        return Ok(());
    }
    let roles: Vec<&str> = pairs.iter().map(|(r, _)| r.as_str()).collect();
    let schemas: Vec<&str> = pairs.iter().map(|(_, s)| *s).collect();
    let rows = client
        .query(CONTAINMENT_SQL, &[&roles, &schemas])
        .await
        .map_err(Error::db(
            "checking that package roles own nothing outside their schemas",
        ))?;
    if rows.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} (owned by {}, whose {})",
                r.get::<_, String>(2),
                r.get::<_, String>(0),
                r.get::<_, String>(1)
            )
        })
        .collect();
    Err(Error::refused(
        format!(
            "package roles own objects outside their schemas: {}",
            list.join("; ")
        ),
        "a package's migrations and code must only create objects in its own schema; move or drop these objects",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_fit_and_do_not_collide() {
        assert_eq!(package_role("acme"), "$acme");
        let exactly = "x".repeat(62);
        assert_eq!(package_role(&exactly).len(), 63);
        assert!(!package_role(&exactly).contains('~'));
        let a = package_role(&"a".repeat(100));
        let b = package_role(&format!("{}b", "a".repeat(99)));
        assert_eq!(a.len(), 63);
        assert_eq!(b.len(), 63);
        assert_ne!(a, b);
        assert!(a.starts_with("$aaa") && a.contains('~'));
    }
}
