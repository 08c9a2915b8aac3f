//! Where a deploy must commit besides around no-transaction migrations: after a migration that adds an enum value
//! (`ALTER TYPE … ADD VALUE`) that a later migration of the same deploy uses. PostgreSQL refuses the new value in
//! the transaction that added it (`55P04 unsafe use of new value`), even when that transaction created the type
//! too; tools that commit after every migration never meet this, Strata's one-transaction deploy would. So the deploy
//! ends its transaction after that migration, as it does before a no-transaction one, and `plan` shows it.

use std::collections::BTreeMap;

use pgstrata_sql::enums::{self, EnumFacts};
use pgstrata_sql::locks::RelationName;

use crate::report::MigrationId;
use crate::source::package::{Migration, Package};

/// A value added in a transactional part of migration `step`.
struct Added {
    step: usize,
    type_name: RelationName,
    value: String,
}

/// For the migrations of a deploy, in order: which must be followed by a commit, and why. A migration's value counts
/// as used by a later one when that one has a string literal equal to it (a function body's too): a literal that only
/// looks the same costs one extra commit, never a failure.
pub(crate) fn enum_commit_points(items: &[(&Package, &Migration)]) -> BTreeMap<usize, String> {
    let mut points = BTreeMap::new();
    // Cheap filter first: most deploys add no enum value, and then nothing is lexed.
    let relevant: Vec<bool> = items
        .iter()
        .map(|(_, m)| {
            let text = m.up().text().as_bytes();
            // Without a lower-cased copy: a data load's text can be tens of megabytes.
            let has = |word: &[u8]| {
                text.windows(word.len())
                    .any(|w| w.eq_ignore_ascii_case(word))
            };
            has(b"alter") && has(b"value")
        })
        .collect();
    if !relevant.iter().any(|r| *r) {
        return points;
    }
    let facts: Vec<Option<EnumFacts>> = items
        .iter()
        .zip(&relevant)
        .map(|((_, m), r)| r.then(|| enums::facts(m.up().text())))
        .collect();
    let qualify = |pkg: &Package, name: &RelationName| name.qualified_or(pkg.schema());
    let mut added: Vec<Added> = Vec::new();
    for (step, ((pkg, m), f)) in items.iter().zip(&facts).enumerate() {
        let Some(f) = f else { continue };
        let sections = m.up().sections();
        for a in &f.added {
            let in_transaction = sections
                .iter()
                .any(|s| !s.no_transaction && s.range.contains(&a.range.start));
            if in_transaction {
                added.push(Added {
                    step,
                    type_name: qualify(pkg, &a.type_name),
                    value: a.value.clone(),
                });
            }
        }
    }
    if added.is_empty() {
        return points;
    }
    // The first migration of the open transaction.
    let mut start = 0;
    let mut literals: BTreeMap<usize, EnumFacts> = BTreeMap::new();
    for (j, (pkg, m)) in items.iter().enumerate() {
        let sections = m.up().sections();
        if sections.first().is_some_and(|s| s.no_transaction) {
            start = j;
        }
        // Values added earlier in the open transaction.
        let unsafe_values: Vec<&Added> = added
            .iter()
            .filter(|a| a.step >= start && a.step < j)
            .collect();
        if !unsafe_values.is_empty() {
            let used = literals
                .entry(j)
                .or_insert_with(|| enums::facts(m.up().text()));
            if let Some(a) = unsafe_values
                .iter()
                .filter(|a| used.literals.contains(&a.value))
                .max_by_key(|a| a.step)
            {
                let (adder_pkg, adder) = items[a.step];
                points.insert(
                    a.step,
                    format!(
                        "{} adds the value '{}' to enum {} and {} uses it: PostgreSQL refuses a new enum value in \
                         the transaction that added it (55P04)",
                        MigrationId::new(adder_pkg.name(), adder.name()),
                        a.value,
                        a.type_name,
                        MigrationId::new(pkg.name(), m.name()),
                    ),
                );
                start = a.step + 1;
            }
        }
        if m.no_transaction() {
            // Its no-transaction part commits what came before it.
            start = start.max(j);
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::layout::Layout;

    /// The commit points of a dbmate folder holding `files`, in order.
    fn points(files: &[&str]) -> Vec<(usize, String)> {
        let tmp = tempfile::tempdir().unwrap();
        for (i, text) in files.iter().enumerate() {
            let marker = if text.starts_with("-- migrate:up") {
                ""
            } else {
                "-- migrate:up\n"
            };
            std::fs::write(
                tmp.path().join(format!("{:03}_m.sql", i + 1)),
                format!("{marker}{text}\n"),
            )
            .unwrap();
        }
        let pkg = Package::from_layout_named(tmp.path(), Layout::Dbmate, Some("app"), Some("app"))
            .unwrap();
        let items: Vec<(&Package, &Migration)> =
            pkg.migrations().iter().map(|m| (&pkg, m)).collect();
        enum_commit_points(&items).into_iter().collect()
    }

    #[test]
    fn a_value_used_later_in_the_deploy_ends_the_transaction_after_it_is_added() {
        let p = points(&[
            "CREATE TYPE mood AS ENUM ('ok');",
            "ALTER TYPE mood ADD VALUE 'meh';",
            "ALTER TYPE mood ADD VALUE 'sad';",
            "CREATE FUNCTION f() RETURNS mood LANGUAGE sql AS $$ SELECT 'meh'::mood $$;",
        ]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, 1, "after the migration that added 'meh'");
        assert!(
            p[0].1
                .contains("app:002_m adds the value 'meh' to enum app.mood and app:004_m uses it")
        );
        // Nobody uses the value in this deploy: one transaction.
        assert!(points(&["ALTER TYPE mood ADD VALUE 'meh';", "SELECT 1;"]).is_empty());
    }

    #[test]
    fn a_commit_in_between_makes_the_value_safe() {
        // Added outside a transaction: committed at once.
        assert!(
            points(&[
                "-- migrate:up transaction:false\nALTER TYPE mood ADD VALUE 'meh';",
                "SELECT 'meh'::mood;"
            ])
            .is_empty()
        );
        // A no-transaction migration in between commits it.
        assert!(
            points(&[
                "ALTER TYPE mood ADD VALUE 'meh';",
                "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);",
                "SELECT 'meh'::mood;"
            ])
            .is_empty()
        );
    }
}
