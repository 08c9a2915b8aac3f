#!/usr/bin/env bash
# Writes the benchmark package: DIR/pkg (strata.toml + N migrations, each with a down section) and DIR/floor.sql
# (the same up SQL concatenated, for `psql -1 -f`). Migrations are small and realistic, in groups of four per
# table: create a table; add an index and a column; insert and update rows; create a tag table with a foreign key,
# an index and rows.
#
# Usage: bench/core/generate.sh DIR [N]        (default N: 1000)
set -euo pipefail

dir=$1
migrations=${2:-1000}
pkg="$dir/pkg"
floor_sql="$dir/floor.sql"
mkdir -p "$pkg/migrations"
{
    echo "CREATE SCHEMA bench;"
    echo "SET search_path = bench, public;"
} >"$floor_sql"
{
    echo 'name = "bench/core"'
    echo 'schema = "bench"'
    echo 'migrations = ['
} >"$pkg/strata.toml"

for ((i = 1; i <= migrations; i++)); do
    name=$(printf '%04d_step' "$i")
    t=$(((i + 3) / 4))
    case $((i % 4)) in
        1)
            up="CREATE TABLE item_$t (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    amount numeric(12,2) NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE item_$t IS 'items, batch $t';"
            down="DROP TABLE item_$t;"
            ;;
        2)
            up="CREATE INDEX item_${t}_name ON item_$t (name);
ALTER TABLE item_$t ADD COLUMN status text NOT NULL DEFAULT 'new';"
            down="ALTER TABLE item_$t DROP COLUMN status;
DROP INDEX item_${t}_name;"
            ;;
        3)
            up="INSERT INTO item_$t (name, amount)
SELECT 'item ' || g, g * 1.5 FROM generate_series(1, 50) AS g;
UPDATE item_$t SET status = 'ready' WHERE amount > 30;"
            down="DELETE FROM item_$t;"
            ;;
        0)
            up="CREATE TABLE item_${t}_tag (
    item_id bigint NOT NULL REFERENCES item_$t (id) ON DELETE CASCADE,
    tag text NOT NULL,
    PRIMARY KEY (item_id, tag)
);
CREATE INDEX item_${t}_tag_tag ON item_${t}_tag (tag);
INSERT INTO item_${t}_tag SELECT id, 'batch-$t' FROM item_$t WHERE id % 5 = 0;"
            down="DROP TABLE item_${t}_tag;"
            ;;
    esac
    printf -- '-- migrate:up\n%s\n\n-- migrate:down\n%s\n' "$up" "$down" >"$pkg/migrations/$name.sql"
    printf '%s\n' "$up" >>"$floor_sql"
    printf '    "migrations/%s.sql",\n' "$name" >>"$pkg/strata.toml"
done
echo ']' >>"$pkg/strata.toml"
