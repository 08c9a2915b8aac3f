//! Every rule Strata knows: squawk's and its own, with the severity Strata gives them.
//!
//! Squawk reports every violation the same way; Strata sorts them, because `strata up` refuses to
//! deploy on errors. **Errors** are statements that take a production database down or fail: a
//! table rewrite or a full scan under a lock that blocks writes, an index built without
//! `CONCURRENTLY`, a transaction command inside Strata's transaction, a statement PostgreSQL will
//! reject, SQL the parser cannot read (`syntax-error`: the other rules cannot check it). **Warnings** are compatibility and style advice (dropping or renaming what running
//! code uses, `int` vs `bigint`, …). Rules that are off by default are squawk's opt-in rules,
//! plus `require-lock-timeout` and `require-statement-timeout` (Strata sets `lock_timeout` for
//! deploy sessions itself) and `ban-concurrent-index-creation-in-transaction` (Strata's
//! `no-transaction-required` covers it and every other such statement).

use super::Severity;

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource {
    /// `squawk-linter`.
    Squawk,
    /// Strata itself.
    Strata,
}

/// Which code a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Versioned migrations only.
    Migrations,
    /// Managed code only.
    Managed,
    /// Both.
    Both,
}

/// A rule, its default and what it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    /// Kebab-case name, as in `-- squawk-ignore NAME` and `strata.toml`.
    pub name: &'static str,
    /// Severity when enabled (by default or in `strata.toml`).
    pub severity: Severity,
    /// Enabled without configuration.
    pub on_by_default: bool,
    /// Squawk's or Strata's.
    pub source: RuleSource,
    /// Migrations, managed code, or both.
    pub applies: Applies,
}

const fn squawk(name: &'static str, severity: Severity, on_by_default: bool) -> RuleInfo {
    RuleInfo {
        name,
        severity,
        on_by_default,
        source: RuleSource::Squawk,
        applies: Applies::Migrations,
    }
}

const fn strata(name: &'static str, severity: Severity, applies: Applies) -> RuleInfo {
    RuleInfo {
        name,
        severity,
        on_by_default: true,
        source: RuleSource::Strata,
        applies,
    }
}

use Severity::{Error as E, Warning as W};

/// Strata's own rule names.
pub(crate) const NO_TRANSACTION_REQUIRED: &str = "no-transaction-required";
pub(crate) const DROP_MANAGED_DEPENDENCY: &str = "drop-managed-dependency";
pub(crate) const SECURITY_DEFINER_SEARCH_PATH: &str = "security-definer-search-path";
pub(crate) const SECURITY_DEFINER_UNSAFE_SEARCH_PATH: &str = "security-definer-unsafe-search-path";
pub(crate) const SYNTAX_ERROR: &str = "syntax-error";

/// The catalog, squawk's rules in squawk's order, then Strata's.
pub(crate) const RULES: &[RuleInfo] = &[
    // Locks and rewrites on existing tables, and statements that fail: errors.
    squawk("require-concurrent-index-creation", E, true),
    squawk("require-concurrent-index-deletion", W, true),
    squawk("constraint-missing-not-valid", E, true),
    squawk("adding-field-with-default", E, true),
    squawk("adding-foreign-key-constraint", E, true),
    squawk("changing-column-type", E, true),
    squawk("adding-not-nullable-field", E, true),
    squawk("adding-serial-primary-key-field", E, true),
    squawk("renaming-column", W, true),
    squawk("renaming-table", W, true),
    squawk("disallowed-unique-constraint", E, true),
    squawk("ban-drop-database", E, true),
    squawk("prefer-bigint-over-int", W, true),
    squawk("prefer-bigint-over-smallint", W, true),
    squawk("prefer-identity", W, true),
    squawk("prefer-repack", W, true),
    squawk("prefer-robust-stmts", W, true),
    squawk("prefer-text-field", W, true),
    squawk("prefer-timestamp-tz", W, true),
    squawk("ban-char-field", W, true),
    squawk("ban-drop-column", W, true),
    squawk("ban-drop-table", W, true),
    squawk("ban-drop-not-null", W, true),
    squawk("transaction-nesting", E, true),
    squawk("adding-required-field", E, true),
    squawk("ban-concurrent-index-creation-in-transaction", E, false),
    squawk("unused-ignore", W, true),
    squawk("ban-create-domain-with-constraint", W, true),
    squawk("ban-alter-domain-with-add-constraint", W, true),
    squawk("ban-truncate-cascade", E, true),
    squawk("ban-uncommitted-transaction", E, true),
    squawk("require-enum-value-ordering", W, true),
    squawk("require-table-schema", W, false),
    squawk("identifier-too-long", W, true),
    squawk("require-concurrent-partition-detach", E, true),
    squawk("require-concurrent-reindex", E, true),
    squawk("require-lock-timeout", W, false),
    squawk("require-statement-timeout", W, false),
    squawk("ban-duplicate-column-assignments", E, true),
    squawk("ban-drop-view", W, true),
    squawk("ban-drop-function", W, true),
    squawk("ban-drop-type", W, true),
    squawk("ban-drop-default", W, true),
    squawk("ban-drop-trigger", W, false),
    squawk("ban-drop-schema", W, true),
    squawk("ban-drop-sequence", W, true),
    squawk("ban-drop-domain", W, true),
    squawk("ban-drop-constraint", W, true),
    squawk("ban-drop-generated-expression", W, true),
    squawk("renaming-object", W, true),
    squawk("ban-set-schema", W, true),
    squawk("ban-alter-identity", W, true),
    squawk("ban-drop-extension", W, true),
    squawk("ban-alter-generated-expression", W, false),
    squawk("ban-drop-index", W, false),
    squawk("ban-set-default", W, false),
    squawk("ban-disable-trigger", W, false),
    squawk("ban-replica-identity", W, false),
    squawk("ban-drop-policy", W, false),
    squawk("ban-revoke", W, false),
    squawk("ban-replace-view-function", W, false),
    squawk("ban-alter-policy-condition", W, false),
    squawk("ban-alter-policy-roles", W, false),
    squawk("ban-create-policy", W, false),
    squawk("ban-alter-function-options", W, false),
    squawk("ban-alter-view-options", W, false),
    squawk("ban-alter-role-options", W, false),
    squawk("ban-alter-database-options", W, false),
    squawk("ban-alter-row-level-security", W, false),
    squawk("ban-new-write-restriction", W, false),
    squawk("ban-add-enum-value", W, false),
    squawk("ban-add-composite-attribute", W, false),
    squawk("ban-add-column", W, false),
    squawk("ban-detach-inheritance", W, false),
    squawk("ban-alter-sequence-values", W, false),
    squawk("ban-alter-system-options", W, false),
    squawk("ban-alter-extension", W, false),
    // Strata's own.
    strata(NO_TRANSACTION_REQUIRED, E, Applies::Migrations),
    strata(DROP_MANAGED_DEPENDENCY, E, Applies::Migrations),
    strata(SECURITY_DEFINER_SEARCH_PATH, E, Applies::Both),
    strata(SECURITY_DEFINER_UNSAFE_SEARCH_PATH, W, Applies::Both),
    strata(SYNTAX_ERROR, E, Applies::Both),
];

/// Of [`ABOUT_EXISTING_RELATIONS`], the rules about locks held, rows rewritten or scanned, or rows that must
/// satisfy something: they do not apply to a relation that is empty when the deploy starts either.
pub(crate) const LOCK_HAZARDS: &[&str] = &[
    "require-concurrent-index-creation",
    "require-concurrent-index-deletion",
    "constraint-missing-not-valid",
    "adding-field-with-default",
    "adding-foreign-key-constraint",
    "changing-column-type",
    "adding-not-nullable-field",
    "adding-serial-primary-key-field",
    "adding-required-field",
    "disallowed-unique-constraint",
    "require-concurrent-reindex",
    "require-concurrent-partition-detach",
];

/// Squawk rules whose findings are about locks on, or clients of, an existing relation: they do
/// not apply to a relation created earlier in the same deploy (nobody else can be using it).
pub(crate) const ABOUT_EXISTING_RELATIONS: &[&str] = &[
    "require-concurrent-index-creation",
    "require-concurrent-index-deletion",
    "constraint-missing-not-valid",
    "adding-field-with-default",
    "adding-foreign-key-constraint",
    "changing-column-type",
    "adding-not-nullable-field",
    "adding-serial-primary-key-field",
    "adding-required-field",
    "disallowed-unique-constraint",
    "require-concurrent-reindex",
    "require-concurrent-partition-detach",
    "renaming-column",
    "renaming-table",
    "renaming-object",
    "ban-drop-column",
    "ban-drop-table",
    "ban-drop-not-null",
    "ban-drop-default",
    "ban-drop-constraint",
    "ban-drop-view",
    "ban-drop-sequence",
    "ban-drop-generated-expression",
    "ban-alter-identity",
];
