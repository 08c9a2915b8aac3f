-- MiniPaaS queues: at-least-once delivery with leases, retries, dead letters and ordering keys.
--
-- Every object is schema-qualified and no function but queue_dequeue has a SET clause, so the calls work whatever
-- the caller's search_path is, and transaction-local state set by a function survives the call.
--
-- Message life cycle (minipaas.messages.state):
--   ready  --dequeue (lease_until ahead)-->  ready+leased  --ack-->  (deleted, or done for the retention)
--   ready+leased  --nack (after backoff) / lease expiry-->  ready  ...  --max attempts-->  dead  --redrive-->  ready
--   waiting (behind an earlier message with the same ordering key)  --head leaves-->  ready

-- Named constants, shared by queues.sql and streams.sql. Each is an IMMUTABLE SQL function: the planner folds a
-- call to its value when it plans the statement (once per session: plans are cached), so naming a number costs
-- nothing at run time.

CREATE OR REPLACE FUNCTION minipaas.const_max_batch()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT 10000 $fn$;

COMMENT ON FUNCTION minipaas.const_max_batch() IS
    'The most messages or events one batch call takes or returns (enqueue, dequeue, ack, publish, consume).';

CREATE OR REPLACE FUNCTION minipaas.const_priority_min()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT -32768 $fn$;

COMMENT ON FUNCTION minipaas.const_priority_min() IS
    'The most urgent priority (priorities are smallints; lower numbers are delivered first).';

CREATE OR REPLACE FUNCTION minipaas.const_priority_max()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT 32767 $fn$;

COMMENT ON FUNCTION minipaas.const_priority_max() IS 'The least urgent priority.';

CREATE OR REPLACE FUNCTION minipaas.const_max_key_bytes()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT 1024 $fn$;

COMMENT ON FUNCTION minipaas.const_max_key_bytes() IS
    'The longest dedup key, ordering key, stream key or dedup id, in bytes: keys are indexed, and a B-tree entry '
    'must fit in a third of a page.';

CREATE OR REPLACE FUNCTION minipaas.const_max_lease()
RETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT interval '12 hours' $fn$;

COMMENT ON FUNCTION minipaas.const_max_lease() IS
    'The longest visibility timeout (lease): a handler that runs longer extends its lease (queue_extend).';

CREATE OR REPLACE FUNCTION minipaas.const_max_duration()
RETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT interval '10 years' $fn$;

COMMENT ON FUNCTION minipaas.const_max_duration() IS
    'The longest delay, backoff or retention, and how far ahead run_at may lie.';

CREATE OR REPLACE FUNCTION minipaas.const_events_per_transaction()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT 1048576::bigint $fn$;

COMMENT ON FUNCTION minipaas.const_events_per_transaction() IS
    '2^20: a stream event''s offset is (publishing transaction''s id) * 2^20 + (its number within the transaction), '
    'so a transaction publishes at most this many events.';

-- Advisory locks, two-key form: the first key says what is locked. 0x4D505F01.. ("MP_" and a number).
CREATE OR REPLACE FUNCTION minipaas.const_lock_ordering_lane()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT 1297088513 $fn$;

COMMENT ON FUNCTION minipaas.const_lock_ordering_lane() IS
    'Advisory lock class of an ordering lane (second key: hashtext(queue_id || '':'' || ordering_key)).';

CREATE OR REPLACE FUNCTION minipaas.const_lock_stream_key()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT 1297088514 $fn$;

COMMENT ON FUNCTION minipaas.const_lock_stream_key() IS
    'Advisory lock class of a stream key (second key: hashtext(stream_id || '':'' || key)).';

CREATE OR REPLACE FUNCTION minipaas.const_lock_group_partition()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT 1297088515 $fn$;

COMMENT ON FUNCTION minipaas.const_lock_group_partition() IS
    'Advisory lock class of a consumer group''s partition (second key: hashtext(stream_id || '':'' || group || '':'' '
    '|| partition)).';

CREATE OR REPLACE FUNCTION minipaas.const_lock_maintenance()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT 1297088516 $fn$;

COMMENT ON FUNCTION minipaas.const_lock_maintenance() IS
    'Advisory lock class of maintain() (second key: 0): one maintainer at a time.';

CREATE OR REPLACE FUNCTION minipaas._check_name(kind text, name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'minipaas: the % name must not be NULL', kind
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF name !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$' THEN
        RAISE EXCEPTION 'minipaas: invalid % name %', kind, quote_literal(name)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use 1 to 48 characters: letters, digits, "_", ".", ":" or "-", starting with a letter or digit.';
    END IF;
END
$fn$;

COMMENT ON FUNCTION minipaas._check_name(text, text) IS
    'Internal: raises a clear error unless name is a valid queue or stream name (it also names the NOTIFY channel).';

CREATE OR REPLACE FUNCTION minipaas._check_duration(what text, value interval, allow_zero boolean, highest interval,
                                                    hint text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    -- Beyond the range, the timestamps computed from the value overflow ("timestamp out of range") on every later
    -- call, long after the call that stored it.
    IF value < interval '0' OR (value = interval '0' AND NOT allow_zero) THEN
        RAISE EXCEPTION 'minipaas: % must %, got %', what,
                CASE WHEN allow_zero THEN 'not be negative' ELSE 'be positive' END, value
            USING ERRCODE = 'invalid_parameter_value', HINT = hint;
    END IF;
    IF value > highest THEN
        RAISE EXCEPTION 'minipaas: % must be at most %, got %', what, highest, value
            USING ERRCODE = 'invalid_parameter_value', HINT = hint;
    END IF;
END
$fn$;

COMMENT ON FUNCTION minipaas._check_duration(text, interval, boolean, interval, text) IS
    'Internal: raises a clear error (22023) unless value lies between 0 (allowed if allow_zero) and highest; NULL '
    'passes.';

CREATE OR REPLACE FUNCTION minipaas._check_key(what text, key text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    -- Longer keys would fail in the index with a raw "index row size exceeds maximum" (54000).
    IF pg_catalog.octet_length(key) > minipaas.const_max_key_bytes() THEN
        RAISE EXCEPTION 'minipaas: the % is % bytes long, more than the % allowed', what, pg_catalog.octet_length(key),
                minipaas.const_max_key_bytes()
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A key identifies something; for a long value use a digest of it, e.g. md5(value).';
    END IF;
END
$fn$;

COMMENT ON FUNCTION minipaas._check_key(text, text) IS
    'Internal: raises a clear error (22023) when a key is longer than const_max_key_bytes(); NULL passes.';

CREATE OR REPLACE FUNCTION minipaas._check_lease(visibility_timeout interval)
RETURNS void
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT minipaas._check_duration('visibility_timeout', visibility_timeout, false, minipaas.const_max_lease(),
        'A lease lasts at most 12 hours; a handler that runs longer extends it with queue_extend (the Rust Worker '
        'does so on its own).');
$fn$;

COMMENT ON FUNCTION minipaas._check_lease(interval) IS
    'Internal: raises a clear error unless visibility_timeout is positive and at most const_max_lease(); NULL passes.';

CREATE OR REPLACE FUNCTION minipaas._queue(queue text, create_missing boolean)
RETURNS minipaas.queues
LANGUAGE plpgsql
AS $fn$
DECLARE
    q minipaas.queues;
BEGIN
    SELECT * INTO q FROM minipaas.queues WHERE minipaas.queues.name = _queue.queue;
    IF FOUND THEN
        RETURN q;
    END IF;
    PERFORM minipaas._check_name('queue', queue);
    IF NOT create_missing THEN
        RAISE EXCEPTION 'minipaas: queue % does not exist', quote_literal(queue)
            USING ERRCODE = 'undefined_object';
    END IF;
    -- A concurrent creator makes this wait for its commit, then DO NOTHING: both see one row.
    INSERT INTO minipaas.queues (name) VALUES (queue) ON CONFLICT (name) DO NOTHING;
    SELECT * INTO q FROM minipaas.queues WHERE minipaas.queues.name = _queue.queue;
    RETURN q;
END
$fn$;

COMMENT ON FUNCTION minipaas._queue(text, boolean) IS
    'Internal: the queue''s row; a missing queue is created with default options, or is an error (42704).';

CREATE OR REPLACE FUNCTION minipaas._wake(q minipaas.queues, due timestamptz)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_now timestamptz := pg_catalog.clock_timestamp();
BEGIN
    -- NOTIFY takes a cluster-wide lock at commit that serialises notifying transactions. So notify only while
    -- consumers said they wait (under a backlog they get full batches and nobody notifies), and at most once per
    -- 50 ms per queue: the first producer in a window claims it without waiting for anyone (SKIP LOCKED).
    IF q.consumers_idle_until IS NULL OR q.consumers_idle_until <= v_now THEN
        RETURN;
    END IF;
    UPDATE minipaas.queue_wakeups w
       SET notified_at = v_now
     WHERE w.queue_id = (SELECT x.queue_id FROM minipaas.queue_wakeups x
                          WHERE x.queue_id = q.queue_id AND x.notified_at < v_now - interval '50 milliseconds'
                          FOR UPDATE SKIP LOCKED);
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM minipaas.queue_wakeups x WHERE x.queue_id = q.queue_id) THEN
            RETURN;
        END IF;
        -- New queue, or the unlogged table lost its rows in a crash.
        INSERT INTO minipaas.queue_wakeups (queue_id, notified_at) VALUES (q.queue_id, v_now)
            ON CONFLICT (queue_id) DO NOTHING;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    -- The payload is empty for "now", else the epoch seconds at which the message becomes visible.
    PERFORM pg_catalog.pg_notify(
        'minipaas.queue.' || q.name,
        CASE WHEN due > v_now THEN extract(epoch FROM due)::text ELSE '' END);
END
$fn$;

COMMENT ON FUNCTION minipaas._wake(minipaas.queues, timestamptz) IS
    'Internal: NOTIFY minipaas.queue.<name> (payload: due epoch seconds, or empty for now) while consumers wait, '
    'at most once per 50 ms.';

CREATE OR REPLACE FUNCTION minipaas._lane_lock(queue_id integer, ordering_key text)
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    -- Serialises the producers and the acks of one ordering key until commit, so that "is there an active
    -- message in this lane?" and "promote the next one" never race.
    PERFORM pg_catalog.pg_advisory_xact_lock(minipaas.const_lock_ordering_lane(),
                                             pg_catalog.hashtext(queue_id::text || ':' || ordering_key));
END
$fn$;

COMMENT ON FUNCTION minipaas._lane_lock(integer, text) IS
    'Internal: transaction-level advisory lock on one ordering lane.';

CREATE OR REPLACE FUNCTION minipaas._lane_promote(queue_id integer, ordering_key text)
RETURNS void
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    v_priority smallint;
    v_at       timestamptz;
    q          minipaas.queues;
BEGIN
    PERFORM minipaas._lane_lock(_lane_promote.queue_id, _lane_promote.ordering_key);
    IF EXISTS (SELECT 1 FROM minipaas.messages m
                WHERE m.queue_id = _lane_promote.queue_id AND m.ordering_key = _lane_promote.ordering_key
                  AND m.state = 'ready') THEN
        RETURN;
    END IF;
    UPDATE minipaas.messages m
       SET state = 'ready', ready_at = greatest(m.ready_at, pg_catalog.clock_timestamp())
     WHERE m.id = (SELECT w.id FROM minipaas.messages w
                    WHERE w.queue_id = _lane_promote.queue_id AND w.ordering_key = _lane_promote.ordering_key
                      AND w.state = 'waiting'
                    ORDER BY w.id LIMIT 1)
    RETURNING m.priority, m.ready_at INTO v_priority, v_at;
    IF FOUND THEN
        SELECT * INTO q FROM minipaas.queues t WHERE t.queue_id = _lane_promote.queue_id;
        PERFORM minipaas._wake(q, v_at);
    END IF;
END
$fn$;

COMMENT ON FUNCTION minipaas._lane_promote(integer, text) IS
    'Internal: makes the oldest waiting message of an ordering lane ready once the lane has no ready message.';

CREATE OR REPLACE FUNCTION minipaas._promote_lanes(lanes text[], queue_ids integer[])
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    r record;
BEGIN
    -- Take lane locks in one global order so that two batches never deadlock on each other.
    FOR r IN
        SELECT DISTINCT l.queue_id, l.lane,
               pg_catalog.hashtext(l.queue_id::text || ':' || l.lane) AS lock_key
          FROM unnest(queue_ids, lanes) AS l(queue_id, lane)
         WHERE l.lane IS NOT NULL
         ORDER BY lock_key, l.queue_id, l.lane
    LOOP
        PERFORM minipaas._lane_promote(r.queue_id, r.lane);
    END LOOP;
END
$fn$;

COMMENT ON FUNCTION minipaas._promote_lanes(text[], integer[]) IS
    'Internal: _lane_promote for several lanes, in lock order.';

CREATE OR REPLACE FUNCTION minipaas._backoff(q minipaas.queues, attempt integer)
RETURNS interval
LANGUAGE sql VOLATILE
AS $fn$
    -- Exponential (base * 2^(attempt-1)), capped at backoff_max, minus up to backoff_jitter of itself.
    SELECT pg_catalog.make_interval(secs =>
               least(extract(epoch FROM q.backoff_max)::double precision,
                     extract(epoch FROM q.backoff_base)::double precision
                         * pg_catalog.power(2::double precision, least(greatest(attempt - 1, 0), 60)))
               * (1 - q.backoff_jitter * pg_catalog.random()));
$fn$;

COMMENT ON FUNCTION minipaas._backoff(minipaas.queues, integer) IS
    'Internal: retry delay after the given attempt: exponential with jitter, capped.';

CREATE OR REPLACE FUNCTION minipaas._after_dead(queue_id integer, ids bigint[])
RETURNS void
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    q       minipaas.queues;
    target  minipaas.queues;
    v_lanes text[];
    v_qids  integer[];
BEGIN
    SELECT * INTO q FROM minipaas.queues t WHERE t.queue_id = _after_dead.queue_id;
    SELECT array_agg(m.ordering_key), array_agg(m.queue_id) INTO v_lanes, v_qids
      FROM minipaas.messages m
     WHERE m.id = ANY (ids) AND m.state = 'dead' AND m.ordering_key IS NOT NULL;
    IF q.dead_letter_queue IS NOT NULL THEN
        target := minipaas._queue(q.dead_letter_queue, true);
        -- The copy is an ordinary ready message of the dead-letter queue; its errors say where it came from.
        WITH moved AS (
            DELETE FROM minipaas.messages m
             WHERE m.id = ANY (ids) AND m.state = 'dead'
            RETURNING m.id, m.priority, m.payload, m.errors, m.attempts
        )
        INSERT INTO minipaas.messages (queue_id, state, priority, ready_at, enqueued_at, payload, errors)
        SELECT target.queue_id, 'ready', moved.priority, pg_catalog.clock_timestamp(),
               pg_catalog.clock_timestamp(), moved.payload,
               coalesce(moved.errors, '[]'::jsonb) || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                   'dead_lettered_from', q.name, 'id', moved.id, 'attempts', moved.attempts,
                   'at', pg_catalog.clock_timestamp()))
          FROM moved
         ORDER BY moved.id;
        IF FOUND THEN
            PERFORM minipaas._wake(target, pg_catalog.clock_timestamp());
        END IF;
    END IF;
    IF v_lanes IS NOT NULL THEN
        PERFORM minipaas._promote_lanes(v_lanes, v_qids);
    END IF;
END
$fn$;

COMMENT ON FUNCTION minipaas._after_dead(integer, bigint[]) IS
    'Internal: after messages died: move them to the dead-letter queue if one is set, and unblock their ordering lanes.';

CREATE OR REPLACE FUNCTION minipaas.queue_create(
    queue              text,
    visibility_timeout interval DEFAULT NULL,
    max_attempts       integer DEFAULT NULL,
    backoff_base       interval DEFAULT NULL,
    backoff_max        interval DEFAULT NULL,
    backoff_jitter     double precision DEFAULT NULL,
    dead_letter_queue  text DEFAULT NULL,
    retention          interval DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_variable
DECLARE
    v_created boolean;
BEGIN
    PERFORM minipaas._check_name('queue', queue);
    PERFORM minipaas._check_lease(visibility_timeout);
    IF max_attempts < 1 THEN
        RAISE EXCEPTION 'minipaas: max_attempts must be at least 1, got %', max_attempts
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM minipaas._check_duration('backoff_base', backoff_base, true, minipaas.const_max_duration(),
                                     'The first retry waits backoff_base, each later one twice as long as the one before, '
                                     'up to backoff_max.');
    PERFORM minipaas._check_duration('backoff_max', backoff_max, true, minipaas.const_max_duration(),
                                     'The first retry waits backoff_base, each later one twice as long as the one before, '
                                     'up to backoff_max.');
    IF backoff_jitter < 0 OR backoff_jitter > 1 OR backoff_jitter = 'NaN' THEN
        RAISE EXCEPTION 'minipaas: backoff_jitter must be between 0 and 1, got %', backoff_jitter
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM minipaas._check_duration('retention', retention, true, minipaas.const_max_duration(),
                                     'retention is how long acked messages are kept (0: deleted at once).');
    IF dead_letter_queue <> '' THEN
        PERFORM minipaas._check_name('dead-letter queue', dead_letter_queue);
        IF dead_letter_queue = queue THEN
            RAISE EXCEPTION 'minipaas: queue % cannot be its own dead-letter queue', quote_literal(queue)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;

    INSERT INTO minipaas.queues AS t (name) VALUES (queue) ON CONFLICT (name) DO NOTHING;
    v_created := FOUND;
    BEGIN
        UPDATE minipaas.queues AS t SET
            visibility_timeout = coalesce(queue_create.visibility_timeout, t.visibility_timeout),
            max_attempts       = coalesce(queue_create.max_attempts, t.max_attempts),
            backoff_base       = coalesce(queue_create.backoff_base, t.backoff_base),
            backoff_max        = coalesce(queue_create.backoff_max, t.backoff_max),
            backoff_jitter     = coalesce(queue_create.backoff_jitter, t.backoff_jitter),
            dead_letter_queue  = CASE WHEN queue_create.dead_letter_queue IS NULL THEN t.dead_letter_queue
                                      ELSE nullif(queue_create.dead_letter_queue, '') END,
            retention          = coalesce(queue_create.retention, t.retention)
        WHERE t.name = queue;
    EXCEPTION WHEN check_violation THEN
        RAISE EXCEPTION 'minipaas: invalid options for queue %: backoff_max must not be below backoff_base',
            quote_literal(queue) USING ERRCODE = 'invalid_parameter_value';
    END;
    RETURN v_created;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_create(text, interval, integer, interval, interval, double precision, text, interval) IS
    'Creates a queue, or changes the options given (NULL leaves an option as it is). Defaults: visibility_timeout 30 s, '
    'max_attempts 5, backoff 1 s doubling up to 15 min with 20 % jitter, dead messages kept in the queue '
    '(dead_letter_queue names a queue to move them to; '''' clears it), retention 0 (acked messages are deleted). '
    'Returns true if the queue was created. Queues named for the first time by queue_enqueue get the defaults.';

CREATE OR REPLACE FUNCTION minipaas.queue_drop(queue text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_id integer;
BEGIN
    PERFORM minipaas._check_name('queue', queue);
    DELETE FROM minipaas.queues t WHERE t.name = queue_drop.queue RETURNING t.queue_id INTO v_id;
    IF NOT FOUND THEN
        IF if_exists THEN
            RETURN false;
        END IF;
        RAISE EXCEPTION 'minipaas: queue % does not exist', quote_literal(queue)
            USING ERRCODE = 'undefined_object';
    END IF;
    DELETE FROM minipaas.messages m WHERE m.queue_id = v_id;
    DELETE FROM minipaas.queue_wakeups w WHERE w.queue_id = v_id;
    RETURN true;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_drop(text, boolean) IS
    'Drops a queue and all its messages. An unknown queue is an error unless if_exists, then it returns false.';

CREATE OR REPLACE FUNCTION minipaas._check_enqueue_options(delay interval, priority integer, dedup_key text,
                                                           ordering_key text, run_at timestamptz)
RETURNS void
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    PERFORM minipaas._check_duration('delay', delay, true, minipaas.const_max_duration(),
                                     'Schedule a message at most 10 years ahead (delay or run_at).');
    IF run_at > pg_catalog.clock_timestamp() + minipaas.const_max_duration() THEN
        RAISE EXCEPTION 'minipaas: run_at must lie at most % ahead, got %', minipaas.const_max_duration(), run_at
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Schedule a message at most 10 years ahead (delay or run_at).';
    END IF;
    IF priority IS NULL OR priority NOT BETWEEN minipaas.const_priority_min() AND minipaas.const_priority_max() THEN
        RAISE EXCEPTION 'minipaas: priority must be between % and %, got %', minipaas.const_priority_min(),
                minipaas.const_priority_max(), priority
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM minipaas._check_key('dedup_key', dedup_key);
    PERFORM minipaas._check_key('ordering_key', ordering_key);
END
$fn$;

COMMENT ON FUNCTION minipaas._check_enqueue_options(interval, integer, text, text, timestamptz) IS
    'Internal: raises a clear error for a delay or run_at out of range, a priority outside smallint or a key that '
    'is too long.';

CREATE OR REPLACE FUNCTION minipaas.queue_enqueue(
    queue        text,
    payload      jsonb,
    delay        interval DEFAULT NULL,
    priority     integer DEFAULT 0,
    dedup_key    text DEFAULT NULL,
    ordering_key text DEFAULT NULL,
    run_at       timestamptz DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    q            minipaas.queues;
    v_queue_id   integer;
    v_idle_until timestamptz;
    v_now        timestamptz := pg_catalog.clock_timestamp();
    v_at         timestamptz;
    v_state      minipaas.message_state := 'ready';
    v_id         bigint;
BEGIN
    -- Enqueue is the hottest call: valid arguments cost one test (keys are checked where they are used), and the
    -- queue two columns, not a row variable. (PL/pgSQL prepares each expression's evaluation again in every
    -- transaction, at a cost that grows with the expression: keep this one short.)
    IF queue_enqueue.payload IS NULL OR queue_enqueue.priority IS NULL
       OR queue_enqueue.priority NOT BETWEEN minipaas.const_priority_min() AND minipaas.const_priority_max()
       OR queue_enqueue.delay NOT BETWEEN interval '0' AND minipaas.const_max_duration()
       OR queue_enqueue.run_at - minipaas.const_max_duration() > v_now THEN
        IF queue_enqueue.payload IS NULL THEN
            RAISE EXCEPTION 'minipaas: the payload must not be NULL (use ''null''::jsonb for a JSON null)'
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        PERFORM minipaas._check_enqueue_options(queue_enqueue.delay, queue_enqueue.priority, queue_enqueue.dedup_key,
                                                queue_enqueue.ordering_key, queue_enqueue.run_at);
    END IF;

    SELECT t.queue_id, t.consumers_idle_until INTO v_queue_id, v_idle_until
      FROM minipaas.queues t WHERE t.name = queue_enqueue.queue;
    IF NOT FOUND THEN
        q := minipaas._queue(queue_enqueue.queue, true);
        v_queue_id := q.queue_id;
        v_idle_until := q.consumers_idle_until;
    END IF;
    v_at := greatest(v_now + coalesce(queue_enqueue.delay, interval '0'), queue_enqueue.run_at);

    IF queue_enqueue.dedup_key IS NOT NULL THEN
        IF pg_catalog.octet_length(queue_enqueue.dedup_key) > minipaas.const_max_key_bytes() THEN
            PERFORM minipaas._check_key('dedup_key', queue_enqueue.dedup_key);
        END IF;
        SELECT m.id INTO v_id FROM minipaas.messages m
         WHERE m.queue_id = v_queue_id AND m.dedup_key = queue_enqueue.dedup_key
           AND m.state IN ('waiting', 'ready');
        IF FOUND THEN
            RETURN v_id;
        END IF;
    END IF;

    IF queue_enqueue.ordering_key IS NOT NULL THEN
        IF pg_catalog.octet_length(queue_enqueue.ordering_key) > minipaas.const_max_key_bytes() THEN
            PERFORM minipaas._check_key('ordering_key', queue_enqueue.ordering_key);
        END IF;
        IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'minipaas: enqueue with an ordering key needs READ COMMITTED, not %',
                    pg_catalog.current_setting('transaction_isolation')
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'A snapshot from the start of the transaction cannot see the ordering lane''s latest state.';
        END IF;
        PERFORM minipaas._lane_lock(v_queue_id, queue_enqueue.ordering_key);
        IF EXISTS (SELECT 1 FROM minipaas.messages m
                    WHERE m.queue_id = v_queue_id AND m.ordering_key = queue_enqueue.ordering_key
                      AND m.state IN ('waiting', 'ready')) THEN
            v_state := 'waiting';
        END IF;
    END IF;

    IF queue_enqueue.dedup_key IS NULL THEN
        INSERT INTO minipaas.messages (queue_id, state, priority, ready_at, enqueued_at, ordering_key, payload)
        VALUES (v_queue_id, v_state, queue_enqueue.priority, v_at, v_now, queue_enqueue.ordering_key,
                queue_enqueue.payload)
        RETURNING id INTO v_id;
    ELSE
        LOOP
            INSERT INTO minipaas.messages (queue_id, state, priority, ready_at, enqueued_at, dedup_key,
                                           ordering_key, payload)
            VALUES (v_queue_id, v_state, queue_enqueue.priority, v_at, v_now, queue_enqueue.dedup_key,
                    queue_enqueue.ordering_key, queue_enqueue.payload)
            ON CONFLICT (queue_id, dedup_key)
               WHERE dedup_key IS NOT NULL AND state IN ('waiting', 'ready')
               DO NOTHING
            RETURNING id INTO v_id;
            EXIT WHEN v_id IS NOT NULL;
            -- A concurrent enqueue with the same key committed first: return its id.
            SELECT m.id INTO v_id FROM minipaas.messages m
             WHERE m.queue_id = v_queue_id AND m.dedup_key = queue_enqueue.dedup_key
               AND m.state IN ('waiting', 'ready');
            IF FOUND THEN
                RETURN v_id;
            END IF;
        END LOOP;
    END IF;

    IF v_idle_until > v_now AND v_state = 'ready' THEN
        SELECT * INTO q FROM minipaas.queues t WHERE t.queue_id = v_queue_id;
        PERFORM minipaas._wake(q, v_at);
    END IF;
    RETURN v_id;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_enqueue(text, jsonb, interval, integer, text, text, timestamptz) IS
    'Enqueues a message (in the caller''s transaction) and returns its id. A queue named for the first time is '
    'created with default options. delay or run_at postpone delivery; a lower priority number is delivered first; '
    'a dedup_key that is live (message pending or in flight) returns the existing message''s id instead; messages '
    'with the same ordering_key are delivered one at a time, in id order (producers of one key serialise on a lock '
    'held until commit; READ COMMITTED only).';

CREATE OR REPLACE FUNCTION minipaas.queue_enqueue_batch(
    queue         text,
    payloads      jsonb[],
    delay         interval DEFAULT NULL,
    priority      integer DEFAULT 0,
    dedup_keys    text[] DEFAULT NULL,
    ordering_keys text[] DEFAULT NULL
) RETURNS SETOF bigint
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    q     minipaas.queues;
    v_n   integer := coalesce(pg_catalog.cardinality(payloads), 0);
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_at  timestamptz;
    i     integer;
BEGIN
    IF payloads IS NULL THEN
        RAISE EXCEPTION 'minipaas: payloads must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF v_n > minipaas.const_max_batch() THEN
        RAISE EXCEPTION 'minipaas: at most % messages per batch, got %', minipaas.const_max_batch(), v_n
            USING ERRCODE = 'program_limit_exceeded', HINT = 'Split the batch; each call is all-or-nothing.';
    END IF;
    IF pg_catalog.array_position(payloads, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'minipaas: payload % of the batch is NULL', pg_catalog.array_position(payloads, NULL)
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (dedup_keys IS NOT NULL AND pg_catalog.cardinality(dedup_keys) <> v_n)
       OR (ordering_keys IS NOT NULL AND pg_catalog.cardinality(ordering_keys) <> v_n) THEN
        RAISE EXCEPTION 'minipaas: dedup_keys and ordering_keys must have one entry per payload'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM minipaas._check_enqueue_options(queue_enqueue_batch.delay, queue_enqueue_batch.priority, NULL, NULL, NULL);
    q := minipaas._queue(queue, true);
    IF v_n = 0 THEN
        RETURN;
    END IF;

    IF EXISTS (SELECT 1 FROM unnest(ordering_keys) k WHERE k IS NOT NULL)
       OR EXISTS (SELECT 1 FROM unnest(dedup_keys) k WHERE k IS NOT NULL) THEN
        -- Keys need the per-message rules; take every lane lock first, in one order, to rule out deadlocks.
        PERFORM minipaas._lane_lock(q.queue_id, l.k)
           FROM (SELECT DISTINCT k FROM unnest(ordering_keys) k WHERE k IS NOT NULL) l
          ORDER BY pg_catalog.hashtext(q.queue_id::text || ':' || l.k), l.k;
        FOR i IN 1 .. v_n LOOP
            RETURN NEXT minipaas.queue_enqueue(queue, payloads[i], queue_enqueue_batch.delay,
                                               queue_enqueue_batch.priority, dedup_keys[i], ordering_keys[i]);
        END LOOP;
        RETURN;
    END IF;

    v_at := v_now + coalesce(queue_enqueue_batch.delay, interval '0');
    RETURN QUERY
    WITH ins AS (
        INSERT INTO minipaas.messages (queue_id, state, priority, ready_at, enqueued_at, payload)
        SELECT q.queue_id, 'ready', queue_enqueue_batch.priority, v_at, v_now, p.payload
          FROM unnest(payloads) WITH ORDINALITY AS p(payload, n)
         ORDER BY p.n
        RETURNING id
    )
    SELECT ins.id FROM ins ORDER BY ins.id;
    PERFORM minipaas._wake(q, v_at);
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_enqueue_batch(text, jsonb[], interval, integer, text[], text[]) IS
    'Enqueues up to 10000 messages in one call (all or nothing) and returns their ids in input order. '
    'dedup_keys and ordering_keys, if given, have one entry (or NULL) per payload.';

CREATE OR REPLACE FUNCTION minipaas._dequeue_hint_setting(queue_id integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    -- (The name changed with the hint's format: a session that still holds a hint written by an older version of
    -- queue_dequeue keeps it under the old name, where nothing reads it.)
    SELECT 'minipaas.dequeue_hint_q' || queue_id::text;
$fn$;

COMMENT ON FUNCTION minipaas._dequeue_hint_setting(integer) IS
    'Internal: the session setting that holds this session''s minipaas.dequeue_hint for a queue.';

CREATE OR REPLACE FUNCTION minipaas._epoch_us(at timestamptz)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $fn$
    SELECT (extract(epoch FROM at) * 1000000)::bigint;
$fn$;

COMMENT ON FUNCTION minipaas._epoch_us(timestamptz) IS
    'Internal: microseconds since the Unix epoch (the dequeue hint''s unit for times).';

CREATE OR REPLACE FUNCTION minipaas._from_epoch_us(us bigint)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
AS $fn$
    SELECT 'epoch'::timestamptz + us * interval '1 microsecond';
$fn$;

COMMENT ON FUNCTION minipaas._from_epoch_us(bigint) IS 'Internal: the inverse of _epoch_us.';

CREATE OR REPLACE FUNCTION minipaas.queue_dequeue(
    queue              text,
    batch_size         integer DEFAULT 1,
    visibility_timeout interval DEFAULT NULL
) RETURNS TABLE (
    id               bigint,
    payload          jsonb,
    lease_token      bigint,
    attempt          integer,
    lease_expires_at timestamptz,
    priority         smallint,
    enqueued_at      timestamptz,
    ordering_key     text,
    dedup_key        text
)
LANGUAGE plpgsql
-- Plan once per session. The lease statement's generic plan cannot see the batch size, so without the first
-- setting the planner would plan it again on every call (custom plans look cheaper). The others keep that plan on
-- the indexes whatever the table's statistics said when it was made (an empty table's plan would scan it), and
-- keep a large table's cost estimates from compiling every call with JIT. Each SET clause costs a little on every
-- call; one statement for every batch size, without a join, costs less than the two statements it replaced.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $fn$
#variable_conflict use_column
DECLARE
    q          minipaas.queues;
    v_now      timestamptz;
    v_until    timestamptz;
    v_setting  text;
    v_hint     minipaas.dequeue_hint;
    v_full     boolean := true;
    -- Where a full scan starts: before every message (a ready_at is always a clock reading).
    v_from_pri smallint := minipaas.const_priority_min();
    v_from_at  timestamptz := '1900-01-01 00:00:00+00';
    v_from_id  bigint := 0;
    v_rescan   timestamptz;
    v_probe    timestamptz;
    v_got      integer := 0;
    v_last_pri smallint;
    v_last_at  timestamptz;
    v_last_id  bigint;
    v_idle     boolean;
    v_set_idle boolean;
    v_dead     bigint[];
    r          record;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > minipaas.const_max_batch() THEN
        RAISE EXCEPTION 'minipaas: batch_size must be between 1 and %, got %', minipaas.const_max_batch(),
                coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF queue_dequeue.visibility_timeout <= interval '0'
       OR queue_dequeue.visibility_timeout > minipaas.const_max_lease() THEN
        PERFORM minipaas._check_lease(queue_dequeue.visibility_timeout);
    END IF;
    SELECT * INTO q FROM minipaas.queues t WHERE t.name = queue_dequeue.queue;
    IF NOT FOUND THEN
        -- Workers may start before the first enqueue creates the queue: nothing to deliver yet.
        PERFORM minipaas._check_name('queue', queue_dequeue.queue);
        RETURN;
    END IF;
    v_now := pg_catalog.clock_timestamp();
    v_until := v_now + coalesce(queue_dequeue.visibility_timeout, q.visibility_timeout);

    -- Consumed messages leave dead entries at the head of the ready index until VACUUM removes them (never,
    -- while a long transaction holds back the xmin horizon). So each session remembers, per queue, where its
    -- last dequeue stopped, (priority, ready_at, id), and the next scan descends straight past it. A
    -- message can end up behind that position (a producer committing late, a dequeue rolled back, a lease that
    -- expired): a full scan from the start finds it, at the latest at the session's rescan time, which moves out
    -- when full scans are slow. A message more urgent than the position is looked for every 100 ms (usually an
    -- empty index range). The hint is a minipaas.dequeue_hint kept in a session setting: no shared write, nothing
    -- to bloat. A rescan time further out than the longest interval queue_dequeue sets (60 s) was not set by it:
    -- the scan starts from the beginning.
    v_setting := minipaas._dequeue_hint_setting(q.queue_id);
    v_hint := nullif(pg_catalog.current_setting(v_setting, true), '')::minipaas.dequeue_hint;
    v_rescan := minipaas._from_epoch_us(v_hint.rescan_at);
    IF v_now < v_rescan AND v_rescan <= v_now + interval '60 seconds' THEN
        v_full := false;
        v_from_pri := v_hint.after_priority;
        v_from_at := minipaas._from_epoch_us(v_hint.after_ready_at);
        v_from_id := v_hint.after_id;
        v_probe := minipaas._from_epoch_us(v_hint.probe_at);
        IF v_now >= v_probe THEN
            v_probe := v_now + interval '100 milliseconds';
            -- Not EXISTS: the planner drops an EXISTS's ORDER BY and LIMIT, and then its generic plan (a
            -- priority below "some value" looks common) scans the whole table for a row that is not there.
            v_full := (SELECT true FROM minipaas.messages m
                        WHERE m.queue_id = q.queue_id AND m.state = 'ready'
                          AND m.priority < v_from_pri AND m.ready_at <= v_now
                          AND (m.lease_until IS NULL OR m.lease_until <= v_now)
                        ORDER BY m.priority, m.ready_at, m.id
                        LIMIT 1) IS NOT NULL;
        END IF;
        IF v_full THEN
            v_from_pri := minipaas.const_priority_min();
            v_from_at := '1900-01-01 00:00:00+00';
            v_from_id := 0;
        END IF;
    END IF;

    -- The lease: one statement for any batch size. The subquery locks the rows it picks, so their ctids cannot
    -- change before the UPDATE reads them. Every picked message is leased, one attempt more; a lease that ran out
    -- (lease_until set: column references on the right are the old values) counts as a failed attempt in the
    -- message's errors. A message leased beyond max_attempts has used up its deliveries: it dies below, unseen.
    FOR r IN
        WITH leased AS (
            UPDATE minipaas.messages m
               SET attempts    = m.attempts + 1,
                   -- Random, below 2^53: a token survives a round trip through a JSON number.
                   lease_token = (pg_catalog.random() * 9007199254740991::double precision)::bigint,
                   lease_until = v_until,
                   leased_at   = v_now,
                   errors      = CASE WHEN m.lease_until IS NULL THEN m.errors
                                      ELSE coalesce(m.errors, '[]'::jsonb) || pg_catalog.jsonb_build_array(
                                               pg_catalog.jsonb_build_object('attempt', m.attempts, 'at', v_now,
                                                                             'error', 'lease expired')) END
             WHERE m.ctid = ANY (ARRAY(
                       SELECT s.ctid FROM minipaas.messages s
                        WHERE s.queue_id = q.queue_id
                          AND s.state = 'ready'
                          AND (s.priority, s.ready_at, s.id) > (v_from_pri, v_from_at, v_from_id)
                          AND s.ready_at <= v_now
                          AND (s.lease_until IS NULL OR s.lease_until <= v_now)
                        ORDER BY s.priority, s.ready_at, s.id
                        LIMIT batch_size
                          FOR UPDATE SKIP LOCKED))
            RETURNING m.id, m.payload, m.lease_token, m.attempts, m.lease_until, m.priority, m.enqueued_at,
                      m.ordering_key, m.dedup_key, m.ready_at
        )
        -- A TID scan returns rows in physical order: put them back in delivery order.
        SELECT * FROM leased ORDER BY leased.priority, leased.ready_at, leased.id
    LOOP
        v_last_pri := r.priority;
        v_last_at := r.ready_at;
        v_last_id := r.id;
        IF r.attempts > q.max_attempts THEN
            v_dead := v_dead || r.id;
        ELSE
            v_got := v_got + 1;
            id := r.id;
            payload := r.payload;
            lease_token := r.lease_token;
            attempt := r.attempts;
            lease_expires_at := r.lease_until;
            priority := r.priority;
            enqueued_at := r.enqueued_at;
            ordering_key := r.ordering_key;
            dedup_key := r.dedup_key;
            RETURN NEXT;
        END IF;
    END LOOP;

    IF v_dead IS NOT NULL THEN
        -- Rare: the lease above is taken back. attempts counts the deliveries made.
        UPDATE minipaas.messages m
           SET state = 'dead', attempts = m.attempts - 1, lease_token = NULL, lease_until = NULL, finished_at = v_now
         WHERE m.id = ANY (v_dead);
        PERFORM minipaas._after_dead(q.queue_id, v_dead);
    END IF;

    IF v_full THEN
        -- Full scans may take at most 1% of a session's time: under a long transaction every consumed message
        -- stays in the index, a full scan walks them all, and at 10% (ten times the scan's length) the
        -- sustained benchmark lost a quarter of its throughput in three minutes; at 1% it lost none.
        v_rescan := v_now + least(greatest((pg_catalog.clock_timestamp() - v_now) * 100, interval '1 second'),
                                  interval '60 seconds');
        v_probe := v_now + interval '100 milliseconds';
    END IF;
    -- (An assignment, not PERFORM, is evaluated without starting the executor.)
    IF v_full OR v_got > 0 OR v_dead IS NOT NULL THEN
        v_setting := pg_catalog.set_config(v_setting,
            ROW(minipaas._epoch_us(v_rescan), minipaas._epoch_us(v_probe), coalesce(v_last_pri, v_from_pri),
                minipaas._epoch_us(coalesce(v_last_at, v_from_at)),
                coalesce(v_last_id, v_from_id))::minipaas.dequeue_hint::text,
            false);
    END IF;

    -- consumers_idle_until is the only shared write, when it flips or has less than 15 s left; never wait.
    v_idle := v_got < batch_size;
    v_set_idle := CASE WHEN v_idle THEN q.consumers_idle_until IS NULL
                                        OR q.consumers_idle_until < v_now + interval '15 seconds'
                       ELSE q.consumers_idle_until IS NOT NULL END;
    IF v_set_idle THEN
        UPDATE minipaas.queues t
           SET consumers_idle_until = CASE WHEN v_idle THEN v_now + interval '30 seconds' END
         WHERE t.queue_id = (SELECT s.queue_id FROM minipaas.queues s
                              WHERE s.queue_id = q.queue_id FOR NO KEY UPDATE SKIP LOCKED);
    END IF;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_dequeue(text, integer, interval) IS
    'Leases up to batch_size (1..10000) ready messages, lower priority number first, then by the time they became '
    'ready; each row carries a lease_token that queue_ack/queue_nack/queue_extend require. A lease lasts the '
    'queue''s visibility_timeout unless given (at most 12 hours); a message whose lease expired is delivered again '
    'by a later dequeue (within about a second: each session rescans its queue from the start at least that often), '
    'or dead-lettered once max_attempts deliveries are used up. An unknown queue returns no rows.';

CREATE OR REPLACE FUNCTION minipaas.queue_ack(id bigint, lease_token bigint)
RETURNS boolean
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    v_queue_id integer;
    v_lane     text;
BEGIN
    DELETE FROM minipaas.messages m
     USING minipaas.queues q
     WHERE m.id = queue_ack.id AND m.lease_token = queue_ack.lease_token AND m.state = 'ready'
       AND q.queue_id = m.queue_id AND q.retention = interval '0'
    RETURNING m.queue_id, m.ordering_key INTO v_queue_id, v_lane;
    IF NOT FOUND THEN
        UPDATE minipaas.messages m
           SET state = 'done', finished_at = pg_catalog.clock_timestamp(), lease_token = NULL, lease_until = NULL
         WHERE m.id = queue_ack.id AND m.lease_token = queue_ack.lease_token AND m.state = 'ready'
        RETURNING m.queue_id, m.ordering_key INTO v_queue_id, v_lane;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    END IF;
    IF v_lane IS NOT NULL THEN
        PERFORM minipaas._lane_promote(v_queue_id, v_lane);
    END IF;
    RETURN true;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_ack(bigint, bigint) IS
    'Acknowledges a delivery: true if lease_token is the message''s current lease (even if it has expired, as long '
    'as no other dequeue took the message since); false otherwise, e.g. for a stale worker. The message is deleted, '
    'or kept as done for the queue''s retention. Call it in the transaction that does the work for exactly-once effects.';

CREATE OR REPLACE FUNCTION minipaas.queue_ack(id bigint)
RETURNS boolean
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_token bigint;
BEGIN
    SELECT m.lease_token INTO v_token
      FROM minipaas.messages m
     WHERE m.id = queue_ack.id AND m.state = 'ready' AND m.lease_until > pg_catalog.clock_timestamp();
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN minipaas.queue_ack(queue_ack.id, v_token);
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_ack(bigint) IS
    'Acknowledges message id if it is leased and its lease has not expired; returns false otherwise (after expiry '
    'the message will be delivered again). This form cannot tell deliveries apart: a worker whose lease expired and '
    'was re-leased to another worker would ack that worker''s delivery. Workers should use queue_ack(id, lease_token).';

CREATE OR REPLACE FUNCTION minipaas.queue_ack_batch(ids bigint[], lease_tokens bigint[])
RETURNS SETOF bigint
LANGUAGE plpgsql
-- Generic plans cannot see the batch size: keep them on indexes (see queue_dequeue).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
SET enable_mergejoin = off
SET enable_hashjoin = off
AS $fn$
#variable_conflict use_column
DECLARE
    v_lanes text[];
    v_qids  integer[];
    v_n     integer := 0;
    r       record;
BEGIN
    IF ids IS NULL OR lease_tokens IS NULL OR pg_catalog.cardinality(ids) <> pg_catalog.cardinality(lease_tokens) THEN
        RAISE EXCEPTION 'minipaas: ids and lease_tokens must be arrays of the same length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.cardinality(ids) > minipaas.const_max_batch() THEN
        RAISE EXCEPTION 'minipaas: at most % acks per batch, got %', minipaas.const_max_batch(), pg_catalog.cardinality(ids)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    -- Messages of queues without retention are deleted; the rest (rare) are kept as done.
    FOR r IN
        DELETE FROM minipaas.messages m
         USING unnest(ids, lease_tokens) AS t(id, token)
         WHERE m.id = t.id AND m.lease_token = t.token AND m.state = 'ready'
           AND NOT EXISTS (SELECT 1 FROM minipaas.queues q
                            WHERE q.queue_id = m.queue_id AND q.retention > interval '0')
        RETURNING m.id, m.queue_id, m.ordering_key
    LOOP
        v_n := v_n + 1;
        IF r.ordering_key IS NOT NULL THEN
            v_lanes := v_lanes || r.ordering_key;
            v_qids := v_qids || r.queue_id;
        END IF;
        RETURN NEXT r.id;
    END LOOP;
    IF v_n < pg_catalog.cardinality(ids) AND EXISTS (SELECT 1 FROM minipaas.queues q WHERE q.retention > interval '0') THEN
        FOR r IN
            UPDATE minipaas.messages m
               SET state = 'done', finished_at = pg_catalog.clock_timestamp(), lease_token = NULL,
                   lease_until = NULL
              FROM unnest(ids, lease_tokens) AS t(id, token)
             WHERE m.id = t.id AND m.lease_token = t.token AND m.state = 'ready'
            RETURNING m.id, m.queue_id, m.ordering_key
        LOOP
            IF r.ordering_key IS NOT NULL THEN
                v_lanes := v_lanes || r.ordering_key;
                v_qids := v_qids || r.queue_id;
            END IF;
            RETURN NEXT r.id;
        END LOOP;
    END IF;
    IF v_lanes IS NOT NULL THEN
        PERFORM minipaas._promote_lanes(v_lanes, v_qids);
    END IF;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_ack_batch(bigint[], bigint[]) IS
    'queue_ack(id, lease_token) for up to 10000 deliveries at once; returns the ids that were acked.';

CREATE OR REPLACE FUNCTION minipaas.queue_ack_dequeue(
    queue              text,
    ack_ids            bigint[],
    ack_lease_tokens   bigint[],
    batch_size         integer DEFAULT 1,
    visibility_timeout interval DEFAULT NULL
) RETURNS TABLE (
    id               bigint,
    payload          jsonb,
    lease_token      bigint,
    attempt          integer,
    lease_expires_at timestamptz,
    priority         smallint,
    enqueued_at      timestamptz,
    ordering_key     text,
    dedup_key        text
)
LANGUAGE plpgsql
AS $fn$
BEGIN
    -- A worker's loop in one round trip and one commit: the finished deliveries are acked and the next ones
    -- leased together, so a message costs one durable commit instead of two. One ack (the usual loop) takes
    -- the single-message path, which is cheaper than the batch's.
    IF pg_catalog.cardinality(ack_ids) = 1 AND pg_catalog.cardinality(ack_lease_tokens) = 1 THEN
        PERFORM minipaas.queue_ack(ack_ids[1], ack_lease_tokens[1]);
    ELSIF pg_catalog.cardinality(ack_ids) > 0 OR pg_catalog.cardinality(ack_lease_tokens) > 0 THEN
        PERFORM minipaas.queue_ack_batch(ack_ids, ack_lease_tokens);
    END IF;
    RETURN QUERY SELECT * FROM minipaas.queue_dequeue(queue, batch_size, visibility_timeout);
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_ack_dequeue(text, bigint[], bigint[], integer, interval) IS
    'queue_ack_batch(ack_ids, ack_lease_tokens) and then queue_dequeue(queue, batch_size, visibility_timeout) in '
    'one call: a worker acks what it finished and leases its next messages in one round trip and one commit.';

CREATE OR REPLACE FUNCTION minipaas.queue_nack(
    id          bigint,
    lease_token bigint,
    error       text DEFAULT NULL,
    delay       interval DEFAULT NULL,
    retry       boolean DEFAULT true
) RETURNS TABLE (outcome text, retry_at timestamptz)
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    m     minipaas.messages;
    q     minipaas.queues;
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_err jsonb;
BEGIN
    PERFORM minipaas._check_duration('delay', queue_nack.delay, true, minipaas.const_max_duration(),
                                     'Retry a message at most 10 years later (or nack with retry => false).');
    SELECT * INTO m FROM minipaas.messages t
     WHERE t.id = queue_nack.id AND t.lease_token = queue_nack.lease_token AND t.state = 'ready'
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO q FROM minipaas.queues t WHERE t.queue_id = m.queue_id;
    v_err := pg_catalog.jsonb_build_object(
        'attempt', m.attempts, 'at', v_now,
        'error', coalesce(pg_catalog.left(queue_nack.error, 4000), 'nack'));
    IF NOT coalesce(queue_nack.retry, true) OR m.attempts >= q.max_attempts THEN
        UPDATE minipaas.messages t
           SET state = 'dead', finished_at = v_now, lease_token = NULL, lease_until = NULL,
               errors = coalesce(t.errors, '[]'::jsonb) || pg_catalog.jsonb_build_array(v_err)
         WHERE t.id = m.id;
        PERFORM minipaas._after_dead(m.queue_id, ARRAY[m.id]);
        outcome := 'dead';
        retry_at := NULL;
    ELSE
        retry_at := v_now + coalesce(queue_nack.delay, minipaas._backoff(q, m.attempts));
        UPDATE minipaas.messages t
           SET ready_at = retry_at, lease_token = NULL, lease_until = NULL,
               errors = coalesce(t.errors, '[]'::jsonb) || pg_catalog.jsonb_build_array(v_err)
         WHERE t.id = m.id;
        PERFORM minipaas._wake(q, retry_at);
        outcome := 'retry';
    END IF;
    RETURN NEXT;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_nack(bigint, bigint, text, interval, boolean) IS
    'Gives a delivery back with an error: retried after delay (default: the queue''s exponential backoff), or '
    'dead-lettered if its attempts are used up or retry is false. Returns (outcome ''retry''|''dead'', retry_at); '
    'no row if lease_token is not the current lease. Errors are kept in the message''s history.';

CREATE OR REPLACE FUNCTION minipaas.queue_extend(
    id                 bigint,
    lease_token        bigint,
    visibility_timeout interval DEFAULT NULL
) RETURNS timestamptz
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    v_until timestamptz;
BEGIN
    PERFORM minipaas._check_lease(queue_extend.visibility_timeout);
    -- Never wait for the row: the transaction holding it is usually the worker's own handler, acking the message
    -- in its transaction, and a worker that waits for its own handler while the handler waits for the worker
    -- (one client connection, requests in order) deadlocks. A busy row keeps its lease; the next extension retries.
    UPDATE minipaas.messages m
       SET lease_until = pg_catalog.clock_timestamp() + coalesce(queue_extend.visibility_timeout, q.visibility_timeout)
      FROM minipaas.queues q
     WHERE m.id = (SELECT s.id FROM minipaas.messages s
                    WHERE s.id = queue_extend.id AND s.lease_token = queue_extend.lease_token AND s.state = 'ready'
                      FOR NO KEY UPDATE SKIP LOCKED)
       AND m.lease_token = queue_extend.lease_token AND m.state = 'ready'
       AND q.queue_id = m.queue_id
    RETURNING m.lease_until INTO v_until;
    IF v_until IS NULL THEN
        SELECT m.lease_until INTO v_until FROM minipaas.messages m
         WHERE m.id = queue_extend.id AND m.lease_token = queue_extend.lease_token AND m.state = 'ready';
    END IF;
    RETURN v_until;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_extend(bigint, bigint, interval) IS
    'Extends a lease to now + visibility_timeout (default: the queue''s) and returns the new expiry; NULL if '
    'lease_token is not the current lease (the worker should stop: the message may be delivered to someone else). '
    'Never waits: while another transaction holds the message (an ack in progress), the lease stays as it is and '
    'its current expiry is returned.';

CREATE OR REPLACE FUNCTION minipaas.queue_release(id bigint, lease_token bigint)
RETURNS boolean
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    m minipaas.messages;
    q minipaas.queues;
BEGIN
    UPDATE minipaas.messages t
       SET ready_at = pg_catalog.clock_timestamp(), lease_token = NULL, lease_until = NULL,
           attempts = greatest(t.attempts - 1, 0)
     WHERE t.id = queue_release.id AND t.lease_token = queue_release.lease_token AND t.state = 'ready'
    RETURNING * INTO m;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    SELECT * INTO q FROM minipaas.queues t WHERE t.queue_id = m.queue_id;
    PERFORM minipaas._wake(q, m.ready_at);
    RETURN true;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_release(bigint, bigint) IS
    'Gives a delivery back unprocessed (e.g. at shutdown): ready again at once, and the attempt is not counted.';

CREATE OR REPLACE FUNCTION minipaas.queue_dead_letters(queue text, max_rows integer DEFAULT 100)
RETURNS TABLE (
    id           bigint,
    payload      jsonb,
    attempts     integer,
    errors       jsonb,
    dead_at      timestamptz,
    enqueued_at  timestamptz,
    dedup_key    text,
    ordering_key text
)
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_column
DECLARE
    q minipaas.queues;
BEGIN
    q := minipaas._queue(queue, false);
    RETURN QUERY
    SELECT m.id, m.payload, m.attempts, m.errors, m.finished_at, m.enqueued_at, m.dedup_key, m.ordering_key
      FROM minipaas.messages m
     WHERE m.queue_id = q.queue_id AND m.state = 'dead'
     ORDER BY m.id
     LIMIT greatest(max_rows, 0);
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_dead_letters(text, integer) IS
    'The dead messages kept in a queue, oldest first, with their error history.';

CREATE OR REPLACE FUNCTION minipaas.queue_redrive(queue text, ids bigint[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    q       minipaas.queues;
    v_count bigint := 0;
    v_n     bigint;
    v_now   timestamptz := pg_catalog.clock_timestamp();
    r       record;
BEGIN
    q := minipaas._queue(queue, false);
    -- A message whose dedup key has since been enqueued again stays dead: redriving it would duplicate work.
    UPDATE minipaas.messages m
       SET state = 'ready', attempts = 0, ready_at = v_now, finished_at = NULL, lease_token = NULL,
           lease_until = NULL
     WHERE m.queue_id = q.queue_id AND m.state = 'dead' AND m.ordering_key IS NULL
       AND (ids IS NULL OR m.id = ANY (ids))
       AND (m.dedup_key IS NULL OR NOT EXISTS (
               SELECT 1 FROM minipaas.messages d
                WHERE d.queue_id = m.queue_id AND d.dedup_key = m.dedup_key
                  AND d.state IN ('waiting', 'ready')));
    GET DIAGNOSTICS v_count = ROW_COUNT;

    FOR r IN
        SELECT DISTINCT m.ordering_key AS lane,
               pg_catalog.hashtext(q.queue_id::text || ':' || m.ordering_key) AS lock_key
          FROM minipaas.messages m
         WHERE m.queue_id = q.queue_id AND m.state = 'dead' AND m.ordering_key IS NOT NULL
           AND (ids IS NULL OR m.id = ANY (ids))
         ORDER BY lock_key, lane
    LOOP
        PERFORM minipaas._lane_lock(q.queue_id, r.lane);
        -- Dead messages rejoin their lane as waiting, in id order, behind nothing older than themselves.
        UPDATE minipaas.messages m
           SET state = 'waiting', attempts = 0, ready_at = v_now, finished_at = NULL, lease_token = NULL,
               lease_until = NULL
         WHERE m.queue_id = q.queue_id AND m.state = 'dead' AND m.ordering_key = r.lane
           AND (ids IS NULL OR m.id = ANY (ids))
           AND (m.dedup_key IS NULL OR NOT EXISTS (
                   SELECT 1 FROM minipaas.messages d
                    WHERE d.queue_id = m.queue_id AND d.dedup_key = m.dedup_key
                      AND d.state IN ('waiting', 'ready')));
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_count := v_count + v_n;
        PERFORM minipaas._lane_promote(q.queue_id, r.lane);
    END LOOP;

    IF v_count > 0 THEN
        PERFORM minipaas._wake(q, v_now);
    END IF;
    RETURN v_count;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_redrive(text, bigint[]) IS
    'Makes dead messages of a queue (all, or those in ids) deliverable again with a fresh attempt budget; their '
    'error history is kept. Returns how many were redriven.';

CREATE OR REPLACE FUNCTION minipaas.queue_delete_dead(queue text, ids bigint[])
RETURNS bigint
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    q       minipaas.queues;
    v_count bigint;
BEGIN
    q := minipaas._queue(queue, false);
    IF ids IS NULL THEN
        RAISE EXCEPTION 'minipaas.queue_delete_dead: ids must not be NULL'
            USING ERRCODE = '22004',
                  HINT = 'Name the dead messages to delete; queue_purge(queue) deletes every message of a queue.';
    END IF;
    -- Only dead messages: a ready or leased one belongs to the workers (a dead one is in no ordering lane any
    -- more, so deleting it unblocks nothing and blocks nothing).
    DELETE FROM minipaas.messages m
     WHERE m.queue_id = q.queue_id AND m.state = 'dead' AND m.id = ANY (ids);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_delete_dead(text, bigint[]) IS
    'Deletes the dead messages of a queue whose ids are given (messages in any other state are left alone); '
    'returns how many were deleted.';

CREATE OR REPLACE FUNCTION minipaas.queue_purge(queue text)
RETURNS bigint
LANGUAGE plpgsql
AS $fn$
DECLARE
    q       minipaas.queues;
    v_count bigint;
BEGIN
    q := minipaas._queue(queue, false);
    DELETE FROM minipaas.messages m WHERE m.queue_id = q.queue_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_purge(text) IS
    'Deletes every message of a queue, in any state (leases held by workers then fail to ack); returns the count.';

CREATE OR REPLACE FUNCTION minipaas.queue_stats(queue text DEFAULT NULL)
RETURNS TABLE (
    queue_name       text,
    ready            bigint,
    scheduled        bigint,
    waiting          bigint,
    in_flight        bigint,
    expired          bigint,
    dead             bigint,
    done             bigint,
    oldest_ready_at  timestamptz,
    next_visible_at  timestamptz
)
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_column
DECLARE
    q     minipaas.queues;
    v_now timestamptz := pg_catalog.clock_timestamp();
BEGIN
    IF queue_stats.queue IS NOT NULL THEN
        PERFORM minipaas._queue(queue_stats.queue, false);
    END IF;
    -- Each figure reads only the partial index of its states (ready, lanes, dead, done) — never the
    -- table — so in-flight, dead and lane counts cost what those sets hold, not the queue's history.
    FOR q IN SELECT * FROM minipaas.queues t
              WHERE queue_stats.queue IS NULL OR t.name = queue_stats.queue
              ORDER BY t.name
    LOOP
        queue_name := q.name;
        SELECT count(*) FILTER (WHERE m.lease_until IS NULL AND m.ready_at <= v_now),
               count(*) FILTER (WHERE m.lease_until IS NULL AND m.ready_at > v_now),
               count(*) FILTER (WHERE m.lease_until > v_now),
               count(*) FILTER (WHERE m.lease_until <= v_now),
               min(m.enqueued_at) FILTER (WHERE m.lease_until IS NULL AND m.ready_at <= v_now),
               min(coalesce(m.lease_until, m.ready_at)) FILTER (WHERE coalesce(m.lease_until, m.ready_at) > v_now)
          INTO ready, scheduled, in_flight, expired, oldest_ready_at, next_visible_at
          FROM minipaas.messages m
         WHERE m.queue_id = q.queue_id AND m.state = 'ready';
        SELECT count(*) INTO waiting FROM minipaas.messages m
         WHERE m.queue_id = q.queue_id AND m.ordering_key IS NOT NULL AND m.state = 'waiting';
        SELECT count(*) INTO dead FROM minipaas.messages m WHERE m.queue_id = q.queue_id AND m.state = 'dead';
        SELECT count(*) INTO done FROM minipaas.messages m WHERE m.queue_id = q.queue_id AND m.state = 'done';
        RETURN NEXT;
    END LOOP;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_stats(text) IS
    'Per queue (all queues if NULL): ready (deliverable now), scheduled (delayed or backing off), waiting (behind '
    'an ordering key), in_flight (leased), expired (lease ran out, to be redelivered), dead, done (retained), the '
    'enqueue time of the oldest ready message and when the next scheduled message or lease comes due.';

CREATE OR REPLACE FUNCTION minipaas.queue_maintain()
RETURNS TABLE (task text, affected bigint)
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    q    minipaas.queues;
    r    record;
    v_n  bigint;
    v_purged bigint := 0;
    v_lanes  bigint := 0;
BEGIN
    FOR q IN SELECT * FROM minipaas.queues ORDER BY queue_id LOOP
        IF q.retention > interval '0' THEN
            DELETE FROM minipaas.messages m
             WHERE m.queue_id = q.queue_id AND m.state = 'done'
               AND m.finished_at < pg_catalog.clock_timestamp() - q.retention;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_purged := v_purged + v_n;
        END IF;
        -- Safety net for lanes left with only waiting messages (an ack under REPEATABLE READ cannot see a
        -- waiting message that committed after its snapshot).
        FOR r IN
            SELECT DISTINCT m.ordering_key AS lane FROM minipaas.messages m
             WHERE m.queue_id = q.queue_id AND m.ordering_key IS NOT NULL AND m.state = 'waiting'
               AND NOT EXISTS (SELECT 1 FROM minipaas.messages h
                                WHERE h.queue_id = m.queue_id AND h.ordering_key = m.ordering_key
                                  AND h.state = 'ready')
        LOOP
            PERFORM minipaas._lane_promote(q.queue_id, r.lane);
            v_lanes := v_lanes + 1;
        END LOOP;
    END LOOP;
    task := 'done messages purged'; affected := v_purged; RETURN NEXT;
    task := 'ordering lanes repaired'; affected := v_lanes; RETURN NEXT;
END
$fn$;

COMMENT ON FUNCTION minipaas.queue_maintain() IS
    'Deletes done messages older than their queue''s retention and unblocks ordering lanes that only have waiting '
    'messages. Run it now and then (the Rust Worker does); minipaas.maintain() runs it with the stream trims.';
