//! Managed-code statements: what a `CREATE FUNCTION | PROCEDURE | VIEW | TRIGGER` or a `COMMENT ON`
//! one of those declares, which names it refers to, and what it must not do.
//!
//! [`parse_object`] reads one statement (as cut by [`split`](crate::split)) and returns an
//! [`ObjectStatement`]: the [`Declaration`] (kind and name, as PostgreSQL will resolve it: unquoted
//! parts folded to lower case), the [`Reference`]s found in it (relations, called functions and
//! types, from the statement itself, from `LANGUAGE sql` bodies and, best effort, from PL/pgSQL
//! bodies), and the [`Hazard`]s (transaction control, role changes, `SECURITY DEFINER`).
//!
//! Nothing here decides *identity*: an overloaded function is only known by name. Identities
//! come from the catalog once the object exists.
//!
//! ```
//! use pgstrata_sql::objects::{parse_object, Declaration, ObjectKind, ReferenceKind};
//!
//! let sql = "CREATE VIEW app.rich AS SELECT * FROM app.accounts WHERE app.balance(id) > 100;";
//! let object = parse_object(sql).unwrap();
//! let Declaration::Create(create) = &object.declaration else { panic!() };
//! assert_eq!(create.kind, ObjectKind::View);
//! assert_eq!(create.name.to_string(), "app.rich");
//! let refs: Vec<String> = object.references.iter().map(|r| format!("{:?} {}", r.kind, r.name)).collect();
//! assert_eq!(refs, ["Relation app.accounts", "Function app.balance"]);
//! assert!(object.references.iter().all(|r| r.checked));
//! ```

use std::fmt;
use std::ops::Range;

use squawk_lexer::TokenKind;
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SourceFile, SyntaxKind, SyntaxNode};

use crate::lex::{self, Tok};
pub use crate::signature::{ArgType, Param, ParamMode, normalize_type};
use crate::signature::{call_args, params_of};

/// A possibly schema-qualified name, normalised as PostgreSQL does: unquoted parts folded to
/// lower case, quoted parts taken literally (without their quotes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    /// The schema, when the name was qualified.
    pub schema: Option<String>,
    /// The object's own name.
    pub name: String,
}

impl QualifiedName {
    /// A name from its parts.
    pub fn new(schema: Option<&str>, name: &str) -> QualifiedName {
        QualifiedName {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// The name with `schema` filled in when it was unqualified.
    pub fn or_schema(&self, schema: &str) -> QualifiedName {
        QualifiedName {
            schema: Some(self.schema.clone().unwrap_or_else(|| schema.to_string())),
            name: self.name.clone(),
        }
    }

    fn from_parts(mut parts: Vec<String>) -> Option<QualifiedName> {
        let name = parts.pop()?;
        let schema = parts.pop();
        // `catalog.schema.name` is accepted by PostgreSQL (for the current database only).
        if parts.len() > 1 || name.is_empty() {
            return None;
        }
        Some(QualifiedName { schema, name })
    }
}

impl fmt::Display for QualifiedName {
    /// `schema.name`, each part double-quoted only when PostgreSQL would need it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.schema {
            write!(f, "{}.", display_ident(s))?;
        }
        write!(f, "{}", display_ident(&self.name))
    }
}

/// An identifier as a person would type it: bare when it is lower-case letters, digits and `_`,
/// double-quoted otherwise. For messages; SQL sent to the server always quotes.
pub fn display_ident(ident: &str) -> String {
    let plain = ident
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        ident.to_string()
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

/// The kinds of object managed code may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// `CREATE FUNCTION`
    Function,
    /// `CREATE PROCEDURE`
    Procedure,
    /// `CREATE VIEW`
    View,
    /// `CREATE TRIGGER`
    Trigger,
    /// `CREATE AGGREGATE`
    Aggregate,
    /// `CREATE OPERATOR`
    Operator,
    /// `CREATE CAST`
    Cast,
}

impl ObjectKind {
    /// Lower-case SQL keyword: `function`, `procedure`, `view`, `trigger`, `aggregate`, `operator`, `cast`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Function => "function",
            ObjectKind::Procedure => "procedure",
            ObjectKind::View => "view",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Aggregate => "aggregate",
            ObjectKind::Operator => "operator",
            ObjectKind::Cast => "cast",
        }
    }

    /// PostgreSQL has `CREATE OR REPLACE` for it (not for operators and casts, which are dropped and created).
    pub fn replaceable(self) -> bool {
        !matches!(self, ObjectKind::Operator | ObjectKind::Cast)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a managed-code statement declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declaration {
    /// `CREATE [OR REPLACE] FUNCTION | PROCEDURE | VIEW | TRIGGER`.
    Create(Create),
    /// `COMMENT ON FUNCTION | PROCEDURE | VIEW | TRIGGER | COLUMN`.
    Comment(Comment),
}

/// A `CREATE` statement of managed code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    /// What it creates.
    pub kind: ObjectKind,
    /// The object's name. For a trigger: its name, never schema-qualified (a trigger belongs to
    /// its table). For an operator: its symbol. For a cast: `source AS target` (types normalised, unqualified
    /// names as written), never schema-qualified (casts belong to no schema).
    pub name: QualifiedName,
    /// A trigger's table (or view).
    pub table: Option<QualifiedName>,
    /// `OR REPLACE` was written.
    pub or_replace: bool,
    /// Byte offset just after the `CREATE` keyword: where ` OR REPLACE` goes when it is missing.
    pub create_end: usize,
    /// A routine's language (lower case), when given; `sql` for `BEGIN ATOMIC` and `RETURN` bodies.
    pub language: Option<String>,
    /// A routine's or aggregate's parameters as declared, in order; an operator's argument types (left, right; one
    /// for a prefix operator); a cast's source and target types. Empty for other objects.
    pub params: Vec<Param>,
}

/// A `COMMENT ON` statement of managed code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// What kind of object it comments on.
    pub target: CommentTarget,
    /// The commented object's name: the routine or view (for a column: the view; for a trigger:
    /// the trigger's name).
    pub name: QualifiedName,
    /// A trigger's table.
    pub table: Option<QualifiedName>,
    /// A column's name.
    pub column: Option<String>,
    /// Byte range of the object reference as written (`app.f(int, text)`, `trg ON app.t`), for
    /// resolving it with the catalog.
    pub object_range: Range<usize>,
    /// `IS NULL` (removes the comment).
    pub is_null: bool,
}

/// What a managed `COMMENT ON` may target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommentTarget {
    /// `COMMENT ON FUNCTION name(args)`
    Function,
    /// `COMMENT ON PROCEDURE name(args)`
    Procedure,
    /// `COMMENT ON VIEW name`
    View,
    /// `COMMENT ON TRIGGER name ON table`
    Trigger,
    /// `COMMENT ON COLUMN view.column`
    Column,
}

impl CommentTarget {
    /// The kind of object a comment of this target attaches to.
    pub fn object_kind(self) -> ObjectKind {
        match self {
            CommentTarget::Function => ObjectKind::Function,
            CommentTarget::Procedure => ObjectKind::Procedure,
            CommentTarget::View | CommentTarget::Column => ObjectKind::View,
            CommentTarget::Trigger => ObjectKind::Trigger,
        }
    }

    /// Upper-case SQL words: `FUNCTION`, `COLUMN`, …
    pub fn keyword(self) -> &'static str {
        match self {
            CommentTarget::Function => "FUNCTION",
            CommentTarget::Procedure => "PROCEDURE",
            CommentTarget::View => "VIEW",
            CommentTarget::Trigger => "TRIGGER",
            CommentTarget::Column => "COLUMN",
        }
    }
}

/// What a referenced name is used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReferenceKind {
    /// In `FROM`, `JOIN`, `INSERT INTO`, `ON table`, …
    Relation,
    /// Called: `name(…)`, `EXECUTE FUNCTION name()`.
    Function,
    /// Used as a type (a view's row type can be one).
    Type,
    /// Seen in text the parser could not structure (a PL/pgSQL statement it does not know):
    /// a relation or a function.
    Any,
    /// An operator used in an expression (`a =? b`, `OPERATOR(app.=?)`); its name is the symbol.
    Operator,
}

/// A name a statement refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// How the name is used.
    pub kind: ReferenceKind,
    /// The name as written, normalised.
    pub name: QualifiedName,
    /// Byte range in the statement.
    pub range: Range<usize>,
    /// PostgreSQL resolves this reference when the statement runs (view queries, `LANGUAGE sql`
    /// bodies, trigger functions, parameter defaults), so what it names must exist first. False
    /// for PL/pgSQL bodies, which are resolved only when called.
    pub checked: bool,
    /// For a call with positional arguments: what each argument is (overloads are told apart by them). `None`
    /// when not a call, or when its arguments cannot be listed (named arguments, `*`).
    pub args: Option<Vec<ArgType>>,
}

/// Something managed code must not do (unless the package opts in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HazardKind {
    /// `COMMIT`, `ROLLBACK`, `SAVEPOINT`, … inside a routine body.
    TransactionControl,
    /// `SET ROLE`, `RESET ROLE`, `SET SESSION AUTHORIZATION`, `set_config('role', …)`, or a
    /// routine option `SET role = …`.
    RoleChange,
    /// `SECURITY DEFINER`.
    SecurityDefiner,
}

/// A hazard found in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hazard {
    /// What kind.
    pub kind: HazardKind,
    /// Byte range in the statement.
    pub range: Range<usize>,
}

/// A parsed managed-code statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStatement {
    /// What it declares.
    pub declaration: Declaration,
    /// Names it refers to, in textual order (duplicates kept: each has its own range).
    pub references: Vec<Reference>,
    /// Things it must not do.
    pub hazards: Vec<Hazard>,
}

/// Why a statement is not managed code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotAnObject {
    /// What is wrong, e.g. ``CREATE TABLE is not managed code``.
    pub message: String,
}

fn not_object(message: impl Into<String>) -> NotAnObject {
    NotAnObject {
        message: message.into(),
    }
}

/// Parse one statement of managed code.
///
/// Accepts `CREATE [OR REPLACE] FUNCTION | PROCEDURE | VIEW | TRIGGER` and `COMMENT ON` a
/// function, procedure, view, trigger or view column. Anything else (including temporary or
/// materialized views) is a [`NotAnObject`] error whose message names the statement kind.
/// Syntax errors do not fail the parse: PostgreSQL has the last word, and whatever could be read
/// is returned.
///
/// ```
/// use pgstrata_sql::objects::{parse_object, Declaration, HazardKind};
/// let sql = "CREATE FUNCTION app.f() RETURNS int LANGUAGE plpgsql SECURITY DEFINER
///   AS $$ BEGIN PERFORM app.g(); RETURN 1; END $$;";
/// let object = parse_object(sql).unwrap();
/// let Declaration::Create(create) = &object.declaration else { panic!() };
/// assert!(!create.or_replace);
/// assert_eq!(&sql[..create.create_end], "CREATE");
/// assert_eq!(object.hazards[0].kind, HazardKind::SecurityDefiner);
/// // PL/pgSQL references are only resolved when the function runs:
/// let g = object.references.iter().find(|r| r.name.name == "g").unwrap();
/// assert!(!g.checked);
/// assert!(parse_object("CREATE TABLE t (id int)").is_err());
/// ```
pub fn parse_object(text: &str) -> Result<ObjectStatement, NotAnObject> {
    if !lex::too_deep(text).is_empty() {
        return Err(too_deep());
    }
    let parse = SourceFile::parse(text);
    let Some(stmt) = parse
        .tree()
        .stmts()
        .find(|s| !matches!(s, ast::Stmt::EmptyStmt(_)))
    else {
        return Err(not_object("empty statement"));
    };
    object(&stmt, text, true)
}

/// One statement of a file read by [`parse_objects`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedObject {
    /// Byte range of the statement in the file (first token to `;`).
    pub range: Range<usize>,
    /// The statement, ranges relative to its start; or why it is not managed code.
    pub object: Result<ObjectStatement, NotAnObject>,
}

/// Parse a whole file of managed code at once (one parse, so loading many files stays fast).
///
/// Like [`parse_object`] for each statement, except that routine *bodies* are not parsed: their references are
/// left out (get them with [`body_references`] when they are needed). Text the parser cannot read as a statement
/// is returned as an error entry, never skipped.
///
/// ```
/// let file = "CREATE VIEW app.v AS SELECT 1;\n-- a comment\nSELEC 1;\n";
/// let parsed = pgstrata_sql::objects::parse_objects(file);
/// assert_eq!(parsed.len(), 2);
/// assert_eq!(&file[parsed[0].range.clone()], "CREATE VIEW app.v AS SELECT 1;");
/// assert!(parsed[1].object.is_err());
/// ```
pub fn parse_objects(text: &str) -> Vec<ParsedObject> {
    let deep = lex::too_deep(text);
    let shallow = lex::shallow(text);
    let text = &*shallow;
    let parse = SourceFile::parse(text);
    let root = parse.tree();
    // Statements too deep to parse are errors of their own (the blanked text parses as nothing there).
    let mut out: Vec<ParsedObject> = deep
        .into_iter()
        .map(|range| {
            let start =
                range.start + (text[range.clone()].len() - text[range.clone()].trim_start().len());
            ParsedObject {
                range: start..range.end,
                object: Err(too_deep()),
            }
        })
        .collect();
    // Runs of text that are not statements (squawk's ERROR nodes), up to the `;` that ends them.
    let mut garbage: Option<Range<usize>> = None;
    let flush = |garbage: &mut Option<Range<usize>>, out: &mut Vec<ParsedObject>| {
        if let Some(range) = garbage.take() {
            let chunk = &text[range.clone()];
            let kind = crate::split::classify(chunk, &lex::significant(chunk));
            out.push(ParsedObject {
                range,
                object: Err(not_object(format!(
                    "{} is not managed code",
                    statement_label(&kind)
                ))),
            });
        }
    };
    for element in root.syntax().children_with_tokens() {
        let kind = element.kind();
        if kind.is_trivia() {
            continue;
        }
        let r = element.text_range();
        let range = usize::from(r.start())..usize::from(r.end());
        if kind == SyntaxKind::EMPTY_STMT {
            if let Some(g) = &mut garbage {
                g.end = range.end;
            }
            flush(&mut garbage, &mut out);
            continue;
        }
        let stmt = element.as_node().and_then(|n| ast::Stmt::cast(n.clone()));
        match stmt {
            Some(stmt) => {
                flush(&mut garbage, &mut out);
                out.push(ParsedObject {
                    object: object(&stmt, text, false),
                    range,
                });
            }
            None => match &mut garbage {
                Some(g) => g.end = range.end,
                None => garbage = Some(range),
            },
        }
    }
    flush(&mut garbage, &mut out);
    out.sort_by_key(|o| o.range.start);
    out
}

fn too_deep() -> NotAnObject {
    not_object(format!(
        "this statement nests parentheses more than {} levels deep, more than Strata reads",
        lex::MAX_NESTING
    ))
}

/// The references inside the quoted body of a `CREATE FUNCTION | PROCEDURE` statement (`LANGUAGE sql` bodies
/// checked, PL/pgSQL ones not), ranges relative to the statement. `language` is the routine's, as
/// [`Create::language`] gives it. Empty for other languages and statements.
///
/// Only the body is parsed (the statement was already), which keeps this cheap for thousands of routines.
///
/// ```
/// use pgstrata_sql::objects::body_references;
/// let sql = "CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT app.g(''x'') FROM app.t'";
/// let refs = body_references(sql, Some("sql"));
/// let names: Vec<String> = refs.iter().map(|r| r.name.to_string()).collect();
/// assert_eq!(names, ["app.g", "app.t"]);
/// assert_eq!(&sql[refs[1].range.clone()], "app.t");
/// ```
pub fn body_references(statement_text: &str, language: Option<&str>) -> Vec<Reference> {
    let checked = match language {
        Some("sql") => true,
        Some("plpgsql") => false,
        _ => return Vec::new(),
    };
    let Some(body) = crate::routine_body_range(statement_text) else {
        return Vec::new();
    };
    let quoted = statement_text[..body.start].ends_with('\'');
    if quoted && statement_text[..body.start].ends_with("E'") {
        // Backslash escapes: rare in routine bodies; positions would need a full unescape.
        return Vec::new();
    }
    let map = BodyMap::from_body(statement_text, body.clone());
    let raw = &statement_text[body];
    let decoded = if quoted {
        std::borrow::Cow::Owned(raw.replace("''", "'"))
    } else {
        std::borrow::Cow::Borrowed(raw)
    };
    let mut out = Collector::default();
    if !lex::too_deep(&decoded).is_empty() {
        return Vec::new();
    }
    if checked {
        let parse = SourceFile::parse(&decoded);
        out.walk(parse.tree().syntax(), &|r| map.map(r), true);
    } else {
        // Squawk parses PL/pgSQL inside a DO block; a dollar tag the body does not contain delimits it.
        let mut tag = String::from("$strata$");
        while decoded.contains(tag.as_str()) {
            tag.insert(1, 'x');
        }
        let wrapped = format!("DO {tag}{decoded}{tag}");
        let parse = SourceFile::parse(&wrapped);
        let body = parse.tree().stmts().find_map(|s| match s {
            ast::Stmt::Do(d) => d.plpgsql(),
            _ => None,
        });
        if let Some(body) = body {
            out.walk(&body.syntax(), &|r| map.map(r), false);
        }
    }
    let mut refs = out.references;
    refs.sort_by_key(|r| r.range.start);
    refs
}

/// Read one statement node of `source`. Ranges in the result are relative to the statement's start.
fn object(
    stmt: &ast::Stmt,
    source: &str,
    with_bodies: bool,
) -> Result<ObjectStatement, NotAnObject> {
    let stmt_range = range_of(stmt.syntax());
    let base = stmt_range.start;
    let text = &source[stmt_range.clone()];
    let mut out = Collector::default();
    let declaration = match stmt {
        ast::Stmt::CreateFunction(f) => {
            let name = f
                .name()
                .and_then(|n| n.path())
                .and_then(|p| name_of(p.syntax()))
                .ok_or_else(|| not_object("CREATE FUNCTION without a name"))?;
            let language = routine(&mut out, f.syntax(), f.option_list(), f.body().is_some());
            if with_bodies {
                bodies(&mut out, f.syntax(), f.sql_body(), f.plpgsql());
            }
            Declaration::Create(Create {
                kind: ObjectKind::Function,
                name,
                table: None,
                or_replace: f.or_replace().is_some(),
                create_end: token_end(f.create_token()).saturating_sub(base),
                language,
                params: params_of(f.param_list()),
            })
        }
        ast::Stmt::CreateProcedure(p) => {
            let name = p
                .name()
                .and_then(|n| n.path())
                .and_then(|p| name_of(p.syntax()))
                .ok_or_else(|| not_object("CREATE PROCEDURE without a name"))?;
            let language = routine(&mut out, p.syntax(), p.option_list(), p.body().is_some());
            if with_bodies {
                bodies(&mut out, p.syntax(), p.sql_body(), p.plpgsql());
            }
            Declaration::Create(Create {
                kind: ObjectKind::Procedure,
                name,
                table: None,
                or_replace: p.or_replace().is_some(),
                create_end: token_end(p.create_token()).saturating_sub(base),
                language,
                params: params_of(p.param_list()),
            })
        }
        ast::Stmt::CreateView(v) => {
            if v.persistence().is_some() {
                return Err(not_object(
                    "CREATE TEMPORARY VIEW is not managed code (it would vanish with the session)",
                ));
            }
            let name = v
                .view()
                .and_then(|n| n.path())
                .and_then(|p| name_of(p.syntax()))
                .ok_or_else(|| not_object("CREATE VIEW without a name"))?;
            out.walk(v.syntax(), &|r| r, true);
            Declaration::Create(Create {
                kind: ObjectKind::View,
                name,
                table: None,
                or_replace: v.or_replace().is_some(),
                create_end: token_end(v.create_token()).saturating_sub(base),
                language: None,
                params: Vec::new(),
            })
        }
        ast::Stmt::CreateTrigger(t) => {
            let trigger = t
                .trigger()
                .map(|n| ast::normalize_name_node(n.syntax()))
                .filter(|n| !n.is_empty())
                .ok_or_else(|| not_object("CREATE TRIGGER without a name"))?;
            let table = t
                .on_relation()
                .and_then(|r| r.relation_name_ref())
                .and_then(|r| name_of(r.syntax()))
                .ok_or_else(|| not_object("CREATE TRIGGER without ON table"))?;
            out.walk(t.syntax(), &|r| r, true);
            Declaration::Create(Create {
                kind: ObjectKind::Trigger,
                name: QualifiedName::new(None, &trigger),
                table: Some(table),
                or_replace: t.or_replace().is_some(),
                create_end: token_end(t.create_token()).saturating_sub(base),
                language: None,
                params: Vec::new(),
            })
        }
        ast::Stmt::CreateAggregate(a) => {
            let name = a
                .aggregate_name()
                .and_then(|n| n.path())
                .and_then(|p| name_of(p.syntax()))
                .ok_or_else(|| not_object("CREATE AGGREGATE without a name"))?;
            let params = params_of(a.param_list());
            out.walk_types(a.param_list().map(|l| l.syntax().clone()));
            out.attributes(a.attribute_list(), &[]);
            Declaration::Create(Create {
                kind: ObjectKind::Aggregate,
                name,
                table: None,
                or_replace: a.or_replace().is_some(),
                create_end: token_end(a.create_token()).saturating_sub(base),
                language: None,
                params,
            })
        }
        ast::Stmt::CreateOperator(o) => {
            let name = o
                .op()
                .and_then(|op| operator_name(op.syntax()))
                .ok_or_else(|| not_object("CREATE OPERATOR without a name"))?;
            let attr = |key: &str| attribute_type(o.attribute_list(), key);
            let params: Vec<Param> = [attr("leftarg"), attr("rightarg")]
                .into_iter()
                .flatten()
                .map(|ty| Param {
                    mode: ParamMode::In,
                    name: None,
                    ty,
                    has_default: false,
                })
                .collect();
            let args: Vec<ArgType> = params
                .iter()
                .map(|p| ArgType::Known(p.ty.clone()))
                .collect();
            out.attributes(o.attribute_list(), &args);
            Declaration::Create(Create {
                kind: ObjectKind::Operator,
                name,
                table: None,
                or_replace: false,
                create_end: token_end(o.create_token()).saturating_sub(base),
                language: None,
                params,
            })
        }
        ast::Stmt::CreateCast(c) => {
            let types: Vec<SyntaxNode> = c
                .cast_sig()
                .map(|sig| {
                    sig.syntax()
                        .children()
                        .filter(|n| crate::signature::is_type_node(n.kind()))
                        .collect()
                })
                .unwrap_or_default();
            let [source, target] = types.as_slice() else {
                return Err(not_object("CREATE CAST without (source AS target)"));
            };
            out.walk_types(c.cast_sig().map(|s| s.syntax().clone()));
            let params: Vec<Param> = [source, target]
                .into_iter()
                .map(|t| Param {
                    mode: ParamMode::In,
                    name: None,
                    ty: normalize_type(&t.text().to_string()),
                    has_default: false,
                })
                .collect();
            // WITH FUNCTION f(types): a call with known argument types.
            if let Some(sig) = c.syntax().descendants().find_map(ast::FunctionSig::cast)
                && let Some(fname) = sig.function_name_ref()
                && let Some(name) = name_of(fname.syntax())
            {
                let args = params_of(sig.param_list())
                    .into_iter()
                    .map(|p| ArgType::Known(p.ty))
                    .collect();
                out.references.push(Reference {
                    kind: ReferenceKind::Function,
                    name,
                    range: range_of(fname.syntax()),
                    checked: true,
                    args: Some(args),
                });
            }
            Declaration::Create(Create {
                kind: ObjectKind::Cast,
                name: QualifiedName::new(None, &format!("{} AS {}", params[0].ty, params[1].ty)),
                table: None,
                or_replace: false,
                create_end: token_end(c.create_token()).saturating_sub(base),
                language: None,
                params,
            })
        }
        ast::Stmt::CommentOn(c) => {
            let mut comment = comment(c)?;
            comment.object_range = comment.object_range.start.saturating_sub(base)
                ..comment.object_range.end.saturating_sub(base);
            out.references.push(Reference {
                kind: match comment.target {
                    CommentTarget::Function | CommentTarget::Procedure => ReferenceKind::Function,
                    _ => ReferenceKind::Relation,
                },
                name: comment.name.clone(),
                range: (comment.object_range.start + base)..(comment.object_range.end + base),
                checked: true,
                args: None,
            });
            Declaration::Comment(comment)
        }
        _ => {
            let kind = crate::split::classify(text, &lex::significant(text));
            return Err(not_object(format!(
                "{} is not managed code",
                statement_label(&kind)
            )));
        }
    };
    let mut references = out.references;
    let mut hazards = out.hazards;
    for r in &mut references {
        r.range = r.range.start.saturating_sub(base)..r.range.end.saturating_sub(base);
    }
    for h in &mut hazards {
        h.range = h.range.start.saturating_sub(base)..h.range.end.saturating_sub(base);
    }
    if matches!(
        stmt,
        ast::Stmt::CreateFunction(_) | ast::Stmt::CreateProcedure(_)
    ) {
        scan_routine_hazards(text, &mut hazards);
    }
    hazards.sort_by_key(|h| h.range.start);
    references.sort_by_key(|r| r.range.start);
    Ok(ObjectStatement {
        declaration,
        references,
        hazards,
    })
}

fn statement_label(kind: &crate::StatementKind) -> String {
    use crate::StatementKind as K;
    match kind {
        K::CreateMaterializedView => "CREATE MATERIALIZED VIEW".into(),
        K::CreateTable => "CREATE TABLE".into(),
        K::AlterTable => "ALTER TABLE".into(),
        K::CreateIndex { .. } => "CREATE INDEX".into(),
        K::Select => "SELECT".into(),
        K::Insert => "INSERT".into(),
        K::Update => "UPDATE".into(),
        K::Delete => "DELETE".into(),
        K::Do => "DO".into(),
        K::Set => "SET".into(),
        K::Begin | K::Commit | K::Rollback => "transaction control".into(),
        K::Other(tag) => tag.clone(),
        other => format!("{other:?}"),
    }
}

fn token_end(token: Option<squawk_syntax::SyntaxToken>) -> usize {
    token.map_or(0, |t| usize::from(t.text_range().end()))
}

/// References (outside the body) and hazards of a function or procedure; returns its language.
fn routine(
    out: &mut Collector,
    node: &SyntaxNode,
    options: Option<ast::FuncOptionList>,
    atomic_body: bool,
) -> Option<String> {
    // The statement itself: parameter defaults, types, BEGIN ATOMIC / RETURN bodies.
    out.walk(node, &|r| r, true);
    let mut language = atomic_body.then(|| "sql".to_string());
    if let Some(options) = options {
        for option in options.options() {
            match option {
                ast::FuncOption::LanguageFuncOption(l) => {
                    language = l.language_name().map(|n| n.name.to_ascii_lowercase());
                }
                ast::FuncOption::SecurityDefinerFuncOption(s) => out.hazards.push(Hazard {
                    kind: HazardKind::SecurityDefiner,
                    range: range_of(s.syntax()),
                }),
                ast::FuncOption::SetFuncOption(s) => {
                    let param = s
                        .syntax()
                        .descendants()
                        .find(|n| n.kind() == SyntaxKind::CONFIG_PARAMETER_REF)
                        .map(|n| n.text().to_string().to_ascii_lowercase());
                    if matches!(param.as_deref(), Some("role" | "session_authorization")) {
                        out.hazards.push(Hazard {
                            kind: HazardKind::RoleChange,
                            range: range_of(s.syntax()),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    language
}

/// References in a routine's quoted body: `LANGUAGE sql` (checked) and PL/pgSQL (not). Body trees are in the
/// coordinates of the body's decoded text; they are mapped back to `node`'s source.
fn bodies(
    out: &mut Collector,
    node: &SyntaxNode,
    sql_body: Option<squawk_syntax::sql_body::SqlBody>,
    plpgsql: Option<squawk_syntax::plpgsql::Plpgsql>,
) {
    if let Some(body) = sql_body {
        let to_source = BodyMap::new(node);
        out.walk(&body.syntax(), &|r| to_source.map(r), true);
    }
    if let Some(body) = plpgsql {
        let to_source = BodyMap::new(node);
        out.walk(&body.syntax(), &|r| to_source.map(r), false);
    }
}

/// Maps offsets in a routine body's decoded text (quotes undoubled) to offsets in the statement.
struct BodyMap {
    /// Statement offset of the body's first character.
    start: usize,
    /// Decoded offsets just after each doubled quote of a `'…'` body: each one shifts the rest
    /// by a byte.
    doubled: Vec<usize>,
}

impl BodyMap {
    /// For a body at `body` (the contents inside the quotes) of `text`, offsets relative to `text`.
    fn from_body(text: &str, body: Range<usize>) -> BodyMap {
        let quoted = text[..body.start].ends_with('\'');
        let mut doubled = Vec::new();
        if quoted {
            let raw = &text[body.clone()];
            let mut decoded = 0;
            let mut i = 0;
            while i < raw.len() {
                if raw[i..].starts_with("''") {
                    decoded += 1;
                    doubled.push(decoded);
                    i += 2;
                } else {
                    let len = raw[i..].chars().next().map_or(1, char::len_utf8);
                    decoded += len;
                    i += len;
                }
            }
        }
        BodyMap {
            start: body.start,
            doubled,
        }
    }

    /// For the routine whose statement node is `statement`, offsets in the node's source.
    fn new(statement: &SyntaxNode) -> BodyMap {
        let text = statement.text().to_string();
        let base = usize::from(statement.text_range().start());
        match crate::routine_body_range(&text) {
            Some(body) => {
                let mut map = BodyMap::from_body(&text, body);
                map.start += base;
                map
            }
            None => BodyMap {
                start: base,
                doubled: Vec::new(),
            },
        }
    }

    fn offset(&self, decoded: usize) -> usize {
        self.start + decoded + self.doubled.partition_point(|&d| d <= decoded)
    }

    fn map(&self, r: Range<usize>) -> Range<usize> {
        self.offset(r.start)..self.offset(r.end)
    }
}

fn comment(c: &ast::CommentOn) -> Result<Comment, NotAnObject> {
    let object = c
        .comment_object()
        .ok_or_else(|| not_object("COMMENT ON without an object"))?;
    let is_null = c.null_token().is_some();
    let node = object.syntax().clone();
    // The object reference without its leading keyword(s).
    let (target, name_node, table, column) = match &object {
        ast::CommentObject::ObjectFunction(f) => {
            let sig = f
                .function_sig()
                .ok_or_else(|| not_object("COMMENT ON FUNCTION without a function"))?;
            let name = sig.function_name_ref().map(|n| n.syntax().clone());
            (CommentTarget::Function, name, None, None)
        }
        ast::CommentObject::ObjectProcedure(p) => {
            let sig = p
                .procedure_sig()
                .ok_or_else(|| not_object("COMMENT ON PROCEDURE without a procedure"))?;
            let name = sig
                .syntax()
                .children()
                .find(|n| n.kind() == SyntaxKind::PROCEDURE_NAME_REF)
                .or_else(|| sig.syntax().first_child());
            (CommentTarget::Procedure, name, None, None)
        }
        ast::CommentObject::ObjectView(v) => (
            CommentTarget::View,
            v.view_ref().map(|r| r.syntax().clone()),
            None,
            None,
        ),
        ast::CommentObject::ObjectTrigger(t) => {
            let table = t.relation_name_ref().and_then(|r| name_of(r.syntax()));
            (
                CommentTarget::Trigger,
                t.trigger_ref().map(|r| r.syntax().clone()),
                table,
                None,
            )
        }
        ast::CommentObject::ObjectColumn(col) => {
            let mut parts = col.name().map(|n| parts_of(n.syntax())).unwrap_or_default();
            let column = parts.pop();
            if parts.is_empty() {
                return Err(not_object("COMMENT ON COLUMN needs view.column"));
            }
            let view = QualifiedName::from_parts(parts)
                .ok_or_else(|| not_object("COMMENT ON COLUMN with an invalid name"))?;
            let range = col.name().map_or(0..0, |n| range_of(n.syntax()));
            return Ok(Comment {
                target: CommentTarget::Column,
                name: view,
                table: None,
                column,
                object_range: range,
                is_null,
            });
        }
        other => {
            let words: String = other
                .syntax()
                .children_with_tokens()
                .filter_map(|e| e.into_token())
                .filter(|t| !t.kind().is_trivia())
                .map(|t| t.text().to_ascii_uppercase())
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            return Err(not_object(format!(
                "COMMENT ON {words} is not managed code (comments on functions, procedures, views, \
                 triggers and view columns are)"
            )));
        }
    };
    let name_node = name_node.ok_or_else(|| not_object("COMMENT ON without a name"))?;
    let name = if target == CommentTarget::Trigger {
        QualifiedName::new(None, &ast::normalize_name_node(&name_node))
    } else {
        name_of(&name_node).ok_or_else(|| not_object("COMMENT ON with an invalid name"))?
    };
    // Skip the leading keyword (FUNCTION, VIEW, …) in the object range.
    let start = usize::from(name_node.text_range().start());
    let end = usize::from(node.text_range().end());
    Ok(Comment {
        target,
        name,
        table,
        column,
        object_range: start..end,
        is_null,
    })
}

fn range_of(node: &SyntaxNode) -> Range<usize> {
    let r = node.text_range();
    usize::from(r.start())..usize::from(r.end())
}

/// Identifier parts of a name node (PATH, PATH_REF, NAME_REF chains, …), normalised.
fn parts_of(node: &SyntaxNode) -> Vec<String> {
    let segments = |n: &SyntaxNode| {
        matches!(
            n.kind(),
            SyntaxKind::PATH_SEGMENT | SyntaxKind::PATH_SEGMENT_REF | SyntaxKind::NAME_REF
        )
    };
    if segments(node) {
        return vec![ast::normalize_name_node(node)];
    }
    node.descendants()
        .filter(segments)
        .map(|n| ast::normalize_name_node(&n))
        .collect()
}

fn name_of(node: &SyntaxNode) -> Option<QualifiedName> {
    QualifiedName::from_parts(parts_of(node))
}

/// A reference found in a node: kind, name, range, call arguments.
type Found = (
    ReferenceKind,
    QualifiedName,
    Range<usize>,
    Option<Vec<ArgType>>,
);

/// A custom operator used by a binary or prefix expression (`a =? b`, `a OPERATOR(app.=?) b`, `?? a`), with the
/// operands as arguments.
fn operator_use(node: &SyntaxNode) -> Option<Found> {
    let (name, range) = node.children().find_map(|c| match c.kind() {
        SyntaxKind::CUSTOM_OP => Some((
            QualifiedName::new(
                None,
                &c.text()
                    .to_string()
                    .chars()
                    .filter(|ch| !ch.is_whitespace())
                    .collect::<String>(),
            ),
            range_of(&c),
        )),
        SyntaxKind::OPERATOR_CALL => {
            let op = c.children().find(|o| o.kind() == SyntaxKind::OP)?;
            Some((operator_name(&op)?, range_of(&c)))
        }
        _ => None,
    })?;
    let operands: Vec<ArgType> = node
        .children()
        .filter(|c| !matches!(c.kind(), SyntaxKind::CUSTOM_OP | SyntaxKind::OPERATOR_CALL))
        .map(|c| crate::signature::arg_type(&c).unwrap_or(ArgType::Unknown))
        .collect();
    Some((ReferenceKind::Operator, name, range, Some(operands)))
}

/// The name called by a `CALL_EXPR`, when it is a plain (possibly qualified) name.
fn called_name(call: &SyntaxNode) -> Option<(QualifiedName, Range<usize>)> {
    let callee = call.first_child()?;
    match callee.kind() {
        SyntaxKind::NAME_REF => {}
        SyntaxKind::FIELD_EXPR => {
            let only_names = callee
                .descendants()
                .skip(1)
                .all(|n| matches!(n.kind(), SyntaxKind::NAME_REF | SyntaxKind::FIELD_EXPR));
            if !only_names {
                return None;
            }
        }
        _ => return None,
    }
    Some((name_of(&callee)?, range_of(&callee)))
}

/// The symbol of an operator node (`OP`: an optional `schema.` path and the operator's characters).
fn operator_name(op: &SyntaxNode) -> Option<QualifiedName> {
    let schema = op
        .children()
        .find(|c| c.kind() == SyntaxKind::PATH_REF)
        .and_then(|p| {
            p.descendants()
                .find(|c| c.kind() == SyntaxKind::PATH_SEGMENT_REF && !c.text().is_empty())
        })
        .map(|s| ast::normalize_name_node(&s));
    let symbol = match op.children().find(|c| c.kind() == SyntaxKind::CUSTOM_OP) {
        Some(custom) => custom.text().to_string(),
        // A built-in symbol (`=`, `<`, …) is a token of the OP node itself.
        None => op
            .children_with_tokens()
            .filter_map(|e| e.into_token())
            .filter(|t| !t.kind().is_trivia())
            .map(|t| t.text().to_string())
            .collect(),
    };
    let symbol: String = symbol.chars().filter(|c| !c.is_whitespace()).collect();
    (!symbol.is_empty()).then_some(QualifiedName {
        schema,
        name: symbol,
    })
}

/// The type an attribute (`leftarg = integer`) of a `CREATE OPERATOR | AGGREGATE` names, normalised.
fn attribute_type(list: Option<ast::AttributeList>, key: &str) -> Option<String> {
    list?.attribute_options().find_map(|o| {
        let name = o.name()?.syntax().text().to_string().to_ascii_lowercase();
        (name == key).then_some(())?;
        let value = o.attribute_value()?;
        let ty = value
            .syntax()
            .children()
            .find(|c| crate::signature::is_type_node(c.kind()))?;
        Some(normalize_type(&ty.text().to_string()))
    })
}

/// Attributes of `CREATE OPERATOR | AGGREGATE` that name a function PostgreSQL looks up when the statement runs.
const FUNCTION_ATTRIBUTES: [&str; 10] = [
    "function",
    "procedure",
    "sfunc",
    "finalfunc",
    "combinefunc",
    "serialfunc",
    "deserialfunc",
    "msfunc",
    "minvfunc",
    "mfinalfunc",
];

/// Attributes that name a type.
const TYPE_ATTRIBUTES: [&str; 5] = ["leftarg", "rightarg", "stype", "mstype", "basetype"];

#[derive(Default)]
struct Collector {
    references: Vec<Reference>,
    hazards: Vec<Hazard>,
}

impl Collector {
    /// Type references under `node` (a parameter list, a cast's signature).
    fn walk_types(&mut self, node: Option<SyntaxNode>) {
        let Some(node) = node else {
            return;
        };
        for n in node
            .descendants()
            .filter(|n| n.kind() == SyntaxKind::PATH_TYPE)
        {
            if let Some(p) = n.children().find(|c| c.kind() == SyntaxKind::PATH_REF)
                && let Some(name) = name_of(&p)
            {
                self.references.push(Reference {
                    kind: ReferenceKind::Type,
                    name,
                    range: range_of(&p),
                    checked: true,
                    args: None,
                });
            }
        }
    }

    /// The functions and types an operator's or aggregate's attributes name. `operator_args`: an operator's
    /// argument types (its function takes them).
    fn attributes(&mut self, list: Option<ast::AttributeList>, operator_args: &[ArgType]) {
        let Some(list) = list else {
            return;
        };
        for o in list.attribute_options() {
            let Some(key) = o
                .name()
                .map(|n| n.syntax().text().to_string().to_ascii_lowercase())
            else {
                continue;
            };
            let Some(value) = o.attribute_value() else {
                continue;
            };
            let Some(path) = value
                .syntax()
                .descendants()
                .find(|c| c.kind() == SyntaxKind::PATH_REF)
            else {
                continue;
            };
            let Some(name) = name_of(&path) else {
                continue;
            };
            let (kind, args) = if FUNCTION_ATTRIBUTES.contains(&key.as_str()) {
                let args = (matches!(key.as_str(), "function" | "procedure")
                    && !operator_args.is_empty())
                .then(|| operator_args.to_vec());
                (ReferenceKind::Function, args)
            } else if TYPE_ATTRIBUTES.contains(&key.as_str()) {
                (ReferenceKind::Type, None)
            } else {
                // Operators (commutator, negator: created as shells when missing), estimators: not dependencies.
                continue;
            };
            self.references.push(Reference {
                kind,
                name,
                range: range_of(&path),
                checked: true,
                args,
            });
        }
    }

    /// Collect references below `root`; `map` turns ranges of `root`'s text into statement ranges.
    fn walk(
        &mut self,
        root: &SyntaxNode,
        map: &dyn Fn(Range<usize>) -> Range<usize>,
        checked: bool,
    ) {
        let ctes: Vec<String> = root
            .descendants()
            .filter(|n| n.kind() == SyntaxKind::WITH_TABLE)
            .filter_map(|n| n.children().find(|c| c.kind() == SyntaxKind::CTE_NAME))
            .map(|n| ast::normalize_name_node(&n))
            .collect();
        for node in root.descendants() {
            let found = match node.kind() {
                SyntaxKind::RELATION_NAME_REF => name_of(&node)
                    .filter(|n| n.schema.is_some() || !ctes.contains(&n.name))
                    .map(|n| (ReferenceKind::Relation, n, range_of(&node), None)),
                SyntaxKind::CALL_EXPR => called_name(&node)
                    .map(|(n, r)| (ReferenceKind::Function, n, r, call_args(&node))),
                SyntaxKind::BIN_EXPR | SyntaxKind::PREFIX_EXPR => operator_use(&node),
                SyntaxKind::PATH_TYPE => node
                    .children()
                    .find(|c| c.kind() == SyntaxKind::PATH_REF)
                    .and_then(|p| {
                        name_of(&p).map(|n| (ReferenceKind::Type, n, range_of(&p), None))
                    }),
                SyntaxKind::ERROR => {
                    self.scan_error_node(&node, map, checked);
                    None
                }
                _ => None,
            };
            if let Some((kind, name, range, args)) = found {
                self.references.push(Reference {
                    kind,
                    name,
                    range: map(range),
                    checked,
                    args,
                });
            }
        }
    }

    /// Text the parser could not structure (e.g. `SELECT … INTO` in PL/pgSQL with squawk 2.68):
    /// every dotted name in it is a possible reference.
    fn scan_error_node(
        &mut self,
        node: &SyntaxNode,
        map: &dyn Fn(Range<usize>) -> Range<usize>,
        checked: bool,
    ) {
        let tokens: Vec<_> = node
            .descendants_with_tokens()
            .filter_map(|e| e.into_token())
            .filter(|t| !t.kind().is_trivia())
            .collect();
        let mut i = 0;
        while i < tokens.len() {
            let is_name = |k: SyntaxKind| k == SyntaxKind::IDENT;
            if is_name(tokens[i].kind())
                && tokens.get(i + 1).map(|t| t.kind()) == Some(SyntaxKind::DOT)
                && tokens.get(i + 2).is_some_and(|t| is_name(t.kind()))
            {
                let norm = |t: &squawk_syntax::SyntaxToken| normalize_token(t.text());
                let start = usize::from(tokens[i].text_range().start());
                let end = usize::from(tokens[i + 2].text_range().end());
                self.references.push(Reference {
                    kind: ReferenceKind::Any,
                    name: QualifiedName {
                        schema: Some(norm(&tokens[i])),
                        name: norm(&tokens[i + 2]),
                    },
                    range: map(start..end),
                    checked,
                    args: None,
                });
                i += 3;
            } else {
                i += 1;
            }
        }
    }
}

/// An identifier token's text as PostgreSQL reads it.
fn normalize_token(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

/// Transaction control and role changes in a routine: as statements of its body, in its
/// options (`SET role = …`), and inside strings run with `EXECUTE`.
fn scan_routine_hazards(text: &str, out: &mut Vec<Hazard>) {
    let tokens = lex::significant(text);
    scan_statement_starts(text, &tokens, 0, out);
    if let Some(body) = crate::routine_body_range(text) {
        let body_text = &text[body.clone()];
        let body_tokens = lex::significant(body_text);
        scan_statement_starts(body_text, &body_tokens, body.start, out);
        // EXECUTE 'SET ROLE …' / EXECUTE format('SET ROLE %I', r): look inside that string.
        for (i, t) in body_tokens.iter().enumerate() {
            if !t.is_word(body_text, "EXECUTE") {
                continue;
            }
            let mut j = i + 1;
            if body_tokens
                .get(j)
                .is_some_and(|t| t.is_word(body_text, "format"))
                && body_tokens.get(j + 1).map(|t| t.kind) == Some(TokenKind::OpenParen)
            {
                j += 2;
            }
            if let Some(lit) = body_tokens.get(j).filter(|t| t.is_string()) {
                let inner = string_contents(body_text, lit);
                let inner_text = &body_text[inner.clone()];
                let inner_tokens = lex::significant(inner_text);
                let before = out.len();
                scan_statement_starts(inner_text, &inner_tokens, body.start + inner.start, out);
                // Point at the whole literal: the inner range is inside a string.
                for h in &mut out[before..] {
                    h.range = (body.start + lit.range.start)..(body.start + lit.range.end);
                }
            }
        }
    }
    out.sort_by_key(|h| (h.range.start, h.range.end));
    out.dedup();
}

/// Look at every statement start of `text` (the beginning, and after `;` or the PL/pgSQL words
/// that open a statement list).
fn scan_statement_starts(text: &str, tokens: &[Tok], base: usize, out: &mut Vec<Hazard>) {
    let word = |i: usize| tokens.get(i).and_then(|t| t.word(text));
    let is = |i: usize, w: &str| tokens.get(i).is_some_and(|t| t.is_word(text, w));
    for i in 0..tokens.len() {
        let at_start = i == 0
            || tokens[i - 1].kind == TokenKind::Semi
            || ["BEGIN", "THEN", "ELSE", "LOOP"]
                .iter()
                .any(|w| tokens[i - 1].is_word(text, w));
        // `set_config('role', …)` anywhere.
        if is(i, "set_config")
            && tokens.get(i + 1).map(|t| t.kind) == Some(TokenKind::OpenParen)
            && let Some(arg) = tokens.get(i + 2).filter(|t| t.is_string())
        {
            let value = text[string_contents(text, arg)].to_ascii_lowercase();
            if value == "role" || value == "session_authorization" {
                out.push(Hazard {
                    kind: HazardKind::RoleChange,
                    range: (base + tokens[i].range.start)..(base + arg.range.end),
                });
            }
        }
        if !at_start {
            continue;
        }
        let span = |len: usize| {
            let last = (i + len - 1).min(tokens.len() - 1);
            (base + tokens[i].range.start)..(base + tokens[last].range.end)
        };
        let kind_len = match word(i).as_deref() {
            Some("COMMIT" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE") => {
                Some((HazardKind::TransactionControl, 1))
            }
            Some("START") if is(i + 1, "TRANSACTION") => Some((HazardKind::TransactionControl, 2)),
            // PL/pgSQL's BEGIN opens a block; `BEGIN;`, `BEGIN TRANSACTION|WORK|ISOLATION` do not.
            Some("BEGIN")
                if tokens.get(i + 1).map(|t| t.kind) == Some(TokenKind::Semi)
                    || ["TRANSACTION", "WORK", "ISOLATION"]
                        .iter()
                        .any(|w| is(i + 1, w)) =>
            {
                Some((HazardKind::TransactionControl, 2))
            }
            Some("SET" | "RESET") => {
                let mut j = i + 1;
                if is(j, "SESSION") || is(j, "LOCAL") {
                    j += 1;
                }
                if is(j, "ROLE") || is(j, "SESSION_AUTHORIZATION") {
                    Some((HazardKind::RoleChange, j - i + 1))
                } else if is(j, "SESSION") && is(j + 1, "AUTHORIZATION") {
                    Some((HazardKind::RoleChange, j - i + 2))
                } else if is(i + 1, "SESSION") && is(i + 2, "AUTHORIZATION") {
                    Some((HazardKind::RoleChange, 3))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some((kind, len)) = kind_len {
            out.push(Hazard {
                kind,
                range: span(len),
            });
        }
    }
}

/// The range inside the quotes of a string literal token (relative to `text`).
fn string_contents(text: &str, tok: &Tok) -> Range<usize> {
    let s = tok.text(text);
    if let Some(after) = s.strip_prefix('$') {
        let tag_len = after.find('$').map_or(s.len(), |i| i + 2);
        let end = s.len().saturating_sub(tag_len).max(tag_len);
        return (tok.range.start + tag_len)..(tok.range.start + end);
    }
    let open = s.find('\'').map_or(0, |i| i + 1);
    let close = usize::from(s.len() > open && s.ends_with('\''));
    (tok.range.start + open)..(tok.range.end - close)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(sql: &str) -> (Create, ObjectStatement) {
        let o = parse_object(sql).unwrap();
        match &o.declaration {
            Declaration::Create(c) => (c.clone(), o),
            other => panic!("not a create: {other:?}"),
        }
    }

    fn refs(o: &ObjectStatement) -> Vec<String> {
        o.references
            .iter()
            .map(|r| {
                format!(
                    "{:?} {}{}",
                    r.kind,
                    r.name,
                    if r.checked { "" } else { " (soft)" }
                )
            })
            .collect()
    }

    #[test]
    fn names_are_normalised() {
        let (c, _) = create(
            "create or replace function \"My S\".\"Odd\"\"Name\"(variadic a int[]) returns setof text language sql as 'select 1'",
        );
        assert_eq!(c.kind, ObjectKind::Function);
        assert_eq!(c.name, QualifiedName::new(Some("My S"), "Odd\"Name"));
        assert!(c.or_replace);
        assert_eq!(c.language.as_deref(), Some("sql"));
        assert_eq!(c.name.to_string(), "\"My S\".\"Odd\"\"Name\"");
        let (c, _) = create("CREATE VIEW App.V AS SELECT 1");
        assert_eq!(c.name.to_string(), "app.v");
        let (c, _) = create("CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN END $$");
        assert_eq!(c.name, QualifiedName::new(None, "p"));
        assert_eq!(c.kind, ObjectKind::Procedure);
    }

    #[test]
    fn routine_parameters_and_call_arguments() {
        let (c, o) = create(
            "create function app.f(x integer, out y text, variadic z int[] default '{}', inout w double precision) \
             returns int language sql as $$ select app.f(x::text, 1, 'a', cast(x as int8), $1, x, null, 1.5, true, \
             (2)), app.g(a => 1), app.h(), count(*) $$",
        );
        let p: Vec<(ParamMode, Option<&str>, &str, bool)> = c
            .params
            .iter()
            .map(|p| (p.mode, p.name.as_deref(), p.ty.as_str(), p.has_default))
            .collect();
        assert_eq!(
            p,
            [
                (ParamMode::In, Some("x"), "integer", false),
                (ParamMode::Out, Some("y"), "text", false),
                (ParamMode::Variadic, Some("z"), "integer[]", true),
                (ParamMode::InOut, Some("w"), "double precision", false),
            ]
        );
        let calls: Vec<(String, Option<Vec<ArgType>>)> = o
            .references
            .iter()
            .filter(|r| r.kind == ReferenceKind::Function)
            .map(|r| (r.name.to_string(), r.args.clone()))
            .collect();
        let known = |t: &str| ArgType::Known(t.into());
        assert_eq!(
            calls,
            [
                (
                    "app.f".into(),
                    Some(vec![
                        known("text"),
                        known("integer"),
                        ArgType::Unknown,
                        known("bigint"),
                        ArgType::Positional(1),
                        ArgType::Name("x".into()),
                        ArgType::Unknown,
                        known("numeric"),
                        known("boolean"),
                        known("integer"),
                    ])
                ),
                ("app.g".into(), None),
                ("app.h".into(), Some(vec![])),
                ("count".into(), None),
            ]
        );
    }

    #[test]
    fn aggregates_operators_and_casts() {
        let (c, o) = create(
            "create aggregate app.total(integer) (sfunc = app.step, stype = integer, finalfunc = fin, initcond = '0')",
        );
        assert_eq!(
            (c.kind, c.name.to_string()),
            (ObjectKind::Aggregate, "app.total".into())
        );
        assert_eq!(c.params[0].ty, "integer");
        assert_eq!(
            refs(&o),
            [
                "Type integer",
                "Function app.step",
                "Type integer",
                "Function fin"
            ]
        );
        let (c, o) = create(
            "CREATE OPERATOR app.=? (function = app.eq, leftarg = int4, rightarg = integer, commutator = OPERATOR(app.=?))",
        );
        assert_eq!(c.kind, ObjectKind::Operator);
        assert_eq!(c.name, QualifiedName::new(Some("app"), "=?"));
        assert!(!c.kind.replaceable());
        let eq = o.references.iter().find(|r| r.name.name == "eq").unwrap();
        let int = ArgType::Known("integer".into());
        assert_eq!(eq.args, Some(vec![int.clone(), int.clone()]));
        let (c, _) = create("create operator ?? (procedure = app.truthy, rightarg = boolean)");
        assert_eq!((c.name.name.as_str(), c.params.len()), ("??", 1));
        let (c, o) = create(
            "CREATE CAST (text AS app.amount) WITH FUNCTION app.amount_of(text) AS IMPLICIT",
        );
        assert_eq!(
            (c.kind, c.name.name.as_str()),
            (ObjectKind::Cast, "text AS app.amount")
        );
        let f = o
            .references
            .iter()
            .find(|r| r.kind == ReferenceKind::Function)
            .unwrap();
        assert_eq!(f.name.to_string(), "app.amount_of");
        assert_eq!(f.args, Some(vec![ArgType::Known("text".into())]));
        // Custom operators used in expressions are references, with their operands.
        let (_, o) = create(
            "create view app.v as select 1 operator(app.=?) 2 as a, ?? true as b, 1 = 1 as c",
        );
        let ops: Vec<(String, Option<Vec<ArgType>>)> = o
            .references
            .iter()
            .filter(|r| r.kind == ReferenceKind::Operator)
            .map(|r| {
                (
                    format!("{:?}.{}", r.name.schema, r.name.name),
                    r.args.clone(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            [
                ("Some(\"app\").=?".into(), Some(vec![int.clone(), int])),
                (
                    "None.??".into(),
                    Some(vec![ArgType::Known("boolean".into())])
                ),
            ]
        );
        let e = parse_object("CREATE TYPE app.mood AS ENUM ('a')").unwrap_err();
        assert_eq!(e.message, "CREATE TYPE is not managed code");
    }

    #[test]
    fn view_references_skip_ctes() {
        let (_, o) = create(
            "create view s.v as with x as (select 1) select s.f(a), b.c from x, s.t join s.f2() as y on true, lateral other.g() where exists (select 1 from w)",
        );
        assert_eq!(
            refs(&o),
            [
                "Function s.f",
                "Relation s.t",
                "Function s.f2",
                "Function other.g",
                "Relation w"
            ]
        );
    }

    #[test]
    fn sql_bodies_are_checked_plpgsql_bodies_are_soft() {
        let (_, o) = create(
            "create function s.h(a int default s.d()) returns int language sql begin atomic select s.f(a) + count(*) from s.t; end",
        );
        assert_eq!(
            refs(&o),
            [
                "Type int",
                "Function s.d",
                "Type int",
                "Function s.f",
                "Function count",
                "Relation s.t"
            ]
        );
        let sql = "create function s.k() returns setof s.v language sql as $$ select * from s.v $$";
        let (_, o) = create(sql);
        assert_eq!(refs(&o), ["Type s.v", "Relation s.v"]);
        assert_eq!(&sql[o.references[1].range.clone()], "s.v");
        assert_eq!(o.references[1].range.start, sql.rfind("s.v").unwrap());

        let sql = "create function s.p() returns int language plpgsql as $$
declare r record;
begin
  perform s.f(1);
  select * into r from s.t;
  insert into s.t2 values (s.g());
  return s.q(1);
end $$";
        let (c, o) = create(sql);
        assert_eq!(c.language.as_deref(), Some("plpgsql"));
        let soft: Vec<String> = refs(&o)
            .into_iter()
            .filter(|r| r.ends_with("(soft)"))
            .collect();
        assert_eq!(
            soft,
            [
                "Type record (soft)",
                "Function s.f (soft)",
                "Any s.t (soft)",
                "Relation s.t2 (soft)",
                "Function s.g (soft)",
                "Function s.q (soft)"
            ]
        );
        let t2 = o.references.iter().find(|r| r.name.name == "t2").unwrap();
        assert_eq!(&sql[t2.range.clone()], "s.t2");
    }

    #[test]
    fn triggers_name_their_table_and_function() {
        let (c, o) = create(
            "CREATE TRIGGER Touch BEFORE UPDATE ON app.\"Accounts\" FOR EACH ROW EXECUTE FUNCTION app.touch()",
        );
        assert_eq!(c.kind, ObjectKind::Trigger);
        assert_eq!(c.name, QualifiedName::new(None, "touch"));
        assert_eq!(c.table, Some(QualifiedName::new(Some("app"), "Accounts")));
        assert_eq!(
            refs(&o),
            ["Relation app.\"Accounts\"", "Function app.touch"]
        );
    }

    #[test]
    fn comments() {
        let sql = "comment on function s.f(int, text) is 'x'";
        let o = parse_object(sql).unwrap();
        let Declaration::Comment(c) = &o.declaration else {
            panic!()
        };
        assert_eq!(c.target, CommentTarget::Function);
        assert_eq!(c.name.to_string(), "s.f");
        assert_eq!(&sql[c.object_range.clone()], "s.f(int, text)");
        let o = parse_object("COMMENT ON TRIGGER trg ON s.t IS NULL").unwrap();
        let Declaration::Comment(c) = &o.declaration else {
            panic!()
        };
        assert!(c.is_null);
        assert_eq!(
            c.table.as_ref().map(|t| t.to_string()).as_deref(),
            Some("s.t")
        );
        let sql = "comment on column s.v.a is 'c'";
        let o = parse_object(sql).unwrap();
        let Declaration::Comment(c) = &o.declaration else {
            panic!()
        };
        assert_eq!(c.target, CommentTarget::Column);
        assert_eq!(c.name.to_string(), "s.v");
        assert_eq!(c.column.as_deref(), Some("a"));
        assert_eq!(&sql[c.object_range.clone()], "s.v.a");
        let e = parse_object("comment on table s.t is 'x'").unwrap_err();
        assert!(
            e.message
                .starts_with("COMMENT ON TABLE is not managed code"),
            "{e}"
        );
    }

    #[test]
    fn other_statements_are_refused_by_kind() {
        for (sql, kind) in [
            ("CREATE TABLE t (id int)", "CREATE TABLE"),
            (
                "create materialized view v as select 1",
                "CREATE MATERIALIZED VIEW",
            ),
            ("insert into t values (1)", "INSERT"),
            ("GRANT SELECT ON t TO x", "GRANT"),
            ("CREATE EXTENSION hstore", "CREATE EXTENSION"),
        ] {
            let e = parse_object(sql).unwrap_err();
            assert_eq!(e.message, format!("{kind} is not managed code"), "{sql}");
        }
        assert!(parse_object("create temp view v as select 1").is_err());
    }

    #[test]
    fn hazards() {
        let sql = "create procedure s.p() language plpgsql security definer set role = admin as $$
begin
  update s.t set role = 'x';
  commit;
  if true then rollback; end if;
  set local role foo;
  reset role;
  perform set_config('role', 'x', true);
  execute 'SET SESSION AUTHORIZATION bob';
  raise notice 'commit later';
end $$";
        let o = parse_object(sql).unwrap();
        let found: Vec<(HazardKind, &str)> = o
            .hazards
            .iter()
            .map(|h| (h.kind, &sql[h.range.clone()]))
            .collect();
        assert_eq!(
            found,
            [
                (HazardKind::SecurityDefiner, "security definer"),
                (HazardKind::RoleChange, "set role = admin"),
                (HazardKind::TransactionControl, "commit"),
                (HazardKind::TransactionControl, "rollback"),
                (HazardKind::RoleChange, "set local role"),
                (HazardKind::RoleChange, "reset role"),
                (HazardKind::RoleChange, "set_config('role'"),
                (HazardKind::RoleChange, "'SET SESSION AUTHORIZATION bob'"),
            ]
        );
        let (_, o) =
            create("create function f() returns int language plpgsql as $$ begin return 1; end $$");
        assert!(o.hazards.is_empty());
    }
}
