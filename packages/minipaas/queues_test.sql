-- Tests of MiniPaaS queues. Each test runs in its own savepoint of one rolled-back transaction.

CREATE OR REPLACE FUNCTION minipaas.queue_tests_before()
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    -- Start every test from empty queues, whatever the database held before.
    PERFORM minipaas.t_forget_hints();
    DELETE FROM minipaas.messages;
    DELETE FROM minipaas.queue_wakeups;
    DELETE FROM minipaas.queues;
END
$fn$;

-- The documented calls, verbatim (untyped literals, unqualified names on the search_path).
CREATE OR REPLACE FUNCTION minipaas.queue_promised_calls_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_row record;
    v_n integer;
    v_acked boolean;
BEGIN
    PERFORM set_config('search_path', 'public, minipaas', true);
    EXECUTE $$SELECT queue_enqueue('my_queue', '{"task": "process-user", "id": 42}')$$ INTO v_id;
    PERFORM minipaas.t_assert(v_id IS NOT NULL, 'queue_enqueue returns the task id');
    PERFORM minipaas.t_eq(pg_typeof(v_id)::text, 'bigint', 'the task id type');
    EXECUTE $$SELECT queue_enqueue('my_queue', '{"task": "process-user", "id": 43}')$$;

    EXECUTE $$SELECT count(*) FROM (SELECT * FROM queue_dequeue('my_queue')) d$$ INTO v_n;
    PERFORM minipaas.t_eq(v_n, 1, 'queue_dequeue returns at most one task by default');
    SELECT m.id, m.payload INTO v_row FROM minipaas.messages m WHERE m.lease_until IS NOT NULL;
    PERFORM minipaas.t_eq(v_row.id, v_id, 'the first task is dequeued first');
    PERFORM minipaas.t_eq(v_row.payload, '{"task": "process-user", "id": 42}'::jsonb, 'the payload');

    EXECUTE format('SELECT queue_ack(%s)', v_id) INTO v_acked;
    PERFORM minipaas.t_assert(v_acked, 'queue_ack(<task_id>) acks a leased task');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.messages WHERE id = v_id), 'queue_ack removes the task');
    EXECUTE format('SELECT queue_ack(%s)', v_id) INTO v_acked;
    PERFORM minipaas.t_assert(NOT v_acked, 'a second ack of the same task is refused');
    EXECUTE format($$SELECT queue_ack('%s')$$, v_id + 1) INTO v_acked;
    PERFORM minipaas.t_assert(NOT v_acked, 'queue_ack of a task that is not leased is refused');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_created_on_first_use_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    q minipaas.queues;
BEGIN
    PERFORM minipaas.queue_enqueue('fresh', '{}');
    SELECT * INTO q FROM minipaas.queues WHERE name = 'fresh';
    PERFORM minipaas.t_eq(q.visibility_timeout, interval '30 seconds', 'default visibility timeout');
    PERFORM minipaas.t_eq(q.max_attempts, 5, 'default max attempts');
    PERFORM minipaas.t_eq(q.retention, interval '0', 'acked messages are deleted by default');
    PERFORM minipaas.t_assert(q.dead_letter_queue IS NULL, 'dead messages stay in the queue by default');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queue_dequeue('never-used')),
                              'dequeue of an unknown queue returns nothing');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queues WHERE name = 'never-used'),
                              'dequeue does not create queues');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_create_options_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    q minipaas.queues;
BEGIN
    PERFORM minipaas.t_assert(minipaas.queue_create('jobs', visibility_timeout => '5 minutes', max_attempts => 3,
                                                    backoff_base => '2 seconds', backoff_max => '1 minute',
                                                    backoff_jitter => 0, dead_letter_queue => 'jobs.dlq',
                                                    retention => '1 day'), 'queue_create creates');
    SELECT * INTO q FROM minipaas.queues WHERE name = 'jobs';
    PERFORM minipaas.t_eq(q.visibility_timeout, interval '5 minutes', 'visibility timeout');
    PERFORM minipaas.t_eq(q.max_attempts, 3, 'max attempts');
    PERFORM minipaas.t_eq(q.backoff_base, interval '2 seconds', 'backoff base');
    PERFORM minipaas.t_eq(q.dead_letter_queue, 'jobs.dlq', 'dead-letter queue');
    PERFORM minipaas.t_eq(q.retention, interval '1 day', 'retention');

    PERFORM minipaas.t_assert(NOT minipaas.queue_create('jobs', max_attempts => 7, dead_letter_queue => ''),
                              'queue_create on an existing queue changes it and returns false');
    SELECT * INTO q FROM minipaas.queues WHERE name = 'jobs';
    PERFORM minipaas.t_eq(q.max_attempts, 7, 'changed option');
    PERFORM minipaas.t_eq(q.visibility_timeout, interval '5 minutes', 'options not given stay');
    PERFORM minipaas.t_assert(q.dead_letter_queue IS NULL, 'an empty dead_letter_queue clears it');

    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('jobs', visibility_timeout => '0')$$, '22023');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('jobs', max_attempts => 0)$$, '22023');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('jobs', backoff_jitter => 1.5)$$, '22023');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('jobs', backoff_base => '2 hours')$$, '22023',
                              'backoff_max');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('jobs', dead_letter_queue => 'jobs')$$, '22023');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('jobs', retention => '-1 day')$$, '22023');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_drop_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM minipaas.queue_enqueue('doomed', '{"n": 1}');
    PERFORM minipaas.t_assert(minipaas.queue_drop('doomed'), 'queue_drop drops');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queues WHERE name = 'doomed'), 'queue row gone');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.messages), 'its messages are gone');
    PERFORM minipaas.t_assert(NOT minipaas.queue_drop('doomed', if_exists => true), 'if_exists returns false');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_drop('doomed')$$, '42704', 'does not exist');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_bad_input_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue('q', 'not json')$$, '22P02');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue('q', NULL)$$, '22004', 'must not be NULL');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue(NULL, '{}')$$, '22004');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue('q', '{}', delay => '-1 second')$$, '22023', 'negative');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue('q', '{}', priority => 40000)$$, '22023', 'priority');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue('it''s', '{}')$$, '22023', 'invalid queue name');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue('"quoted"', '{}')$$, '22023', 'invalid queue name');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue('', '{}')$$, '22023');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue(repeat('x', 49), '{}')$$, '22023');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.queue_dequeue('bad name')$$, '22023');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.queue_dequeue('q', 0)$$, '22023', 'batch_size');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.queue_dequeue('q', 10001)$$, '22023', 'batch_size');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.queue_dequeue('q', 1, '-5 seconds')$$, '22023');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.queue_stats('nope')$$, '42704', 'does not exist');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_redrive('nope')$$, '42704');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_purge('nope')$$, '42704');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.queue_dead_letters('nope')$$, '42704');
    PERFORM minipaas.t_raises(
        $$SELECT minipaas.queue_enqueue_batch('q', (SELECT array_agg('{}'::jsonb) FROM generate_series(1, 10001)))$$,
        '54000', '10000');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue_batch('q', ARRAY['{}', NULL, '{}']::jsonb[])$$,
                              '22004', 'payload 2');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue_batch('q', ARRAY['{}']::jsonb[], dedup_keys => ARRAY['a', 'b'])$$,
                              '22023');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_ack_batch(ARRAY[1, 2], ARRAY[1])$$, '22023');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.queue_nack(1, 1, 'x', '-1 second')$$, '22023');
    -- Nothing was half-written by any of the failures above.
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.messages), 'no messages were written');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queues WHERE name <> 'q'),
                              'no queue with a bad name was created');
END
$fn$;

-- Every duration argument has a range; beyond it the timestamps computed from it would overflow on every later
-- call ("timestamp out of range"), long after the call that stored it.
CREATE OR REPLACE FUNCTION minipaas.queue_duration_limits_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_token bigint;
BEGIN
    PERFORM minipaas.queue_create('q');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('q', visibility_timeout => '1000000 years')$$, '22023',
                              'visibility_timeout must be at most');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('q', visibility_timeout => '12 hours 1 second')$$,
                              '22023', 'visibility_timeout');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('q', visibility_timeout => '0')$$, '22023', 'positive');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('q', backoff_base => '11 years')$$, '22023',
                              'backoff_base');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('q', backoff_max => '1000000 years')$$, '22023',
                              'backoff_max');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_create('q', retention => '1000000 years')$$, '22023',
                              'retention');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue('q', '{}', delay => '1000000 years')$$, '22023',
                              'delay must be at most');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue('q', '{}', run_at => 'infinity')$$, '22023', 'run_at');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue('q', '{}', run_at => now() + interval '11 years')$$,
                              '22023', 'run_at');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_enqueue_batch('q', ARRAY['{}']::jsonb[], delay => '11 years')$$,
                              '22023', 'delay');
    PERFORM minipaas.t_raises($$SELECT * FROM minipaas.queue_dequeue('q', 1, '1000000 years')$$, '22023',
                              'visibility_timeout');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.messages), 'no messages were written');
    PERFORM minipaas.t_eq((SELECT visibility_timeout FROM minipaas.queues WHERE name = 'q'), interval '30 seconds',
                          'the queue kept its options');

    -- The limits themselves are accepted, and work.
    PERFORM minipaas.queue_create('q', visibility_timeout => minipaas.const_max_lease(),
                                  backoff_max => minipaas.const_max_duration(),
                                  retention => minipaas.const_max_duration());
    v_id := minipaas.queue_enqueue('q', '{}', run_at => clock_timestamp() + interval '9 years');
    PERFORM minipaas.queue_enqueue('q', '{}');
    SELECT d.lease_token INTO v_token FROM minipaas.queue_dequeue('q') d;
    PERFORM minipaas.t_assert(v_token IS NOT NULL, 'a dequeue with the longest lease works');
    PERFORM minipaas.t_raises(format('SELECT minipaas.queue_extend(%s, %s, %L)',
                                     (SELECT id FROM minipaas.messages WHERE lease_token = v_token), v_token,
                                     '1000000 years'), '22023', 'visibility_timeout');
    PERFORM minipaas.t_raises(format('SELECT * FROM minipaas.queue_nack(%s, %s, %L, %L)',
                                     (SELECT id FROM minipaas.messages WHERE lease_token = v_token), v_token,
                                     'x', '1000000 years'), '22023', 'delay');
    PERFORM minipaas.t_assert((SELECT next_visible_at FROM minipaas.queue_stats('q')) IS NOT NULL, 'stats work');
    PERFORM minipaas.t_assert((SELECT count(*) FROM minipaas.queue_maintain()) = 2, 'maintenance works');
END
$fn$;

-- Keys are indexed; an index entry must fit in a third of a page. A longer key gets a clear error, not the
-- index's "index row size exceeds maximum".
CREATE OR REPLACE FUNCTION minipaas.queue_key_length_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_long text := (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 32768) i);  -- 1 MB, incompressible
BEGIN
    PERFORM minipaas.t_raises(format('SELECT minipaas.queue_enqueue(%L, %L, dedup_key => %L)', 'q', '{}', v_long),
                              '22023', 'dedup_key is 1048576 bytes long');
    PERFORM minipaas.t_raises(format('SELECT minipaas.queue_enqueue(%L, %L, ordering_key => %L)', 'q', '{}', v_long),
                              '22023', 'ordering_key is 1048576 bytes long');
    PERFORM minipaas.t_raises(format('SELECT minipaas.queue_enqueue_batch(%L, ARRAY[%L]::jsonb[], dedup_keys => ARRAY[%L])',
                                     'q', '{}', v_long), '22023', 'dedup_key');
    PERFORM minipaas.t_raises(format('SELECT minipaas.queue_enqueue_batch(%L, ARRAY[%L]::jsonb[], ordering_keys => ARRAY[%L])',
                                     'q', '{}', v_long), '22023', 'ordering_key');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.messages), 'nothing was written');
    -- The longest key allowed works, as both kinds of key (in multi-byte characters: the limit counts bytes).
    PERFORM minipaas.queue_enqueue('q', '{}', dedup_key => repeat('é', minipaas.const_max_key_bytes() / 2),
                                   ordering_key => repeat('é', minipaas.const_max_key_bytes() / 2));
    PERFORM minipaas.t_raises(format('SELECT minipaas.queue_enqueue(%L, %L, dedup_key => %L)', 'q', '{}',
                                     repeat('é', minipaas.const_max_key_bytes() / 2) || 'x'),
                              '22023', 'dedup_key is 1025 bytes long');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.queue_dequeue('q', 10)), 1::bigint, 'it is delivered');
END
$fn$;

-- A message leased beyond max_attempts (its lease ran out on the last attempt, or max_attempts was lowered since)
-- dies at its next dequeue, in batches too, and its attempts count the deliveries made.
CREATE OR REPLACE FUNCTION minipaas.queue_lowered_max_attempts_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_tired bigint;
    v_fresh bigint;
    v_token bigint;
BEGIN
    v_tired := minipaas.queue_enqueue('q', '{"n": "tired"}');
    SELECT d.lease_token INTO v_token FROM minipaas.queue_dequeue('q') d;
    PERFORM minipaas.queue_nack(v_tired, v_token, 'first failure', '0');
    PERFORM minipaas.t_forget_hints();
    SELECT d.lease_token INTO v_token FROM minipaas.queue_dequeue('q') d;
    PERFORM minipaas.queue_nack(v_tired, v_token, 'second failure', '0');
    v_fresh := minipaas.queue_enqueue('q', '{"n": "fresh"}');
    PERFORM minipaas.queue_create('q', max_attempts => 2);
    PERFORM minipaas.t_forget_hints();
    PERFORM minipaas.t_eq((SELECT array_agg(id) FROM minipaas.queue_dequeue('q', 10)), ARRAY[v_fresh],
                          'the message that had its two deliveries is not delivered a third time');
    PERFORM minipaas.t_eq((SELECT state FROM minipaas.messages WHERE id = v_tired), 'dead'::minipaas.message_state,
                          'it is dead');
    PERFORM minipaas.t_eq((SELECT attempts FROM minipaas.messages WHERE id = v_tired), 2, 'after two deliveries');
    PERFORM minipaas.t_eq((SELECT lease_token FROM minipaas.messages WHERE id = v_tired), NULL::bigint,
                          'without a lease');
    PERFORM minipaas.t_eq((SELECT jsonb_array_length(errors) FROM minipaas.messages WHERE id = v_tired), 2,
                          'its error history is the two nacks');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_json_null_payload_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_payload jsonb;
BEGIN
    PERFORM minipaas.queue_enqueue('q', 'null');
    SELECT payload INTO v_payload FROM minipaas.queue_dequeue('q');
    PERFORM minipaas.t_eq(v_payload, 'null'::jsonb, 'a JSON null payload is a value like any other');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_dequeue_order_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_low bigint;
    v_first bigint;
    v_urgent bigint;
    v_ids bigint[];
BEGIN
    v_low := minipaas.queue_enqueue('q', '{"n": "low"}', priority => 5);
    v_first := minipaas.queue_enqueue('q', '{"n": "first"}');
    PERFORM minipaas.queue_enqueue('q', '{"n": "second"}');
    v_urgent := minipaas.queue_enqueue('q', '{"n": "urgent"}', priority => -1);
    SELECT array_agg(d.id ORDER BY ord) INTO v_ids
      FROM minipaas.queue_dequeue('q', 10) WITH ORDINALITY AS d(id, payload, lease_token, attempt, lease_expires_at,
                                                             priority, enqueued_at, ordering_key, dedup_key, ord);
    PERFORM minipaas.t_eq(pg_catalog.cardinality(v_ids), 4, 'a batch returns every visible message');
    PERFORM minipaas.t_eq(v_ids[1], v_urgent, 'the lowest priority number comes first');
    PERFORM minipaas.t_eq(v_ids[2], v_first, 'then by time');
    PERFORM minipaas.t_eq(v_ids[4], v_low, 'the highest priority number comes last');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queue_dequeue('q', 10)),
                              'leased messages are not delivered again');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_batch_dequeue_limit_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_n integer;
BEGIN
    PERFORM minipaas.queue_enqueue_batch('q', (SELECT array_agg(jsonb_build_object('n', i)) FROM generate_series(1, 25) i));
    SELECT count(*) INTO v_n FROM minipaas.queue_dequeue('q', 10);
    PERFORM minipaas.t_eq(v_n, 10, 'batch_size caps a dequeue');
    SELECT count(*) INTO v_n FROM minipaas.queue_dequeue('q', 10);
    PERFORM minipaas.t_eq(v_n, 10, 'the next batch');
    SELECT count(*) INTO v_n FROM minipaas.queue_dequeue('q', 10);
    PERFORM minipaas.t_eq(v_n, 5, 'the rest');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_delay_and_run_at_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_delayed bigint;
    v_later bigint;
    v_past bigint;
    v_id bigint;
BEGIN
    v_delayed := minipaas.queue_enqueue('q', '{"n": 1}', delay => '1 hour');
    v_later := minipaas.queue_enqueue('q', '{"n": 2}', run_at => clock_timestamp() + interval '1 day');
    v_past := minipaas.queue_enqueue('q', '{"n": 3}', run_at => clock_timestamp() - interval '1 day');
    SELECT id INTO v_id FROM minipaas.queue_dequeue('q', 10);
    PERFORM minipaas.t_eq(v_id, v_past, 'a run_at in the past means now; delayed messages are not delivered');
    PERFORM minipaas.t_assert((SELECT ready_at FROM minipaas.messages WHERE id = v_delayed)
                              > clock_timestamp() + interval '59 minutes', 'delay postpones visibility');
    PERFORM minipaas.t_expire(v_delayed);
    SELECT id INTO v_id FROM minipaas.queue_dequeue('q', 10);
    PERFORM minipaas.t_eq(v_id, v_delayed, 'a delayed message is delivered once due');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queue_dequeue('q', 10)), 'run_at still ahead');
    PERFORM minipaas.t_expire(v_later);
    SELECT id INTO v_id FROM minipaas.queue_dequeue('q', 10);
    PERFORM minipaas.t_eq(v_id, v_later, 'run_at delivers at that time');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_lease_expiry_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_first record;
    v_second record;
BEGIN
    v_id := minipaas.queue_enqueue('q', '{"n": 1}');
    SELECT * INTO v_first FROM minipaas.queue_dequeue('q', 1, visibility_timeout => '10 seconds');
    PERFORM minipaas.t_assert(v_first.lease_expires_at BETWEEN clock_timestamp() + interval '9 seconds'
                                                           AND clock_timestamp() + interval '10 seconds',
                              'the lease lasts the visibility timeout given');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queue_dequeue('q')), 'not redelivered while leased');

    -- The worker "crashed": its lease runs out and the next dequeue redelivers, without any scheduler.
    PERFORM minipaas.t_expire(v_id);
    SELECT * INTO v_second FROM minipaas.queue_dequeue('q');
    PERFORM minipaas.t_eq(v_second.id, v_id, 'an expired lease is redelivered');
    PERFORM minipaas.t_eq(v_second.attempt, 2, 'the second delivery is attempt 2');
    PERFORM minipaas.t_assert(v_second.lease_token <> v_first.lease_token, 'each delivery has a new lease token');
    PERFORM minipaas.t_eq((SELECT errors->0->>'error' FROM minipaas.messages WHERE id = v_id), 'lease expired',
                          'the expired lease is in the error history');

    -- Fencing: the first worker comes back and must not ack the second worker's delivery.
    PERFORM minipaas.t_assert(NOT minipaas.queue_ack(v_id, v_first.lease_token), 'a stale lease token cannot ack');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT * FROM minipaas.queue_nack(v_id, v_first.lease_token)),
                              'a stale lease token cannot nack');
    PERFORM minipaas.t_assert(minipaas.queue_extend(v_id, v_first.lease_token) IS NULL,
                              'a stale lease token cannot extend');
    PERFORM minipaas.t_assert(minipaas.queue_ack(v_id, v_second.lease_token), 'the current lease token acks');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_ack_token_after_expiry_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_token bigint;
BEGIN
    v_id := minipaas.queue_enqueue('q', '{}');
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('q');
    PERFORM minipaas.t_expire(v_id);
    PERFORM minipaas.t_assert(NOT minipaas.queue_ack(v_id), 'the simple ack refuses an expired lease');
    PERFORM minipaas.t_assert(minipaas.queue_ack(v_id, v_token),
                              'the token ack still works after expiry while nobody else took the message');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_extend_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_token bigint;
    v_until timestamptz;
BEGIN
    v_id := minipaas.queue_enqueue('q', '{}');
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('q', 1, '5 seconds');
    v_until := minipaas.queue_extend(v_id, v_token, '10 minutes');
    PERFORM minipaas.t_assert(v_until > clock_timestamp() + interval '9 minutes', 'extend moves the expiry');
    PERFORM minipaas.t_eq((SELECT lease_until FROM minipaas.messages WHERE id = v_id), v_until, 'stored expiry');
    v_until := minipaas.queue_extend(v_id, v_token);
    PERFORM minipaas.t_assert(v_until BETWEEN clock_timestamp() + interval '29 seconds'
                                          AND clock_timestamp() + interval '30 seconds',
                              'without a timeout, extend uses the queue''s visibility timeout');
    PERFORM minipaas.t_raises(format('SELECT minipaas.queue_extend(%s, %s, %L)', v_id, v_token, '0'), '22023');
    PERFORM minipaas.t_assert(minipaas.queue_extend(v_id, v_token + 1) IS NULL, 'a wrong token cannot extend');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_nack_retry_backoff_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_token bigint;
    v_nack record;
    v_msg minipaas.messages;
BEGIN
    PERFORM minipaas.queue_create('q', backoff_base => '10 seconds', backoff_max => '25 seconds', backoff_jitter => 0);
    v_id := minipaas.queue_enqueue('q', '{}');
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('q');
    SELECT * INTO v_nack FROM minipaas.queue_nack(v_id, v_token, 'boom 1');
    PERFORM minipaas.t_eq(v_nack.outcome, 'retry', 'nack schedules a retry');
    PERFORM minipaas.t_assert(v_nack.retry_at BETWEEN clock_timestamp() + interval '9 seconds'
                                                  AND clock_timestamp() + interval '10 seconds',
                              'first retry after backoff_base');
    SELECT * INTO v_msg FROM minipaas.messages WHERE id = v_id;
    PERFORM minipaas.t_eq(v_msg.state, 'ready'::minipaas.message_state, 'ready again');
    PERFORM minipaas.t_eq(v_msg.errors->0->>'error', 'boom 1', 'the error is recorded');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queue_dequeue('q')), 'not before the backoff');

    PERFORM minipaas.t_expire(v_id);
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('q');
    SELECT * INTO v_nack FROM minipaas.queue_nack(v_id, v_token, 'boom 2');
    PERFORM minipaas.t_assert(v_nack.retry_at BETWEEN clock_timestamp() + interval '19 seconds'
                                                  AND clock_timestamp() + interval '20 seconds',
                              'the backoff doubles');
    PERFORM minipaas.t_expire(v_id);
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('q');
    SELECT * INTO v_nack FROM minipaas.queue_nack(v_id, v_token, 'boom 3');
    PERFORM minipaas.t_assert(v_nack.retry_at BETWEEN clock_timestamp() + interval '24 seconds'
                                                  AND clock_timestamp() + interval '25 seconds',
                              'the backoff is capped at backoff_max');
    PERFORM minipaas.t_expire(v_id);
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('q');
    SELECT * INTO v_nack FROM minipaas.queue_nack(v_id, v_token, 'explicit', delay => '0');
    PERFORM minipaas.t_assert(v_nack.retry_at <= clock_timestamp(), 'an explicit delay overrides the backoff');
    PERFORM minipaas.t_eq((SELECT jsonb_array_length(errors) FROM minipaas.messages WHERE id = v_id), 4,
                          'every error is kept in the history');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_backoff_jitter_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    q minipaas.queues;
    v_delays double precision[];
BEGIN
    PERFORM minipaas.queue_create('q', backoff_base => '1 second', backoff_max => '1 hour', backoff_jitter => 0.5);
    SELECT * INTO q FROM minipaas.queues WHERE name = 'q';
    SELECT array_agg(extract(epoch FROM minipaas._backoff(q, 4))::double precision) INTO v_delays
      FROM generate_series(1, 200);
    PERFORM minipaas.t_assert((SELECT bool_and(d > 4 AND d <= 8) FROM unnest(v_delays) d),
                              'attempt 4 backs off 8 s minus up to 50 % jitter');
    PERFORM minipaas.t_assert((SELECT count(DISTINCT d) > 100 FROM unnest(v_delays) d), 'the jitter varies');
    PERFORM minipaas.t_eq(extract(epoch FROM minipaas._backoff(q, 1000))::double precision <= 3600, true,
                          'huge attempt numbers stay capped');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_max_attempts_dead_letter_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_token bigint;
    v_nack record;
    v_dead record;
BEGIN
    PERFORM minipaas.queue_create('q', max_attempts => 2);
    v_id := minipaas.queue_enqueue('q', '{"poison": true}');
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('q');
    SELECT * INTO v_nack FROM minipaas.queue_nack(v_id, v_token, 'first failure', delay => '0');
    PERFORM minipaas.t_eq(v_nack.outcome, 'retry', 'attempt 1 of 2 retries');
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('q');
    SELECT * INTO v_nack FROM minipaas.queue_nack(v_id, v_token, 'second failure');
    PERFORM minipaas.t_eq(v_nack.outcome, 'dead', 'the last attempt dead-letters');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queue_dequeue('q')), 'dead messages are not delivered');

    SELECT * INTO v_dead FROM minipaas.queue_dead_letters('q');
    PERFORM minipaas.t_eq(v_dead.id, v_id, 'the dead letter is listed');
    PERFORM minipaas.t_eq(v_dead.attempts, 2, 'with its attempts');
    PERFORM minipaas.t_eq(jsonb_path_query_array(v_dead.errors, '$[*].error'),
                          '["first failure", "second failure"]'::jsonb, 'and its error history');
    PERFORM minipaas.t_eq((SELECT dead FROM minipaas.queue_stats('q')), 1::bigint, 'stats count it');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_nack_without_retry_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_token bigint;
BEGIN
    v_id := minipaas.queue_enqueue('q', '{}');
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('q');
    PERFORM minipaas.t_eq((SELECT outcome FROM minipaas.queue_nack(v_id, v_token, 'cannot parse', retry => false)),
                          'dead', 'retry => false dead-letters at once');
    PERFORM minipaas.t_eq((SELECT state FROM minipaas.messages WHERE id = v_id), 'dead'::minipaas.message_state,
                          'state dead');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_expired_last_attempt_dies_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
BEGIN
    PERFORM minipaas.queue_create('q', max_attempts => 1);
    v_id := minipaas.queue_enqueue('q', '{}');
    PERFORM minipaas.queue_dequeue('q');
    PERFORM minipaas.t_expire(v_id);
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queue_dequeue('q')),
                              'a lease that expires on the last attempt is not redelivered');
    PERFORM minipaas.t_eq((SELECT state FROM minipaas.messages WHERE id = v_id), 'dead'::minipaas.message_state,
                          'it is dead-lettered');
    PERFORM minipaas.t_eq((SELECT errors->0->>'error' FROM minipaas.messages WHERE id = v_id), 'lease expired',
                          'because its lease expired');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_redrive_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_a bigint;
    v_b bigint;
    v_token bigint;
    v_row record;
BEGIN
    v_a := minipaas.queue_enqueue('q', '{"n": "a"}');
    v_b := minipaas.queue_enqueue('q', '{"n": "b"}');
    FOR v_row IN SELECT * FROM minipaas.queue_dequeue('q', 2) LOOP
        PERFORM minipaas.queue_nack(v_row.id, v_row.lease_token, 'bad', retry => false);
    END LOOP;
    PERFORM minipaas.t_eq(minipaas.queue_redrive('q', ARRAY[v_b]), 1::bigint, 'redrive of chosen ids');
    PERFORM minipaas.t_eq((SELECT state FROM minipaas.messages WHERE id = v_a), 'dead'::minipaas.message_state,
                          'others stay dead');
    SELECT * INTO v_row FROM minipaas.queue_dequeue('q');
    PERFORM minipaas.t_eq(v_row.id, v_b, 'the redriven message is delivered again');
    PERFORM minipaas.t_eq(v_row.attempt, 1, 'with a fresh attempt budget');
    PERFORM minipaas.t_eq((SELECT errors->0->>'error' FROM minipaas.messages WHERE id = v_b), 'bad',
                          'its error history is kept');
    PERFORM minipaas.t_eq(minipaas.queue_redrive('q'), 1::bigint, 'redrive of all dead messages in one call');
    PERFORM minipaas.t_eq((SELECT id FROM minipaas.queue_dequeue('q')), v_a, 'delivered again');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_delete_dead_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_a bigint;
    v_b bigint;
    v_live bigint;
    v_row record;
BEGIN
    v_a := minipaas.queue_enqueue('q', '{"n": "a"}');
    v_b := minipaas.queue_enqueue('q', '{"n": "b"}');
    FOR v_row IN SELECT * FROM minipaas.queue_dequeue('q', 2) LOOP
        PERFORM minipaas.queue_nack(v_row.id, v_row.lease_token, 'bad', retry => false);
    END LOOP;
    v_live := minipaas.queue_enqueue('q', '{"n": "live"}');
    PERFORM minipaas.t_eq(minipaas.queue_delete_dead('q', ARRAY[v_b, v_live]), 1::bigint,
                          'only the dead message among the ids is deleted');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.messages WHERE id = v_b), 0::bigint, 'it is gone');
    PERFORM minipaas.t_eq((SELECT state FROM minipaas.messages WHERE id = v_a), 'dead'::minipaas.message_state,
                          'other dead messages stay');
    PERFORM minipaas.t_eq((SELECT state FROM minipaas.messages WHERE id = v_live),
                          'ready'::minipaas.message_state, 'a live message is left alone');
    PERFORM minipaas.t_eq(minipaas.queue_delete_dead('q', ARRAY[v_b]), 0::bigint, 'deleting twice deletes nothing');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_delete_dead('nope', ARRAY[1::bigint])$$, '42704');
    PERFORM minipaas.t_raises($$SELECT minipaas.queue_delete_dead('q', NULL)$$, '22004', 'must not be NULL');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_dead_letter_queue_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_token bigint;
    v_moved record;
BEGIN
    PERFORM minipaas.queue_create('orders', max_attempts => 1, dead_letter_queue => 'orders.dead');
    v_id := minipaas.queue_enqueue('orders', '{"order": 7}');
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('orders');
    PERFORM minipaas.t_eq((SELECT outcome FROM minipaas.queue_nack(v_id, v_token, 'card declined')), 'dead',
                          'dead after the only attempt');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.messages WHERE id = v_id),
                              'the message left its queue');
    SELECT * INTO v_moved FROM minipaas.queue_dequeue('orders.dead');
    PERFORM minipaas.t_eq(v_moved.payload, '{"order": 7}'::jsonb, 'it is a message of the dead-letter queue');
    PERFORM minipaas.t_eq((SELECT errors FROM minipaas.messages WHERE id = v_moved.id)->1->>'dead_lettered_from',
                          'orders', 'which knows where it came from');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_retention_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_token bigint;
BEGIN
    PERFORM minipaas.queue_create('kept', retention => '1 hour');
    v_id := minipaas.queue_enqueue('kept', '{}');
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('kept');
    PERFORM minipaas.t_assert(minipaas.queue_ack(v_id, v_token), 'ack');
    PERFORM minipaas.t_eq((SELECT state FROM minipaas.messages WHERE id = v_id), 'done'::minipaas.message_state,
                          'with retention, an acked message is kept as done');
    PERFORM minipaas.t_eq((SELECT done FROM minipaas.queue_stats('kept')), 1::bigint, 'stats count it');
    PERFORM minipaas.t_eq((SELECT affected FROM minipaas.queue_maintain() WHERE task = 'done messages purged'),
                          0::bigint, 'not purged within the retention');
    UPDATE minipaas.messages SET finished_at = clock_timestamp() - interval '2 hours' WHERE id = v_id;
    PERFORM minipaas.t_eq((SELECT affected FROM minipaas.queue_maintain() WHERE task = 'done messages purged'),
                          1::bigint, 'purged after the retention');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.messages WHERE id = v_id), 'gone');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_dedup_key_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_first bigint;
    v_token bigint;
BEGIN
    v_first := minipaas.queue_enqueue('q', '{"v": 1}', dedup_key => 'user-42');
    PERFORM minipaas.t_eq(minipaas.queue_enqueue('q', '{"v": 2}', dedup_key => 'user-42'), v_first,
                          'a live dedup key returns the existing id');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.messages), 1::bigint, 'and enqueues nothing');
    PERFORM minipaas.t_assert(minipaas.queue_enqueue('q', '{}', dedup_key => 'user-43') <> v_first,
                              'other keys are independent');
    PERFORM minipaas.t_assert(minipaas.queue_enqueue('other', '{}', dedup_key => 'user-42') <> v_first,
                              'keys are per queue');
    SELECT lease_token INTO v_token FROM minipaas.queue_dequeue('q') WHERE id = v_first;
    PERFORM minipaas.t_eq(minipaas.queue_enqueue('q', '{"v": 3}', dedup_key => 'user-42'), v_first,
                          'the key is live while the message is in flight');
    PERFORM minipaas.queue_ack(v_first, v_token);
    PERFORM minipaas.t_assert(minipaas.queue_enqueue('q', '{"v": 4}', dedup_key => 'user-42') <> v_first,
                              'after the ack the key is free again');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_ordering_key_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_a1 bigint;
    v_a2 bigint;
    v_a3 bigint;
    v_b1 bigint;
    v_got bigint[];
    v_row record;
BEGIN
    v_a1 := minipaas.queue_enqueue('q', '{"n": "a1"}', ordering_key => 'account-a');
    v_a2 := minipaas.queue_enqueue('q', '{"n": "a2"}', ordering_key => 'account-a');
    v_a3 := minipaas.queue_enqueue('q', '{"n": "a3"}', ordering_key => 'account-a');
    v_b1 := minipaas.queue_enqueue('q', '{"n": "b1"}', ordering_key => 'account-b');
    SELECT array_agg(id ORDER BY id) INTO v_got FROM minipaas.queue_dequeue('q', 10);
    PERFORM minipaas.t_eq(v_got, ARRAY[v_a1, v_b1], 'one message per ordering key at a time, the oldest first');
    PERFORM minipaas.t_eq((SELECT waiting FROM minipaas.queue_stats('q')), 2::bigint, 'the others wait');

    PERFORM minipaas.queue_ack(v_a1, minipaas.t_token(v_a1));
    SELECT * INTO v_row FROM minipaas.queue_dequeue('q', 10);
    PERFORM minipaas.t_eq(v_row.id, v_a2, 'the next message of the key follows the ack, in enqueue order');
    -- A retry keeps the lane blocked: order is not given up for a failing message.
    PERFORM minipaas.queue_nack(v_a2, v_row.lease_token, 'later', delay => '1 hour');
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queue_dequeue('q', 10)),
                              'a retrying head blocks its lane');
    PERFORM minipaas.t_expire(v_a2);
    SELECT * INTO v_row FROM minipaas.queue_dequeue('q', 10);
    PERFORM minipaas.t_eq(v_row.id, v_a2, 'the head again');
    -- Dead-lettering the head unblocks the lane.
    PERFORM minipaas.queue_nack(v_a2, v_row.lease_token, 'give up', retry => false);
    PERFORM minipaas.t_eq((SELECT id FROM minipaas.queue_dequeue('q', 10)), v_a3, 'a dead head unblocks the lane');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_ordering_key_redrive_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_a1 bigint;
    v_a2 bigint;
    v_row record;
BEGIN
    v_a1 := minipaas.queue_enqueue('q', '{"n": "a1"}', ordering_key => 'k');
    v_a2 := minipaas.queue_enqueue('q', '{"n": "a2"}', ordering_key => 'k');
    SELECT * INTO v_row FROM minipaas.queue_dequeue('q');
    PERFORM minipaas.queue_nack(v_a1, v_row.lease_token, 'dead', retry => false);
    SELECT * INTO v_row FROM minipaas.queue_dequeue('q');
    PERFORM minipaas.t_eq(v_row.id, v_a2, 'a2 is the head after a1 died');
    PERFORM minipaas.queue_redrive('q');
    PERFORM minipaas.t_eq((SELECT state FROM minipaas.messages WHERE id = v_a1), 'waiting'::minipaas.message_state,
                          'a redriven message rejoins its lane behind the message in flight');
    PERFORM minipaas.queue_ack(v_a2, v_row.lease_token);
    PERFORM minipaas.t_eq((SELECT id FROM minipaas.queue_dequeue('q')), v_a1, 'and is delivered after it');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_lane_repair_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_a1 bigint;
    v_a2 bigint;
BEGIN
    v_a1 := minipaas.queue_enqueue('q', '{}', ordering_key => 'k');
    v_a2 := minipaas.queue_enqueue('q', '{}', ordering_key => 'k');
    -- As if an ack under REPEATABLE READ had removed the head without seeing the waiting message.
    DELETE FROM minipaas.messages WHERE id = v_a1;
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queue_dequeue('q')), 'the lane is stuck');
    PERFORM minipaas.t_eq((SELECT affected FROM minipaas.queue_maintain() WHERE task = 'ordering lanes repaired'),
                          1::bigint, 'maintain repairs it');
    PERFORM minipaas.t_eq((SELECT id FROM minipaas.queue_dequeue('q')), v_a2, 'delivered');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_enqueue_batch_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_ids bigint[];
    v_keyed bigint[];
BEGIN
    SELECT array_agg(i) INTO v_ids
      FROM minipaas.queue_enqueue_batch('q', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[]) AS i;
    PERFORM minipaas.t_eq(pg_catalog.cardinality(v_ids), 3, 'one id per payload');
    PERFORM minipaas.t_eq((SELECT array_agg(payload->>'n' ORDER BY id) FROM minipaas.messages WHERE id = ANY (v_ids)),
                          ARRAY['1', '2', '3'], 'ids follow input order');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.queue_enqueue_batch('q', ARRAY[]::jsonb[])), 0::bigint,
                          'an empty batch is fine');
    SELECT array_agg(i) INTO v_keyed
      FROM minipaas.queue_enqueue_batch('q', ARRAY['{"n": 4}', '{"n": 5}', '{"n": 6}']::jsonb[],
                                        dedup_keys => ARRAY['d', 'd', NULL], ordering_keys => ARRAY[NULL, NULL, 'k']) AS i;
    PERFORM minipaas.t_eq(v_keyed[1], v_keyed[2], 'dedup keys apply within a batch');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.messages), 5::bigint, 'five messages');
    PERFORM minipaas.t_eq((SELECT ordering_key FROM minipaas.messages WHERE id = v_keyed[3]), 'k', 'ordering key kept');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_ack_batch_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_ids bigint[];
    v_tokens bigint[];
    v_acked bigint[];
BEGIN
    PERFORM minipaas.queue_enqueue_batch('q', (SELECT array_agg(jsonb_build_object('n', i)) FROM generate_series(1, 5) i));
    SELECT array_agg(id), array_agg(lease_token) INTO v_ids, v_tokens FROM minipaas.queue_dequeue('q', 5);
    v_tokens[5] := v_tokens[5] + 1;
    SELECT array_agg(a ORDER BY a) INTO v_acked FROM minipaas.queue_ack_batch(v_ids, v_tokens) a;
    PERFORM minipaas.t_eq(pg_catalog.cardinality(v_acked), 4, 'acks with the right tokens succeed');
    PERFORM minipaas.t_assert(NOT v_ids[5] = ANY (v_acked), 'the wrong token is refused');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.messages), 1::bigint, 'one message left');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_ack_dequeue_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_ids bigint[];
    v_first record;
    v_second record;
    v_third record;
    v_batch bigint[];
    v_tokens bigint[];
BEGIN
    SELECT array_agg(minipaas.queue_enqueue('q', jsonb_build_object('n', i)) ORDER BY i) INTO v_ids
      FROM generate_series(1, 5) i;
    SELECT * INTO v_first FROM minipaas.queue_ack_dequeue('q', '{}', '{}');
    PERFORM minipaas.t_eq(v_first.id, v_ids[1], 'nothing to ack: the first message is leased');

    SELECT * INTO v_second FROM minipaas.queue_ack_dequeue('q', ARRAY[v_first.id], ARRAY[v_first.lease_token]);
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.messages WHERE id = v_first.id),
                              'the finished delivery is acked');
    PERFORM minipaas.t_eq(v_second.id, v_ids[2], 'and the next message leased');

    SELECT * INTO v_third FROM minipaas.queue_ack_dequeue('q', ARRAY[v_second.id], ARRAY[v_second.lease_token + 1]);
    PERFORM minipaas.t_eq(minipaas.t_token(v_second.id), v_second.lease_token,
                          'a wrong token acks nothing: the delivery keeps its lease');
    PERFORM minipaas.t_eq(v_third.id, v_ids[3], 'the next message is leased all the same');

    SELECT array_agg(d.id ORDER BY d.id), array_agg(d.lease_token ORDER BY d.id) INTO v_batch, v_tokens
      FROM minipaas.queue_ack_dequeue('q', ARRAY[v_second.id, v_third.id],
                                      ARRAY[v_second.lease_token, v_third.lease_token], 10) d;
    PERFORM minipaas.t_eq(v_batch, v_ids[4:5], 'a batch of acks, then a batch of leases');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.messages), 2::bigint, 'only the leased two are left');

    PERFORM minipaas.t_raises(format('SELECT * FROM minipaas.queue_ack_dequeue(%L, %L, %L)', 'q',
                                     ARRAY[v_batch[1]], ARRAY[v_tokens[1], v_tokens[2]]),
                              '22023', 'same length');
    PERFORM minipaas.t_raises(format('SELECT * FROM minipaas.queue_ack_dequeue(%L, %L, %L)', 'q', '{}', v_tokens),
                              '22023', 'same length');
END
$fn$;

-- A batch dequeue delivers expired leases again and dead-letters those that used up their attempts, like a
-- dequeue of one (the two take different paths).
CREATE OR REPLACE FUNCTION minipaas.queue_batch_lease_expiry_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_ids bigint[];
    v_rows record;
    v_got bigint[];
    v_attempts integer[];
BEGIN
    PERFORM minipaas.queue_create('q', max_attempts => 2);
    SELECT array_agg(minipaas.queue_enqueue('q', jsonb_build_object('n', i)) ORDER BY i) INTO v_ids
      FROM generate_series(1, 3) i;
    PERFORM minipaas.queue_dequeue('q', 2);
    PERFORM minipaas.t_expire(v_ids[1]);
    PERFORM minipaas.t_expire(v_ids[2]);
    SELECT array_agg(d.id ORDER BY d.id), array_agg(d.attempt ORDER BY d.id) INTO v_got, v_attempts
      FROM minipaas.queue_dequeue('q', 10) d;
    PERFORM minipaas.t_eq(v_got, v_ids, 'expired leases come back in a batch, with the message never leased');
    PERFORM minipaas.t_eq(v_attempts, ARRAY[2, 2, 1], 'as further attempts');
    PERFORM minipaas.t_eq((SELECT errors->0->>'error' FROM minipaas.messages WHERE id = v_ids[1]), 'lease expired',
                          'each expiry is recorded');
    PERFORM minipaas.t_expire(v_ids[1]);
    PERFORM minipaas.t_expire(v_ids[3]);
    SELECT array_agg(d.id ORDER BY d.id) INTO v_got FROM minipaas.queue_dequeue('q', 10) d;
    PERFORM minipaas.t_eq(v_got, ARRAY[v_ids[3]], 'a batch skips a message whose last attempt expired');
    PERFORM minipaas.t_eq((SELECT state FROM minipaas.messages WHERE id = v_ids[1]), 'dead'::minipaas.message_state,
                          'and dead-letters it');
    SELECT * INTO v_rows FROM minipaas.queue_stats('q');
    PERFORM minipaas.t_eq(v_rows.dead, 1::bigint, 'stats count it as dead');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_release_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id bigint;
    v_row record;
BEGIN
    v_id := minipaas.queue_enqueue('q', '{}');
    SELECT * INTO v_row FROM minipaas.queue_dequeue('q');
    PERFORM minipaas.t_assert(minipaas.queue_release(v_id, v_row.lease_token), 'release');
    PERFORM minipaas.t_assert(NOT minipaas.queue_release(v_id, v_row.lease_token), 'only once');
    SELECT * INTO v_row FROM minipaas.queue_dequeue('q');
    PERFORM minipaas.t_eq(v_row.id, v_id, 'a released message is delivered again at once');
    PERFORM minipaas.t_eq(v_row.attempt, 1, 'without counting the released attempt');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_purge_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM minipaas.queue_enqueue_batch('q', ARRAY['{}', '{}']::jsonb[]);
    PERFORM minipaas.queue_enqueue('other', '{}');
    PERFORM minipaas.t_eq(minipaas.queue_purge('q'), 2::bigint, 'purge deletes the queue''s messages');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.messages), 1::bigint, 'other queues keep theirs');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_stats_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_ids bigint[];
    s record;
BEGIN
    SELECT array_agg(i) INTO v_ids
      FROM minipaas.queue_enqueue_batch('q', ARRAY['{}', '{}', '{}', '{}', '{}']::jsonb[]) i;
    PERFORM minipaas.queue_enqueue('q', '{}', delay => '1 hour');
    PERFORM minipaas.queue_enqueue('q', '{}', ordering_key => 'k');
    PERFORM minipaas.queue_enqueue('q', '{}', ordering_key => 'k');
    PERFORM minipaas.queue_dequeue('q', 2);
    UPDATE minipaas.messages SET lease_until = clock_timestamp() - interval '1 second'
     WHERE id = (SELECT min(id) FROM minipaas.messages WHERE lease_until IS NOT NULL);
    SELECT * INTO s FROM minipaas.queue_stats('q');
    PERFORM minipaas.t_eq(s.queue_name, 'q', 'queue name');
    PERFORM minipaas.t_eq(s.ready, 4::bigint, 'ready: three batch messages and the lane head');
    PERFORM minipaas.t_eq(s.scheduled, 1::bigint, 'scheduled: the delayed one');
    PERFORM minipaas.t_eq(s.waiting, 1::bigint, 'waiting: behind its ordering key');
    PERFORM minipaas.t_eq(s.in_flight, 1::bigint, 'in flight');
    PERFORM minipaas.t_eq(s.expired, 1::bigint, 'expired lease');
    PERFORM minipaas.t_eq(s.dead, 0::bigint, 'dead');
    PERFORM minipaas.t_assert(s.oldest_ready_at <= clock_timestamp(), 'oldest ready message time');
    PERFORM minipaas.t_assert(s.next_visible_at > clock_timestamp(), 'next due time');
    PERFORM minipaas.queue_enqueue('empty-one', '{}');
    PERFORM minipaas.t_eq((SELECT count(*) FROM minipaas.queue_stats()), 2::bigint, 'all queues without a name');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_consumers_idle_flag_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM minipaas.queue_enqueue_batch('q', ARRAY['{}', '{}', '{}']::jsonb[]);
    PERFORM minipaas.t_assert((SELECT consumers_idle_until IS NULL FROM minipaas.queues WHERE name = 'q'),
                              'nobody waits on a new queue');
    PERFORM minipaas.queue_dequeue('q', 2);
    PERFORM minipaas.t_assert((SELECT consumers_idle_until IS NULL FROM minipaas.queues WHERE name = 'q'),
                              'a full batch means a backlog: no NOTIFY needed');
    PERFORM minipaas.queue_dequeue('q', 2);
    PERFORM minipaas.t_assert((SELECT consumers_idle_until > clock_timestamp() + interval '29 seconds'
                                 FROM minipaas.queues WHERE name = 'q'),
                              'a short batch means consumers wait: enqueues notify for the next 30 s');
    PERFORM minipaas.queue_enqueue('q', '{}');
    PERFORM minipaas.t_assert((SELECT notified_at > clock_timestamp() - interval '1 second'
                                 FROM minipaas.queue_wakeups w JOIN minipaas.queues q USING (queue_id)
                                WHERE q.name = 'q'),
                              'an enqueue while consumers wait sends a NOTIFY');
    PERFORM minipaas.queue_enqueue('q', '{}');
    PERFORM minipaas.queue_dequeue('q', 2);
    PERFORM minipaas.t_assert((SELECT consumers_idle_until IS NULL FROM minipaas.queues WHERE name = 'q'),
                              'a full batch clears the flag again');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_hint_rescan_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_early bigint;
    v_late bigint;
    v_hint minipaas.dequeue_hint;
BEGIN
    v_early := minipaas.queue_enqueue('q', '{"n": "early"}');
    v_late := minipaas.queue_enqueue('q', '{"n": "late"}');
    PERFORM minipaas.t_eq((SELECT id FROM minipaas.queue_dequeue('q')), v_early, 'first');
    v_hint := minipaas.t_hint('q');
    PERFORM minipaas.t_eq(v_hint.after_id, v_early, 'the session remembers where its last dequeue stopped');
    PERFORM minipaas.t_assert(minipaas._from_epoch_us(v_hint.rescan_at) > clock_timestamp(), 'a rescan time ahead');
    -- A message at or behind the position (as if its producer committed late) is skipped by hinted scans ...
    SELECT m.priority, minipaas._epoch_us(m.ready_at), m.id
      INTO v_hint.after_priority, v_hint.after_ready_at, v_hint.after_id
      FROM minipaas.messages m WHERE m.id = v_late;
    PERFORM minipaas.t_set_hint('q', v_hint);
    PERFORM minipaas.t_assert(NOT EXISTS (SELECT 1 FROM minipaas.queue_dequeue('q')), 'hinted scans skip it');
    -- ... until the session's rescan time, when a full scan from the start finds it.
    v_hint := minipaas.t_hint('q');
    v_hint.rescan_at := minipaas._epoch_us(clock_timestamp());
    PERFORM minipaas.t_set_hint('q', v_hint);
    PERFORM minipaas.t_eq((SELECT id FROM minipaas.queue_dequeue('q')), v_late, 'the rescan finds it');
    -- A rescan time further out than queue_dequeue ever sets is not believed.
    v_late := minipaas.queue_enqueue('q', '{"n": "later"}');
    SELECT m.priority, minipaas._epoch_us(m.ready_at), m.id,
           minipaas._epoch_us(clock_timestamp() + interval '1 day')
      INTO v_hint.after_priority, v_hint.after_ready_at, v_hint.after_id, v_hint.rescan_at
      FROM minipaas.messages m WHERE m.id = v_late;
    PERFORM minipaas.t_set_hint('q', v_hint);
    PERFORM minipaas.t_eq((SELECT id FROM minipaas.queue_dequeue('q')), v_late, 'a far rescan time means now');
    -- A hint emptied by RESET ALL or DISCARD ALL (a connection pooler's reset) means: scan from the start.
    v_late := minipaas.queue_enqueue('q', '{"n": "after reset"}');
    PERFORM minipaas.t_set_hint('q', v_hint);
    RESET ALL;
    PERFORM minipaas.t_eq((SELECT id FROM minipaas.queue_dequeue('q')), v_late, 'an emptied hint means a full scan');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_hint_survives_datestyle_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_first bigint;
    v_hint minipaas.dequeue_hint;
BEGIN
    v_first := minipaas.queue_enqueue('q', '{"n": 1}');
    PERFORM minipaas.queue_enqueue('q', '{"n": 2}');
    SET LOCAL DateStyle = 'SQL, DMY';
    SET LOCAL TimeZone = 'Pacific/Chatham';
    PERFORM minipaas.t_eq((SELECT id FROM minipaas.queue_dequeue('q')), v_first, 'first');
    v_hint := minipaas.t_hint('q');
    SET LOCAL DateStyle = 'SQL, MDY';
    SET LOCAL TimeZone = 'UTC';
    PERFORM minipaas.t_eq(minipaas.t_hint('q'), v_hint, 'the hint reads back the same in another DateStyle');
    PERFORM minipaas.t_assert(minipaas._from_epoch_us(v_hint.rescan_at)
                                  BETWEEN clock_timestamp() AND clock_timestamp() + interval '60 seconds',
                              'the rescan time is near, in any time zone');
    PERFORM minipaas.t_eq((SELECT (payload->>'n')::int FROM minipaas.queue_dequeue('q')), 2, 'the next one');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.queue_hint_urgent_probe_test()
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_urgent bigint;
    v_hint minipaas.dequeue_hint;
BEGIN
    PERFORM minipaas.queue_enqueue_batch('q', ARRAY['{}', '{}', '{}']::jsonb[], priority => 5);
    PERFORM minipaas.queue_dequeue('q');
    v_urgent := minipaas.queue_enqueue('q', '{"urgent": true}', priority => 0);
    -- The hint sits at priority 5; the urgency probe (every 100 ms) looks below it. Make it due now.
    v_hint := minipaas.t_hint('q');
    PERFORM minipaas.t_eq(v_hint.after_priority, 5::smallint, 'the position''s priority');
    v_hint.probe_at := 0;
    PERFORM minipaas.t_set_hint('q', v_hint);
    PERFORM minipaas.t_eq((SELECT id FROM minipaas.queue_dequeue('q')), v_urgent,
                          'a message more urgent than the hint is found');
END
$fn$;
