-- Tests of MiniPaaS streams. Each test runs in its own savepoint of one rolled-back transaction.
--
-- Reading is bounded by the oldest other running transaction (see streams.sql), so a test cannot count on
-- reading its own uncommitted events if another session is busy. Tests of reading therefore write events with
-- small offsets (as if published and committed long ago) straight into the table; the promised calls are
-- checked against stream_horizon() either way.

CREATE OR REPLACE FUNCTION minipaas.stream_tests_before()
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    DELETE FROM minipaas.stream_group_offsets;
    DELETE FROM minipaas.stream_events;
    DELETE FROM minipaas.streams;
END
$fn$;

-- Writes count settled events to a stream at offsets first, first+1, ... (partition by key, or 0).
CREATE OR REPLACE FUNCTION minipaas.t_old_events(stream text, first bigint, count integer, key text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    s minipaas.streams;
BEGIN
    s := minipaas._stream(stream, true);
    INSERT INTO minipaas.stream_events (stream_id, partition, event_offset, key, published_at, payload)
    SELECT s.stream_id, minipaas._partition_of(s, key), first + i - 1, key, clock_timestamp(),
           jsonb_build_object('n', first + i - 1)
      FROM generate_series(1, count) i;
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_promised_calls_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_first bigint;
    v_second bigint;
    v_offsets bigint[];
    v_payloads jsonb[];
BEGIN
    PERFORM set_config('search_path', 'public, minipaas', true);
    EXECUTE $$SELECT stream_publish('activity_log', '{"event": "signup", "user": 12}')$$ INTO v_first;
    EXECUTE $$SELECT stream_publish('activity_log', '{"event": "signup", "user": 13}')$$ INTO v_second;
    PERFORM minipaas.t_eq(pg_typeof(v_first)::text, 'bigint', 'stream_publish returns a bigint offset');
    PERFORM minipaas.t_assert(v_second > v_first, 'offsets strictly increase');
    EXECUTE format($$SELECT array_agg(event_offset), array_agg(payload) FROM stream_consume('activity_log', %s)$$,
                   v_first - 1)
       INTO v_offsets, v_payloads;
    IF v_second < minipaas.stream_horizon() THEN
        PERFORM minipaas.t_eq(v_offsets, ARRAY[v_first, v_second], 'events after the offset, in order');
        PERFORM minipaas.t_eq(v_payloads[1], '{"event": "signup", "user": 12}'::jsonb, 'the payload');
    ELSE
        -- Another session holds an older transaction open: our events must wait for it, not jump ahead.
        PERFORM minipaas.t_assert(v_offsets IS NULL, 'events beyond the horizon are held back');
    END IF;
    EXECUTE format($$SELECT array_agg(event_offset) FROM stream_consume('activity_log', %s)$$, v_second)
       INTO v_offsets;
    PERFORM minipaas.t_assert(v_offsets IS NULL, 'nothing after the last offset');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_offsets_follow_transactions_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_offsets bigint[];
    v_xid bigint;
    v_horizon bigint;
BEGIN
    SELECT array_agg(minipaas.stream_publish('s', jsonb_build_object('i', i)) ORDER BY i) INTO v_offsets
      FROM generate_series(1, 5) i;
    v_xid := pg_current_xact_id()::text::bigint;
    PERFORM minipaas.t_eq(v_offsets[1] / 1048576, v_xid, 'the offset carries the publishing transaction''s id');
    PERFORM minipaas.t_eq(v_offsets[5] - v_offsets[1], 4::bigint, 'consecutive within a transaction');
    -- stream_horizon() judges a snapshot of its own, taken after the one of the statement that calls it: compare it
    -- with a snapshot taken later still (one taken before could know fewer finished transactions).
    v_horizon := minipaas.stream_horizon();
    PERFORM minipaas.t_assert(
        v_horizon <= (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1) * 1048576,
        'the horizon never passes a transaction the snapshot does not know to be finished');
    PERFORM minipaas.t_assert(minipaas.stream_horizon() > v_offsets[5] OR EXISTS (
                                  SELECT 1 FROM pg_stat_activity a
                                   WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                                     AND a.backend_xid IS NOT NULL),
                              'with no other transaction running here, our own events are readable');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_per_transaction_limit_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_xid bigint := pg_current_xact_id()::text::bigint;
BEGIN
    PERFORM set_config('minipaas.publish_seq', v_xid::text || ':1048575', false);
    PERFORM minipaas.stream_publish('s', '{}');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_publish('s', '{}')$$, '54000', '1048576');
    -- A value from another transaction does not count.
    PERFORM set_config('minipaas.publish_seq', (v_xid - 1)::text || ':1048575', false);
    PERFORM minipaas.t_eq(minipaas.stream_publish('s', '{}') % 1048576, 0::bigint, 'a new transaction starts at 0');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_consume_reads_in_order_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_offsets bigint[];
BEGIN
    PERFORM minipaas.t_old_events('s', 100, 10);
    SELECT array_agg(event_offset ORDER BY ord) INTO v_offsets
      FROM minipaas.stream_consume('s', 103, 4) WITH ORDINALITY AS c(event_offset, partition, key, key_version,
                                                                     payload, published_at, dedup_id, ord);
    PERFORM minipaas.t_eq(v_offsets, ARRAY[104, 105, 106, 107]::bigint[], 'after the offset, in order, max_events');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.stream_consume('s', 0, 100)), 10::bigint, 'replay from 0');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.stream_consume('s')), 10::bigint, 'after_offset defaults to 0');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.stream_consume('unknown')),
                              'an unknown stream has no events');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_horizon_holds_back_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_h bigint := minipaas.stream_horizon();
    s minipaas.streams;
BEGIN
    s := minipaas._stream('s', true);
    INSERT INTO minipaas.stream_events (stream_id, partition, event_offset, published_at, payload)
    VALUES (s.stream_id, 0, 10, clock_timestamp(), '{"n": "settled"}'),
           (s.stream_id, 0, v_h + 1048576 * 1000, clock_timestamp(), '{"n": "from a future transaction"}');
    PERFORM minipaas.t_eq((SELECT array_agg(payload->>'n') FROM minipaas.stream_consume('s', 0)),
                          ARRAY['settled'], 'an offset at or past the horizon is not read');
    PERFORM minipaas.t_eq((SELECT held_back FROM minipaas.stream_group_lag('s', 'g')), 1::bigint,
                          'lag reports it as held back');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_partitions_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_parts integer[];
    v_offsets bigint[];
BEGIN
    PERFORM minipaas.t_assert(minipaas.stream_create('p', partitions => 4), 'created');
    PERFORM minipaas.t_old_events('p', 100, 5, 'alice');
    PERFORM minipaas.t_old_events('p', 200, 5, 'bob');
    PERFORM minipaas.t_old_events('p', 300, 20);
    SELECT array_agg(DISTINCT partition) INTO v_parts FROM minipaas.stream_events WHERE key = 'alice';
    PERFORM minipaas.t_eq(pg_catalog.cardinality(v_parts), 1, 'one key, one partition');
    PERFORM minipaas.t_eq(minipaas._partition_of((SELECT s FROM minipaas.streams s WHERE name = 'p'), 'alice'),
                          v_parts[1], 'partition by hash of the key');
    SELECT array_agg(event_offset ORDER BY ord) INTO v_offsets
      FROM minipaas.stream_consume('p', 0, 100) WITH ORDINALITY AS c(event_offset, partition, key, key_version,
                                                                     payload, published_at, dedup_id, ord);
    PERFORM minipaas.t_eq(pg_catalog.cardinality(v_offsets), 30, 'all partitions merged');
    PERFORM minipaas.t_eq(v_offsets, (SELECT array_agg(o ORDER BY o) FROM unnest(v_offsets) o),
                          'merged in offset order');
    PERFORM minipaas.t_assert((SELECT bool_and(partition = v_parts[1])
                                 FROM minipaas.stream_consume('p', 0, 100, only_partition => v_parts[1])),
                              'one partition on request');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.stream_consume('p', 0, 10, only_partition => 4)$$, '22023');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_create('p', partitions => 8)$$, '22023', 'cannot change');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_create('x', partitions => 0)$$, '22023');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_create('x', partitions => 257)$$, '22023');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_dedup_id_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_first bigint;
BEGIN
    v_first := minipaas.stream_publish('s', '{"v": 1}', dedup_id => 'evt-1');
    PERFORM minipaas.t_eq(minipaas.stream_publish('s', '{"v": 2}', dedup_id => 'evt-1'), v_first,
                          'a dedup id the stream holds returns the earlier offset');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.stream_events), 1::bigint, 'and publishes nothing');
    PERFORM minipaas.t_assert(minipaas.stream_publish('other', '{}', dedup_id => 'evt-1') <> v_first,
                              'dedup ids are per stream');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_expected_version_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM minipaas.stream_publish('accounts', '{"opened": true}', key => 'acct-1', expected_version => 0);
    PERFORM minipaas.stream_publish('accounts', '{"deposit": 10}', key => 'acct-1', expected_version => 1);
    PERFORM minipaas.stream_publish('accounts', '{"deposit": 5}', key => 'acct-1');
    PERFORM minipaas.t_eq((SELECT array_agg(key_version ORDER BY event_offset) FROM minipaas.stream_events),
                          ARRAY[1, 2, 3]::bigint[], 'versions count per key from 1');
    PERFORM minipaas.t_raises(
        $$SELECT minipaas.stream_publish('accounts', '{"deposit": 1}', key => 'acct-1', expected_version => 2)$$,
        'MP409', 'wrong expected version');
    PERFORM minipaas.t_raises(
        $$SELECT minipaas.stream_publish('accounts', '{}', key => 'acct-2', expected_version => 1)$$, 'MP409');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_publish('accounts', '{}', expected_version => 1)$$, '22023',
                              'needs a key');
    PERFORM minipaas.t_raises(
        $$SELECT minipaas.stream_publish('accounts', '{}', key => 'acct-2', expected_version => -1)$$, '22023');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.stream_events), 3::bigint, 'rejected events were not written');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_read_key_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_versions bigint[];
BEGIN
    PERFORM minipaas.stream_publish('accounts', jsonb_build_object('i', i), key => 'acct-' || (i % 2))
       FROM generate_series(1, 6) i;
    SELECT array_agg(key_version ORDER BY key_version) INTO v_versions
      FROM minipaas.stream_read_key('accounts', 'acct-1', after_version => 1);
    PERFORM minipaas.t_eq(v_versions, ARRAY[2, 3]::bigint[], 'one key''s events after a version');
    PERFORM minipaas.t_eq((SELECT payload FROM minipaas.stream_read_key('accounts', 'acct-0', 0, 1)),
                          '{"i": 2}'::jsonb, 'in version order');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_publish_batch_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_offsets bigint[];
BEGIN
    SELECT array_agg(o) INTO v_offsets
      FROM minipaas.stream_publish_batch('s', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[]) o;
    PERFORM minipaas.t_eq(pg_catalog.cardinality(v_offsets), 3, 'one offset per payload');
    PERFORM minipaas.t_eq((SELECT array_agg(payload->>'n' ORDER BY event_offset) FROM minipaas.stream_events),
                          ARRAY['1', '2', '3'], 'offsets follow input order');
    PERFORM minipaas.t_assert(minipaas.stream_publish('s', '{}') > v_offsets[3], 'later publishes sort after');
    SELECT array_agg(o) INTO v_offsets
      FROM minipaas.stream_publish_batch('s', ARRAY['{}', '{}']::jsonb[], keys => ARRAY['k', 'k'],
                                         dedup_ids => ARRAY['x', 'x']) o;
    PERFORM minipaas.t_eq(v_offsets[1], v_offsets[2], 'dedup ids apply within a batch');
    PERFORM minipaas.t_raises(
        $$SELECT minipaas.stream_publish_batch('s', (SELECT array_agg('{}'::jsonb) FROM generate_series(1, 10001)))$$,
        '54000');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_publish_batch('s', ARRAY['{}', NULL]::jsonb[])$$, '22004');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_publish_batch('s', ARRAY['{}']::jsonb[], keys => ARRAY['a', 'b'])$$,
                              '22023');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_bad_input_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_publish('s', 'not json')$$, '22P02');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_publish('s', NULL)$$, '22004');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_publish('bad''name', '{}')$$, '22023', 'invalid stream name');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.stream_consume('s', 0, 0)$$, '22023');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.stream_consume('s', 0, 10001)$$, '22023');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.stream_group_lag('nope', 'g')$$, '42704');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_trim('nope')$$, '42704');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_drop('nope')$$, '42704');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.streams), 'nothing was half-written');
    PERFORM minipaas.stream_publish('s', 'null');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.stream_group_consume('s', 'bad group!')$$, '22023');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_group_commit('s', 'g', -1)$$, '22023');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_limits_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_long text := (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 32768) i);  -- 1 MB, incompressible
BEGIN
    PERFORM minipaas.t_raises(format('SELECT minipaas.stream_publish(%L, %L, key => %L)', 's', '{}', v_long),
                              '22023', 'key is 1048576 bytes long');
    PERFORM minipaas.t_raises(format('SELECT minipaas.stream_publish(%L, %L, dedup_id => %L)', 's', '{}', v_long),
                              '22023', 'dedup_id is 1048576 bytes long');
    PERFORM minipaas.t_raises(format('SELECT minipaas.stream_publish_batch(%L, ARRAY[%L]::jsonb[], keys => ARRAY[%L])',
                                     's', '{}', v_long), '22023', 'key');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_create('s', retention_age => '1000000 years')$$, '22023',
                              'retention_age must be at most');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_create('s', retention_age => '-1 day')$$, '22023', 'negative');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.stream_events), 'nothing was written');
    PERFORM minipaas.stream_publish('s', '{}', key => repeat('k', minipaas.const_max_key_bytes()),
                                    dedup_id => repeat('d', minipaas.const_max_key_bytes()));
    PERFORM minipaas.stream_create('s', retention_age => minipaas.const_max_duration());
    PERFORM minipaas.t_eq(minipaas.stream_trim('s'), 0::bigint, 'the longest retention trims nothing');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_consumer_group_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_offsets bigint[];
BEGIN
    PERFORM minipaas.t_old_events('s', 100, 10);
    SELECT array_agg(event_offset ORDER BY event_offset) INTO v_offsets
      FROM minipaas.stream_group_consume('s', 'billing', 3);
    PERFORM minipaas.t_eq(v_offsets, ARRAY[100, 101, 102]::bigint[], 'a new group starts at the beginning');
    PERFORM minipaas.t_eq((SELECT min(event_offset) FROM minipaas.stream_group_consume('s', 'billing', 3)), 100::bigint,
                          'without a commit, the same events come again');
    PERFORM minipaas.stream_group_commit('s', 'billing', 102);
    PERFORM minipaas.t_eq((SELECT min(event_offset) FROM minipaas.stream_group_consume('s', 'billing', 3)), 103::bigint,
                          'after a commit, the group continues after it');
    PERFORM minipaas.t_eq((SELECT min(event_offset) FROM minipaas.stream_group_consume('s', 'audit', 3)), 100::bigint,
                          'groups are independent');
    PERFORM minipaas.stream_group_commit('s', 'billing', 101);
    PERFORM minipaas.t_eq((SELECT committed_offset FROM minipaas.stream_group_lag('s', 'billing')), 102::bigint,
                          'commits only move forward');
    PERFORM minipaas.t_eq((SELECT pending FROM minipaas.stream_group_lag('s', 'billing')), 7::bigint, 'lag');
    PERFORM minipaas.t_eq((SELECT latest_offset FROM minipaas.stream_group_lag('s', 'billing')), 109::bigint,
                          'latest offset');
    PERFORM minipaas.stream_group_seek('s', 'billing', 0);
    PERFORM minipaas.t_eq((SELECT min(event_offset) FROM minipaas.stream_group_consume('s', 'billing', 3)), 100::bigint,
                          'seek rewinds for a replay');
END
$fn$;

-- Exactly-once effects: the group's commit is part of the consumer's transaction and stands or falls with it.
CREATE OR REPLACE FUNCTION minipaas.stream_group_commit_with_work_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_last bigint;
BEGIN
    PERFORM minipaas.t_old_events('s', 100, 3);
    BEGIN
        SELECT max(event_offset) INTO v_last FROM minipaas.stream_group_consume('s', 'g', 10);
        PERFORM minipaas.stream_group_commit('s', 'g', v_last);
        PERFORM minipaas.t_eq((SELECT committed_offset FROM minipaas.stream_group_lag('s', 'g')), 102::bigint,
                              'committed inside the transaction');
        RAISE EXCEPTION 'crash before commit';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
    PERFORM minipaas.t_eq((SELECT committed_offset FROM minipaas.stream_group_lag('s', 'g')), 0::bigint,
                          'a rolled-back transaction takes its commit with it');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.stream_group_consume('s', 'g', 10)), 3::bigint,
                          'so the events come again');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_group_partitions_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_alice integer;
BEGIN
    PERFORM minipaas.stream_create('p', partitions => 2);
    PERFORM minipaas.t_old_events('p', 100, 3, 'alice');
    PERFORM minipaas.t_old_events('p', 200, 3, 'carol');
    v_alice := minipaas._partition_of((SELECT s FROM minipaas.streams s WHERE name = 'p'), 'alice');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.stream_group_consume('p', 'g', 100)), 6::bigint,
                          'a group reads every partition');
    PERFORM minipaas.stream_group_commit('p', 'g', 101);
    PERFORM minipaas.t_eq((SELECT committed_offset FROM minipaas.stream_group_lag('p', 'g') WHERE partition = v_alice),
                          101::bigint, 'a commit finds its partition from the event');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.stream_group_consume('p', 'g', 100, v_alice)), 1::bigint,
                          'one partition on request');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_group_commit('p', 'g', 999)$$, '22023', 'name the partition');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_trim_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM minipaas.stream_create('counted', retention_count => 3);
    PERFORM minipaas.t_old_events('counted', 100, 10);
    PERFORM minipaas.t_eq(minipaas.stream_trim('counted'), 7::bigint, 'count retention keeps the newest');
    PERFORM minipaas.t_eq((SELECT array_agg(event_offset ORDER BY event_offset) FROM minipaas.stream_events),
                          ARRAY[107, 108, 109]::bigint[], 'the newest three');

    PERFORM minipaas.stream_create('aged', retention_age => '1 day');
    PERFORM minipaas.t_old_events('aged', 100, 4);
    UPDATE minipaas.stream_events SET published_at = clock_timestamp() - interval '2 days'
     WHERE event_offset IN (100, 101) AND stream_id = (SELECT stream_id FROM minipaas.streams WHERE name = 'aged');
    PERFORM minipaas.t_eq((SELECT affected FROM minipaas.maintain() WHERE task = 'stream events trimmed'), 2::bigint,
                          'maintain trims by age');
    PERFORM minipaas.stream_create('aged', retention_age => '0');
    PERFORM minipaas.t_assert((SELECT retention_age IS NULL FROM minipaas.streams WHERE name = 'aged'),
                              '0 turns retention off');
    PERFORM minipaas.t_raises($$SELECT minipaas.stream_create('aged', retention_count => -1)$$, '22023');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_drop_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM minipaas.stream_publish('gone', '{}');
    PERFORM minipaas.stream_group_consume('gone', 'g');
    PERFORM minipaas.t_assert(minipaas.stream_drop('gone'), 'dropped');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.stream_events), 'events gone');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.stream_group_offsets), 'groups gone');
    PERFORM minipaas.t_assert(NOT minipaas.stream_drop('gone', if_exists => true), 'if_exists');
END
$fn$;
