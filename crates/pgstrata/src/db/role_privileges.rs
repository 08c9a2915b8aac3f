//! Whether the deploying login may do what package roles need, checked before anything is changed.
//!
//! A package role is created by the deploying login (which needs `CREATEROLE`), then granted to it so that
//! migrations can `SET LOCAL ROLE` to it. From PostgreSQL 16 on, granting a role needs its `ADMIN` option:
//! `CREATEROLE` covers only the roles the login created itself (it gets `ADMIN` on them), not a role another login
//! created. A database owner without `CREATEROLE` would otherwise meet a raw server error halfway through the
//! preparation; this check names what is missing and the two ways out: give the login the privilege, or turn
//! package roles off (`[security] package_role = false`).

use postgres_protocol::escape::escape_identifier;

use crate::db::pg_versions::PG16;
use crate::error::{Error, Result};

/// What the server says about one package role and the login, read in the same query that prepares the roles.
#[derive(Debug, Clone)]
pub(crate) struct RoleFacts {
    /// The package's name.
    pub package: String,
    /// The package role.
    pub role: String,
    /// The package's schema.
    pub schema: String,
    /// The role exists.
    pub exists: bool,
    /// The login may `SET ROLE` to it already (or is a superuser).
    pub can_set: bool,
    /// The schema exists.
    pub schema_exists: bool,
    /// The login.
    pub login: String,
    /// The login is a superuser.
    pub superuser: bool,
    /// The login has `CREATEROLE`.
    pub createrole: bool,
    /// The login holds the role `WITH ADMIN OPTION`.
    pub admin: bool,
    /// The database.
    pub database: String,
    /// The login may create schemas in the database.
    pub create_on_database: bool,
    /// `server_version_num`.
    pub server_version_num: i32,
}

/// What one package needs that the login lacks: the problem, and the statement a superuser would run to fix it.
struct Missing {
    problem: String,
    fix: String,
}

impl RoleFacts {
    fn missing(&self) -> Vec<Missing> {
        let mut out = Vec::new();
        if self.superuser {
            return out;
        }
        let login = escape_identifier(&self.login);
        let role = escape_identifier(&self.role);
        let pg16 = self.server_version_num >= PG16;
        if !self.exists && !self.createrole {
            out.push(Missing {
                problem: format!("cannot create its role {role}: the login has no CREATEROLE"),
                fix: format!("ALTER ROLE {login} CREATEROLE;"),
            });
        } else if self.exists && !self.can_set {
            // Before 16, CREATEROLE lets the login grant itself any non-superuser role; from 16, only ADMIN does.
            let may_grant = self.admin || (!pg16 && self.createrole);
            if !may_grant {
                let (problem, fix) = if pg16 {
                    (
                        format!(
                            "role {role} exists but the login may not SET ROLE to it, nor grant it to itself \
                             (that needs the role's ADMIN option: from PostgreSQL 16, CREATEROLE covers only roles \
                             the login created)"
                        ),
                        format!("GRANT {role} TO {login} WITH SET TRUE;"),
                    )
                } else {
                    (
                        format!(
                            "role {role} exists but the login is not a member, and cannot grant it to itself \
                             (no CREATEROLE, no ADMIN option)"
                        ),
                        format!("GRANT {role} TO {login};"),
                    )
                };
                out.push(Missing { problem, fix });
            }
        }
        if !self.schema_exists && !self.create_on_database {
            out.push(Missing {
                problem: format!(
                    "cannot create its schema {}: the login has no CREATE privilege on database {}",
                    escape_identifier(&self.schema),
                    escape_identifier(&self.database)
                ),
                fix: format!(
                    "GRANT CREATE ON DATABASE {} TO {login};",
                    escape_identifier(&self.database)
                ),
            });
        }
        out
    }
}

/// Refuse, before anything is changed, when the login cannot create or use the package roles.
pub(crate) fn check(facts: &[RoleFacts]) -> Result<()> {
    let mut problems = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    for f in facts {
        for m in f.missing() {
            // A package of several schemas has a fact per schema: its role's problems are said once.
            let line = format!("  - {}: {}", f.package, m.problem);
            if !problems.contains(&line) {
                problems.push(line);
            }
            if !fixes.contains(&m.fix) {
                fixes.push(m.fix);
            }
        }
    }
    let Some(first) = facts.first() else {
        return Ok(());
    };
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::refused(
        format!(
            "the deploying login {} lacks privileges that package roles need; nothing was changed\n{}",
            escape_identifier(&first.login),
            problems.join("\n")
        ),
        format!(
            "each package's schema is owned by its own role, which its migrations and managed code run as. Two ways \
             out:\n  1. give the login what it needs, as a superuser: {}\n  2. or deploy without package roles: \
             set `package_role = false` under [security] in the package's strata.toml (its objects then belong to \
             the deploying login)",
            fixes.join(" ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner_without_createrole(version: i32) -> RoleFacts {
        RoleFacts {
            package: "github.com/acme/billing".into(),
            role: "$github.com/acme/billing".into(),
            schema: "billing".into(),
            exists: false,
            can_set: false,
            schema_exists: false,
            login: "app".into(),
            superuser: false,
            createrole: false,
            admin: false,
            database: "app".into(),
            create_on_database: true,
            server_version_num: version,
        }
    }

    #[test]
    fn a_database_owner_without_createrole_is_told_both_ways_out() {
        let e = check(&[owner_without_createrole(150_000)]).unwrap_err();
        let text = format!("{e}");
        assert!(
            text.contains("the deploying login \"app\" lacks privileges"),
            "{text}"
        );
        assert!(
            text.contains("github.com/acme/billing: cannot create its role \"$github.com/acme/billing\": the login has no CREATEROLE"),
            "{text}"
        );
        let Error::Refused {
            help: Some(help), ..
        } = e
        else {
            panic!("a refusal with help")
        };
        assert!(help.contains("ALTER ROLE \"app\" CREATEROLE;"), "{help}");
        assert!(
            help.contains("`package_role = false` under [security]"),
            "{help}"
        );
    }

    #[test]
    fn from_16_an_existing_role_needs_its_admin_option_not_createrole() {
        let mut f = owner_without_createrole(160_000);
        f.exists = true;
        f.createrole = true;
        let e = check(std::slice::from_ref(&f)).unwrap_err();
        let Error::Refused {
            message,
            help: Some(help),
        } = e
        else {
            panic!("a refusal with help")
        };
        assert!(message.contains("ADMIN option"), "{message}");
        assert!(
            help.contains("GRANT \"$github.com/acme/billing\" TO \"app\" WITH SET TRUE;"),
            "{help}"
        );
        // Before 16, CREATEROLE is enough to grant it.
        f.server_version_num = 150_000;
        check(&[f.clone()]).unwrap();
        // With ADMIN, or as a superuser, nothing is missing.
        f.server_version_num = 160_000;
        f.admin = true;
        check(&[f]).unwrap();
        let mut root = owner_without_createrole(180_000);
        root.superuser = true;
        check(&[root]).unwrap();
    }
}
