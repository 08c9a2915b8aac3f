-- Assertion helpers shared by the MiniPaaS SQL tests (helpers: neither *_test nor *_before).

CREATE OR REPLACE FUNCTION minipaas.t_assert(ok boolean, what text)
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'assertion failed: %', what;
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.t_eq(actual anyelement, expected anyelement, what text)
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF actual IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'assertion failed: %: expected %, got %', what, coalesce(expected::text, 'NULL'),
            coalesce(actual::text, 'NULL');
    END IF;
END
$fn$;

-- Runs sql and checks that it fails with the given SQLSTATE (and, if given, a message containing fragment).
CREATE OR REPLACE FUNCTION minipaas.t_raises(sql text, sqlstate text, fragment text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_state text;
    v_message text;
BEGIN
    BEGIN
        EXECUTE sql;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
    END;
    IF v_state IS NULL THEN
        RAISE EXCEPTION 'assertion failed: % should fail with SQLSTATE %, but succeeded', sql, sqlstate;
    END IF;
    IF v_state <> sqlstate THEN
        RAISE EXCEPTION 'assertion failed: % should fail with SQLSTATE %, got % (%)', sql, sqlstate, v_state, v_message;
    END IF;
    IF fragment IS NOT NULL AND strpos(v_message, fragment) = 0 THEN
        RAISE EXCEPTION 'assertion failed: the error of % should mention "%", got: %', sql, fragment, v_message;
    END IF;
END
$fn$;

-- Leased message by id: (lease_token) for tests that need the token of a delivery they did not keep.
CREATE OR REPLACE FUNCTION minipaas.t_token(message_id bigint)
RETURNS bigint
LANGUAGE sql
AS $fn$
    SELECT m.lease_token FROM minipaas.messages m WHERE m.id = message_id;
$fn$;

-- This session's dequeue hint for a queue (NULL if it has none).
CREATE OR REPLACE FUNCTION minipaas.t_hint(queue text)
RETURNS minipaas.dequeue_hint
LANGUAGE sql
AS $fn$
    SELECT nullif(current_setting(minipaas._dequeue_hint_setting(q.queue_id), true), '')::minipaas.dequeue_hint
      FROM minipaas.queues q WHERE q.name = queue;
$fn$;

-- Replaces this session's dequeue hint for a queue.
CREATE OR REPLACE FUNCTION minipaas.t_set_hint(queue text, hint minipaas.dequeue_hint)
RETURNS void
LANGUAGE sql
AS $fn$
    SELECT set_config(minipaas._dequeue_hint_setting(q.queue_id), hint::text, false)
      FROM minipaas.queues q WHERE q.name = queue;
$fn$;

-- Forgets this session's dequeue hints, so that the next dequeue scans each queue from the start.
CREATE OR REPLACE FUNCTION minipaas.t_forget_hints()
RETURNS void
LANGUAGE sql
AS $fn$
    -- (Custom settings do not show in pg_settings: name them from the queues.)
    SELECT count(set_config(minipaas._dequeue_hint_setting(q.queue_id), '', false)) FROM minipaas.queues q;
$fn$;

-- Makes a message's current lease, or its delay, run out now, as if its time had passed. Time passing also
-- brings each session's next full rescan (a leased message keeps its place in the dequeue index, which may lie
-- behind the session's hint): forget the hints.
CREATE OR REPLACE FUNCTION minipaas.t_expire(message_id bigint)
RETURNS void
LANGUAGE sql
AS $fn$
    UPDATE minipaas.messages
       SET lease_until = CASE WHEN lease_until IS NOT NULL THEN clock_timestamp() END,
           ready_at = CASE WHEN lease_until IS NULL THEN least(ready_at, clock_timestamp()) ELSE ready_at END
     WHERE id = message_id;
    SELECT minipaas.t_forget_hints();
$fn$;

