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

-- Makes a message's current lease (or delay) run out now, as if its time had passed. (Not earlier: a session's
-- dequeue hint may already lie past older positions.)
CREATE OR REPLACE FUNCTION minipaas.t_expire(message_id bigint)
RETURNS void
LANGUAGE sql
AS $fn$
    UPDATE minipaas.messages SET visible_at = clock_timestamp() WHERE id = message_id;
$fn$;

-- Forgets this session's dequeue hints, so that the next dequeue scans each queue from the start.
CREATE OR REPLACE FUNCTION minipaas.t_forget_hints()
RETURNS void
LANGUAGE sql
AS $fn$
    SELECT count(set_config(s.name, '', false)) FROM pg_settings s WHERE s.name LIKE 'minipaas.dequeue_hint_%';
$fn$;
