//! Reading a package's managed code and test files: classify every `.sql` file, parse every
//! statement, check what it may contain. Nothing here touches a database; every problem is a
//! [`SourceError`] pointing at the file and line.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use pgstrata_sql::LineIndex;
use pgstrata_sql::objects::{
    self, CommentTarget, Declaration, HazardKind, NotAnObject, ObjectKind, ObjectStatement,
    QualifiedName, Reference,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, SourceError};
use crate::report::code::CodeKind;
use crate::source::files::PackageSource;
use crate::source::manifest::Manifest;

/// First-line marker that makes Strata skip a file (pgpkg's `--pgpkg:ignore` is honoured too).
pub const IGNORE_MARKER: &str = "-- strata:ignore";

/// A file of managed code or tests.
#[derive(Debug, Clone)]
pub struct CodeFile {
    /// Path relative to the package root.
    pub path: String,
    /// Path as shown to users.
    pub display: String,
    /// The file's text (normalised: no BOM, LF line ends).
    pub text: Arc<str>,
    pub(crate) lines: Arc<LineIndex>,
}

impl CodeFile {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> u32 {
        self.lines.line_col(offset).line
    }
}

/// What a `COMMENT ON` attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentOf {
    /// The target's kind.
    pub target: CommentTarget,
    /// The target as written after the keyword (`app.f(int)`, `trg ON app.t`, `app.v.col`).
    pub object_text: String,
    /// The column, for `COMMENT ON COLUMN`.
    pub column: Option<String>,
}

/// One statement of managed code.
#[derive(Debug, Clone)]
pub struct CodeObject {
    /// Index of its file in [`Code::files`].
    pub file: usize,
    /// Byte range of the statement in the file.
    pub range: Range<usize>,
    /// 1-based line where it starts.
    pub line: u32,
    /// What it declares.
    pub kind: CodeKind,
    /// The object's name, schema filled in (for a comment: the commented object's; for a
    /// trigger: the trigger's name, without schema).
    pub name: QualifiedName,
    /// A trigger's table (or the table of a commented trigger).
    pub table: Option<QualifiedName>,
    /// For comments: what is commented on.
    pub comment: Option<CommentOf>,
    /// The statement as sent: the file's text, with `OR REPLACE` added when missing.
    pub sql: String,
    /// Where `OR REPLACE ` was inserted into [`CodeObject::sql`] (byte offset, length).
    pub inserted: Option<(usize, usize)>,
    /// `sha256:<hex>` of the normalised statement and the schema it lands in.
    pub hash: String,
    /// The parse: declaration, references outside routine bodies, hazards (ranges relative to the statement).
    pub parsed: ObjectStatement,
    /// All references, bodies included: parsed on first use (only deploys that install something need them).
    all_references: OnceLock<Vec<Reference>>,
}

/// Statement references plus, for routines, those of the body (parsed now).
fn with_body_references(parsed: &ObjectStatement, text: &str) -> Vec<Reference> {
    let mut all = parsed.references.clone();
    if let Declaration::Create(c) = &parsed.declaration
        && matches!(c.kind, ObjectKind::Function | ObjectKind::Procedure)
    {
        all.extend(objects::body_references(text, c.language.as_deref()));
        all.sort_by_key(|r| r.range.start);
    }
    all
}

/// A routine's declared parameters (empty for other statements).
fn params_of(parsed: &ObjectStatement) -> &[pgstrata_sql::objects::Param] {
    match &parsed.declaration {
        Declaration::Create(c) => &c.params,
        Declaration::Comment(_) => &[],
    }
}

impl CodeObject {
    /// A routine's declared parameters, as written (empty for other statements).
    pub fn params(&self) -> &[pgstrata_sql::objects::Param] {
        params_of(&self.parsed)
    }

    /// Every name the statement refers to, routine bodies included (ranges relative to the statement).
    pub fn references(&self, code: &Code) -> &[Reference] {
        self.all_references
            .get_or_init(|| with_body_references(&self.parsed, self.source(code)))
    }

    /// `function app.f`, `view app.v`, `trigger touch ON app.t`, `comment on function app.f(int)`,
    /// `operator app.=?`, `cast (text AS app.amount)`.
    pub fn label(&self) -> String {
        match (&self.kind, &self.table, &self.comment) {
            (CodeKind::Operator | CodeKind::Cast, _, _) => {
                format!("{} {}", self.kind, self.display_name())
            }
            (CodeKind::Comment, _, Some(c)) => {
                format!(
                    "comment on {} {}",
                    c.target.keyword().to_lowercase(),
                    c.object_text
                )
            }
            (CodeKind::Trigger, Some(t), _) => format!("trigger {} ON {t}", self.name.name),
            _ => format!("{} {}", self.kind, self.name),
        }
    }

    /// The object's name as shown next to its kind: `app.f`, `touch ON app.t`, `on function app.f(int)`, `app.=?`,
    /// `(text AS app.amount)`.
    pub fn display_name(&self) -> String {
        match (&self.kind, &self.table, &self.comment) {
            // An operator's symbol is never quoted; a cast is named by its types.
            (CodeKind::Operator, _, _) => match &self.name.schema {
                Some(s) => format!(
                    "{}.{}",
                    pgstrata_sql::objects::display_ident(s),
                    self.name.name
                ),
                None => self.name.name.clone(),
            },
            (CodeKind::Cast, _, _) => format!("({})", self.name.name),
            (CodeKind::Comment, _, Some(c)) => {
                format!("on {} {}", c.target.keyword().to_lowercase(), c.object_text)
            }
            (CodeKind::Trigger, Some(t), _) => format!("{} ON {t}", self.name.name),
            _ => self.name.to_string(),
        }
    }

    /// The statement's text in its file.
    pub fn source<'a>(&self, code: &'a Code) -> &'a str {
        &code.files[self.file].text[self.range.clone()]
    }
}

/// Role of a function in a test file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestRole {
    /// Name ends in `_test`: run as a test.
    Test,
    /// Name ends in `_before`: run before each test.
    Before,
    /// Anything else: callable by tests.
    Helper,
}

/// A function defined in a `*_test.sql` file.
#[derive(Debug, Clone)]
pub struct TestFunction {
    /// Index of its file in [`Code::files`].
    pub file: usize,
    /// Byte range of the statement in the file.
    pub range: Range<usize>,
    /// 1-based line where it starts.
    pub line: u32,
    /// Its name, schema filled in.
    pub name: QualifiedName,
    /// Test, hook or helper.
    pub role: TestRole,
    /// The parse (references order the creation of helpers before their users).
    pub parsed: ObjectStatement,
    all_references: OnceLock<Vec<Reference>>,
}

impl TestFunction {
    /// Its declared parameters.
    pub fn params(&self) -> &[pgstrata_sql::objects::Param] {
        params_of(&self.parsed)
    }

    /// Every name the function refers to, its body included.
    pub fn references(&self, code: &Code) -> &[Reference] {
        self.all_references.get_or_init(|| {
            with_body_references(
                &self.parsed,
                &code.files[self.file].text[self.range.clone()],
            )
        })
    }
}

/// A package's managed code and tests, parsed and checked.
#[derive(Debug, Clone, Default)]
pub struct Code {
    /// Every file read (managed and test files, sorted by path).
    pub files: Vec<CodeFile>,
    /// Managed statements, in file order.
    pub objects: Vec<CodeObject>,
    /// Test-file functions, in file order.
    pub tests: Vec<TestFunction>,
    /// Files skipped because of `-- strata:ignore`.
    pub ignored: Vec<String>,
}

impl Code {
    /// True when the package has no managed code and no tests.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.tests.is_empty()
    }

    /// `sha256:<hex>` over the test files (names and texts), to tell whether tests changed.
    pub fn tests_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut seen = BTreeSet::new();
        for t in &self.tests {
            if seen.insert(t.file) {
                let f = &self.files[t.file];
                h.update(f.path.as_bytes());
                h.update([0]);
                h.update(f.text.as_bytes());
                h.update([0]);
            }
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }

    /// Load the managed code and tests of a package: every `.sql` file that is neither a listed
    /// migration nor a down file. `*_test.sql` files hold tests, the others managed objects.
    /// `sql_files`: every `.sql` file of the package ([`PackageSource::sql_files`]).
    pub(crate) fn load(
        source: &PackageSource,
        sql_files: &[String],
        manifest: &Manifest,
    ) -> Result<Code> {
        Code::load_files(source, sql_files, manifest, true)
    }

    /// Like [`Code::load`], but every file holds managed code, whatever its name: another tool's function folder
    /// (postgres-json names files `function_test.sql` that are functions, not tests).
    pub(crate) fn load_managed(
        source: &PackageSource,
        sql_files: &[String],
        manifest: &Manifest,
    ) -> Result<Code> {
        Code::load_files(source, sql_files, manifest, false)
    }

    fn load_files(
        source: &PackageSource,
        sql_files: &[String],
        manifest: &Manifest,
        test_files: bool,
    ) -> Result<Code> {
        let listed: BTreeSet<&str> = manifest
            .migrations
            .iter()
            .map(|(p, _)| p.as_str())
            .collect();
        let downs: BTreeSet<String> = listed
            .iter()
            .map(|p| crate::source::script::down_sibling(p))
            .collect();
        let mut code = Code::default();
        for rel in sql_files {
            if listed.contains(rel.as_str()) || downs.contains(rel) {
                continue;
            }
            let rel = rel.clone();
            let display = source.display_path(&rel).to_string_lossy().into_owned();
            let Some(raw) = source.read(&rel)? else {
                continue;
            };
            let text: Arc<str> = Arc::from(pgstrata_sql::normalize(&raw).as_ref());
            let first_line = text.lines().next().unwrap_or("").trim();
            if first_line.starts_with(IGNORE_MARKER) || first_line.starts_with("--pgpkg:ignore") {
                code.ignored.push(rel);
                continue;
            }
            let is_test = test_files && rel.ends_with("_test.sql");
            let file = CodeFile {
                lines: Arc::new(LineIndex::new(&text)),
                path: rel,
                display,
                text,
            };
            let index = code.files.len();
            code.files.push(file);
            let file = &code.files[index];
            for parsed in objects::parse_objects(&file.text) {
                if is_test {
                    code.tests.push(test_function(
                        file,
                        index,
                        parsed.range,
                        parsed.object,
                        manifest,
                    )?);
                } else {
                    code.objects.push(code_object(
                        file,
                        index,
                        parsed.range,
                        parsed.object,
                        manifest,
                    )?);
                }
            }
        }
        check_comments(&code)?;
        check_duplicates(&code)?;
        Ok(code)
    }
}

fn err(file: &CodeFile, range: Range<usize>, message: impl Into<String>) -> SourceError {
    SourceError::new(
        "strata::managed",
        &file.display,
        file.text.to_string(),
        Some(range),
        message,
    )
}

fn code_object(
    file: &CodeFile,
    index: usize,
    range: Range<usize>,
    parsed: std::result::Result<ObjectStatement, NotAnObject>,
    manifest: &Manifest,
) -> Result<CodeObject> {
    let text = &file.text[range.clone()];
    let schema = manifest.schema.as_str();
    let parsed = parsed.map_err(|e| {
        let help = if e.message.starts_with("CREATE TYPE") || e.message.starts_with("CREATE DOMAIN") {
            // pgpkg keeps types in migrations too: a managed object is dropped and re-created when it changes, and a
            // type that a table column uses cannot be.
            "types and domains are created and changed by migrations (ALTER TYPE … ADD VALUE, ADD ATTRIBUTE, ALTER \
             DOMAIN), not by managed code: a type used by a table column cannot be dropped and re-created the way \
             managed objects are. Managed functions, casts, operators and aggregates may use them"
        } else {
            "files that are not migrations hold managed code: CREATE [OR REPLACE] FUNCTION, PROCEDURE, VIEW, \
             TRIGGER, AGGREGATE, CREATE OPERATOR, CREATE CAST, and COMMENT ON functions, procedures, views and \
             triggers. Put other statements in a migration (listed in the manifest), or start the file with \
             `-- strata:ignore`"
        };
        err(file, range.start..range.start + first_line_len(text), e.message)
            .with_label("not managed code")
            .with_help(help)
    })?;
    check_hazards(file, &range, &parsed, manifest)?;
    let (kind, name, table, comment, inserted, sql) = match &parsed.declaration {
        Declaration::Create(c) => {
            let name = if c.kind == ObjectKind::Trigger {
                c.name.clone()
            } else {
                check_schema(file, &range, text, &c.name, manifest, "it")?;
                c.name.or_schema(schema)
            };
            let table = match &c.table {
                Some(t) => {
                    check_schema(file, &range, text, t, manifest, "its table")?;
                    Some(t.or_schema(schema))
                }
                None => None,
            };
            // Operators and casts have no OR REPLACE: a changed one is dropped and created.
            let (sql, inserted) = if c.or_replace || !c.kind.replaceable() {
                (text.to_string(), None)
            } else {
                let at = c.create_end;
                let insert = " OR REPLACE";
                let mut sql = String::with_capacity(text.len() + insert.len());
                sql.push_str(&text[..at]);
                sql.push_str(insert);
                sql.push_str(&text[at..]);
                (sql, Some((at, insert.len())))
            };
            (CodeKind::of(c.kind), name, table, None, inserted, sql)
        }
        Declaration::Comment(c) => {
            let name = if c.target == CommentTarget::Trigger {
                c.name.clone()
            } else {
                check_schema(
                    file,
                    &range,
                    text,
                    &c.name,
                    manifest,
                    "the commented object",
                )?;
                c.name.or_schema(schema)
            };
            let table = match &c.table {
                Some(t) => {
                    check_schema(file, &range, text, t, manifest, "the trigger's table")?;
                    Some(t.or_schema(schema))
                }
                None => None,
            };
            let of = CommentOf {
                target: c.target,
                object_text: text[c.object_range.clone()].to_string(),
                column: c.column.clone(),
            };
            (
                CodeKind::Comment,
                name,
                table,
                Some(of),
                None,
                text.to_string(),
            )
        }
    };
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    h.update([0]);
    h.update(schema.as_bytes());
    Ok(CodeObject {
        file: index,
        line: file.line_of(range.start),
        range,
        kind,
        name,
        table,
        comment,
        sql,
        inserted,
        hash: format!("sha256:{}", hex::encode(h.finalize())),
        parsed,
        all_references: OnceLock::new(),
    })
}

fn test_function(
    file: &CodeFile,
    index: usize,
    range: Range<usize>,
    parsed: std::result::Result<ObjectStatement, NotAnObject>,
    manifest: &Manifest,
) -> Result<TestFunction> {
    let text = &file.text[range.clone()];
    let first = range.start..range.start + first_line_len(text);
    let help = "test files (`*_test.sql`) may only define functions: `NAME_test()` functions are tests, \
                `NAME_before()` run before each test, others are helpers";
    let only_functions = || {
        Error::from(
            err(
                file,
                first.clone(),
                "only CREATE FUNCTION is allowed in a test file",
            )
            .with_help(help),
        )
    };
    let parsed = parsed.map_err(|_| only_functions())?;
    check_hazards(file, &range, &parsed, manifest)?;
    let Declaration::Create(c) = &parsed.declaration else {
        return Err(only_functions());
    };
    if c.kind != ObjectKind::Function {
        return Err(only_functions());
    }
    check_schema(file, &range, text, &c.name, manifest, "it")?;
    let name = c.name.or_schema(&manifest.schema);
    let role = if name.name.ends_with("_test") {
        TestRole::Test
    } else if name.name.ends_with("_before") {
        TestRole::Before
    } else {
        TestRole::Helper
    };
    Ok(TestFunction {
        file: index,
        line: file.line_of(range.start),
        range,
        name,
        role,
        parsed,
        all_references: OnceLock::new(),
    })
}

fn first_line_len(s: &str) -> usize {
    s.find('\n').unwrap_or(s.len())
}

fn check_schema(
    file: &CodeFile,
    range: &Range<usize>,
    text: &str,
    name: &QualifiedName,
    manifest: &Manifest,
    what: &str,
) -> Result<()> {
    match &name.schema {
        Some(s) if !manifest.schemas.contains(s) => {
            let at = range.start + text.find(s.as_str()).unwrap_or(0);
            let (message, help) = match manifest.schemas.as_slice() {
                [only] => (
                    format!(
                        "{name} is outside the package's schema `{only}`: {what} must live in `{only}`"
                    ),
                    format!(
                        "qualify names with `{only}.` or leave them unqualified (or add `{s}` to the package's schemas)"
                    ),
                ),
                several => {
                    let list = several
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    (
                        format!(
                            "{name} is outside the package's schemas ({list}): {what} must live in one of them"
                        ),
                        format!(
                            "qualify names with one of the package's schemas, or leave them unqualified (they land in \
                             `{}`)",
                            manifest.schema
                        ),
                    )
                }
            };
            Err(err(file, at..at + s.len(), message)
                .with_label("not a schema of the package")
                .with_help(help)
                .into())
        }
        _ => Ok(()),
    }
}

fn check_hazards(
    file: &CodeFile,
    range: &Range<usize>,
    parsed: &ObjectStatement,
    manifest: &Manifest,
) -> Result<()> {
    for h in &parsed.hazards {
        let span = (range.start + h.range.start)..(range.start + h.range.end);
        let (message, help) = match h.kind {
            HazardKind::SecurityDefiner if manifest.security.allow_security_definer => continue,
            HazardKind::SecurityDefiner => (
                "SECURITY DEFINER needs an explicit opt-in",
                "a SECURITY DEFINER routine runs with its owner's rights (the package role). If that is intended, \
                 set `allow_security_definer = true` under `[security]` in strata.toml",
            ),
            HazardKind::TransactionControl => (
                "managed code must not control transactions",
                "Strata deploys in one transaction; COMMIT, ROLLBACK and SAVEPOINT in managed code would break it. \
                 Run such procedures from the application instead of defining them as managed code",
            ),
            HazardKind::RoleChange => (
                "managed code must not change roles",
                "SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION and set_config('role', …) would escape the package \
                 role the code runs as",
            ),
        };
        return Err(err(file, span, message)
            .with_label("here")
            .with_help(help)
            .into());
    }
    Ok(())
}

/// A comment must target a managed object of the same package.
fn check_comments(code: &Code) -> Result<()> {
    for o in &code.objects {
        let Some(c) = &o.comment else {
            continue;
        };
        let kind = CodeKind::of(c.target.object_kind());
        let found = code.objects.iter().any(|t| {
            let same_kind = t.kind == kind || (kind.is_routine() && t.kind.is_routine());
            same_kind && t.name == o.name && (kind != CodeKind::Trigger || t.table == o.table)
        });
        if !found {
            let file = &code.files[o.file];
            return Err(err(
                file,
                o.range.start..o.range.start + first_line_len(o.source(code)),
                format!(
                    "{} targets {} {}, which is not defined in this package's managed code",
                    o.label(),
                    kind,
                    o.name
                ),
            )
            .with_help("comment only on managed objects; comments on tables belong in migrations")
            .into());
        }
    }
    Ok(())
}

/// Views and triggers are identified by name: two definitions of one are a mistake. (Functions
/// may be overloaded; duplicate signatures are found in the catalog when they are installed.)
fn check_duplicates(code: &Code) -> Result<()> {
    let mut seen: HashMap<(CodeKind, &QualifiedName, Option<&QualifiedName>, String), &CodeObject> =
        HashMap::new();
    for o in &code.objects {
        let key_extra = match &o.comment {
            Some(c) => format!(
                "{:?} {}",
                c.target,
                c.object_text.to_lowercase().replace(' ', "")
            ),
            None if o.kind.is_routine() => continue,
            None => String::new(),
        };
        if let Some(prev) = seen.insert((o.kind, &o.name, o.table.as_ref(), key_extra), o) {
            let file = &code.files[o.file];
            let prev_file = &code.files[prev.file];
            return Err(err(
                file,
                o.range.start..o.range.start + first_line_len(o.source(code)),
                format!(
                    "{} is defined twice: here and at {}:{}",
                    o.label(),
                    prev_file.display,
                    prev.line
                ),
            )
            .with_label("second definition")
            .with_help("keep one definition")
            .into());
        }
    }
    Ok(())
}
