//! Reading a catalog: one `REPEATABLE READ` snapshot, one query per object class, all sent at once (pipelined), so
//! a schema of any size costs a handful of round trips, never one per table.
//!
//! The session's `search_path` is emptied for the snapshot: `pg_get_*def`, `pg_get_expr` and `format_type` then
//! qualify every name outside `pg_catalog`, which is what makes the rendered SQL independent of the `search_path`
//! it later runs under.

use std::collections::{BTreeMap, HashMap};

use futures_util::try_join;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use crate::error::{Error, Result};
use crate::ident::QName;
use crate::model::*;

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Schemas to leave out, besides the system ones (`pg_catalog`, `information_schema`, `pg_toast`, temporary
    /// schemas) which are always left out. Objects of extensions are always left out too.
    pub exclude_schemas: Vec<String>,
}

// Fixed OIDs of the system catalogs (PostgreSQL's `pg_*.h` headers; the same in every version).
const PG_TYPE: u32 = 1247;
const PG_PROC: u32 = 1255;
const PG_CLASS: u32 = 1259;
const PG_ATTRDEF: u32 = 2604;
const PG_CONSTRAINT: u32 = 2606;
const PG_NAMESPACE: u32 = 2615;
const PG_REWRITE: u32 = 2618;
const PG_TRIGGER: u32 = 2620;
const PG_EXTENSION: u32 = 3079;
const PG_POLICY: u32 = 3256;

/// Schemas never modelled. `$1` is the caller's exclusion list.
const SCHEMA_FILTER: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
     AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
     AND n.nspname <> ALL($1::text[])";

fn not_extension_member(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend x WHERE x.classid = '{catalog}'::regclass \
         AND x.objid = {oid} AND x.deptype = 'e')"
    )
}

fn q_schemas() -> String {
    format!(
        "SELECT n.oid, n.nspname::text, ds.description
           FROM pg_namespace n
           LEFT JOIN pg_description ds ON ds.objoid = n.oid AND ds.classoid = 'pg_namespace'::regclass
          WHERE {SCHEMA_FILTER} AND {}",
        not_extension_member("pg_namespace", "n.oid")
    )
}

const Q_EXTENSIONS: &str = "SELECT e.oid, e.extname::text, n.nspname::text, e.extversion
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace";

fn q_types() -> String {
    format!(
        "SELECT t.oid, n.nspname::text, t.typname::text, t.typtype::text,
                CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e
                                                      WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END,
                CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
                t.typnotnull,
                pg_get_expr(t.typdefaultbin, 0),
                CASE WHEN t.typtype = 'd' AND t.typcollation <> 0
                      AND t.typcollation IS DISTINCT FROM (SELECT b.typcollation FROM pg_type b WHERE b.oid = t.typbasetype)
                     THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                             JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END,
                ds.description
           FROM pg_type t
           JOIN pg_namespace n ON n.oid = t.typnamespace
           LEFT JOIN pg_description ds ON ds.objoid = t.oid AND ds.classoid = 'pg_type'::regclass AND ds.objsubid = 0
          WHERE (t.typtype IN ('e', 'd', 'r')
                 OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class r WHERE r.oid = t.typrelid AND r.relkind = 'c')))
            AND {SCHEMA_FILTER} AND {}",
        not_extension_member("pg_type", "t.oid")
    )
}

/// Ranges: subtype, opclass (when not the default), collation, canonical, subtype_diff, multirange.
const Q_RANGES: &str = "SELECT r.rngtypid, format_type(r.rngsubtype, NULL),
            CASE WHEN NOT oc.opcdefault THEN format('%I.%I', ocn.nspname, oc.opcname) END,
            CASE WHEN r.rngcollation <> 0 AND r.rngcollation IS DISTINCT FROM st.typcollation
                 THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                         JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = r.rngcollation) END,
            NULLIF(r.rngcanonical, 0)::regproc::text,
            NULLIF(r.rngsubdiff, 0)::regproc::text,
            mn.nspname::text, mt.typname::text
       FROM pg_range r
       JOIN pg_type st ON st.oid = r.rngsubtype
       JOIN pg_opclass oc ON oc.oid = r.rngsubopc
       JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
       LEFT JOIN pg_type mt ON mt.oid = r.rngmultitypid
       LEFT JOIN pg_namespace mn ON mn.oid = mt.typnamespace
      WHERE r.rngtypid >= 16384";

/// Attributes of composite types.
const Q_ATTRIBUTES: &str = "SELECT t.oid, a.attname::text, format_type(a.atttypid, a.atttypmod),
            CASE WHEN a.attcollation <> 0 AND a.attcollation IS DISTINCT FROM at.typcollation
                 THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                         JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END
       FROM pg_type t
       JOIN pg_class r ON r.oid = t.typrelid AND r.relkind = 'c'
       JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
       JOIN pg_type at ON at.oid = a.atttypid
      WHERE t.oid >= 16384
      ORDER BY t.oid, a.attnum";

/// Domain CHECK constraints (NOT NULL of a domain is `typnotnull`; PostgreSQL 17 also records it as a constraint).
const Q_DOMAIN_CONSTRAINTS: &str =
    "SELECT c.contypid, c.conname::text, pg_get_constraintdef(c.oid), c.convalidated, c.oid
       FROM pg_constraint c WHERE c.contypid >= 16384 AND c.contype = 'c'";

fn q_relations() -> String {
    format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relpersistence::text,
                c.relrowsecurity, c.relforcerowsecurity, c.reloptions::text[], c.relreplident::text,
                CASE WHEN c.relispartition THEN (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid) END,
                CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
                CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                CASE WHEN NOT c.relispartition THEN ARRAY(SELECT i.inhparent FROM pg_inherits i
                                                           WHERE i.inhrelid = c.oid ORDER BY i.inhseqno) END,
                CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
                c.relispopulated,
                c.reltype,
                (SELECT ic.relname::text FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
                  WHERE x.indrelid = c.oid AND x.indisreplident),
                ds.description,
                c.reloftype <> 0
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_description ds ON ds.objoid = c.oid AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = 0
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'c') AND {SCHEMA_FILTER} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn q_columns() -> String {
    format!(
        "SELECT a.attrelid, a.attnum, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                a.attidentity::text, a.attgenerated::text, pg_get_expr(ad.adbin, ad.adrelid), ad.oid,
                CASE WHEN a.attcollation <> 0 AND a.attcollation IS DISTINCT FROM t.typcollation
                     THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                             JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END,
                a.attinhcount > 0, ds.description
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
           LEFT JOIN pg_description ds ON ds.objoid = a.attrelid AND ds.classoid = 'pg_class'::regclass
                                      AND ds.objsubid = a.attnum
          WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm') AND {SCHEMA_FILTER}
          ORDER BY a.attrelid, a.attnum"
    )
}

fn q_sequences() -> String {
    format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL), s.seqstart,
                s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle, c.relpersistence = 'u',
                ds.description, dep.refobjid, dep.refobjsubid::int2, dep.deptype::text
           FROM pg_sequence s
           JOIN pg_class c ON c.oid = s.seqrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.objid = c.oid
                                  AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
           LEFT JOIN pg_description ds ON ds.objoid = c.oid AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = 0
          WHERE {SCHEMA_FILTER} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn q_constraints() -> String {
    format!(
        "SELECT con.oid, con.conrelid, con.conname::text, con.contype::text, pg_get_constraintdef(con.oid),
                con.convalidated, con.conindid, (NOT con.conislocal OR con.conparentid <> 0), ds.description
           FROM pg_constraint con
           JOIN pg_class c ON c.oid = con.conrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_description ds ON ds.objoid = con.oid AND ds.classoid = 'pg_constraint'::regclass
          WHERE con.contype IN ('p', 'u', 'f', 'c', 'x') AND {SCHEMA_FILTER} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn q_indexes() -> String {
    format!(
        "SELECT i.indexrelid, n.nspname::text, ic.relname::text, i.indrelid,
                -- a constraint's index stands for the constraint: its definition is not needed
                CASE WHEN k.oid IS NULL THEN pg_get_indexdef(i.indexrelid) END,
                ic.relkind = 'I', ic.relispartition, k.oid IS NOT NULL, ds.description
           FROM pg_index i
           LEFT JOIN pg_constraint k ON k.conrelid = i.indrelid AND k.conindid = i.indexrelid
                                    AND k.contype IN ('p', 'u', 'x')
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = ic.relnamespace
           LEFT JOIN pg_description ds ON ds.objoid = i.indexrelid AND ds.classoid = 'pg_class'::regclass
                                      AND ds.objsubid = 0
          WHERE c.relkind IN ('r', 'p', 'm') AND {SCHEMA_FILTER} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn q_functions() -> String {
    format!(
        "SELECT p.oid, n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid), p.prokind::text,
                CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END,
                pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), l.lanname::text, ds.description
           FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           JOIN pg_language l ON l.oid = p.prolang
           LEFT JOIN pg_description ds ON ds.objoid = p.oid AND ds.classoid = 'pg_proc'::regclass
          WHERE {SCHEMA_FILTER} AND {}
            -- a range type's constructors belong to the type
            AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_proc'::regclass AND i.objid = p.oid
                                                        AND i.deptype = 'i')",
        not_extension_member("pg_proc", "p.oid")
    )
}

fn q_triggers(version: i32) -> String {
    // tgparentid (a partition's clone of its parent's trigger) exists from PostgreSQL 13.
    let cloned = if version >= 130000 {
        "t.tgparentid <> 0"
    } else {
        "false"
    };
    format!(
        "SELECT t.oid, t.tgrelid, t.tgname::text, pg_get_triggerdef(t.oid), t.tgenabled::text, {cloned},
                ds.description
           FROM pg_trigger t
           JOIN pg_class c ON c.oid = t.tgrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_description ds ON ds.objoid = t.oid AND ds.classoid = 'pg_trigger'::regclass
          WHERE NOT t.tgisinternal AND {SCHEMA_FILTER} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn q_policies() -> String {
    format!(
        "SELECT p.oid, p.polrelid, p.polname::text, p.polcmd::text, p.polpermissive,
                CASE WHEN p.polroles = '{{0}}' THEN ARRAY['public']
                     ELSE ARRAY(SELECT quote_ident(r.rolname) FROM pg_roles r WHERE r.oid = ANY (p.polroles)
                                 ORDER BY r.rolname) END,
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid), ds.description
           FROM pg_policy p
           JOIN pg_class c ON c.oid = p.polrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_description ds ON ds.objoid = p.oid AND ds.classoid = 'pg_policy'::regclass
          WHERE {SCHEMA_FILTER}"
    )
}

/// Dependencies between user objects (and on schemas, whose OIDs may be small: `public` is 2200).
const Q_DEPENDS: &str =
    "SELECT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid, d.refobjsubid
       FROM pg_depend d
      WHERE d.objid >= 16384 AND d.deptype IN ('n', 'a', 'i')
        AND (d.refobjid >= 16384 OR d.refclassid = 'pg_namespace'::regclass)";

/// Dependencies of unmodelled objects on modelled ones (rules other than a view's, aggregates, casts, operators,
/// event triggers, …).
const Q_UNMODELED_DEPENDS: &str = "SELECT d.refclassid, d.refobjid, d.refobjsubid, pg_describe_object(d.classid, d.objid, d.objsubid)
       FROM pg_depend d
      WHERE d.deptype = 'n' AND d.objid >= 16384 AND d.refobjid >= 16384
        AND (d.classid IN ('pg_event_trigger'::regclass, 'pg_cast'::regclass, 'pg_operator'::regclass,
                           'pg_opclass'::regclass, 'pg_opfamily'::regclass, 'pg_ts_config'::regclass,
                           'pg_ts_dict'::regclass, 'pg_ts_parser'::regclass, 'pg_ts_template'::regclass,
                           'pg_conversion'::regclass, 'pg_transform'::regclass, 'pg_statistic_ext'::regclass,
                           'pg_foreign_server'::regclass, 'pg_foreign_data_wrapper'::regclass,
                           'pg_publication_rel'::regclass)
             OR (d.classid = 'pg_proc'::regclass AND EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = d.objid AND p.prokind = 'a'))
             OR (d.classid = 'pg_rewrite'::regclass AND EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.oid = d.objid AND r.rulename <> '_RETURN'))
             OR (d.classid = 'pg_class'::regclass AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.objid AND c.relkind = 'f')))
        AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = d.classid AND x.objid = d.objid AND x.deptype = 'e')";

/// Objects that belong to an extension.
const Q_EXTENSION_MEMBERS: &str = "SELECT d.classid, d.objid, e.extname::text
       FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
      WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'";

/// Types that stand for another object in dependencies: arrays (their element), multiranges (their range).
const Q_TYPE_ALIASES: &str = "SELECT t.oid, t.typelem, t.typrelid,
            (SELECT r.rngtypid FROM pg_range r WHERE r.rngmultitypid = t.oid)
       FROM pg_type t WHERE t.oid >= 16384";

/// Rewrite rules: a view's `_RETURN` rule stands for the view.
const Q_RULES: &str =
    "SELECT r.oid, r.ev_class, r.rulename::text FROM pg_rewrite r WHERE r.oid >= 16384";

/// Everything present that is not modelled. Each branch names the kind and an identity a user recognises.
fn q_unmodeled() -> String {
    let member = |catalog: &str, oid: &str| not_extension_member(catalog, oid);
    let user =
        "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname <> ALL($1::text[])";
    let mut branches = vec![
        format!(
            "SELECT 'cast', format('CAST (%s AS %s)', format_type(c.castsource, NULL), format_type(c.casttarget, NULL))
               FROM pg_cast c WHERE c.oid >= 16384 AND {}",
            member("pg_cast", "c.oid")
        ),
        format!(
            "SELECT 'operator', format('OPERATOR %I.%s(%s, %s)', n.nspname, o.oprname,
                    COALESCE(format_type(NULLIF(o.oprleft, 0), NULL), 'NONE'),
                    COALESCE(format_type(NULLIF(o.oprright, 0), NULL), 'NONE'))
               FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
              WHERE o.oid >= 16384 AND {user} AND {}",
            member("pg_operator", "o.oid")
        ),
        format!(
            "SELECT 'operator class', format('OPERATOR CLASS %I.%I USING %I', n.nspname, o.opcname, a.amname)
               FROM pg_opclass o JOIN pg_namespace n ON n.oid = o.opcnamespace JOIN pg_am a ON a.oid = o.opcmethod
              WHERE o.oid >= 16384 AND {user} AND {}",
            member("pg_opclass", "o.oid")
        ),
        format!(
            "SELECT 'operator family', format('OPERATOR FAMILY %I.%I USING %I', n.nspname, o.opfname, a.amname)
               FROM pg_opfamily o JOIN pg_namespace n ON n.oid = o.opfnamespace JOIN pg_am a ON a.oid = o.opfmethod
              WHERE o.oid >= 16384 AND {user} AND {}
                AND NOT EXISTS (SELECT 1 FROM pg_opclass c WHERE c.opcfamily = o.oid AND c.opcname = o.opfname)",
            member("pg_opfamily", "o.oid")
        ),
        format!(
            "SELECT 'aggregate', format('AGGREGATE %I.%I(%s)', n.nspname, p.proname,
                    pg_get_function_identity_arguments(p.oid))
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE p.prokind = 'a' AND {user} AND {}",
            member("pg_proc", "p.oid")
        ),
        format!(
            "SELECT 'collation', format('COLLATION %I.%I', n.nspname, c.collname)
               FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
              WHERE c.oid >= 16384 AND {user} AND {}",
            member("pg_collation", "c.oid")
        ),
        format!(
            "SELECT 'conversion', format('CONVERSION %I.%I', n.nspname, c.conname)
               FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace
              WHERE c.oid >= 16384 AND {user} AND {}",
            member("pg_conversion", "c.oid")
        ),
        format!(
            "SELECT 'text search configuration', format('TEXT SEARCH CONFIGURATION %I.%I', n.nspname, c.cfgname)
               FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
              WHERE c.oid >= 16384 AND {user} AND {}",
            member("pg_ts_config", "c.oid")
        ),
        format!(
            "SELECT 'text search dictionary', format('TEXT SEARCH DICTIONARY %I.%I', n.nspname, c.dictname)
               FROM pg_ts_dict c JOIN pg_namespace n ON n.oid = c.dictnamespace
              WHERE c.oid >= 16384 AND {user} AND {}",
            member("pg_ts_dict", "c.oid")
        ),
        format!(
            "SELECT 'text search parser', format('TEXT SEARCH PARSER %I.%I', n.nspname, c.prsname)
               FROM pg_ts_parser c JOIN pg_namespace n ON n.oid = c.prsnamespace
              WHERE c.oid >= 16384 AND {user} AND {}",
            member("pg_ts_parser", "c.oid")
        ),
        format!(
            "SELECT 'text search template', format('TEXT SEARCH TEMPLATE %I.%I', n.nspname, c.tmplname)
               FROM pg_ts_template c JOIN pg_namespace n ON n.oid = c.tmplnamespace
              WHERE c.oid >= 16384 AND {user} AND {}",
            member("pg_ts_template", "c.oid")
        ),
        format!(
            "SELECT 'base type', format('TYPE %I.%I', n.nspname, t.typname)
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE t.oid >= 16384 AND t.typtype = 'b' AND t.typelem = 0 AND {user} AND {}",
            member("pg_type", "t.oid")
        ),
        format!(
            "SELECT 'foreign table', format('FOREIGN TABLE %I.%I', n.nspname, c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'f' AND {user} AND {}",
            member("pg_class", "c.oid")
        ),
        format!(
            "SELECT 'typed table', format('TABLE %I.%I OF %s', n.nspname, c.relname, format_type(c.reloftype, NULL))
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND c.reloftype <> 0 AND {user} AND {}",
            member("pg_class", "c.oid")
        ),
        format!(
            "SELECT 'rule', format('RULE %I ON %I.%I', r.rulename, n.nspname, c.relname)
               FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE r.rulename <> '_RETURN' AND r.oid >= 16384 AND {user} AND {}",
            member("pg_class", "c.oid")
        ),
        format!(
            "SELECT 'statistics', format('STATISTICS %I.%I', n.nspname, s.stxname)
               FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
              WHERE {user} AND {}",
            member("pg_statistic_ext", "s.oid")
        ),
        format!(
            "SELECT 'foreign data wrapper', format('FOREIGN DATA WRAPPER %I', w.fdwname)
               FROM pg_foreign_data_wrapper w WHERE {}",
            member("pg_foreign_data_wrapper", "w.oid")
        ),
        format!(
            "SELECT 'server', format('SERVER %I', s.srvname) FROM pg_foreign_server s WHERE {}",
            member("pg_foreign_server", "s.oid")
        ),
        "SELECT 'publication', format('PUBLICATION %I', p.pubname) FROM pg_publication p".to_string(),
        "SELECT 'event trigger', format('EVENT TRIGGER %I', e.evtname) FROM pg_event_trigger e".to_string(),
        format!(
            "SELECT 'language', format('LANGUAGE %I', l.lanname) FROM pg_language l
              WHERE l.oid >= 16384 AND {}",
            member("pg_language", "l.oid")
        ),
        format!(
            "SELECT 'access method', format('ACCESS METHOD %I', a.amname) FROM pg_am a
              WHERE a.oid >= 16384 AND {}",
            member("pg_am", "a.oid")
        ),
        "SELECT 'default privileges', format('DEFAULT PRIVILEGES FOR ROLE %I%s ON %s', pg_get_userbyid(d.defaclrole),
                COALESCE(' IN SCHEMA ' || quote_ident(n.nspname), ''),
                CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS'
                                     WHEN 'T' THEN 'TYPES' ELSE 'SCHEMAS' END)
           FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace"
            .to_string(),
        format!(
            "SELECT 'transform', format('TRANSFORM FOR %s LANGUAGE %I', format_type(t.trftype, NULL), l.lanname)
               FROM pg_transform t JOIN pg_language l ON l.oid = t.trflang WHERE {}",
            member("pg_transform", "t.oid")
        ),
    ];
    // Privileges are not modelled: granted ones are reported (the owner's own and the grantor left out, so that
    // equal grants under different owners compare equal).
    let grants = |what: &str, acl: &str, owner: &str, name: &str, from: &str| {
        format!(
            "SELECT 'privileges', format('GRANT ON {what} %s: %s', {name}, g) FROM (
               SELECT {name_expr} AS name_v, (SELECT string_agg(format('%s %s', CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                         ELSE quote_ident(pg_get_userbyid(a.grantee)) END, a.privilege_type), ', ' ORDER BY 1)
                      FROM aclexplode({acl}) a WHERE a.grantee <> {owner}) AS g
               {from}) x WHERE g IS NOT NULL",
            name = "x.name_v",
            name_expr = name,
        )
    };
    branches.push(grants(
        "TABLE",
        "c.relacl",
        "c.relowner",
        "format('%I.%I', n.nspname, c.relname)",
        &format!(
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relacl IS NOT NULL AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {user}"
        ),
    ));
    branches.push(grants(
        "COLUMN",
        "a.attacl",
        "c.relowner",
        "format('%I.%I.%I', n.nspname, c.relname, a.attname)",
        &format!(
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND {user}"
        ),
    ));
    branches.push(grants(
        "SCHEMA",
        "n.nspacl",
        "n.nspowner",
        "quote_ident(n.nspname)",
        &format!("FROM pg_namespace n WHERE n.nspacl IS NOT NULL AND {user} AND n.nspname NOT LIKE 'pg\\_%'"),
    ));
    branches.push(grants(
        "FUNCTION",
        "p.proacl",
        "p.proowner",
        "format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))",
        &format!(
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proacl IS NOT NULL AND {user}"
        ),
    ));
    branches.push(grants(
        "TYPE",
        "t.typacl",
        "t.typowner",
        "format('%I.%I', n.nspname, t.typname)",
        &format!("FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typacl IS NOT NULL AND {user}"),
    ));
    // Tables stored with another access method than heap.
    branches.push(format!(
        "SELECT 'table access method', format('TABLE %I.%I USING %I', n.nspname, c.relname, a.amname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam
          WHERE c.relkind = 'r' AND a.amname <> 'heap' AND {user}"
    ));
    branches.join("\nUNION ALL\n")
}

/// Read the catalog of the database `client` is connected to, in one `REPEATABLE READ` snapshot.
///
/// The connection's session state is left as it was: the snapshot runs in a read-only transaction whose settings
/// (`search_path`; `jit` off: compiling the catalog queries costs more than running them) are local to it. The client
/// must not be inside a transaction already.
///
/// ```no_run
/// # async fn demo(client: &tokio_postgres::Client) -> Result<(), pgstrata_catalog::Error> {
/// let catalog = pgstrata_catalog::read(client, &pgstrata_catalog::ReadOptions::default()).await?;
/// for (name, table) in &catalog.tables {
///     println!("{name}: {} columns", table.columns.len());
/// }
/// # Ok(()) }
/// ```
pub async fn read(client: &Client, options: &ReadOptions) -> Result<Catalog> {
    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = ''; \
             SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; SET LOCAL jit = off",
        )
        .await
        .map_err(Error::db("starting the catalog snapshot"))?;
    let result = read_in_snapshot(client, options).await;
    // A read-only transaction: ending it either way changes nothing.
    let end = client.batch_execute("COMMIT").await;
    let catalog = result?;
    end.map_err(Error::db("ending the catalog snapshot"))?;
    Ok(catalog)
}

async fn read_in_snapshot(client: &Client, options: &ReadOptions) -> Result<Catalog> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(Error::db("reading the server version"))?
        .get(0);
    let excluded: Vec<String> = options.exclude_schemas.clone();
    let p: [(&(dyn ToSql + Sync), Type); 1] = [(&excluded, Type::TEXT_ARRAY)];
    let none: [(&(dyn ToSql + Sync), Type); 0] = [];
    let (p, none) = (&p, &none);
    // Every query of this list takes the excluded schemas as `$1`.
    let queries = [
        ("schemas", q_schemas()),
        ("types", q_types()),
        ("relations", q_relations()),
        ("columns", q_columns()),
        ("sequences", q_sequences()),
        ("constraints", q_constraints()),
        ("indexes", q_indexes()),
        ("functions", q_functions()),
        ("triggers", q_triggers(version)),
        ("policies", q_policies()),
        ("unmodelled objects", q_unmodeled()),
    ];
    let started = std::time::Instant::now();
    let run = |i: usize| {
        let (what, sql) = &queries[i];
        let what = *what;
        async move {
            let rows = client
                .query_typed(sql, p)
                .await
                .map_err(Error::db(format!("reading {what}")));
            tracing::debug!("catalog: {what} read after {:?}", started.elapsed());
            rows
        }
    };
    let plain = |what: &'static str, sql: &'static str| async move {
        let rows = client
            .query_typed(sql, none)
            .await
            .map_err(Error::db(format!("reading {what}")));
        tracing::debug!("catalog: {what} read after {:?}", started.elapsed());
        rows
    };
    let (
        (schemas, types, relations, columns, sequences, constraints),
        (indexes, functions, triggers, policies, unmodeled),
        (
            extensions,
            ranges,
            attributes,
            domain_constraints,
            depends,
            members,
            aliases,
            rules,
            unmodeled_depends,
        ),
    ) = try_join!(
        async { try_join!(run(0), run(1), run(2), run(3), run(4), run(5)) },
        async { try_join!(run(6), run(7), run(8), run(9), run(10)) },
        async {
            try_join!(
                plain("extensions", Q_EXTENSIONS),
                plain("range types", Q_RANGES),
                plain("composite types", Q_ATTRIBUTES),
                plain("domain constraints", Q_DOMAIN_CONSTRAINTS),
                plain("dependencies", Q_DEPENDS),
                plain("extension members", Q_EXTENSION_MEMBERS),
                plain("types", Q_TYPE_ALIASES),
                plain("rules", Q_RULES),
                plain("dependencies of unmodelled objects", Q_UNMODELED_DEPENDS),
            )
        },
    )?;
    let rows = Rows {
        schemas,
        types,
        relations,
        columns,
        sequences,
        constraints,
        indexes,
        functions,
        triggers,
        policies,
        unmodeled,
        extensions,
        ranges,
        attributes,
        domain_constraints,
        depends,
        members,
        aliases,
        rules,
        unmodeled_depends,
    };
    // Building is CPU work (resolving tens of thousands of dependencies): on a thread of the blocking pool, so that
    // two catalogs read at once (a diff of two databases) are built in parallel, even on a current-thread runtime.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let builder = std::thread::spawn(move || {
        let _ = tx.send(build(version, rows));
    });
    let catalog = match rx.await {
        Ok(catalog) => catalog,
        // The sender went away without a result: the build panicked; carry its panic on.
        Err(_) => std::panic::resume_unwind(match builder.join() {
            Err(panic) => panic,
            Ok(()) => Box::new("the catalog build ended without a result"),
        }),
    };
    tracing::debug!("catalog: built after {:?}", started.elapsed());
    catalog
}

struct Rows {
    schemas: Vec<Row>,
    types: Vec<Row>,
    relations: Vec<Row>,
    columns: Vec<Row>,
    sequences: Vec<Row>,
    constraints: Vec<Row>,
    indexes: Vec<Row>,
    functions: Vec<Row>,
    triggers: Vec<Row>,
    policies: Vec<Row>,
    unmodeled: Vec<Row>,
    extensions: Vec<Row>,
    ranges: Vec<Row>,
    attributes: Vec<Row>,
    domain_constraints: Vec<Row>,
    depends: Vec<Row>,
    members: Vec<Row>,
    aliases: Vec<Row>,
    rules: Vec<Row>,
    unmodeled_depends: Vec<Row>,
}

/// `"char"` columns are read as text: their first character.
fn ch(row: &Row, i: usize) -> char {
    row.get::<_, Option<String>>(i)
        .and_then(|s| s.chars().next())
        .unwrap_or(' ')
}

fn strip_not_valid(def: String) -> String {
    match def.strip_suffix(" NOT VALID") {
        Some(s) => s.to_string(),
        None => def,
    }
}

/// OID → object, per system catalog, to resolve `pg_depend`.
#[derive(Default)]
struct Oids {
    rel: HashMap<u32, ObjectId>,
    columns: HashMap<(u32, i16), String>,
    types: HashMap<u32, ObjectId>,
    procs: HashMap<u32, ObjectId>,
    constraints: HashMap<u32, ObjectId>,
    attrdefs: HashMap<u32, ObjectId>,
    rules: HashMap<u32, ObjectId>,
    triggers: HashMap<u32, ObjectId>,
    policies: HashMap<u32, ObjectId>,
    namespaces: HashMap<u32, ObjectId>,
    extensions: HashMap<u32, ObjectId>,
    members: HashMap<(u32, u32), ObjectId>,
}

impl Oids {
    fn resolve(&self, class: u32, oid: u32, sub: i32) -> Option<ObjectId> {
        if let Some(ext) = self.members.get(&(class, oid)) {
            return Some(ext.clone());
        }
        match class {
            PG_CLASS => {
                let id = self.rel.get(&oid)?;
                match id {
                    ObjectId::Table { name } if sub > 0 => {
                        let column = self.columns.get(&(oid, i16::try_from(sub).ok()?))?;
                        Some(ObjectId::Column {
                            table: name.clone(),
                            column: column.clone(),
                        })
                    }
                    _ => Some(id.clone()),
                }
            }
            PG_TYPE => self.types.get(&oid).cloned(),
            PG_PROC => self.procs.get(&oid).cloned(),
            PG_CONSTRAINT => self.constraints.get(&oid).cloned(),
            PG_ATTRDEF => self.attrdefs.get(&oid).cloned(),
            PG_REWRITE => self.rules.get(&oid).cloned(),
            PG_TRIGGER => self.triggers.get(&oid).cloned(),
            PG_POLICY => self.policies.get(&oid).cloned(),
            PG_NAMESPACE => self.namespaces.get(&oid).cloned(),
            PG_EXTENSION => self.extensions.get(&oid).cloned(),
            _ => None,
        }
    }
}

fn build(version: i32, rows: Rows) -> Result<Catalog> {
    let mut cat = Catalog {
        server_version_num: version,
        ..Catalog::default()
    };
    let mut oids = Oids::default();

    for r in &rows.extensions {
        let name: String = r.get(1);
        oids.extensions
            .insert(r.get(0), ObjectId::Extension { name: name.clone() });
        cat.extensions.insert(
            name,
            Extension {
                schema: r.get(2),
                version: r.get(3),
            },
        );
    }
    for r in &rows.members {
        let ext: String = r.get(2);
        oids.members
            .insert((r.get(0), r.get(1)), ObjectId::Extension { name: ext });
    }
    for r in &rows.schemas {
        let name: String = r.get(1);
        oids.namespaces
            .insert(r.get(0), ObjectId::Schema { name: name.clone() });
        cat.schemas.insert(name, Schema { comment: r.get(2) });
    }

    // Types.
    let mut type_kinds: HashMap<u32, (QName, char)> = HashMap::new();
    for r in &rows.types {
        let oid: u32 = r.get(0);
        let name = QName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        let kind = ch(r, 3);
        type_kinds.insert(oid, (name.clone(), kind));
        oids.types
            .insert(oid, ObjectId::Type { name: name.clone() });
        let def = match kind {
            'e' => TypeKind::Enum {
                labels: r.get::<_, Option<Vec<String>>>(4).unwrap_or_default(),
            },
            'd' => TypeKind::Domain {
                base: r.get::<_, Option<String>>(5).unwrap_or_default(),
                collation: r.get(8),
                default: r.get(7),
                not_null: r.get(6),
                constraints: BTreeMap::new(),
            },
            'c' => TypeKind::Composite {
                attributes: Vec::new(),
            },
            _ => TypeKind::Range {
                subtype: String::new(),
                opclass: None,
                collation: None,
                canonical: None,
                subtype_diff: None,
                multirange: None,
            },
        };
        cat.types.insert(
            name,
            TypeDef {
                kind: def,
                comment: r.get(9),
            },
        );
    }
    for r in &rows.ranges {
        let oid: u32 = r.get(0);
        let Some((name, _)) = type_kinds.get(&oid) else {
            continue;
        };
        if let Some(t) = cat.types.get_mut(name) {
            let multirange = match (r.get::<_, Option<String>>(6), r.get::<_, Option<String>>(7)) {
                (Some(s), Some(n)) => Some(QName::new(s, n)),
                _ => None,
            };
            t.kind = TypeKind::Range {
                subtype: r.get(1),
                opclass: r.get(2),
                collation: r.get(3),
                canonical: r.get(4),
                subtype_diff: r.get(5),
                multirange,
            };
        }
    }
    for r in &rows.attributes {
        let oid: u32 = r.get(0);
        let Some((name, _)) = type_kinds.get(&oid) else {
            continue;
        };
        if let Some(TypeDef {
            kind: TypeKind::Composite { attributes },
            ..
        }) = cat.types.get_mut(name)
        {
            attributes.push(Attribute {
                name: r.get(1),
                type_name: r.get(2),
                collation: r.get(3),
            });
        }
    }
    for r in &rows.domain_constraints {
        let oid: u32 = r.get(0);
        let Some((name, _)) = type_kinds.get(&oid) else {
            continue;
        };
        oids.constraints
            .insert(r.get(4), ObjectId::Type { name: name.clone() });
        if let Some(TypeDef {
            kind: TypeKind::Domain { constraints, .. },
            ..
        }) = cat.types.get_mut(name)
        {
            constraints.insert(
                r.get(1),
                DomainConstraint {
                    definition: strip_not_valid(r.get(2)),
                    validated: r.get(3),
                },
            );
        }
    }

    // Relations.
    struct Rel {
        name: QName,
        kind: char,
        row: usize,
    }
    let mut rels: HashMap<u32, Rel> = HashMap::new();
    let mut reltypes: HashMap<u32, u32> = HashMap::new();
    for (i, r) in rows.relations.iter().enumerate() {
        let oid: u32 = r.get(0);
        let name = QName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        let kind = ch(r, 3);
        let id = match kind {
            'r' | 'p' => ObjectId::Table { name: name.clone() },
            'v' | 'm' => ObjectId::View { name: name.clone() },
            _ => {
                // A composite type's relation stands for the type.
                let reltype: u32 = r.get(15);
                match oids.types.get(&reltype) {
                    Some(t) => t.clone(),
                    None => continue,
                }
            }
        };
        reltypes.insert(r.get(15), oid);
        oids.rel.insert(oid, id);
        rels.insert(oid, Rel { name, kind, row: i });
    }
    let rel_name = |oid: u32| rels.get(&oid).map(|r| r.name.clone());

    // Columns, grouped per relation.
    let mut columns: HashMap<u32, Vec<Column>> = HashMap::new();
    for r in &rows.columns {
        let rel: u32 = r.get(0);
        let attnum: i16 = r.get(1);
        let name: String = r.get(2);
        oids.columns.insert((rel, attnum), name.clone());
        let generated = ch(r, 6);
        let expr: Option<String> = r.get(7);
        let is_generated = generated == 's' || generated == 'v';
        if let (Some(def_oid), Some(Rel { name: table, .. })) =
            (r.get::<_, Option<u32>>(8), rels.get(&rel))
        {
            // A generated column's expression is part of the column, not a separate default.
            let id = if is_generated {
                ObjectId::Column {
                    table: table.clone(),
                    column: name.clone(),
                }
            } else {
                ObjectId::Default {
                    table: table.clone(),
                    column: name.clone(),
                }
            };
            oids.attrdefs.insert(def_oid, id);
        }
        columns.entry(rel).or_default().push(Column {
            name,
            type_name: r.get(3),
            not_null: r.get(4),
            default: if is_generated { None } else { expr.clone() },
            identity: match ch(r, 5) {
                'a' | 'd' => Some(Identity {
                    always: ch(r, 5) == 'a',
                    options: SequenceOptions {
                        data_type: String::new(),
                        start: 1,
                        increment: 1,
                        min: 1,
                        max: 0,
                        cache: 1,
                        cycle: false,
                    },
                    sequence: QName::new("", ""),
                }),
                _ => None,
            },
            generated: if is_generated { expr } else { None },
            generated_virtual: generated == 'v',
            collation: r.get(9),
            comment: r.get(11),
            inherited: r.get(10),
            attnum,
        });
    }

    // Sequences; identity sequences go to their column.
    let mut identity_seqs: HashMap<(u32, i16), (QName, SequenceOptions)> = HashMap::new();
    for r in &rows.sequences {
        let oid: u32 = r.get(0);
        let name = QName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        let options = SequenceOptions {
            data_type: r.get(3),
            start: r.get(4),
            increment: r.get(5),
            max: r.get(6),
            min: r.get(7),
            cache: r.get(8),
            cycle: r.get(9),
        };
        let owner: Option<u32> = r.get(12);
        let owner_col: Option<i16> = r.get(13);
        let deptype = ch(r, 14);
        if deptype == 'i' {
            if let (Some(t), Some(c)) = (owner, owner_col) {
                identity_seqs.insert((t, c), (name, options));
            }
            continue;
        }
        let owned_by = match (owner, owner_col) {
            (Some(t), Some(c)) => match (rel_name(t), oids.columns.get(&(t, c))) {
                (Some(table), Some(col)) => Some((table, col.clone())),
                _ => None,
            },
            _ => None,
        };
        oids.rel
            .insert(oid, ObjectId::Sequence { name: name.clone() });
        cat.sequences.insert(
            name,
            Sequence {
                options,
                owned_by,
                unlogged: r.get(10),
                comment: r.get(11),
                oid,
            },
        );
    }
    for ((rel, attnum), (seq, options)) in identity_seqs {
        if let Some(cols) = columns.get_mut(&rel)
            && let Some(col) = cols.iter_mut().find(|c| c.attnum == attnum)
            && let Some(identity) = col.identity.as_mut()
        {
            identity.options = options;
            identity.sequence = seq;
        }
    }

    // Tables and views.
    for (oid, rel) in &rels {
        let r = &rows.relations[rel.row];
        let comment: Option<String> = r.get(17);
        let mut options: Vec<String> = r.get::<_, Option<Vec<String>>>(7).unwrap_or_default();
        options.sort();
        let cols = columns.remove(oid).unwrap_or_default();
        match rel.kind {
            'r' | 'p' => {
                let parent: Option<u32> = r.get(9);
                let partition_of = match (parent.and_then(rel_name), r.get::<_, Option<String>>(10))
                {
                    (Some(p), Some(bound)) => Some((p, bound)),
                    _ => None,
                };
                let inherits: Vec<QName> = r
                    .get::<_, Option<Vec<u32>>>(12)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(rel_name)
                    .collect();
                cat.tables.insert(
                    rel.name.clone(),
                    Table {
                        kind: if rel.kind == 'p' {
                            TableKind::Partitioned
                        } else {
                            TableKind::Regular
                        },
                        unlogged: ch(r, 4) == 'u',
                        columns: cols,
                        partition_key: r.get(11),
                        partition_of,
                        inherits,
                        rls_enabled: r.get(5),
                        rls_forced: r.get(6),
                        options,
                        replica_identity: ch(r, 8),
                        replica_index: r.get(16),
                        comment,
                        oid: *oid,
                    },
                );
            }
            'v' | 'm' => {
                let column_comments = cols
                    .iter()
                    .filter_map(|c| c.comment.clone().map(|k| (c.name.clone(), k)))
                    .collect();
                cat.views.insert(
                    rel.name.clone(),
                    View {
                        kind: if rel.kind == 'm' {
                            ViewKind::Materialized
                        } else {
                            ViewKind::View
                        },
                        definition: r.get::<_, Option<String>>(13).unwrap_or_default(),
                        options,
                        columns: cols
                            .iter()
                            .map(|c| (c.name.clone(), c.type_name.clone()))
                            .collect(),
                        populated: r.get(14),
                        comment,
                        column_comments,
                    },
                );
            }
            _ => {}
        }
    }
    // Row types stand for their relation in dependencies.
    for (reltype, rel) in &reltypes {
        if let Some(id) = oids.rel.get(rel) {
            oids.types.entry(*reltype).or_insert_with(|| id.clone());
        }
    }
    for r in &rows.aliases {
        let oid: u32 = r.get(0);
        let elem: u32 = r.get(1);
        let range: Option<u32> = r.get(3);
        let target = if elem != 0 {
            oids.types.get(&elem).cloned()
        } else if let Some(range) = range {
            oids.types.get(&range).cloned()
        } else {
            None
        };
        if let Some(t) = target {
            oids.types.entry(oid).or_insert(t);
        }
    }

    // Constraints.
    let mut constraint_index: HashMap<u32, ObjectId> = HashMap::new();
    for r in &rows.constraints {
        let oid: u32 = r.get(0);
        let Some(table) = rel_name(r.get(1)) else {
            continue;
        };
        let name: String = r.get(2);
        let id = ObjectId::Constraint {
            table: table.clone(),
            name: name.clone(),
        };
        let kind = ch(r, 3);
        if matches!(kind, 'p' | 'u' | 'x') {
            constraint_index.insert(r.get(6), id.clone());
        }
        oids.constraints.insert(oid, id);
        cat.constraints.insert(
            (table, name),
            Constraint {
                kind,
                definition: strip_not_valid(r.get(4)),
                validated: r.get(5),
                inherited: r.get(7),
                comment: r.get(8),
            },
        );
    }

    // Indexes (those of constraints stand for the constraint).
    for r in &rows.indexes {
        let oid: u32 = r.get(0);
        let is_constraint: bool = r.get(7);
        let definition: Option<String> = r.get(4);
        if is_constraint {
            if let Some(id) = constraint_index.get(&oid) {
                oids.rel.insert(oid, id.clone());
            }
            continue;
        }
        let Some(table) = rel_name(r.get(3)) else {
            continue;
        };
        let name = QName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        oids.rel.insert(oid, ObjectId::Index { name: name.clone() });
        cat.indexes.insert(
            name,
            Index {
                table,
                definition: definition.unwrap_or_default(),
                partitioned: r.get(5),
                inherited: r.get(6),
                comment: r.get(8),
            },
        );
    }

    // Functions.
    for r in &rows.functions {
        let oid: u32 = r.get(0);
        let kind = ch(r, 4);
        if kind == 'a' {
            continue;
        }
        let name = QName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        let args: String = r.get(3);
        oids.procs.insert(
            oid,
            ObjectId::Function {
                name: name.clone(),
                args: args.clone(),
            },
        );
        cat.functions.insert(
            (name, args),
            Function {
                kind,
                definition: r.get::<_, Option<String>>(5).unwrap_or_default(),
                arguments: r.get(6),
                result: r.get(7),
                language: r.get(8),
                comment: r.get(9),
            },
        );
    }

    for r in &rows.triggers {
        let Some(table) = rel_name(r.get(1)) else {
            continue;
        };
        let name: String = r.get(2);
        oids.triggers.insert(
            r.get(0),
            ObjectId::Trigger {
                table: table.clone(),
                name: name.clone(),
            },
        );
        cat.triggers.insert(
            (table, name),
            Trigger {
                definition: r.get(3),
                enabled: ch(r, 4),
                inherited: r.get(5),
                comment: r.get(6),
            },
        );
    }

    for r in &rows.policies {
        let Some(table) = rel_name(r.get(1)) else {
            continue;
        };
        let name: String = r.get(2);
        oids.policies.insert(
            r.get(0),
            ObjectId::Policy {
                table: table.clone(),
                name: name.clone(),
            },
        );
        cat.policies.insert(
            (table, name),
            Policy {
                command: ch(r, 3),
                permissive: r.get(4),
                roles: r.get(5),
                using: r.get(6),
                check: r.get(7),
                comment: r.get(8),
            },
        );
    }

    for r in &rows.rules {
        let rulename: String = r.get(2);
        if rulename != "_RETURN" {
            continue;
        }
        if let Some(id) = oids.rel.get(&r.get::<_, u32>(1)) {
            oids.rules.insert(r.get(0), id.clone());
        }
    }

    // Dependencies from pg_depend, mapped to object ids (collected, then sorted once: far cheaper than inserting
    // into the set one by one).
    let mut depends: Vec<(ObjectId, ObjectId)> = Vec::with_capacity(rows.depends.len());
    for r in &rows.depends {
        let Some(dependent) = oids.resolve(r.get(0), r.get(1), r.get(2)) else {
            continue;
        };
        let Some(referenced) = oids.resolve(r.get(3), r.get(4), r.get(5)) else {
            continue;
        };
        let dependent = match (dependent, &referenced) {
            // A sequence's dependency on a column is its OWNED BY.
            (ObjectId::Sequence { name }, ObjectId::Column { .. }) => {
                ObjectId::SequenceOwner { name }
            }
            // A table's dependency on another table is its partition or inheritance link.
            (ObjectId::Table { name }, ObjectId::Table { name: parent }) => {
                match cat.tables.get(&name) {
                    Some(t) if t.partition_of.as_ref().is_some_and(|(p, _)| p == parent) => {
                        ObjectId::PartitionOf { table: name }
                    }
                    Some(t) if t.inherits.contains(parent) => ObjectId::Inherits {
                        table: name,
                        parent: parent.clone(),
                    },
                    _ => ObjectId::Table { name },
                }
            }
            (other, _) => other,
        };
        if dependent != referenced && !matches!(dependent, ObjectId::Extension { .. }) {
            depends.push((dependent, referenced));
        }
    }
    let t = std::time::Instant::now();
    add_structural_dependencies(&cat, &mut depends);
    tracing::debug!(
        "catalog: {} dependencies; structural ones added in {:?}",
        depends.len(),
        t.elapsed()
    );
    depends.sort_unstable();
    depends.dedup();
    cat.depends = depends.into_iter().collect();
    tracing::debug!("catalog: dependencies sorted after {:?}", t.elapsed());

    for r in &rows.unmodeled_depends {
        if let Some(id) = oids.resolve(r.get(0), r.get(1), r.get(2)) {
            let what: Option<String> = r.get(3);
            cat.used_by_unmodeled
                .entry(id)
                .or_default()
                .push(what.unwrap_or_default());
        }
    }
    for r in &rows.unmodeled {
        cat.unmodeled.push(Unmodeled {
            kind: r.get(0),
            identity: r.get(1),
        });
    }
    cat.unmodeled.sort();
    Ok(cat)
}

/// What `pg_depend` leaves implicit: a column belongs to its table, a default to its column, everything to its
/// schema, a partition to its parent.
fn add_structural_dependencies(cat: &Catalog, extra: &mut Vec<(ObjectId, ObjectId)>) {
    for id in cat.object_ids() {
        if let Some(schema) = id.schema()
            && cat.schemas.contains_key(schema)
        {
            extra.push((
                id.clone(),
                ObjectId::Schema {
                    name: schema.to_string(),
                },
            ));
        }
        match &id {
            ObjectId::Column { table, .. }
            | ObjectId::Constraint { table, .. }
            | ObjectId::Trigger { table, .. }
            | ObjectId::Policy { table, .. } => {
                let owner = if cat.tables.contains_key(table) {
                    ObjectId::Table {
                        name: table.clone(),
                    }
                } else {
                    ObjectId::View {
                        name: table.clone(),
                    }
                };
                extra.push((id.clone(), owner));
            }
            ObjectId::Default { table, column } => extra.push((
                id.clone(),
                ObjectId::Column {
                    table: table.clone(),
                    column: column.clone(),
                },
            )),
            ObjectId::SequenceOwner { name } => {
                extra.push((id.clone(), ObjectId::Sequence { name: name.clone() }));
                if let Some(Sequence {
                    owned_by: Some((t, c)),
                    ..
                }) = cat.sequences.get(name)
                {
                    extra.push((
                        id.clone(),
                        ObjectId::Column {
                            table: t.clone(),
                            column: c.clone(),
                        },
                    ));
                }
            }
            ObjectId::Index { name } => {
                if let Some(ix) = cat.indexes.get(name) {
                    let owner = if cat.tables.contains_key(&ix.table) {
                        ObjectId::Table {
                            name: ix.table.clone(),
                        }
                    } else {
                        ObjectId::View {
                            name: ix.table.clone(),
                        }
                    };
                    extra.push((id.clone(), owner));
                }
            }
            ObjectId::PartitionOf { table } => {
                extra.push((
                    id.clone(),
                    ObjectId::Table {
                        name: table.clone(),
                    },
                ));
                if let Some((parent, _)) =
                    cat.tables.get(table).and_then(|t| t.partition_of.as_ref())
                {
                    extra.push((
                        id.clone(),
                        ObjectId::Table {
                            name: parent.clone(),
                        },
                    ));
                }
            }
            ObjectId::Inherits { table, parent } => {
                extra.push((
                    id.clone(),
                    ObjectId::Table {
                        name: table.clone(),
                    },
                ));
                extra.push((
                    id.clone(),
                    ObjectId::Table {
                        name: parent.clone(),
                    },
                ));
            }
            _ => {}
        }
    }
}
