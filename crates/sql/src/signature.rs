//! Routine signatures and call arguments, as far as the text tells: what tells overloads apart.
//!
//! [`Param`]s come from a `CREATE FUNCTION | PROCEDURE` parameter list; [`ArgType`]s from a call's arguments
//! (casts, literals, `$n`, parameter names). Types are compared by [`normalize_type`]'s spelling, the one
//! PostgreSQL's catalog uses.

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};

/// How a routine parameter is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamMode {
    /// `IN` (the default).
    In,
    /// `OUT`: not part of the call's arguments.
    Out,
    /// `INOUT`.
    InOut,
    /// `VARIADIC`: any number of trailing arguments of the array's element type.
    Variadic,
}

/// A declared routine parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Param {
    /// How it is passed.
    pub mode: ParamMode,
    /// Its name, if it has one (normalised).
    pub name: Option<String>,
    /// Its type, normalised by [`normalize_type`] (`int4` → `integer`, typmods dropped).
    pub ty: String,
    /// It has a `DEFAULT` (callers may leave it out).
    pub has_default: bool,
}

impl Param {
    /// True when the parameter is one of the call's arguments (not `OUT`).
    pub fn is_input(&self) -> bool {
        self.mode != ParamMode::Out
    }
}

/// What a call's argument is known to be, as far as the text tells.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArgType {
    /// A type, normalised: from a cast (`x::text`, `CAST(x AS text)`) or a literal (`1`, `1.5`, `true`).
    Known(String),
    /// `$n`: the calling routine's n-th parameter (1-based).
    Positional(usize),
    /// A bare name: the calling routine's parameter of that name, or a column.
    Name(String),
    /// Anything else (a string literal or `NULL` is `unknown` to PostgreSQL too: it fits any type).
    Unknown,
}

/// The arguments of a call, when they are all positional.
pub(crate) fn call_args(call: &SyntaxNode) -> Option<Vec<ArgType>> {
    let list = call
        .children()
        .find(|c| c.kind() == SyntaxKind::ARG_LIST)
        .and_then(ast::ArgList::cast)?;
    if list.star_token().is_some() || list.all_or_distinct().is_some() {
        return None;
    }
    let mut out = Vec::new();
    for arg in list
        .syntax()
        .children()
        .filter(|c| c.kind() == SyntaxKind::ARG)
    {
        let expr = arg.first_child()?;
        out.push(arg_type(&expr)?);
    }
    Some(out)
}

/// What one argument expression is (`None`: a named argument, which makes the call's arguments unknown).
pub(crate) fn arg_type(expr: &SyntaxNode) -> Option<ArgType> {
    Some(match expr.kind() {
        SyntaxKind::NAMED_ARG => return None,
        SyntaxKind::CAST_EXPR => expr
            .children()
            .find(|c| is_type_node(c.kind()))
            .map_or(ArgType::Unknown, |t| {
                ArgType::Known(normalize_type(&t.text().to_string()))
            }),
        SyntaxKind::LITERAL => {
            let token = expr.first_token();
            match token.as_ref().map(|t| t.kind()) {
                Some(SyntaxKind::INT_NUMBER) => {
                    let text = token.map(|t| t.text().to_string()).unwrap_or_default();
                    // PostgreSQL types an integer literal by its size.
                    ArgType::Known(match text.parse::<i64>() {
                        Ok(v) if i32::try_from(v).is_ok() => "integer".into(),
                        Ok(_) => "bigint".into(),
                        Err(_) => "numeric".into(),
                    })
                }
                Some(SyntaxKind::NUMERIC_NUMBER) => ArgType::Known("numeric".into()),
                Some(SyntaxKind::TRUE_KW | SyntaxKind::FALSE_KW) => {
                    ArgType::Known("boolean".into())
                }
                Some(SyntaxKind::POSITIONAL_PARAM) => token
                    .and_then(|t| t.text().trim_start_matches('$').parse().ok())
                    .map_or(ArgType::Unknown, ArgType::Positional),
                _ => ArgType::Unknown,
            }
        }
        SyntaxKind::NAME_REF => ArgType::Name(ast::normalize_name_node(expr)),
        SyntaxKind::PAREN_EXPR => match expr.children().next() {
            Some(inner) => arg_type(&inner)?,
            None => ArgType::Unknown,
        },
        _ => ArgType::Unknown,
    })
}

/// Node kinds that hold a type name.
pub(crate) fn is_type_node(kind: SyntaxKind) -> bool {
    matches!(
        kind,
        SyntaxKind::PATH_TYPE
            | SyntaxKind::ARRAY_TYPE
            | SyntaxKind::DOUBLE_TYPE
            | SyntaxKind::CHARACTER_TYPE
            | SyntaxKind::VARCHAR_TYPE
            | SyntaxKind::BIT_TYPE
            | SyntaxKind::BIT_VARYING_TYPE
            | SyntaxKind::TIME_TYPE
            | SyntaxKind::TIMESTAMP_TYPE
            | SyntaxKind::INTERVAL_TYPE
            | SyntaxKind::PERCENT_TYPE
    )
}

/// A type name as PostgreSQL's catalog spells it, for comparing declarations and casts: lower case (quoted parts
/// kept), `pg_catalog.` dropped, type modifiers dropped, aliases resolved (`int4`, `int` → `integer`,
/// `varchar` → `character varying`, `timestamptz` → `timestamp with time zone`, …), arrays as `elem[]`.
///
/// ```
/// use pgstrata_sql::objects::normalize_type;
/// assert_eq!(normalize_type("INT4"), "integer");
/// assert_eq!(normalize_type("pg_catalog.varchar(20)[]"), "character varying[]");
/// assert_eq!(normalize_type("double  precision"), "double precision");
/// assert_eq!(normalize_type("app.\"Money\""), "app.\"Money\"");
/// ```
pub fn normalize_type(text: &str) -> String {
    let mut dims = 0;
    let mut base = String::new();
    let mut depth = 0;
    let mut quoted = false;
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                base.push(c);
            }
            _ if quoted => base.push(c),
            '(' => depth += 1,
            ')' => depth -= 1,
            '[' if depth == 0 => {
                dims += 1;
                // `[3]` bounds mean nothing to PostgreSQL.
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
            }
            _ if depth > 0 => {}
            c if c.is_whitespace() => {
                if !base.ends_with(' ') && !base.is_empty() {
                    base.push(' ');
                }
            }
            c => base.extend(c.to_lowercase()),
        }
    }
    let mut base = base.trim().to_string();
    if let Some(rest) = base.strip_suffix(" array") {
        base = rest.trim().to_string();
        dims = dims.max(1);
    }
    if let Some(rest) = base.strip_prefix("pg_catalog.") {
        base = rest.to_string();
    }
    let canonical = match base.as_str() {
        "int" | "int4" | "integer" => "integer",
        "int2" | "smallint" => "smallint",
        "int8" | "bigint" => "bigint",
        "float8" | "double precision" | "float" => "double precision",
        "float4" | "real" => "real",
        "bool" | "boolean" => "boolean",
        "decimal" | "numeric" => "numeric",
        "varchar" | "character varying" | "char varying" => "character varying",
        "char" | "character" | "bpchar" => "character",
        "timestamptz" | "timestamp with time zone" => "timestamp with time zone",
        "timestamp" | "timestamp without time zone" => "timestamp without time zone",
        "timetz" | "time with time zone" => "time with time zone",
        "time" | "time without time zone" => "time without time zone",
        "varbit" | "bit varying" => "bit varying",
        other => other,
    }
    .to_string();
    let mut out = canonical;
    for _ in 0..dims {
        out.push_str("[]");
    }
    out
}

/// A routine's declared parameters.
pub(crate) fn params_of(list: Option<ast::ParamList>) -> Vec<Param> {
    let Some(list) = list else {
        return Vec::new();
    };
    list.params()
        .map(|p| {
            let node = p.syntax();
            let mode = node
                .children()
                .find_map(|c| match c.kind() {
                    SyntaxKind::PARAM_OUT => Some(ParamMode::Out),
                    SyntaxKind::PARAM_IN_OUT => Some(ParamMode::InOut),
                    SyntaxKind::PARAM_VARIADIC => Some(ParamMode::Variadic),
                    _ => None,
                })
                .unwrap_or(ParamMode::In);
            let name = node
                .children()
                .find(|c| c.kind() == SyntaxKind::PARAM_NAME)
                .map(|n| ast::normalize_name_node(&n));
            let ty = node
                .children()
                .find(|c| is_type_node(c.kind()))
                .map(|t| normalize_type(&t.text().to_string()))
                .unwrap_or_default();
            Param {
                mode,
                name,
                ty,
                has_default: p.param_default().is_some(),
            }
        })
        .collect()
}
