-- MiniPaaS streams: an ordered, replayable log with consumer groups whose offsets live in the database.
--
-- No skipped events. event_offset = (publishing transaction's id) * 2^20 + n, where n counts that transaction's
-- events. A reader returns only offsets below its horizon: the smallest id among the other transactions still
-- running in this database, taken from the same snapshot that reads the events (pg_current_snapshot(); ids that
-- pg_stat_activity shows running in other databases are left out). Every event below the horizon was written by a
-- transaction that had finished when the snapshot was taken (or by the reader's own transaction), so it is either
-- visible or rolled back; every other transaction still running writes offsets at or above the horizon. A
-- consumer that saw offset X can therefore never later find a committed event below X. Publishers never wait for
-- each other (no counter row held until commit). The price: events from transactions with later ids are held
-- back while an older transaction (publisher or not) of the same database is still open; stream_group_lag shows
-- the held-back count.
--
-- Named numbers (the event-offset multiplier, advisory lock classes, limits) are the minipaas.const_* functions of
-- queues.sql.

CREATE OR REPLACE FUNCTION minipaas._stream(stream text, create_missing boolean)
RETURNS minipaas.streams
LANGUAGE plpgsql
AS $fn$
DECLARE
    s minipaas.streams;
BEGIN
    SELECT * INTO s FROM minipaas.streams t WHERE t.name = _stream.stream;
    IF FOUND THEN
        RETURN s;
    END IF;
    PERFORM minipaas._check_name('stream', stream);
    IF NOT create_missing THEN
        RAISE EXCEPTION 'minipaas: stream % does not exist', quote_literal(stream)
            USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO minipaas.streams (name) VALUES (stream) ON CONFLICT (name) DO NOTHING;
    SELECT * INTO s FROM minipaas.streams t WHERE t.name = _stream.stream;
    RETURN s;
END
$fn$;

COMMENT ON FUNCTION minipaas._stream(text, boolean) IS
    'Internal: the stream''s row; a missing stream is created with default options, or is an error (42704).';

CREATE OR REPLACE FUNCTION minipaas._next_offsets(n integer)
RETURNS bigint
LANGUAGE plpgsql
AS $fn$
DECLARE
    -- Taking the transaction id first: the offsets must not be drawn before the transaction has an id,
    -- or a reader could see the transaction as not running yet.
    v_xid   bigint := pg_catalog.pg_current_xact_id()::text::bigint;
    v_state text := pg_catalog.current_setting('minipaas.publish_seq', true);
    v_used  bigint := 0;
BEGIN
    -- The count lives in a session setting tagged with the transaction id; a setting is rolled back with its
    -- (sub)transaction, which also frees the offsets of events rolled back with it.
    IF v_state LIKE v_xid::text || ':%' THEN
        v_used := pg_catalog.split_part(v_state, ':', 2)::bigint;
    END IF;
    IF v_used + n > minipaas.const_events_per_transaction() THEN
        RAISE EXCEPTION 'minipaas: at most % stream events per transaction', minipaas.const_events_per_transaction()
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    -- (An assignment, not PERFORM, is evaluated without starting the executor.)
    v_state := pg_catalog.set_config('minipaas.publish_seq', v_xid::text || ':' || (v_used + n)::text, false);
    RETURN v_xid * minipaas.const_events_per_transaction() + v_used;
END
$fn$;

COMMENT ON FUNCTION minipaas._next_offsets(integer) IS
    'Internal: reserves n consecutive offsets for the current transaction and returns the first.';

CREATE OR REPLACE FUNCTION minipaas._foreign_xids()
RETURNS xid[]
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    v_ids xid[];
BEGIN
    -- Transaction ids are cluster-wide, but a transaction writes only in its own database: the ids running in
    -- other databases cannot hold back this database's streams. Read before the reading query takes its
    -- snapshot (and with a fresh copy of the activity array, which is otherwise cached per transaction), so that
    -- an id only misses from this list if its transaction started in between; a missing id merely counts.
    PERFORM pg_catalog.pg_stat_clear_snapshot();
    SELECT coalesce(pg_catalog.array_agg(a.backend_xid), '{}') INTO v_ids
      FROM pg_catalog.pg_stat_get_activity(NULL) AS a
     WHERE a.backend_xid IS NOT NULL
       AND a.datid <> (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
    RETURN v_ids;
END
$fn$;

COMMENT ON FUNCTION minipaas._foreign_xids() IS
    'Internal: ids of the transactions now running in other databases of the cluster.';

CREATE OR REPLACE FUNCTION minipaas._horizon(foreign_xids xid[])
RETURNS bigint
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    -- A STABLE function runs in its caller's snapshot: this is the snapshot that reads the events.
    v_snap pg_catalog.pg_snapshot := pg_catalog.pg_current_snapshot();
    v_x    bigint;
BEGIN
    -- The oldest other running transaction is the smallest id in xip, or else xmax (ids from xmax up were not
    -- finished when the snapshot was taken), leaving out ids running in other databases. Our own transaction
    -- counts as running too, except when it is exactly the oldest: then its own events (visible to it) are
    -- settled as well.
    -- (min over bigint, not xid8: PostgreSQL 14 has no min(xid8).)
    SELECT coalesce(min(x::text::bigint), pg_catalog.pg_snapshot_xmax(v_snap)::text::bigint) INTO v_x
      FROM pg_catalog.pg_snapshot_xip(v_snap) AS x
     WHERE x::xid <> ALL (foreign_xids);
    IF v_x = pg_catalog.pg_current_xact_id_if_assigned()::text::bigint THEN
        v_x := v_x + 1;
    END IF;
    RETURN v_x * minipaas.const_events_per_transaction();
END
$fn$;

COMMENT ON FUNCTION minipaas._horizon(xid[]) IS
    'Internal: stream_horizon() for the current snapshot, given the ids running in other databases.';

CREATE OR REPLACE FUNCTION minipaas.stream_horizon()
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    -- Read before the snapshot that _horizon looks at: in one SQL statement the snapshot would come first, and
    -- a transaction of another database that ended in between would count as running here.
    v_foreign xid[] := minipaas._foreign_xids();
BEGIN
    -- (An expression in a volatile PL/pgSQL function is evaluated in a fresh snapshot.)
    RETURN minipaas._horizon(v_foreign);
END
$fn$;

COMMENT ON FUNCTION minipaas.stream_horizon() IS
    'Exclusive upper bound of the offsets that are settled in the current snapshot: below it, no other running '
    'transaction of this database can still commit an event.';

CREATE OR REPLACE FUNCTION minipaas._partition_of(s minipaas.streams, key text)
RETURNS integer
LANGUAGE sql VOLATILE
AS $fn$
    SELECT CASE
        WHEN s.partitions = 1 THEN 0
        WHEN key IS NULL THEN pg_catalog.floor(pg_catalog.random() * s.partitions)::integer
        ELSE ((pg_catalog.hashtextextended(key, 0) & 9223372036854775807) % s.partitions)::integer
    END;
$fn$;

COMMENT ON FUNCTION minipaas._partition_of(minipaas.streams, text) IS
    'The partition of an event: by hash of its key, at random without a key (stream_publish inlines the same rule).';

CREATE OR REPLACE FUNCTION minipaas.stream_create(
    stream          text,
    partitions      integer DEFAULT NULL,
    retention_age   interval DEFAULT NULL,
    retention_count bigint DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_variable
DECLARE
    v_created boolean;
    v_current integer;
BEGIN
    PERFORM minipaas._check_name('stream', stream);
    IF partitions NOT BETWEEN 1 AND 256 THEN
        RAISE EXCEPTION 'minipaas: partitions must be between 1 and 256, got %', partitions
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM minipaas._check_duration('retention_age', retention_age, true, minipaas.const_max_duration(),
                                     'Events older than retention_age are trimmed (0: kept forever).');
    IF retention_count < 0 THEN
        RAISE EXCEPTION 'minipaas: retention_count must not be negative, got %', retention_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO minipaas.streams AS t (name, partitions) VALUES (stream, coalesce(partitions, 1))
        ON CONFLICT (name) DO NOTHING;
    v_created := FOUND;
    SELECT t.partitions INTO v_current FROM minipaas.streams t WHERE t.name = stream FOR UPDATE;
    IF partitions IS NOT NULL AND partitions <> v_current THEN
        RAISE EXCEPTION 'minipaas: stream % has % partitions; the number of partitions cannot change',
                quote_literal(stream), v_current
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Keys map to partitions by hash; changing the count would reorder keys.';
    END IF;
    -- 0 turns a retention limit off.
    UPDATE minipaas.streams AS t SET
        retention_age   = CASE WHEN retention_age IS NULL THEN t.retention_age
                               ELSE nullif(retention_age, interval '0') END,
        retention_count = CASE WHEN retention_count IS NULL THEN t.retention_count
                               ELSE nullif(retention_count, 0) END
     WHERE t.name = stream;
    RETURN v_created;
END
$fn$;

COMMENT ON FUNCTION minipaas.stream_create(text, integer, interval, bigint) IS
    'Creates a stream, or changes its retention (NULL leaves it, 0 turns it off). partitions (1..256, default 1) '
    'is fixed at creation: keys map to partitions by hash. retention_age and retention_count (per partition) are '
    'applied by stream_trim and maintain(). Returns true if created. Streams named for the first time by '
    'stream_publish get the defaults.';

CREATE OR REPLACE FUNCTION minipaas.stream_drop(stream text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id integer;
BEGIN
    PERFORM minipaas._check_name('stream', stream);
    DELETE FROM minipaas.streams t WHERE t.name = stream_drop.stream RETURNING t.stream_id INTO v_id;
    IF NOT FOUND THEN
        IF if_exists THEN
            RETURN false;
        END IF;
        RAISE EXCEPTION 'minipaas: stream % does not exist', quote_literal(stream)
            USING ERRCODE = 'undefined_object';
    END IF;
    DELETE FROM minipaas.stream_events e WHERE e.stream_id = v_id;
    DELETE FROM minipaas.stream_group_offsets g WHERE g.stream_id = v_id;
    RETURN true;
END
$fn$;

COMMENT ON FUNCTION minipaas.stream_drop(text, boolean) IS
    'Drops a stream with its events and consumer groups. An unknown stream is an error unless if_exists.';

CREATE OR REPLACE FUNCTION minipaas.stream_publish(
    stream           text,
    payload          jsonb,
    key              text DEFAULT NULL,
    dedup_id         text DEFAULT NULL,
    expected_version bigint DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    s             minipaas.streams;
    v_offset      bigint;
    v_existing    bigint;
    v_partition   integer;
    v_version     bigint;
    v_last_offset bigint;
BEGIN
    IF stream_publish.payload IS NULL THEN
        RAISE EXCEPTION 'minipaas: the payload must not be NULL (use ''null''::jsonb for a JSON null)'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF stream_publish.expected_version IS NOT NULL AND stream_publish.key IS NULL THEN
        RAISE EXCEPTION 'minipaas: expected_version needs a key: versions are counted per key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF stream_publish.expected_version < 0 THEN
        RAISE EXCEPTION 'minipaas: expected_version must not be negative (0: the key has no events yet)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO s FROM minipaas.streams t WHERE t.name = stream_publish.stream;
    IF NOT FOUND THEN
        s := minipaas._stream(stream_publish.stream, true);
    END IF;

    IF stream_publish.dedup_id IS NOT NULL THEN
        IF pg_catalog.octet_length(stream_publish.dedup_id) > minipaas.const_max_key_bytes() THEN
            PERFORM minipaas._check_key('dedup_id', stream_publish.dedup_id);
        END IF;
        SELECT e.event_offset INTO v_existing FROM minipaas.stream_events e
         WHERE e.stream_id = s.stream_id AND e.dedup_id = stream_publish.dedup_id;
        IF FOUND THEN
            RETURN v_existing;
        END IF;
    END IF;

    IF stream_publish.key IS NOT NULL THEN
        IF pg_catalog.octet_length(stream_publish.key) > minipaas.const_max_key_bytes() THEN
            PERFORM minipaas._check_key('key', stream_publish.key);
        END IF;
        IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'minipaas: publishing with a key needs READ COMMITTED, not %',
                    pg_catalog.current_setting('transaction_isolation')
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'A snapshot from the start of the transaction cannot see the key''s latest version.';
        END IF;
        -- Publishers of one key take turns until commit, so versions are gapless and in commit order.
        PERFORM pg_catalog.pg_advisory_xact_lock(
            minipaas.const_lock_stream_key(), pg_catalog.hashtext(s.stream_id::text || ':' || stream_publish.key));
        SELECT e.key_version, e.event_offset INTO v_version, v_last_offset
          FROM minipaas.stream_events e
         WHERE e.stream_id = s.stream_id AND e.key = stream_publish.key AND e.key IS NOT NULL
         ORDER BY e.key_version DESC
         LIMIT 1;
        v_version := coalesce(v_version, 0);
        IF stream_publish.expected_version IS NOT NULL AND stream_publish.expected_version <> v_version THEN
            RAISE EXCEPTION 'minipaas: wrong expected version for key % of stream %: expected %, current %',
                    quote_literal(stream_publish.key), quote_literal(s.name), stream_publish.expected_version,
                    v_version
                USING ERRCODE = 'MP409', HINT = 'Another writer published to this key first; reload and retry.';
        END IF;
        v_version := v_version + 1;
    END IF;

    -- (Inline rather than minipaas._partition_of: a SQL function called from PL/pgSQL is planned on every call.)
    v_partition := CASE
        WHEN s.partitions = 1 THEN 0
        WHEN stream_publish.key IS NULL THEN pg_catalog.floor(pg_catalog.random() * s.partitions)::integer
        ELSE ((pg_catalog.hashtextextended(stream_publish.key, 0) & 9223372036854775807) % s.partitions)::integer
    END;
    v_offset := minipaas._next_offsets(1);
    IF v_last_offset > v_offset THEN
        -- This transaction's id is older than that of the key's latest event, which committed first: the new
        -- event would sort before an earlier version of its key.
        RAISE EXCEPTION 'minipaas: key % of stream % was published by a newer transaction; retry this transaction',
                quote_literal(stream_publish.key), quote_literal(s.name)
            USING ERRCODE = 'serialization_failure';
    END IF;

    IF stream_publish.dedup_id IS NULL THEN
        INSERT INTO minipaas.stream_events (stream_id, partition, event_offset, key, key_version, published_at,
                                            payload)
        VALUES (s.stream_id, v_partition, v_offset, stream_publish.key, v_version, pg_catalog.clock_timestamp(),
                stream_publish.payload);
    ELSE
        INSERT INTO minipaas.stream_events (stream_id, partition, event_offset, key, key_version, dedup_id,
                                            published_at, payload)
        VALUES (s.stream_id, v_partition, v_offset, stream_publish.key, v_version, stream_publish.dedup_id,
                pg_catalog.clock_timestamp(), stream_publish.payload)
        ON CONFLICT (stream_id, dedup_id) WHERE dedup_id IS NOT NULL DO NOTHING;
        IF NOT FOUND THEN
            -- A concurrent publish with the same dedup id committed first.
            SELECT e.event_offset INTO v_offset FROM minipaas.stream_events e
             WHERE e.stream_id = s.stream_id AND e.dedup_id = stream_publish.dedup_id;
        END IF;
    END IF;
    RETURN v_offset;
END
$fn$;

COMMENT ON FUNCTION minipaas.stream_publish(text, jsonb, text, text, bigint) IS
    'Appends an event (in the caller''s transaction) and returns its offset; offsets only grow. A stream named for '
    'the first time is created. key: per-key versions 1, 2, ... and the partition; expected_version: the key''s '
    'current version must equal it (0: no events yet), else SQLSTATE MP409; dedup_id: publishing an id the stream '
    'still holds returns the earlier offset. Keyed publishes serialise per key until commit (READ COMMITTED only); '
    'a transaction older than the key''s latest writer gets 40001 and should retry.';

CREATE OR REPLACE FUNCTION minipaas.stream_publish_batch(
    stream    text,
    payloads  jsonb[],
    keys      text[] DEFAULT NULL,
    dedup_ids text[] DEFAULT NULL
) RETURNS SETOF bigint
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    s      minipaas.streams;
    v_n    integer := coalesce(pg_catalog.cardinality(payloads), 0);
    v_base bigint;
    i      integer;
BEGIN
    IF payloads IS NULL THEN
        RAISE EXCEPTION 'minipaas: payloads must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF v_n > minipaas.const_max_batch() THEN
        RAISE EXCEPTION 'minipaas: at most % events per batch, got %', minipaas.const_max_batch(), v_n
            USING ERRCODE = 'program_limit_exceeded', HINT = 'Split the batch; each call is all-or-nothing.';
    END IF;
    IF pg_catalog.array_position(payloads, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'minipaas: payload % of the batch is NULL', pg_catalog.array_position(payloads, NULL)
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (keys IS NOT NULL AND pg_catalog.cardinality(keys) <> v_n)
       OR (dedup_ids IS NOT NULL AND pg_catalog.cardinality(dedup_ids) <> v_n) THEN
        RAISE EXCEPTION 'minipaas: keys and dedup_ids must have one entry per payload'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    s := minipaas._stream(stream, true);
    IF v_n = 0 THEN
        RETURN;
    END IF;

    IF EXISTS (SELECT 1 FROM unnest(keys) k WHERE k IS NOT NULL)
       OR EXISTS (SELECT 1 FROM unnest(dedup_ids) d WHERE d IS NOT NULL) THEN
        -- Take every key lock first, in one order, so that two batches cannot deadlock.
        PERFORM pg_catalog.pg_advisory_xact_lock(minipaas.const_lock_stream_key(),
                                                 pg_catalog.hashtext(s.stream_id::text || ':' || l.k))
           FROM (SELECT DISTINCT k FROM unnest(keys) k WHERE k IS NOT NULL) l
          ORDER BY pg_catalog.hashtext(s.stream_id::text || ':' || l.k), l.k;
        FOR i IN 1 .. v_n LOOP
            RETURN NEXT minipaas.stream_publish(stream, payloads[i], keys[i], dedup_ids[i]);
        END LOOP;
        RETURN;
    END IF;

    v_base := minipaas._next_offsets(v_n);
    RETURN QUERY
    WITH ins AS (
        INSERT INTO minipaas.stream_events (stream_id, partition, event_offset, published_at, payload)
        SELECT s.stream_id,
               CASE WHEN s.partitions = 1 THEN 0
                    ELSE pg_catalog.floor(pg_catalog.random() * s.partitions)::integer END,
               v_base + p.n - 1, pg_catalog.clock_timestamp(),
               p.payload
          FROM unnest(payloads) WITH ORDINALITY AS p(payload, n)
        RETURNING event_offset
    )
    SELECT ins.event_offset FROM ins ORDER BY ins.event_offset;
END
$fn$;

COMMENT ON FUNCTION minipaas.stream_publish_batch(text, jsonb[], text[], text[]) IS
    'Publishes up to 10000 events in one call (all or nothing) and returns their offsets in input order.';

CREATE OR REPLACE FUNCTION minipaas.stream_consume(
    stream         text,
    after_offset   bigint DEFAULT 0,
    max_events     integer DEFAULT 100,
    only_partition integer DEFAULT NULL
) RETURNS TABLE (
    event_offset bigint,
    partition    integer,
    key          text,
    key_version  bigint,
    payload      jsonb,
    published_at timestamptz,
    dedup_id     text
)
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    s         minipaas.streams;
    v_foreign xid[];
BEGIN
    IF max_events IS NULL OR max_events < 1 OR max_events > minipaas.const_max_batch() THEN
        RAISE EXCEPTION 'minipaas: max_events must be between 1 and %, got %', minipaas.const_max_batch(),
                coalesce(max_events::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO s FROM minipaas.streams t WHERE t.name = stream_consume.stream;
    IF NOT FOUND THEN
        -- Consumers may start before the first publish creates the stream.
        PERFORM minipaas._check_name('stream', stream_consume.stream);
        RETURN;
    END IF;
    IF only_partition NOT BETWEEN 0 AND s.partitions - 1 THEN
        RAISE EXCEPTION 'minipaas: stream % has partitions 0 to %, not %', quote_literal(s.name),
                s.partitions - 1, only_partition
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_foreign := minipaas._foreign_xids();
    RETURN QUERY
    SELECT x.event_offset, x.partition, x.key, x.key_version, x.payload, x.published_at, x.dedup_id
      FROM pg_catalog.generate_series(coalesce(only_partition, 0), coalesce(only_partition, s.partitions - 1)) AS p(n)
     CROSS JOIN LATERAL (
            SELECT e.* FROM minipaas.stream_events e
             WHERE e.stream_id = s.stream_id AND e.partition = p.n
               AND e.event_offset > coalesce(after_offset, 0)
               AND e.event_offset < (SELECT minipaas._horizon(v_foreign))
             ORDER BY e.event_offset
             LIMIT max_events) AS x
     ORDER BY x.event_offset
     LIMIT max_events;
END
$fn$;

COMMENT ON FUNCTION minipaas.stream_consume(text, bigint, integer, integer) IS
    'Up to max_events (1..10000) events after after_offset, in offset order (of one partition, or all merged). '
    'Never skips: see the top of streams.sql. Events newer than the oldest running transaction wait until it ends. '
    'An unknown stream returns no rows.';

CREATE OR REPLACE FUNCTION minipaas.stream_read_key(
    stream        text,
    key           text,
    after_version bigint DEFAULT 0,
    max_events    integer DEFAULT 100
) RETURNS TABLE (
    event_offset bigint,
    partition    integer,
    key_version  bigint,
    payload      jsonb,
    published_at timestamptz,
    dedup_id     text
)
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_column
DECLARE
    s minipaas.streams;
BEGIN
    IF max_events IS NULL OR max_events < 1 OR max_events > minipaas.const_max_batch() THEN
        RAISE EXCEPTION 'minipaas: max_events must be between 1 and %, got %', minipaas.const_max_batch(),
                coalesce(max_events::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO s FROM minipaas.streams t WHERE t.name = stream_read_key.stream;
    IF NOT FOUND THEN
        PERFORM minipaas._check_name('stream', stream_read_key.stream);
        RETURN;
    END IF;
    -- Versions of a key are assigned under a lock held until commit, so they become visible in order.
    RETURN QUERY
    SELECT e.event_offset, e.partition, e.key_version, e.payload, e.published_at, e.dedup_id
      FROM minipaas.stream_events e
     WHERE e.stream_id = s.stream_id AND e.key = stream_read_key.key
       AND e.key_version > coalesce(after_version, 0)
     ORDER BY e.key_version
     LIMIT max_events;
END
$fn$;

COMMENT ON FUNCTION minipaas.stream_read_key(text, text, bigint, integer) IS
    'The events of one key after a version, in version order (event-store style reads of one entity).';

CREATE OR REPLACE FUNCTION minipaas.stream_group_consume(
    stream         text,
    consumer_group text,
    max_events     integer DEFAULT 100,
    only_partition integer DEFAULT NULL
) RETURNS TABLE (
    event_offset bigint,
    partition    integer,
    key          text,
    key_version  bigint,
    payload      jsonb,
    published_at timestamptz,
    dedup_id     text
)
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    s        minipaas.streams;
    v_parts  integer[];
    v_from   bigint[];
    v_foreign xid[];
    r        record;
BEGIN
    IF max_events IS NULL OR max_events < 1 OR max_events > minipaas.const_max_batch() THEN
        RAISE EXCEPTION 'minipaas: max_events must be between 1 and %, got %', minipaas.const_max_batch(),
                coalesce(max_events::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO s FROM minipaas.streams t WHERE t.name = stream_group_consume.stream;
    IF NOT FOUND THEN
        PERFORM minipaas._check_name('stream', stream_group_consume.stream);
        PERFORM minipaas._check_name('consumer group', consumer_group);
        RETURN;
    END IF;
    IF only_partition NOT BETWEEN 0 AND s.partitions - 1 THEN
        RAISE EXCEPTION 'minipaas: stream % has partitions 0 to %, not %', quote_literal(s.name),
                s.partitions - 1, only_partition
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM minipaas._check_name('consumer group', consumer_group);
    -- A member owns a partition until its transaction ends: members that consume and commit in one transaction
    -- split the partitions between them; a partition another member holds is skipped, not waited for. A group
    -- without a committed offset starts at the beginning; its rows appear with its first commit (never here:
    -- an insert would make other members wait for this transaction).
    FOR r IN
        SELECT p.n AS partition, coalesce(g.committed_offset, 0) AS committed_offset
          FROM pg_catalog.generate_series(coalesce(only_partition, 0), coalesce(only_partition, s.partitions - 1))
               AS p(n)
          LEFT JOIN minipaas.stream_group_offsets g
            ON g.stream_id = s.stream_id AND g.group_name = consumer_group AND g.partition = p.n
         ORDER BY p.n
    LOOP
        IF pg_catalog.pg_try_advisory_xact_lock(minipaas.const_lock_group_partition(),
               pg_catalog.hashtext(s.stream_id::text || ':' || consumer_group || ':' || r.partition::text)) THEN
            v_parts := v_parts || r.partition;
            v_from := v_from || r.committed_offset;
        END IF;
    END LOOP;
    IF v_parts IS NULL THEN
        RETURN;
    END IF;
    v_foreign := minipaas._foreign_xids();
    RETURN QUERY
    SELECT x.event_offset, x.partition, x.key, x.key_version, x.payload, x.published_at, x.dedup_id
      FROM unnest(v_parts, v_from) AS p(n, after_offset)
     CROSS JOIN LATERAL (
            SELECT e.* FROM minipaas.stream_events e
             WHERE e.stream_id = s.stream_id AND e.partition = p.n
               AND e.event_offset > p.after_offset
               AND e.event_offset < (SELECT minipaas._horizon(v_foreign))
             ORDER BY e.event_offset
             LIMIT max_events) AS x
     ORDER BY x.event_offset
     LIMIT max_events;
END
$fn$;

COMMENT ON FUNCTION minipaas.stream_group_consume(text, text, integer, integer) IS
    'Events after the consumer group''s committed offsets, in offset order. A new group starts at the beginning. '
    'Process them, then stream_group_commit — in the same transaction as your own writes for exactly-once effects. '
    'Partitions held by another member''s open transaction are skipped.';

CREATE OR REPLACE FUNCTION minipaas._group_set(
    stream         text,
    consumer_group text,
    to_offset      bigint,
    only_partition integer,
    forward_only   boolean
) RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    s      minipaas.streams;
    v_part integer := only_partition;
BEGIN
    IF to_offset IS NULL OR to_offset < 0 THEN
        RAISE EXCEPTION 'minipaas: the offset must be a non-negative number, got %', coalesce(to_offset::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    s := minipaas._stream(stream, false);
    IF v_part NOT BETWEEN 0 AND s.partitions - 1 THEN
        RAISE EXCEPTION 'minipaas: stream % has partitions 0 to %, not %', quote_literal(s.name),
                s.partitions - 1, v_part
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM minipaas._check_name('consumer group', consumer_group);
    IF v_part IS NULL AND forward_only THEN
        IF s.partitions = 1 THEN
            v_part := 0;
        ELSE
            SELECT e.partition INTO v_part FROM minipaas.stream_events e
             WHERE e.stream_id = s.stream_id
               AND e.partition = ANY (ARRAY(SELECT pg_catalog.generate_series(0, s.partitions - 1)))
               AND e.event_offset = to_offset;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'minipaas: stream % has no event at offset % (trimmed?); name the partition',
                        quote_literal(s.name), to_offset
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        END IF;
    END IF;
    INSERT INTO minipaas.stream_group_offsets AS g (stream_id, group_name, partition, committed_offset, updated_at)
    SELECT s.stream_id, consumer_group, p.n, to_offset, pg_catalog.clock_timestamp()
      FROM pg_catalog.generate_series(coalesce(v_part, 0), coalesce(v_part, s.partitions - 1)) AS p(n)
        ON CONFLICT (stream_id, group_name, partition) DO UPDATE
       SET committed_offset = CASE WHEN forward_only THEN greatest(g.committed_offset, excluded.committed_offset)
                                   ELSE excluded.committed_offset END,
           updated_at = excluded.updated_at;
END
$fn$;

COMMENT ON FUNCTION minipaas._group_set(text, text, bigint, integer, boolean) IS
    'Internal: moves a consumer group''s committed offset (of one partition, or all when seeking).';

CREATE OR REPLACE FUNCTION minipaas.stream_group_commit(
    stream         text,
    consumer_group text,
    event_offset   bigint,
    only_partition integer DEFAULT NULL
) RETURNS void
LANGUAGE sql
AS $fn$
    SELECT minipaas._group_set(stream, consumer_group, event_offset, only_partition, true);
$fn$;

COMMENT ON FUNCTION minipaas.stream_group_commit(text, text, bigint, integer) IS
    'Records that the group processed its partition up to event_offset (the partition is looked up from the event '
    'unless given). Commits only move forward. Runs in the caller''s transaction, so it commits with the work.';

CREATE OR REPLACE FUNCTION minipaas.stream_group_seek(
    stream         text,
    consumer_group text,
    event_offset   bigint,
    only_partition integer DEFAULT NULL
) RETURNS void
LANGUAGE sql
AS $fn$
    SELECT minipaas._group_set(stream, consumer_group, event_offset, only_partition, false);
$fn$;

COMMENT ON FUNCTION minipaas.stream_group_seek(text, text, bigint, integer) IS
    'Sets a group''s committed offset, backwards (replay; 0 = from the beginning) or forwards, for one partition '
    'or all.';

CREATE OR REPLACE FUNCTION minipaas.stream_group_lag(stream text, consumer_group text)
RETURNS TABLE (
    partition        integer,
    committed_offset bigint,
    latest_offset    bigint,
    pending          bigint,
    held_back        bigint
)
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    s         minipaas.streams;
    v_foreign xid[];
BEGIN
    s := minipaas._stream(stream, false);
    PERFORM minipaas._check_name('consumer group', consumer_group);
    -- As in stream_consume: the ids running elsewhere are read before the query takes its snapshot, and both
    -- counts use that snapshot's horizon.
    v_foreign := minipaas._foreign_xids();
    RETURN QUERY
    SELECT p.n,
           coalesce(g.committed_offset, 0),
           (SELECT max(e.event_offset) FROM minipaas.stream_events e
             WHERE e.stream_id = s.stream_id AND e.partition = p.n),
           (SELECT count(*) FROM minipaas.stream_events e
             WHERE e.stream_id = s.stream_id AND e.partition = p.n
               AND e.event_offset > coalesce(g.committed_offset, 0)
               AND e.event_offset < (SELECT minipaas._horizon(v_foreign))),
           (SELECT count(*) FROM minipaas.stream_events e
             WHERE e.stream_id = s.stream_id AND e.partition = p.n
               AND e.event_offset >= (SELECT minipaas._horizon(v_foreign)))
      FROM pg_catalog.generate_series(0, s.partitions - 1) AS p(n)
      LEFT JOIN minipaas.stream_group_offsets g
        ON g.stream_id = s.stream_id AND g.group_name = consumer_group AND g.partition = p.n
     ORDER BY p.n;
END
$fn$;

COMMENT ON FUNCTION minipaas.stream_group_lag(text, text) IS
    'Per partition: the group''s committed offset, the latest offset, pending (committed events the group has not '
    'processed yet) and held_back (committed events not yet readable because an older transaction is still open).';

CREATE OR REPLACE FUNCTION minipaas.stream_trim(stream text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    s       minipaas.streams;
    v_total bigint := 0;
    v_n     bigint;
    v_cut   bigint;
    p       integer;
BEGIN
    IF stream_trim.stream IS NOT NULL THEN
        PERFORM minipaas._stream(stream_trim.stream, false);
    END IF;
    FOR s IN SELECT * FROM minipaas.streams t
              WHERE (stream_trim.stream IS NULL OR t.name = stream_trim.stream)
                AND (t.retention_age IS NOT NULL OR t.retention_count IS NOT NULL)
              ORDER BY t.stream_id
    LOOP
        FOR p IN 0 .. s.partitions - 1 LOOP
            IF s.retention_count IS NOT NULL THEN
                SELECT e.event_offset INTO v_cut FROM minipaas.stream_events e
                 WHERE e.stream_id = s.stream_id AND e.partition = p
                 ORDER BY e.event_offset DESC
                 OFFSET s.retention_count LIMIT 1;
                IF FOUND THEN
                    DELETE FROM minipaas.stream_events e
                     WHERE e.stream_id = s.stream_id AND e.partition = p AND e.event_offset <= v_cut;
                    GET DIAGNOSTICS v_n = ROW_COUNT;
                    v_total := v_total + v_n;
                END IF;
            END IF;
            IF s.retention_age IS NOT NULL THEN
                -- Offsets follow transaction ids, which follow time closely: cut before the first event
                -- (in offset order) that is young enough.
                SELECT e.event_offset INTO v_cut FROM minipaas.stream_events e
                 WHERE e.stream_id = s.stream_id AND e.partition = p
                   AND e.published_at >= pg_catalog.clock_timestamp() - s.retention_age
                 ORDER BY e.event_offset
                 LIMIT 1;
                DELETE FROM minipaas.stream_events e
                 WHERE e.stream_id = s.stream_id AND e.partition = p
                   AND (v_cut IS NULL OR e.event_offset < v_cut)
                   AND e.published_at < pg_catalog.clock_timestamp() - s.retention_age;
                GET DIAGNOSTICS v_n = ROW_COUNT;
                v_total := v_total + v_n;
            END IF;
        END LOOP;
    END LOOP;
    RETURN v_total;
END
$fn$;

COMMENT ON FUNCTION minipaas.stream_trim(text) IS
    'Applies retention (age and/or count per partition) to one stream, or to all streams if NULL; returns the '
    'number of events deleted. Consumer groups behind the cut continue at the oldest remaining event.';

CREATE OR REPLACE FUNCTION minipaas.maintain()
RETURNS TABLE (task text, affected bigint)
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
BEGIN
    -- One maintainer at a time; the others return at once.
    IF NOT pg_catalog.pg_try_advisory_xact_lock(minipaas.const_lock_maintenance(), 0) THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM minipaas.queue_maintain();
    task := 'stream events trimmed';
    affected := minipaas.stream_trim(NULL);
    RETURN NEXT;
END
$fn$;

COMMENT ON FUNCTION minipaas.maintain() IS
    'Housekeeping for queues and streams (queue_maintain, then stream_trim for all streams); returns what it did. '
    'Nothing needs it for correctness of delivery; run it every minute or so (Rust Workers and Consumers do).';
