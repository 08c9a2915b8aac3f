//! Managed code (functions, procedures, views, triggers and comments: [`crate::decide::code`]) in an export.
//!
//! Every format gets the statements in the order `strata up` installs them — the managed dependency graph's — and
//! always as `CREATE OR REPLACE` (added when the file omits it), exactly as `up` sends them.
//!
//! - **Flyway**: repeatable scripts, which Flyway re-applies when their text changes, after the versioned ones.
//!   One per source file, `R__<rank>_<package>_<file>.sql`: Flyway runs repeatables in the order of their
//!   description, so the rank orders files after the files they depend on (files that depend on each other are
//!   merged into one script, named after the first).
//! - **dbmate, sqlx, golang-migrate, diesel**: one generated migration per package, after its migrations and
//!   repeatable scripts, named `<schema>_managed_<hash>`; its down part drops the objects in reverse order (views
//!   and triggers by name, routines with a `DO` block over `pg_proc` that drops every routine of that name in the
//!   package's schema, since a signature is only known to the catalog).
//! - **psql**: see [`psql_code`]: the script installs what changed and records it in `strata.managed_object` exactly
//!   as `strata up` does, with the same catalog probes and the same SQL.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::ExportFormat;
use super::psql::{PsqlWriter, enter_package, open_run, reset_role};
use super::quote::{dollar_quote, dollar_tag, text_array};
use super::tools::{Item, sanitize, scope};
use crate::db::catalog::{
    CLEAR_COMMENT_SQL, CatalogClass, HASHES_SQL, REPLACE_REFUSED, VERSIONS_SQL, drop_query,
    find_by_identity_sql, probe_sql,
};
use crate::db::history::{
    FORGET_MANAGED_SQL, MANAGED_SQL, MANAGED_VERSION_SQL, MANAGED_VERSIONS_BY_OID_SQL, PACKAGES_SQL,
};
use crate::decide::code::{CodeKind, CodeObject, Ordered};
use crate::source::STRATA_PACKAGE;
use crate::source::package::Package;

/// A statement as sent, terminated (a trailing line comment must not swallow the semicolon).
fn terminated(sql: &str) -> String {
    let sql = sql.trim_end();
    let last_line = sql.rsplit('\n').next().unwrap_or(sql);
    if last_line.contains("--") {
        format!("{sql}\n;\n")
    } else if sql.ends_with(';') {
        format!("{sql}\n")
    } else {
        format!("{sql};\n")
    }
}

/// The statements of `items` (positions in `order`), each package's run scoped to its schema.
fn scoped_statements(packages: &[Package], order: &[Ordered<'_>], items: &[usize]) -> String {
    let mut out = String::new();
    let mut k = 0;
    while k < items.len() {
        let pkg = order[items[k]].pkg;
        let mut text = String::new();
        while k < items.len() && order[items[k]].pkg == pkg {
            let obj = order[items[k]].obj;
            let file = &packages[pkg].code().files[obj.file];
            let _ = writeln!(text, "-- {}:{}", file.path, obj.line);
            text.push_str(&terminated(&obj.sql));
            text.push('\n');
            k += 1;
        }
        let package = &packages[pkg];
        out.push_str(&if package.schema() != "public" {
            scope(package, &text)
        } else {
            text
        });
    }
    out
}

/// Statements dropping the objects of `items` in reverse order (see the module docs).
fn drops(packages: &[Package], order: &[Ordered<'_>], items: &[usize]) -> String {
    // A routine name is dropped (all its overloads) where its first statement stood: everything that uses any of
    // them comes later in the install order, so it is dropped before.
    let mut first_of_name: HashMap<(usize, String, String), usize> = HashMap::new();
    for &i in items {
        let o = &order[i];
        if o.obj.kind.is_routine() {
            let name = o.obj.name.or_schema(packages[o.pkg].schema());
            first_of_name
                .entry((o.pkg, name.schema.unwrap_or_default(), name.name))
                .or_insert(i);
        }
    }
    let mut out = String::new();
    for &i in items.iter().rev() {
        let o = &order[i];
        let schema = packages[o.pkg].schema();
        let obj = o.obj;
        let name = obj.name.or_schema(schema);
        let qualified = format!(
            "{}.{}",
            escape_identifier(name.schema.as_deref().unwrap_or(schema)),
            escape_identifier(&name.name)
        );
        match obj.kind {
            CodeKind::View => {
                let _ = writeln!(out, "DROP VIEW IF EXISTS {qualified};");
            }
            CodeKind::Trigger => {
                let table = obj
                    .table
                    .clone()
                    .unwrap_or_else(|| obj.name.clone())
                    .or_schema(schema);
                let _ = writeln!(
                    out,
                    "DROP TRIGGER IF EXISTS {} ON {}.{};",
                    escape_identifier(&obj.name.name),
                    escape_identifier(table.schema.as_deref().unwrap_or(schema)),
                    escape_identifier(&table.name)
                );
            }
            CodeKind::Operator | CodeKind::Cast => {
                if let Some(sql) = drop_if_exists(obj, schema) {
                    let _ = writeln!(out, "{sql}");
                }
            }
            CodeKind::Function | CodeKind::Procedure | CodeKind::Aggregate => {
                let key = (
                    o.pkg,
                    name.schema.clone().unwrap_or_default(),
                    name.name.clone(),
                );
                if first_of_name.get(&key) != Some(&i) {
                    continue;
                }
                let body = format!(
                    "DECLARE\n  r record;\nBEGIN\n  \
                     FOR r IN SELECT p.oid::regprocedure AS signature, p.prokind FROM pg_catalog.pg_proc p\n            \
                     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace\n           \
                     WHERE n.nspname = {} AND p.proname = {} AND p.prokind IN ('f', 'p', 'a') LOOP\n    \
                     EXECUTE format('DROP %s %s', CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' \
                     ELSE 'FUNCTION' END, r.signature);\n  \
                     END LOOP;\nEND\n",
                    escape_literal(&key.1),
                    escape_literal(&key.2)
                );
                let tag = dollar_tag("strata", &body);
                let _ = writeln!(
                    out,
                    "-- every routine named {qualified}\nDO {tag}\n{body}{tag};"
                );
            }
            // Comments go with their objects.
            CodeKind::Comment => {}
        }
    }
    out
}

/// `DROP OPERATOR | CAST IF EXISTS` for an operator or a cast, from its statement's types (as written: unqualified
/// type names resolve on the package's search_path, as the statement's did). `None` for other kinds.
pub(super) fn drop_if_exists(obj: &CodeObject, schema: &str) -> Option<String> {
    let types: Vec<&str> = obj.params().iter().map(|p| p.ty.as_str()).collect();
    match (obj.kind, types.as_slice()) {
        (CodeKind::Operator, args) => {
            let (left, right) = match args {
                [l, r] => (*l, *r),
                [r] => ("NONE", *r),
                _ => return None,
            };
            Some(format!(
                "DROP OPERATOR IF EXISTS {}.{} ({left}, {right});",
                escape_identifier(obj.name.schema.as_deref().unwrap_or(schema)),
                obj.name.name
            ))
        }
        (CodeKind::Cast, [source, target]) => {
            Some(format!("DROP CAST IF EXISTS ({source} AS {target});"))
        }
        _ => None,
    }
}

/// Add the managed code of `packages` (in install `order`) to the items of another tool's export.
pub(super) fn tool_items(
    packages: &[Package],
    order: &[Ordered<'_>],
    format: ExportFormat,
    out: &mut Vec<Item>,
    warnings: &mut Vec<String>,
) {
    if order.is_empty() {
        return;
    }
    if format == ExportFormat::Flyway {
        flyway_repeatables(packages, order, out);
        warnings.push(
            "managed code became Flyway repeatable scripts (R__…): Flyway re-applies a changed one, but does not drop \
             an object removed from the source"
                .to_string(),
        );
        return;
    }
    for (p, pkg) in packages.iter().enumerate() {
        if pkg.name() == STRATA_PACKAGE {
            continue;
        }
        let items: Vec<usize> = (0..order.len()).filter(|&i| order[i].pkg == p).collect();
        if items.is_empty() {
            continue;
        }
        let up = scoped_statements(packages, order, &items);
        let hash = crate::source::script::checksum(&up);
        let short = hash.trim_start_matches("sha256:").get(..8).unwrap_or("");
        out.push(Item {
            base: format!("{}_managed_{short}", sanitize(pkg.schema())),
            original: None,
            up,
            no_transaction: false,
            down: Some(drops(packages, order, &items)),
            down_no_transaction: false,
            repeatable: false,
        });
        warnings.push(format!(
            "{}'s managed code ({} statement(s)) became one migration at the end, its down part drops it; when the \
             code changes, export again into a new folder or add a migration",
            pkg.name(),
            items.len()
        ));
    }
}

/// One repeatable per source file (files that depend on each other merged), ranked so that Flyway's order by
/// description installs dependencies first.
fn flyway_repeatables(packages: &[Package], order: &[Ordered<'_>], out: &mut Vec<Item>) {
    // Files in order of first appearance in the install order.
    let mut files: Vec<(usize, usize)> = Vec::new();
    let mut file_of: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut node_file = Vec::with_capacity(order.len());
    for o in order {
        let key = (o.pkg, o.obj.file);
        let f = *file_of.entry(key).or_insert_with(|| {
            files.push(key);
            files.len() - 1
        });
        node_file.push(f);
    }
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); files.len()];
    for (i, o) in order.iter().enumerate() {
        for &d in &o.needs {
            let (from, to) = (node_file[i], node_file[d]);
            if from != to && !edges[from].contains(&to) {
                edges[from].push(to);
            }
        }
    }
    for e in &mut edges {
        e.sort_unstable();
    }
    let groups = crate::order::components(&edges);
    let width = groups.len().to_string().len().max(2);
    for (rank, group) in groups.iter().enumerate() {
        let mut members = group.clone();
        members.sort_unstable();
        let items: Vec<usize> = (0..order.len())
            .filter(|&i| members.contains(&node_file[i]))
            .collect();
        let (pkg, file) = files[members[0]];
        let package = &packages[pkg];
        let path = &package.code().files[file].path;
        let stem = path.strip_suffix(".sql").unwrap_or(path);
        let mut base = format!(
            "{:0width$}_{}_{}",
            rank + 1,
            sanitize(package.name()),
            sanitize(stem)
        );
        if members.len() > 1 {
            let _ = write!(base, "_and_{}_more", members.len() - 1);
        }
        out.push(Item {
            base,
            original: None,
            up: scoped_statements(packages, order, &items),
            no_transaction: false,
            down: None,
            down_no_transaction: false,
            repeatable: true,
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The psql script.

/// The arguments of [`VERSIONS_SQL`] / [`HASHES_SQL`] for one object of `kind` (comments: on an object of
/// `class`), given SQL expressions for its oid and column.
fn catalog_args(kind: CodeKind, class: CatalogClass, oid: &str, sub: &str) -> String {
    let none = ["'{}'::oid[]", "'{}'::oid[]", "'{}'::oid[]"];
    let one = format!("ARRAY[{oid}]::oid[]");
    let mut lists = none.map(str::to_string);
    match kind {
        CodeKind::Function | CodeKind::Procedure | CodeKind::Aggregate => lists[0] = one,
        CodeKind::View => lists[1] = one,
        CodeKind::Trigger => lists[2] = one,
        CodeKind::Operator => {
            return format!(
                "{}, '{{}}'::text[], '{{}}'::oid[], '{{}}'::int4[], {one}, '{{}}'::oid[]",
                none.join(", ")
            );
        }
        CodeKind::Cast => {
            return format!(
                "{}, '{{}}'::text[], '{{}}'::oid[], '{{}}'::int4[], '{{}}'::oid[], {one}",
                none.join(", ")
            );
        }
        CodeKind::Comment => {
            return format!(
                "{}, ARRAY[{}]::text[], ARRAY[{oid}]::oid[], ARRAY[{sub}]::int4[], '{{}}'::oid[], '{{}}'::oid[]",
                none.join(", "),
                escape_literal(class.as_str())
            );
        }
    }
    format!(
        "{}, '{{}}'::text[], '{{}}'::oid[], '{{}}'::int4[], '{{}}'::oid[], '{{}}'::oid[]",
        lists.join(", ")
    )
}

/// The catalog a comment's object lives in (what `strata up` reads from its recorded identity).
fn comment_class(obj: &CodeObject) -> CatalogClass {
    obj.comment.as_ref().map_or(CatalogClass::Class, |c| {
        CatalogClass::of_comment_target(c.target)
    })
}

/// The managed-code part of the psql script: in one transaction, after migrations and repeatable scripts, as
/// `strata up` does.
///
/// 1. `strata.package` rows get the package's role and what it was granted (the SQL `strata up` runs).
/// 2. Each statement, in install order, is skipped when `strata.managed_object` records an object from the same
///    source whose catalog version is unchanged (or whose definition hash is: its row moved, the version is
///    refreshed). Otherwise it runs as the package role, between two probes of the catalog (the queries of
///    `strata up`), and its record is written with the catalog's identity, oid, version and definition hash.
///    When PostgreSQL refuses the in-place replacement, the script stops: such a change needs `strata up`.
/// 3. Recorded objects whose source is gone are dropped (comments cleared), found by their recorded identity; if
///    something depends on one, the script stops.
/// 4. When anything changed, every record's catalog version is refreshed (a trigger on a view moves the view's),
///    and, as `strata up` checks, no object owned by a package role may be outside its schema.
pub(super) fn psql_code(w: &mut PsqlWriter<'_>, order: &[Ordered<'_>]) {
    let packages = w.packages;
    let deployed: Vec<&Package> = packages
        .iter()
        .filter(|p| p.name() != STRATA_PACKAGE)
        .collect();
    if deployed.is_empty() {
        return;
    }
    w.begin();
    let _ = writeln!(
        w.out,
        "\n-- Managed code: installed in dependency order, only what changed, recorded as `strata up` records it."
    );
    let version_q =
        format!("SELECT x.version FROM ({VERSIONS_SQL}) AS x(kind, oid, sub_id, version)");
    let hash_q = format!("SELECT x.hash FROM ({HASHES_SQL}) AS x(kind, oid, sub_id, hash)");
    let mut body = String::new();
    for (name, q) in [
        ("strata.q_version", version_q.as_str()),
        ("strata.q_hash", hash_q.as_str()),
        ("strata.q_record", MANAGED_SQL),
    ] {
        let _ = writeln!(
            body,
            "  PERFORM set_config({}, {}, true);",
            escape_literal(name),
            dollar_quote(q)
        );
    }
    // Step 1: the package rows (role, granted uses), as `strata up` writes them before installing code.
    let names: Vec<String> = deployed.iter().map(|p| p.name().to_string()).collect();
    let schemas: Vec<String> = deployed.iter().map(|p| p.schema().to_string()).collect();
    let roles: Vec<String> = deployed
        .iter()
        .map(|p| {
            crate::db::roles::role_of(p).map_or_else(|| "NULL".to_string(), |r| escape_literal(&r))
        })
        .collect();
    let uses: Vec<String> = deployed
        .iter()
        .map(|p| {
            let granted: Vec<String> = if crate::db::roles::role_of(p).is_some() {
                crate::db::roles::wanted_uses(p, packages)
                    .into_iter()
                    .collect()
            } else {
                Vec::new()
            };
            format!(
                "{}::jsonb",
                escape_literal(&serde_json::json!(granted).to_string())
            )
        })
        .collect();
    let _ = writeln!(
        body,
        "  EXECUTE {}\n    USING {}, {}, ARRAY[{}]::text[], ARRAY[{}]::jsonb[], ARRAY[{}]::text[];",
        dollar_quote(PACKAGES_SQL),
        text_array(&names),
        text_array(&schemas),
        roles.join(", "),
        uses.join(", "),
        vec!["NULL"; deployed.len()].join(", ")
    );
    w.do_block(
        "managed code: the queries `strata up` uses, and the packages' rows",
        "",
        &body,
    );
    for (seq, o) in order.iter().enumerate() {
        object_block(w, o, seq);
    }
    drop_removed(w, order, &names);
    refresh_versions(w, &names);
    check_containment(w);
}

/// As `strata up` does after migrations or managed code ran as package roles: nothing of theirs may be outside
/// their schemas ([`crate::db::roles::CONTAINMENT_SQL`]).
fn check_containment(w: &mut PsqlWriter<'_>) {
    let pairs: Vec<(String, String)> = w
        .packages
        .iter()
        .filter_map(|p| crate::db::roles::role_of(p).map(|r| (r, p)))
        .flat_map(|(r, p)| p.schemas().iter().map(move |s| (r.clone(), s.clone())))
        .collect();
    if pairs.is_empty() {
        return;
    }
    let roles: Vec<String> = pairs.iter().map(|(r, _)| r.clone()).collect();
    let schemas: Vec<String> = pairs.iter().map(|(_, s)| s.clone()).collect();
    let body = format!(
        "  IF current_setting('strata.run_id') = '' THEN\n    RETURN;\n  END IF;\n  \
         FOR r IN EXECUTE {q} USING {roles}, {schemas} LOOP\n    \
         found := array_append(found, format('%s (owned by %s, whose %s)', r.what, r.role, r.schema));\n  \
         END LOOP;\n  \
         IF cardinality(found) > 0 THEN\n    \
         RAISE EXCEPTION 'strata: package roles own objects outside their schemas: %', array_to_string(found, '; ')\n      \
         USING HINT = 'a package''s migrations and code must only create objects in its own schema; move or drop \
         these objects. Nothing was applied.';\n  \
         END IF;\n",
        q = dollar_quote(&format!(
            "SELECT c.* FROM ({}) AS c(role, schema, what)",
            crate::db::roles::CONTAINMENT_SQL
        )),
        roles = text_array(&roles),
        schemas = text_array(&schemas),
    );
    w.do_block(
        "package roles own nothing outside their schemas",
        "  r record;\n  found text[] := '{}';\n",
        &body,
    );
}

/// Step 2 of [`psql_code`] for one statement.
fn object_block(w: &mut PsqlWriter<'_>, o: &Ordered<'_>, seq: usize) {
    let pkg = &w.packages[o.pkg];
    let obj = o.obj;
    let file = &pkg.code().files[obj.file];
    let label = obj.label();
    let location = format!("{}:{}", file.path, obj.line);
    let kind = obj.kind;
    let class = comment_class(obj);
    let kinds = if kind.is_routine() {
        "('function', 'procedure', 'aggregate')".to_string()
    } else {
        format!("({})", escape_literal(kind.as_str()))
    };
    let p = escape_literal(pkg.name());
    let probe = probe_sql(obj, pkg.schema());
    let stored_args = catalog_args(kind, class, "rec.object_oid", "rec.sub_id");
    let new_args = catalog_args(kind, class, "o_oid", "o_sub");
    let after = if kind.overloaded() {
        // A new overload, or the replaced one (its row version moved): the row that differs from before.
        format!(
            "SELECT p.oid, p.sub_id, p.identity, p.schema FROM ({probe}) AS p(oid, sub_id, version, identity, schema)\n\
             WHERE NOT (p.oid::text || ':' || p.version = ANY (coalesce($1, '{{}}'::text[]))) LIMIT 1"
        )
    } else {
        format!(
            "SELECT p.oid, p.sub_id, p.identity, p.schema FROM ({probe}) AS p(oid, sub_id, version, identity, schema) \
             LIMIT 1"
        )
    };
    let before = format!(
        "SELECT array_agg(p.oid::text || ':' || p.version) FROM ({probe}) AS p(oid, sub_id, version, identity, schema)"
    );
    let refused: Vec<String> = REPLACE_REFUSED
        .iter()
        .map(|c| format!("SQLSTATE '{}'", c.code()))
        .collect();
    let mut body = String::new();
    let _ = write!(
        body,
        "  -- Installed from this very source and untouched since: nothing to do (as `strata up` decides).\n  \
         SELECT m.kind, m.identity, m.object_oid, m.sub_id, m.catalog_version, m.catalog_hash INTO rec\n    \
         FROM strata.managed_object m\n   \
         WHERE m.package = {p} AND m.source_hash = {src} AND m.kind IN {kinds}\n   \
         ORDER BY m.seq LIMIT 1;\n  \
         IF FOUND THEN\n    \
         EXECUTE current_setting('strata.q_version') INTO cur\n      USING {stored_args};\n    \
         IF cur = rec.catalog_version THEN\n      RETURN;\n    END IF;\n    \
         IF cur IS NOT NULL THEN\n      \
         EXECUTE current_setting('strata.q_hash') INTO h\n        USING {stored_args};\n      \
         IF h = rec.catalog_hash THEN\n        \
         -- as installed; only its catalog row moved (grants, dump and restore)\n        \
         EXECUTE {refresh} USING {p}::text, rec.kind, rec.identity, cur;\n        \
         RETURN;\n      END IF;\n    END IF;\n  END IF;\n",
        src = escape_literal(&obj.hash),
        refresh = dollar_quote(MANAGED_VERSION_SQL),
    );
    // The probes read names as the statement does: with the package's search_path.
    body.push_str(&enter_package(pkg, true, true));
    let _ = writeln!(body, "  EXECUTE {} INTO before;", dollar_quote(&before));
    let _ = write!(
        body,
        "  BEGIN\n    EXECUTE {stmt};\n  \
         EXCEPTION WHEN {refused} THEN\n    \
         IF before IS NULL THEN\n      RAISE;\n    END IF;\n    \
         GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;\n    \
         RAISE EXCEPTION 'strata: % (%) cannot be replaced in place: %', {label}, {location}, msg\n      \
         USING HINT = 'the psql script only replaces managed objects in place; deploy this change with `strata up`, \
         which drops and re-creates the object and its managed dependents. Nothing was applied.';\n  \
         END;\n",
        stmt = dollar_quote(&obj.sql),
        refused = refused.join(" OR "),
        label = escape_literal(&label),
        location = escape_literal(&location),
    );
    body.push_str(&reset_role(pkg));
    let _ = write!(
        body,
        "  EXECUTE {after_q} INTO o_oid, o_sub, o_identity, o_schema{using};\n  \
         PERFORM set_config('search_path', current_setting('strata.search_path'), true);\n  \
         IF o_oid IS NULL THEN\n    \
         RAISE EXCEPTION 'strata: % (%) ran, but the catalog shows no object it created', {label}, {location};\n  \
         END IF;\n  \
         IF o_schema <> ALL ({schemas}) THEN\n    \
         RAISE EXCEPTION 'strata: % was created in schema %, not in the package''s schema %', o_identity, o_schema, {schema};\n  \
         END IF;\n\
         {run}  \
         EXECUTE current_setting('strata.q_version') INTO cur\n    USING {new_args};\n  \
         EXECUTE current_setting('strata.q_hash') INTO h\n    USING {new_args};\n  \
         EXECUTE current_setting('strata.q_record')\n    \
         USING ARRAY[{p}]::text[], ARRAY[{kind_lit}]::text[], ARRAY[o_identity]::text[], ARRAY[o_oid]::oid[],\n      \
         ARRAY[o_sub]::int4[], ARRAY[cur]::text[], ARRAY[h]::text[], ARRAY[{src}]::text[], ARRAY[{path}]::text[],\n      \
         ARRAY[{line}]::int4[], ARRAY[{seq}]::int4[], v_run;\n  \
         RAISE NOTICE 'strata: % % %', CASE WHEN o_oid::text = ANY (SELECT split_part(b, ':', 1) FROM unnest(before) AS b)\n    \
         THEN 'replaced' ELSE 'created' END, {kind_lit}, o_identity;\n",
        after_q = dollar_quote(&after),
        using = if kind.overloaded() {
            " USING before"
        } else {
            ""
        },
        label = escape_literal(&label),
        location = escape_literal(&location),
        schema = escape_literal(pkg.schema()),
        schemas = text_array(pkg.schemas()),
        run = open_run(),
        kind_lit = escape_literal(kind.as_str()),
        src = escape_literal(&obj.hash),
        path = escape_literal(&file.path),
        line = obj.line,
    );
    let declare = "  rec record;\n  cur text;\n  h text;\n  before text[];\n  msg text;\n  o_oid oid;\n  \
                   o_sub int4;\n  o_identity text;\n  o_schema text;\n  v_run bigint;\n";
    let comment = format!("{}: {label} ({location})", pkg.name());
    w.do_block(&comment, declare, &body);
}

/// Step 3 of [`psql_code`]: drop what left the source.
fn drop_removed(w: &mut PsqlWriter<'_>, order: &[Ordered<'_>], names: &[String]) {
    let packages = w.packages;
    let current_pkg: Vec<String> = order
        .iter()
        .map(|o| packages[o.pkg].name().to_string())
        .collect();
    let current_hash: Vec<String> = order.iter().map(|o| o.obj.hash.clone()).collect();
    let body = format!(
        "  -- Names in DROP statements come from the catalog, qualified: nothing on the search_path.\n  \
         PERFORM set_config('search_path', 'pg_catalog', true);\n  \
         FOR r IN SELECT m.package, m.kind, m.identity, m.object_oid, m.sub_id FROM strata.managed_object m\n            \
         WHERE m.package = ANY ({names})\n              \
         AND NOT EXISTS (SELECT FROM unnest({pkgs}, {hashes}) AS c(package, hash)\n                               \
         WHERE c.package = m.package AND c.hash = m.source_hash)\n            \
         ORDER BY m.kind = 'comment' DESC, m.seq DESC LOOP\n\
         {run}    \
         stmt := NULL;\n    \
         IF r.kind = 'comment' THEN\n      \
         EXECUTE {clear} INTO stmt USING split_part(r.identity, ' ', 1), r.object_oid, r.sub_id;\n    \
         ELSE\n      \
         cls := CASE r.kind WHEN 'view' THEN 'pg_class' WHEN 'trigger' THEN 'pg_trigger' WHEN 'operator' THEN 'pg_operator'\n        \
         WHEN 'cast' THEN 'pg_cast' ELSE 'pg_proc' END;\n      \
         -- by its recorded identity: its oid may have changed (dump and restore) or been reused\n      \
         EXECUTE {find} INTO found USING cls, r.identity;\n      \
         IF found IS NOT NULL THEN\n        \
         EXECUTE CASE cls WHEN 'pg_class' THEN {drop_view} WHEN 'pg_trigger' THEN {drop_trigger}\n          \
         WHEN 'pg_operator' THEN {drop_operator} WHEN 'pg_cast' THEN {drop_cast} ELSE {drop_routine} END\n          \
         INTO stmt USING found;\n      \
         END IF;\n    \
         END IF;\n    \
         IF stmt IS NOT NULL THEN\n      \
         BEGIN\n        EXECUTE stmt;\n      \
         EXCEPTION WHEN dependent_objects_still_exist THEN\n        \
         GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;\n        \
         RAISE EXCEPTION 'strata: % % left the source, but it cannot be dropped: % (%)', r.kind, r.identity, msg, det\n          \
         USING HINT = 'deploy this change with `strata up` (it drops managed dependents and re-creates them), or drop \
         what depends on it in a migration. Nothing was applied.';\n      \
         END;\n    \
         END IF;\n    \
         EXECUTE {forget} USING ARRAY[r.package], ARRAY[r.kind], ARRAY[r.identity];\n    \
         RAISE NOTICE 'strata: dropped % % (no longer in the source)', r.kind, r.identity;\n  \
         END LOOP;\n  \
         PERFORM set_config('search_path', current_setting('strata.search_path'), true);\n",
        names = text_array(names),
        pkgs = text_array(&current_pkg),
        hashes = text_array(&current_hash),
        run = open_run(),
        clear = dollar_quote(CLEAR_COMMENT_SQL),
        find = dollar_quote(&find_by_identity_sql()),
        drop_view = dollar_quote(drop_query(CatalogClass::Class)),
        drop_trigger = dollar_quote(drop_query(CatalogClass::Trigger)),
        drop_routine = dollar_quote(drop_query(CatalogClass::Proc)),
        drop_operator = dollar_quote(drop_query(CatalogClass::Operator)),
        drop_cast = dollar_quote(drop_query(CatalogClass::Cast)),
        forget = dollar_quote(FORGET_MANAGED_SQL),
    );
    let declare = "  r record;\n  stmt text;\n  cls text;\n  found oid;\n  msg text;\n  det text;\n  v_run bigint;\n";
    w.do_block(
        "managed objects no longer in the source: dropped (comments cleared)",
        declare,
        &body,
    );
}

/// Step 4 of [`psql_code`].
fn refresh_versions(w: &mut PsqlWriter<'_>, names: &[String]) {
    let names = text_array(names);
    let of_kind = |kinds: &str| {
        format!(
            "ARRAY(SELECT object_oid FROM strata.managed_object WHERE package = ANY ({names}) AND kind IN {kinds})"
        )
    };
    let body = format!(
        "  IF current_setting('strata.run_id') = '' THEN\n    RETURN;\n  END IF;\n  \
         FOR r IN EXECUTE {q}\n      \
         USING {routines},\n        {views},\n        {triggers},\n        \
         '{{}}'::text[], '{{}}'::oid[], '{{}}'::int4[],\n        {operators},\n        {casts} LOOP\n    \
         EXECUTE {refresh} USING {names}, r.oid, r.kind, r.version;\n  \
         END LOOP;\n",
        refresh = dollar_quote(MANAGED_VERSIONS_BY_OID_SQL),
        q = dollar_quote(&format!(
            "SELECT x.kind, x.oid, x.version FROM ({VERSIONS_SQL}) AS x(kind, oid, sub_id, version)"
        )),
        routines = of_kind("('function', 'procedure', 'aggregate')"),
        views = of_kind("('view')"),
        triggers = of_kind("('trigger')"),
        operators = of_kind("('operator')"),
        casts = of_kind("('cast')"),
    );
    w.do_block(
        "managed code: what this run changed may have moved other objects' catalog rows (a trigger on a view)",
        "  r record;\n",
        &body,
    );
}
