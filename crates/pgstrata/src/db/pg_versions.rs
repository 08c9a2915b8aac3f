//! What differs between the PostgreSQL major versions Strata supports (14 to 18) in the SQL Strata itself sends:
//! one function per difference, so that each version-dependent statement is chosen in one place.
//!
//! Where the same text must also serve the psql script of `strata export` (which runs on a server Strata never
//! sees), the choice is made by the server, from `server_version_num`, inside the statement.

/// `server_version_num` of PostgreSQL 16, where role memberships gained the `INHERIT` and `SET` options and
/// `CREATEROLE` stopped covering roles the login did not create.
pub(crate) const PG16: i32 = 160_000;

/// A SQL boolean: may the current user `SET ROLE` to `role` (a SQL expression giving the role's name or oid)?
///
/// Before PostgreSQL 16 every membership allows it (`'MEMBER'`). From 16 on a membership may be granted
/// `WITH SET FALSE` — and a login with `CREATEROLE` gets exactly such a membership (`ADMIN`, neither `INHERIT` nor
/// `SET`) in each role it creates — so only `'SET'` answers. `pg_has_role` parses its privilege argument when it
/// runs, so a 14 or 15 server never sees `'SET'`.
pub(crate) fn can_set_role_sql(role: &str) -> String {
    format!(
        "CASE WHEN pg_catalog.current_setting('server_version_num')::int >= {PG16} \
         THEN pg_catalog.pg_has_role(current_user, {role}, 'SET') \
         ELSE pg_catalog.pg_has_role(current_user, {role}, 'MEMBER') END"
    )
}

/// The statement that lets the deploying login `SET ROLE` to `role` (an identifier, already quoted).
///
/// From PostgreSQL 16 on it says `WITH SET TRUE`: a grant the login already holds `WITH SET FALSE` is then updated,
/// where a plain `GRANT` would leave it as it is (with a notice). Older servers know no grant options.
pub(crate) fn grant_role_to_login_sql(role: &str, server_version_num: i32) -> String {
    if server_version_num >= PG16 {
        format!("GRANT {role} TO CURRENT_USER WITH SET TRUE")
    } else {
        format!("GRANT {role} TO CURRENT_USER")
    }
}

/// [`grant_role_to_login_sql`] as a SQL text expression the server picks from, for PL/pgSQL's `EXECUTE`.
pub(crate) fn grant_role_to_login_expr(role: &str) -> String {
    use postgres_protocol::escape::escape_literal;
    format!(
        "CASE WHEN pg_catalog.current_setting('server_version_num')::int >= {PG16} THEN {} ELSE {} END",
        escape_literal(&grant_role_to_login_sql(role, PG16)),
        escape_literal(&grant_role_to_login_sql(role, PG16 - 1)),
    )
}

/// What the deploying login needs to create or use package roles, for error messages.
pub(crate) const ROLE_PRIVILEGES: &str = "the deploying login needs CREATEROLE and, on PostgreSQL 16 and later, the \
     ADMIN option on a package role it did not create itself (CREATEROLE no longer covers other roles); or set \
     `package_role = false` under [security]";

/// The connected server's major version (`server_version_num` / 10000, e.g. 18).
pub(crate) async fn server_major(client: &tokio_postgres::Client) -> crate::error::Result<u32> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(crate::error::Error::db("reading the server version"))?;
    let num: i32 = row.get(0);
    Ok(u32::try_from(num / 10_000).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_grants_use_set_options_from_16_on() {
        assert_eq!(
            grant_role_to_login_sql("\"$a\"", 150_018),
            "GRANT \"$a\" TO CURRENT_USER"
        );
        assert_eq!(
            grant_role_to_login_sql("\"$a\"", 160_004),
            "GRANT \"$a\" TO CURRENT_USER WITH SET TRUE"
        );
        let expr = grant_role_to_login_expr("\"$a\"");
        assert!(expr.contains(">= 160000 THEN 'GRANT \"$a\" TO CURRENT_USER WITH SET TRUE'"));
        assert!(expr.ends_with("ELSE 'GRANT \"$a\" TO CURRENT_USER' END"));
    }
}
