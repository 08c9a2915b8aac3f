//! Package roles in the psql script: what `strata up` prepares before migrations ([`crate::db::roles`]), written as
//! idempotent PL/pgSQL that checks before it writes — the role (`NOLOGIN`) created if missing and granted to the
//! login, the schema created owned by it (or an existing schema and its objects handed over to it), and the
//! `uses` grants given or revoked against what `strata.package.granted_uses` recorded. Packages with
//! `[security] package_role = false` are left out.

use std::fmt::Write as _;

use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::psql::PsqlWriter;
use super::quote::{dollar_quote, text_array};
use crate::db::roles::{ADOPT_SQL, grant_sql, revoke_sql, role_of, wanted_uses};
use crate::source::package::Package;

/// Placeholders in the revoke template, replaced at run time by the schema and role read from the database.
const SCHEMA_MARK: &str = "strata_schema_placeholder";
const OWNER_MARK: &str = "strata_owner_placeholder";

/// The roles part of the psql script (before migrations, which run as those roles).
pub(super) fn psql_roles(w: &mut PsqlWriter<'_>) {
    let packages = w.packages;
    let with_roles: Vec<(&Package, String)> = packages
        .iter()
        .filter_map(|p| role_of(p).map(|r| (p, r)))
        .collect();
    if with_roles.is_empty() {
        return;
    }
    let _ = writeln!(
        w.out,
        "\n-- Package roles: each package's schema belongs to its role, and its migrations and managed code run as it."
    );
    for (pkg, role) in &with_roles {
        let r = escape_identifier(role);
        let mut body = format!(
            "  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {rl}) THEN\n    \
             BEGIN\n      EXECUTE {create};\n    \
             -- roles belong to the cluster: another deploy may create it meanwhile\n    \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;\n    END;\n  \
             END IF;\n  \
             IF NOT ((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)\n          \
             OR {can_set}) THEN\n    \
             EXECUTE {grant};\n  \
             END IF;\n",
            rl = escape_literal(role),
            create = escape_literal(&format!("CREATE ROLE {r} NOLOGIN")),
            can_set = crate::db::pg_versions::can_set_role_sql(&escape_literal(role)),
            grant = crate::db::pg_versions::grant_role_to_login_expr(&r),
        );
        // Every schema of the package belongs to the role.
        for schema in pkg.schemas() {
            let s = escape_identifier(schema);
            let _ = write!(
                body,
                "  SELECT pg_catalog.pg_get_userbyid(n.nspowner)::text INTO owner FROM pg_catalog.pg_namespace n\n   \
                 WHERE n.nspname = {sl};\n  \
                 IF owner IS NULL THEN\n    \
                 EXECUTE {create_schema};\n  \
                 ELSIF owner <> {rl} THEN\n    \
                 EXECUTE {alter_schema};\n    \
                 FOR stmt IN EXECUTE {adopt} USING {sl}::text, {rl}::text LOOP\n      \
                 EXECUTE stmt;\n    \
                 END LOOP;\n  \
                 END IF;\n",
                rl = escape_literal(role),
                sl = escape_literal(schema),
                create_schema = escape_literal(&format!("CREATE SCHEMA {s} AUTHORIZATION {r}")),
                alter_schema = escape_literal(&format!("ALTER SCHEMA {s} OWNER TO {r}")),
                adopt = dollar_quote(ADOPT_SQL),
            );
        }
        w.do_block(
            &format!(
                "the role {role} of {}, owner of schema {}",
                pkg.name(),
                pkg.schemas().join(", ")
            ),
            "  owner text;\n  stmt text;\n",
            &body,
        );
    }
    let project_names: Vec<String> = with_roles
        .iter()
        .map(|(p, _)| p.name().to_string())
        .collect();
    let project_schemas: Vec<String> = with_roles
        .iter()
        .map(|(p, _)| p.schema().to_string())
        .collect();
    let project_owners: Vec<String> = with_roles.iter().map(|(_, r)| r.clone()).collect();
    let mut body = String::new();
    for (pkg, role) in &with_roles {
        let wanted: Vec<String> = wanted_uses(pkg, packages).into_iter().collect();
        let _ = write!(
            body,
            "  -- {name}\n  \
             prev := '{{}}';\n  \
             IF EXISTS (SELECT FROM pg_catalog.pg_attribute\n              \
             WHERE attrelid = to_regclass('strata.package') AND attname = 'granted_uses') THEN\n    \
             EXECUTE 'SELECT granted_uses FROM strata.package WHERE name = $1' INTO prev USING {name_lit}::text;\n    \
             prev := coalesce(prev, '{{}}');\n  \
             END IF;\n",
            name = pkg.name().replace('\n', " "),
            name_lit = escape_literal(pkg.name()),
        );
        for used in &wanted {
            if let Some(target) = packages.iter().find(|p| p.name() == used) {
                let _ = write!(
                    body,
                    "  IF NOT ({u} = ANY (prev)) THEN\n    EXECUTE {grant};\n  END IF;\n",
                    u = escape_literal(used),
                    grant = dollar_quote(&grant_sql(target, role)),
                );
            }
        }
        // Uses dropped since the last deploy: the used package's schema and role as the project or (for a package
        // no longer in it) strata.package knows them.
        let template = revoke_sql(SCHEMA_MARK, OWNER_MARK, role);
        let _ = write!(
            body,
            "  -- (prev is only non-empty when strata.package exists)\n  \
             IF prev <> '{{}}' THEN\n  \
             FOR d, s, o IN EXECUTE 'SELECT u, coalesce(c.schema, p.schema_name), coalesce(c.owner, p.role_name, '''')\n      \
             FROM unnest($1::text[]) AS u\n      \
             LEFT JOIN unnest($3::text[], $4::text[], $5::text[]) AS c(name, schema, owner) ON c.name = u\n      \
             LEFT JOIN strata.package p ON p.name = u\n     \
             WHERE u <> ALL ($2::text[])'\n    \
             USING prev, {wanted}, {names}, {schemas}, {owners} LOOP\n    \
             CONTINUE WHEN s IS NULL;\n    \
             EXECUTE replace(replace(replace(replace({template},\n      \
             {schema_ident}, quote_ident(s)), {schema_lit}, quote_literal(s)),\n      \
             {owner_ident}, quote_ident(o)), {owner_lit}, quote_literal(o));\n  \
             END LOOP;\n  \
             END IF;\n",
            wanted = text_array(&wanted),
            names = text_array(&project_names),
            schemas = text_array(&project_schemas),
            owners = text_array(&project_owners),
            template = dollar_quote(&template),
            schema_ident = escape_literal(&escape_identifier(SCHEMA_MARK)),
            schema_lit = escape_literal(&escape_literal(SCHEMA_MARK)),
            owner_ident = escape_literal(&escape_identifier(OWNER_MARK)),
            owner_lit = escape_literal(&escape_literal(OWNER_MARK)),
        );
    }
    w.do_block(
        "`uses`: grant the package roles what they use, revoke what they no longer use",
        "  prev text[];\n  d text;\n  s text;\n  o text;\n",
        &body,
    );
}
