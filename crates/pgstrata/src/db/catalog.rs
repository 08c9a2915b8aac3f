//! What the catalog says about managed objects: identities, versions (the `xmin` of their catalog
//! rows), definition hashes, and dependents (`pg_depend`). Every identity Strata records comes
//! from here, never from text it built itself.

use std::collections::{HashMap, HashSet};

use postgres_protocol::escape::escape_literal;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::error::{Error, Result};
use crate::report::code::CodeKind;
use crate::source::code::CodeObject;
use pgstrata_sql::objects::CommentTarget;

/// A PostgreSQL object id.
pub(crate) type Oid = u32;

/// The catalog table a managed object lives in; with its oid, it identifies the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum CatalogClass {
    /// `pg_proc`: functions and procedures.
    Proc,
    /// `pg_class`: views (and, as references, any relation or its row type).
    Class,
    /// `pg_trigger`: triggers.
    Trigger,
    /// `pg_operator`: operators.
    Operator,
    /// `pg_cast`: casts.
    Cast,
}

impl CatalogClass {
    /// The catalog's name, as `regclass` text.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CatalogClass::Proc => "pg_proc",
            CatalogClass::Class => "pg_class",
            CatalogClass::Trigger => "pg_trigger",
            CatalogClass::Operator => "pg_operator",
            CatalogClass::Cast => "pg_cast",
        }
    }

    /// The class named `name`, if managed objects can live there (`pg_type`, `pg_constraint`, … cannot).
    pub(crate) fn parse(name: &str) -> Option<CatalogClass> {
        match name {
            "pg_proc" => Some(CatalogClass::Proc),
            "pg_class" => Some(CatalogClass::Class),
            "pg_trigger" => Some(CatalogClass::Trigger),
            "pg_operator" => Some(CatalogClass::Operator),
            "pg_cast" => Some(CatalogClass::Cast),
            _ => None,
        }
    }

    /// Where objects of `kind` live (None for comments, which live with the object they comment on).
    pub(crate) fn of(kind: CodeKind) -> Option<CatalogClass> {
        match kind {
            CodeKind::Function | CodeKind::Procedure | CodeKind::Aggregate => {
                Some(CatalogClass::Proc)
            }
            CodeKind::View => Some(CatalogClass::Class),
            CodeKind::Trigger => Some(CatalogClass::Trigger),
            CodeKind::Operator => Some(CatalogClass::Operator),
            CodeKind::Cast => Some(CatalogClass::Cast),
            CodeKind::Comment => None,
        }
    }

    /// Where the object a comment targets lives.
    pub(crate) fn of_comment_target(target: CommentTarget) -> CatalogClass {
        match target {
            CommentTarget::Function | CommentTarget::Procedure => CatalogClass::Proc,
            CommentTarget::Trigger => CatalogClass::Trigger,
            CommentTarget::View | CommentTarget::Column => CatalogClass::Class,
        }
    }

    /// Where a recorded object lives (a comment's identity starts with the kind of its object: `function …`,
    /// `procedure …`, `view …`, `column …`, `trigger …`).
    pub(crate) fn of_recorded(kind: CodeKind, identity: &str) -> CatalogClass {
        CatalogClass::of(kind).unwrap_or_else(|| match identity.split(' ').next() {
            Some("function" | "procedure") => CatalogClass::Proc,
            Some("trigger") => CatalogClass::Trigger,
            _ => CatalogClass::Class,
        })
    }
}

impl std::fmt::Display for CatalogClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `schema.name(identity arguments)` of a routine `p` in namespace `n`.
const ROUTINE_IDENTITY: &str = "quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' \
     || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')'";
const VIEW_IDENTITY: &str = "quote_ident(n.nspname) || '.' || quote_ident(c.relname)";
const TRIGGER_IDENTITY: &str =
    "quote_ident(t.tgname) || ' ON ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname)";

/// A type's name that does not depend on the search_path: built-in types as `format_type` spells them, others
/// `schema.name`. `{}` is the type's oid.
macro_rules! type_name {
    ($oid:literal) => {
        concat!(
            "(SELECT CASE WHEN tn.nspname = 'pg_catalog' THEN pg_catalog.format_type(ty.oid, NULL)
                          ELSE quote_ident(tn.nspname) || '.' || quote_ident(ty.typname) END
                FROM pg_catalog.pg_type ty JOIN pg_catalog.pg_namespace tn ON tn.oid = ty.typnamespace
               WHERE ty.oid = ",
            $oid,
            ")"
        )
    };
}

/// `schema.op(left, right)` of an operator `o` in namespace `n` (`NONE` for a prefix operator's left side).
const OPERATOR_IDENTITY: &str = concat!(
    "quote_ident(n.nspname) || '.' || o.oprname || '(' || coalesce(",
    type_name!("o.oprleft"),
    ", 'NONE') || ', ' || coalesce(",
    type_name!("o.oprright"),
    ", 'NONE') || ')'"
);

/// `(source AS target)` of a cast `c`.
const CAST_IDENTITY: &str = concat!(
    "'(' || ",
    type_name!("c.castsource"),
    " || ' AS ' || ",
    type_name!("c.casttarget"),
    " || ')'"
);

/// Identities of objects by name: parameters are arrays of class (`pg_proc`, `pg_class`, `pg_trigger`), schema,
/// name and (for triggers) table; rows are (class, schema, name, table, oid, version, identity).
pub(crate) const RESOLVE_NAMES: &str = "
    WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(cls, schema, name, tbl))
    SELECT 'pg_proc', n.nspname::text, p.proname::text, '', p.oid, p.xmin::text,
           quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '('
               || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')'
      FROM k JOIN pg_catalog.pg_namespace n ON n.nspname = k.schema
      JOIN pg_catalog.pg_proc p ON p.pronamespace = n.oid AND p.proname = k.name
     WHERE k.cls = 'pg_proc'
    UNION ALL
    SELECT 'pg_class', n.nspname::text, c.relname::text, '', c.oid, c.xmin::text || ':' || coalesce(r.xmin::text, ''),
           quote_ident(n.nspname) || '.' || quote_ident(c.relname)
      FROM k JOIN pg_catalog.pg_namespace n ON n.nspname = k.schema
      JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = k.name AND c.relkind = 'v'
      LEFT JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid AND r.rulename = '_RETURN'
     WHERE k.cls = 'pg_class'
    UNION ALL
    SELECT 'pg_trigger', n.nspname::text, t.tgname::text, c.relname::text, t.oid, t.xmin::text,
           quote_ident(t.tgname) || ' ON ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
      FROM k JOIN pg_catalog.pg_namespace n ON n.nspname = k.schema
      JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = k.tbl
      JOIN pg_catalog.pg_trigger t ON t.tgrelid = c.oid AND t.tgname = k.name
     WHERE k.cls = 'pg_trigger'";

/// The current version of objects: `xmin` of their catalog rows (a view's with its `_RETURN` rule's), or for
/// comments the md5 of the text. Parameters: oids of routines ($1), views ($2), triggers ($3), and comments as
/// commented object's catalog ($4), oid ($5) and column ($6); rows are (kind, oid, sub_id, version). Objects that
/// no longer exist are absent. Also run by the psql script of `strata export` (so both record the same thing).
pub(crate) const VERSIONS_SQL: &str = "SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
                    p.oid, 0, p.xmin::text || coalesce(':' || ag.xmin::text, '')
               FROM pg_catalog.pg_proc p LEFT JOIN pg_catalog.pg_aggregate ag ON ag.aggfnoid = p.oid
              WHERE p.oid = ANY($1)
             UNION ALL
             SELECT 'view', c.oid, 0, c.xmin::text || ':' || coalesce(r.xmin::text, '')
               FROM pg_catalog.pg_class c
               LEFT JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid AND r.rulename = '_RETURN'
              WHERE c.oid = ANY($2) AND c.relkind = 'v'
             UNION ALL
             SELECT 'trigger', t.oid, 0, t.xmin::text FROM pg_catalog.pg_trigger t WHERE t.oid = ANY($3)
             UNION ALL
             SELECT 'comment', s.oid, s.sub,
                    md5(coalesce((SELECT d.description FROM pg_catalog.pg_description d
                                   WHERE d.classoid = s.cls::regclass AND d.objoid = s.oid AND d.objsubid = s.sub), ''))
               FROM unnest($4::text[], $5::oid[], $6::int4[]) AS s(cls, oid, sub)
             UNION ALL
             SELECT 'operator', o.oid, 0, o.xmin::text FROM pg_catalog.pg_operator o WHERE o.oid = ANY($7)
             UNION ALL
             SELECT 'cast', c.oid, 0, c.xmin::text FROM pg_catalog.pg_cast c WHERE c.oid = ANY($8)";

/// The definition hash of objects (same parameters as [`VERSIONS_SQL`]; rows are (kind, oid, sub_id, hash)): the md5
/// of the catalog columns that define the object (see [`hashes`]). Also run by the psql script of `strata export`.
pub(crate) const HASHES_SQL: &str = "SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END, p.oid, 0,
                    md5((p.prosrc, p.prosqlbody, p.probin, p.proconfig, p.prorettype, p.proretset, p.prokind,
                         p.prosecdef, p.provolatile, p.proisstrict, p.proleakproof, p.proparallel, p.procost,
                         p.prorows, p.prolang, p.proargtypes, p.proallargtypes, p.proargmodes, p.proargnames,
                         p.proargdefaults, p.prosupport, p.protrftypes)::text)
               FROM pg_catalog.pg_proc p WHERE p.oid = ANY($1) AND p.prokind IN ('f', 'p')
             UNION ALL
             SELECT 'aggregate', p.oid, 0,
                    md5((p.proargtypes, p.proallargtypes, p.proargmodes, p.proargnames, p.prorettype, p.proparallel,
                         ag.aggkind, ag.aggnumdirectargs, ag.aggtransfn, ag.aggfinalfn, ag.aggcombinefn,
                         ag.aggserialfn, ag.aggdeserialfn, ag.aggmtransfn, ag.aggminvtransfn, ag.aggmfinalfn,
                         ag.aggfinalextra, ag.aggmfinalextra, ag.aggfinalmodify, ag.aggmfinalmodify, ag.aggsortop,
                         ag.aggtranstype, ag.aggtransspace, ag.aggmtranstype, ag.aggmtransspace, ag.agginitval,
                         ag.aggminitval)::text)
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_aggregate ag ON ag.aggfnoid = p.oid
              WHERE p.oid = ANY($1) AND p.prokind = 'a'
             UNION ALL
             SELECT 'view', c.oid, 0,
                    md5((r.ev_action, c.reloptions)::text)
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid AND r.rulename = '_RETURN'
              WHERE c.oid = ANY($2) AND c.relkind = 'v'
             UNION ALL
             SELECT 'trigger', t.oid, 0, md5((t.tgname, t.tgrelid, t.tgfoid, t.tgtype, t.tgenabled, t.tgattr, t.tgargs, t.tgqual,
                         t.tgoldtable, t.tgnewtable, t.tgdeferrable, t.tginitdeferred)::text)
               FROM pg_catalog.pg_trigger t WHERE t.oid = ANY($3)
             UNION ALL
             SELECT 'comment', s.oid, s.sub,
                    md5(coalesce((SELECT d.description FROM pg_catalog.pg_description d
                                   WHERE d.classoid = s.cls::regclass AND d.objoid = s.oid AND d.objsubid = s.sub), ''))
               FROM unnest($4::text[], $5::oid[], $6::int4[]) AS s(cls, oid, sub)
             UNION ALL
             SELECT 'operator', o.oid, 0,
                    md5((o.oprname, o.oprkind, o.oprcanmerge, o.oprcanhash, o.oprleft, o.oprright, o.oprresult,
                         o.oprcom, o.oprnegate, o.oprcode, o.oprrest, o.oprjoin)::text)
               FROM pg_catalog.pg_operator o WHERE o.oid = ANY($7)
             UNION ALL
             SELECT 'cast', c.oid, 0, md5((c.castsource, c.casttarget, c.castfunc, c.castcontext, c.castmethod)::text)
               FROM pg_catalog.pg_cast c WHERE c.oid = ANY($8)";

/// A query giving the oid of the object of catalog $1 (`pg_proc`, `pg_class`, `pg_trigger`) whose identity (as
/// recorded, from the same expressions as [`probe_sql`]) is $2; no row when there is none. Used by the psql script
/// of `strata export` to find what it drops.
pub(crate) fn find_by_identity_sql() -> String {
    format!(
        "SELECT p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
          WHERE $1::text = 'pg_proc' AND {ROUTINE_IDENTITY} = $2::text
         UNION ALL
         SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE $1::text = 'pg_class' AND c.relkind = 'v' AND {VIEW_IDENTITY} = $2::text
         UNION ALL
         SELECT t.oid FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE $1::text = 'pg_trigger' AND {TRIGGER_IDENTITY} = $2::text
         UNION ALL
         SELECT o.oid FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
          WHERE $1::text = 'pg_operator' AND {OPERATOR_IDENTITY} = $2::text
         UNION ALL
         SELECT c.oid FROM pg_catalog.pg_cast c WHERE $1::text = 'pg_cast' AND {CAST_IDENTITY} = $2::text"
    )
}

/// One object as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CatalogObject {
    pub oid: Oid,
    /// Column number (comments on view columns), else 0.
    pub sub_id: i32,
    /// `xmin` of the catalog row(s); for comments, the md5 of the text.
    pub version: String,
    pub identity: String,
    /// The schema the object lives in.
    pub schema: String,
}

/// A row of `strata.managed_object`.
#[derive(Debug, Clone)]
pub(crate) struct StoredObject {
    pub package: String,
    pub kind: CodeKind,
    pub identity: String,
    pub oid: Oid,
    pub sub_id: i32,
    pub version: String,
    pub hash: String,
    pub source_hash: String,
    pub file: String,
    pub line: i32,
}

/// Look up an object in a map keyed by (kind, oid, sub_id), treating functions and procedures alike (they share
/// `pg_proc`, and the catalog queries name the kind they find).
pub(crate) fn lookup<V>(
    map: &HashMap<(CodeKind, Oid, i32), V>,
    kind: CodeKind,
    oid: Oid,
    sub: i32,
) -> Option<&V> {
    map.get(&(kind, oid, sub)).or_else(|| {
        let twin = match kind {
            CodeKind::Function => CodeKind::Procedure,
            CodeKind::Procedure => CodeKind::Function,
            _ => return None,
        };
        map.get(&(twin, oid, sub))
    })
}

/// The recorded managed objects of `packages`. Empty when the table does not exist yet (`known`: it is known to
/// exist, no need to check).
pub(crate) async fn stored(
    client: &Client,
    packages: &[String],
    known: bool,
) -> Result<Vec<StoredObject>> {
    let exists: bool = known
        || client
            .query_typed_one(
                "SELECT to_regclass('strata.managed_object') IS NOT NULL",
                &[],
            )
            .await
            .map_err(Error::db("checking for strata.managed_object"))?
            .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query_typed(
            "SELECT package, kind, identity, object_oid, sub_id, catalog_version, catalog_hash, source_hash, file,
                    line
               FROM strata.managed_object WHERE package = ANY($1) ORDER BY package, seq",
            &[(&packages, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .map_err(Error::db("reading strata.managed_object"))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(StoredObject {
                package: r.get(0),
                kind: CodeKind::parse(r.get(1))?,
                identity: r.get(2),
                oid: r.get(3),
                sub_id: r.get(4),
                version: r.get(5),
                hash: r.get(6),
                source_hash: r.get(7),
                file: r.get(8),
                line: r.get(9),
            })
        })
        .collect())
}

/// The current version (`xmin` of the catalog rows; for comments, the md5 of the text) of objects given as
/// (kind, oid, sub_id, catalog class). Objects that no longer exist are absent from the result.
pub(crate) async fn versions(
    client: &Client,
    objects: &[(CodeKind, Oid, i32, CatalogClass)],
) -> Result<HashMap<(CodeKind, Oid, i32), String>> {
    per_object(
        client,
        VERSIONS_SQL,
        objects,
        "reading the catalog state of managed objects",
    )
    .await
}

/// The definition hash of objects, by (kind, oid, sub_id); absent objects are left out. It is the md5 of the
/// catalog columns that define the object (for views, the stored query tree) rather than of the deparsed text
/// (`pg_get_functiondef`, `pg_get_viewdef`): as precise, and cheaper with thousands of objects.
/// Owner and privileges are left out: grants are not drift.
/// `objects` gives (kind, oid, sub_id, catalog class) for each.
pub(crate) async fn hashes(
    client: &Client,
    objects: &[(CodeKind, Oid, i32, CatalogClass)],
) -> Result<HashMap<(CodeKind, Oid, i32), String>> {
    per_object(
        client,
        HASHES_SQL,
        objects,
        "hashing the definitions of managed objects",
    )
    .await
}

/// Run `sql` ([`VERSIONS_SQL`] or [`HASHES_SQL`], which take the same parameters) for `objects`, and map its
/// (kind, oid, sub_id, value) rows by (kind, oid, sub_id).
async fn per_object(
    client: &Client,
    sql: &str,
    objects: &[(CodeKind, Oid, i32, CatalogClass)],
    doing: &'static str,
) -> Result<HashMap<(CodeKind, Oid, i32), String>> {
    let pick = |kinds: &[CodeKind]| -> Vec<Oid> {
        objects
            .iter()
            .filter(|o| kinds.contains(&o.0))
            .map(|o| o.1)
            .collect()
    };
    let routines = pick(&[CodeKind::Function, CodeKind::Procedure, CodeKind::Aggregate]);
    let views = pick(&[CodeKind::View]);
    let triggers = pick(&[CodeKind::Trigger]);
    let operators = pick(&[CodeKind::Operator]);
    let casts = pick(&[CodeKind::Cast]);
    let comments: Vec<&(CodeKind, Oid, i32, CatalogClass)> = objects
        .iter()
        .filter(|o| o.0 == CodeKind::Comment)
        .collect();
    let comment_class: Vec<&str> = comments.iter().map(|o| o.3.as_str()).collect();
    let comment_oid: Vec<Oid> = comments.iter().map(|o| o.1).collect();
    let comment_sub: Vec<i32> = comments.iter().map(|o| o.2).collect();
    let rows = client
        .query_typed(
            sql,
            &[
                (&routines, Type::OID_ARRAY),
                (&views, Type::OID_ARRAY),
                (&triggers, Type::OID_ARRAY),
                (&comment_class, Type::TEXT_ARRAY),
                (&comment_oid, Type::OID_ARRAY),
                (&comment_sub, Type::INT4_ARRAY),
                (&operators, Type::OID_ARRAY),
                (&casts, Type::OID_ARRAY),
            ],
        )
        .await
        .map_err(Error::db(doing))?;
    let mut out = HashMap::new();
    for r in rows {
        let kind: &str = r.get(0);
        if let Some(kind) = CodeKind::parse(kind) {
            out.insert((kind, r.get::<_, Oid>(1), r.get::<_, i32>(2)), r.get(3));
        }
    }
    Ok(out)
}

/// Find recorded objects whose oid is gone (dump and restore, or dropped outside Strata) by their
/// recorded identity. Returns identity → (oid, sub_id) for those found.
pub(crate) async fn resolve_identities(
    client: &Client,
    lost: &[&StoredObject],
) -> Result<HashMap<(CodeKind, String), (Oid, i32)>> {
    let mut out = HashMap::new();
    for s in lost {
        let lit = |t: &str| escape_literal(t);
        let sql = match s.kind {
            // The identity carries argument names, which to_regprocedure() does not accept: compare it with the
            // same expression that produced it.
            CodeKind::Function | CodeKind::Procedure | CodeKind::Aggregate => format!(
                "SELECT p.oid, 0 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                  WHERE {ROUTINE_IDENTITY} = {}",
                lit(&s.identity)
            ),
            CodeKind::Operator => format!(
                "SELECT o.oid, 0 FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
                  WHERE {OPERATOR_IDENTITY} = {}",
                lit(&s.identity)
            ),
            CodeKind::Cast => format!(
                "SELECT c.oid, 0 FROM pg_catalog.pg_cast c WHERE {CAST_IDENTITY} = {}",
                lit(&s.identity)
            ),
            CodeKind::View => format!("SELECT to_regclass({})::oid, 0", lit(&s.identity)),
            CodeKind::Trigger => match s.identity.split_once(" ON ") {
                Some((name, table)) => format!(
                    "SELECT t.oid, 0 FROM pg_catalog.pg_trigger t
                      WHERE t.tgrelid = to_regclass({}) AND quote_ident(t.tgname) = {}",
                    lit(table),
                    lit(name)
                ),
                None => continue,
            },
            // A comment is found again through its object, when that is re-resolved.
            CodeKind::Comment => continue,
        };
        let row = client
            .query_opt(&sql, &[])
            .await
            .map_err(Error::db("resolving a managed object by its identity"))?;
        if let Some(row) = row
            && let Some(oid) = row.get::<_, Option<Oid>>(0)
        {
            out.insert((s.kind, s.identity.clone()), (oid, row.get(1)));
        }
    }
    Ok(out)
}

/// A query listing the catalog objects a statement of managed code may create or replace:
/// `(oid, sub_id, version, identity, schema)` rows. For comments: the commented object, with the
/// comment's md5 as version.
pub(crate) fn probe_sql(object: &CodeObject, schema: &str) -> String {
    let lit = |t: &str| escape_literal(t);
    let name_schema = object.name.schema.as_deref().unwrap_or(schema);
    match object.kind {
        CodeKind::Operator => format!(
            "SELECT o.oid, 0, o.xmin::text, {OPERATOR_IDENTITY}, n.nspname
               FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
              WHERE n.nspname = {} AND o.oprname = {}",
            lit(name_schema),
            lit(&object.name.name)
        ),
        // A cast belongs to no schema: it is found by its types (as the statement names them, on the package's
        // search_path), and reported in the package's schema.
        CodeKind::Cast => {
            let types: Vec<&str> = object.params().iter().map(|p| p.ty.as_str()).collect();
            format!(
                "SELECT c.oid, 0, c.xmin::text, {CAST_IDENTITY}, {}::text
                   FROM pg_catalog.pg_cast c
                  WHERE c.castsource = to_regtype({}) AND c.casttarget = to_regtype({})",
                lit(schema),
                lit(types.first().copied().unwrap_or_default()),
                lit(types.get(1).copied().unwrap_or_default())
            )
        }
        // An aggregate's definition is also in `pg_aggregate` (its version too, as in `VERSIONS_SQL`).
        CodeKind::Function | CodeKind::Procedure | CodeKind::Aggregate => format!(
            "SELECT p.oid, 0, p.xmin::text || coalesce(':' || ag.xmin::text, ''), {ROUTINE_IDENTITY}, n.nspname
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
               LEFT JOIN pg_catalog.pg_aggregate ag ON ag.aggfnoid = p.oid
              WHERE n.nspname = {} AND p.proname = {}",
            lit(name_schema),
            lit(&object.name.name)
        ),
        CodeKind::View => format!(
            "SELECT c.oid, 0, c.xmin::text || ':' || coalesce(r.xmin::text, ''), {VIEW_IDENTITY}, n.nspname
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid AND r.rulename = '_RETURN'
              WHERE n.nspname = {} AND c.relname = {} AND c.relkind = 'v'",
            lit(name_schema),
            lit(&object.name.name)
        ),
        CodeKind::Trigger => {
            let table = object.table.clone().unwrap_or_else(|| object.name.clone());
            format!(
                "SELECT t.oid, 0, t.xmin::text, {TRIGGER_IDENTITY}, n.nspname
                   FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = {} AND c.relname = {} AND t.tgname = {} AND NOT t.tgisinternal",
                lit(table.schema.as_deref().unwrap_or(schema)),
                lit(&table.name),
                lit(&object.name.name)
            )
        }
        CodeKind::Comment => comment_probe_sql(object, schema),
    }
}

fn comment_probe_sql(object: &CodeObject, schema: &str) -> String {
    let lit = |t: &str| escape_literal(t);
    let Some(c) = &object.comment else {
        return "SELECT NULL::oid, 0, '', '', '' WHERE false".to_string();
    };
    let description = |class: &str, oid: &str, sub: &str| {
        format!(
            "md5(coalesce((SELECT d.description FROM pg_catalog.pg_description d
                            WHERE d.classoid = '{class}'::regclass AND d.objoid = {oid} AND d.objsubid = {sub}), ''))"
        )
    };
    match c.target {
        CommentTarget::Function | CommentTarget::Procedure => format!(
            "SELECT p.oid, 0, {}, {} || {ROUTINE_IDENTITY}, n.nspname
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE p.oid = to_regprocedure({})",
            description("pg_proc", "p.oid", "0"),
            lit(&format!("{} ", c.target.keyword().to_lowercase())),
            lit(&c.object_text)
        ),
        CommentTarget::View => format!(
            "SELECT c.oid, 0, {}, 'view ' || {VIEW_IDENTITY}, n.nspname
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = to_regclass({})",
            description("pg_class", "c.oid", "0"),
            lit(&c.object_text)
        ),
        CommentTarget::Column => {
            let view = object.name.or_schema(schema);
            format!(
                "SELECT c.oid, a.attnum::int4, {}, 'column ' || {VIEW_IDENTITY} || '.' || quote_ident(a.attname),
                        n.nspname
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
                  WHERE n.nspname = {} AND c.relname = {} AND a.attname = {}",
                description("pg_class", "c.oid", "a.attnum"),
                lit(view.schema.as_deref().unwrap_or(schema)),
                lit(&view.name),
                lit(c.column.as_deref().unwrap_or_default())
            )
        }
        CommentTarget::Trigger => {
            let table = object
                .table
                .clone()
                .unwrap_or_else(|| object.name.clone())
                .or_schema(schema);
            format!(
                "SELECT t.oid, 0, {}, 'trigger ' || {TRIGGER_IDENTITY}, n.nspname
                   FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = {} AND c.relname = {} AND t.tgname = {}",
                description("pg_trigger", "t.oid", "0"),
                lit(table.schema.as_deref().unwrap_or(schema)),
                lit(&table.name),
                lit(&object.name.name)
            )
        }
    }
}

/// Parse the rows of a probe (text format, from a simple query).
pub(crate) fn probe_rows(rows: &[tokio_postgres::SimpleQueryRow]) -> Vec<CatalogObject> {
    rows.iter()
        .filter_map(|r| {
            Some(CatalogObject {
                oid: r.get(0)?.parse().ok()?,
                sub_id: r.get(1)?.parse().ok()?,
                version: r.get(2)?.to_string(),
                identity: r.get(3)?.to_string(),
                schema: r.get(4)?.to_string(),
            })
        })
        .collect()
}

/// An object that depends on something being dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Dependent {
    /// The catalog holding the droppable object (None: one where no managed object lives, `pg_type`, …).
    pub class: Option<CatalogClass>,
    pub oid: Oid,
    /// For `pg_class`: its relkind; for `pg_proc`: its prokind.
    pub subkind: String,
    /// `pg_describe_object` of the dependent entry (e.g. `default value for column x of table t`).
    pub what: String,
    /// What it depends on (class, oid) — one of the objects asked about, or a view (for its row type).
    pub on: (CatalogClass, Oid),
}

/// Direct dependents (normal and automatic dependencies) of `targets` (class, oid), each mapped to
/// the object that would have to be dropped: a view for its rewrite rule, a table for a column
/// default, a check constraint or a policy.
pub(crate) async fn dependents(
    client: &Client,
    targets: &[(CatalogClass, Oid)],
) -> Result<Vec<Dependent>> {
    let classes: Vec<&str> = targets.iter().map(|t| t.0.as_str()).collect();
    let oids: Vec<Oid> = targets.iter().map(|t| t.1).collect();
    let rows = client
        .query(
            "WITH refs AS (
                 SELECT s.cls::regclass AS cls, s.oid FROM unnest($1::text[], $2::oid[]) AS s(cls, oid)
               UNION
                 -- dependents of a view's row type (functions returning it) come with the view
                 SELECT 'pg_type'::regclass, c.reltype FROM unnest($1::text[], $2::oid[]) AS s(cls, oid)
                   JOIN pg_catalog.pg_class c ON c.oid = s.oid WHERE s.cls = 'pg_class' AND c.reltype <> 0
             ), deps AS (
                 SELECT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid
                   FROM pg_catalog.pg_depend d JOIN refs ON d.refclassid = refs.cls AND d.refobjid = refs.oid
                  WHERE d.deptype IN ('n', 'a')
             ), owned AS (
                 SELECT deps.*,
                        CASE deps.classid
                          WHEN 'pg_rewrite'::regclass THEN 'pg_class'
                          WHEN 'pg_attrdef'::regclass THEN 'pg_class'
                          WHEN 'pg_policy'::regclass THEN 'pg_class'
                          WHEN 'pg_constraint'::regclass THEN
                            CASE WHEN con.conrelid <> 0 THEN 'pg_class' ELSE 'pg_type' END
                          ELSE deps.classid::regclass::text
                        END AS owner_class,
                        CASE deps.classid
                          WHEN 'pg_rewrite'::regclass THEN rw.ev_class
                          WHEN 'pg_attrdef'::regclass THEN ad.adrelid
                          WHEN 'pg_policy'::regclass THEN pol.polrelid
                          WHEN 'pg_constraint'::regclass THEN
                            CASE WHEN con.conrelid <> 0 THEN con.conrelid ELSE con.contypid END
                          ELSE deps.objid
                        END AS owner_oid
                   FROM deps
                   LEFT JOIN pg_catalog.pg_rewrite rw ON deps.classid = 'pg_rewrite'::regclass AND rw.oid = deps.objid
                   LEFT JOIN pg_catalog.pg_attrdef ad ON deps.classid = 'pg_attrdef'::regclass AND ad.oid = deps.objid
                   LEFT JOIN pg_catalog.pg_policy pol ON deps.classid = 'pg_policy'::regclass AND pol.oid = deps.objid
                   LEFT JOIN pg_catalog.pg_constraint con
                          ON deps.classid = 'pg_constraint'::regclass AND con.oid = deps.objid
             )
             SELECT DISTINCT o.owner_class, o.owner_oid,
                    coalesce(CASE o.owner_class
                               WHEN 'pg_class' THEN (SELECT c.relkind::text FROM pg_catalog.pg_class c
                                                      WHERE c.oid = o.owner_oid)
                               WHEN 'pg_proc' THEN (SELECT p.prokind::text FROM pg_catalog.pg_proc p
                                                     WHERE p.oid = o.owner_oid)
                             END, ''),
                    pg_catalog.pg_describe_object(o.classid, o.objid, o.objsubid),
                    CASE WHEN o.refclassid = 'pg_type'::regclass
                         THEN 'pg_class' ELSE o.refclassid::regclass::text END,
                    CASE WHEN o.refclassid = 'pg_type'::regclass
                         THEN (SELECT t.typrelid FROM pg_catalog.pg_type t WHERE t.oid = o.refobjid)
                         ELSE o.refobjid END
               FROM owned o
              -- a view's own row type and its rule depend on the view itself: not dependents
              WHERE NOT (o.owner_class = 'pg_class' AND (o.owner_class, o.owner_oid) IN
                         (SELECT s.cls, s.oid FROM unnest($1::text[], $2::oid[]) AS s(cls, oid)))",
            &[&classes, &oids],
        )
        .await
        .map_err(Error::db("reading pg_depend"))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Dependent {
                class: CatalogClass::parse(r.get(0)),
                oid: r.get(1),
                subkind: r.get(2),
                what: r.get(3),
                // The targets' classes, or `pg_class` for a view's row type.
                on: (CatalogClass::parse(r.get(4))?, r.get(5)),
            })
        })
        .collect())
}

/// A query (parameter: the oid) giving the statement that drops a catalog object of `class`, built by the catalog
/// (`regprocedure` output and friends); no row when no such object exists. Also run by the psql script of
/// `strata export`.
pub(crate) fn drop_query(class: CatalogClass) -> &'static str {
    match class {
        CatalogClass::Proc => {
            "SELECT CASE p.prokind WHEN 'p' THEN 'DROP PROCEDURE ' WHEN 'a' THEN 'DROP AGGREGATE '
                                   ELSE 'DROP FUNCTION ' END
                    || p.oid::regprocedure::text
               FROM pg_catalog.pg_proc p WHERE p.oid = $1 AND p.prokind IN ('f', 'p', 'a')"
        }
        CatalogClass::Operator => {
            "SELECT 'DROP OPERATOR ' || o.oid::regoperator::text FROM pg_catalog.pg_operator o WHERE o.oid = $1"
        }
        CatalogClass::Cast => {
            "SELECT 'DROP CAST (' || pg_catalog.format_type(c.castsource, NULL) || ' AS '
                    || pg_catalog.format_type(c.casttarget, NULL) || ')'
               FROM pg_catalog.pg_cast c WHERE c.oid = $1"
        }
        CatalogClass::Class => {
            "SELECT 'DROP VIEW ' || c.oid::regclass::text FROM pg_catalog.pg_class c
              WHERE c.oid = $1 AND c.relkind = 'v'"
        }
        CatalogClass::Trigger => {
            "SELECT 'DROP TRIGGER ' || quote_ident(t.tgname) || ' ON ' || t.tgrelid::regclass::text
               FROM pg_catalog.pg_trigger t WHERE t.oid = $1"
        }
    }
}

/// SQL dropping a catalog object, built from the catalog (see [`drop_query`]).
pub(crate) async fn drop_sql(
    client: &Client,
    class: CatalogClass,
    oid: Oid,
) -> Result<Option<String>> {
    let row = client
        .query_opt(drop_query(class), &[&oid])
        .await
        .map_err(Error::db("building a DROP statement from the catalog"))?;
    Ok(row.map(|r| r.get(0)))
}

/// The kind of managed object a catalog entry would be, when it can be one.
pub(crate) fn managed_kind(class: CatalogClass, subkind: &str) -> Option<CodeKind> {
    match (class, subkind) {
        (CatalogClass::Proc, "f") => Some(CodeKind::Function),
        (CatalogClass::Proc, "p") => Some(CodeKind::Procedure),
        (CatalogClass::Proc, "a") => Some(CodeKind::Aggregate),
        (CatalogClass::Operator, _) => Some(CodeKind::Operator),
        (CatalogClass::Cast, _) => Some(CodeKind::Cast),
        (CatalogClass::Class, "v") => Some(CodeKind::View),
        (CatalogClass::Trigger, _) => Some(CodeKind::Trigger),
        _ => None,
    }
}

/// Which of `names` (kind, schema, name) exist in the catalog. Kinds: `function` (any routine of
/// that name), `relation`, `type`, `any` (relation or routine).
pub(crate) async fn existing(
    client: &Client,
    names: &[(&str, String, String)],
) -> Result<HashSet<(String, String, String)>> {
    let kinds: Vec<&str> = names.iter().map(|n| n.0).collect();
    let schemas: Vec<&str> = names.iter().map(|n| n.1.as_str()).collect();
    let objects: Vec<&str> = names.iter().map(|n| n.2.as_str()).collect();
    let rows = client
        .query(
            "SELECT s.kind, s.schema, s.name FROM unnest($1::text[], $2::text[], $3::text[]) AS s(kind, schema, name)
              WHERE (s.kind IN ('function', 'any') AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                         WHERE n.nspname = s.schema AND p.proname = s.name))
                 OR (s.kind IN ('relation', 'type', 'any') AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = s.schema AND c.relname = s.name))
                 OR (s.kind = 'operator' AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
                         WHERE n.nspname = s.schema AND o.oprname = s.name))
                 OR (s.kind = 'type' AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
                         WHERE n.nspname = s.schema AND t.typname = s.name))",
            &[&kinds, &schemas, &objects],
        )
        .await
        .map_err(Error::db("looking up referenced objects"))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The statement removing a comment recorded as `<target> …` ($1: `function`, `procedure`, `view`, `column` or
/// `trigger`) on object $2 (column $3), built by the catalog; no row when the object is gone. Also run by the psql
/// script of `strata export`.
pub(crate) const CLEAR_COMMENT_SQL: &str =
    "SELECT format('COMMENT ON %s %s IS NULL', upper($1::text), p.oid::regprocedure)
       FROM pg_catalog.pg_proc p WHERE $1::text IN ('function', 'procedure') AND p.oid = $2::oid
     UNION ALL
     SELECT format('COMMENT ON VIEW %s IS NULL', c.oid::regclass)
       FROM pg_catalog.pg_class c WHERE $1::text = 'view' AND c.oid = $2::oid
     UNION ALL
     SELECT format('COMMENT ON COLUMN %s.%I IS NULL', a.attrelid::regclass, a.attname)
       FROM pg_catalog.pg_attribute a WHERE $1::text = 'column' AND a.attrelid = $2::oid AND a.attnum = $3::int4
     UNION ALL
     SELECT format('COMMENT ON TRIGGER %I ON %s IS NULL', t.tgname, t.tgrelid::regclass)
       FROM pg_catalog.pg_trigger t WHERE $1::text = 'trigger' AND t.oid = $2::oid";

/// SQLSTATEs of `CREATE OR REPLACE` refusing to change an object in place (return type, parameter names or defaults,
/// view columns, routine kind), and of `CREATE OPERATOR | CAST` finding the object already there (they have no
/// `OR REPLACE`): the old object must be dropped first (the psql script of `strata export` stops instead).
pub(crate) const REPLACE_REFUSED: [SqlState; 6] = [
    SqlState::INVALID_FUNCTION_DEFINITION,
    SqlState::INVALID_TABLE_DEFINITION,
    SqlState::DATATYPE_MISMATCH,
    SqlState::WRONG_OBJECT_TYPE,
    SqlState::DUPLICATE_FUNCTION,
    SqlState::DUPLICATE_OBJECT,
];

/// Whether `sqlstate` is one of [`REPLACE_REFUSED`].
pub(crate) fn replace_refused(sqlstate: &str) -> bool {
    REPLACE_REFUSED.iter().any(|s| s.code() == sqlstate)
}
