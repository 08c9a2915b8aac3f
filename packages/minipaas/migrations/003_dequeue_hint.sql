-- migrate:up
-- Where a session's last dequeue of a queue stopped, and when it scans the queue from the start again (see
-- minipaas.queue_dequeue). Each session keeps one per queue, as this type's text in a session setting: no shared
-- write, nothing to bloat. Times are microseconds since the Unix epoch, so that the text reads back the same
-- whatever DateStyle or TimeZone the session has switched to in between.
CREATE TYPE minipaas.dequeue_hint AS (
    rescan_at       bigint,    -- from then on the next dequeue scans from the start
    probe_at        bigint,    -- from then on the next dequeue looks for messages more urgent than the position
    after_priority  smallint,  -- the position: priority, ready_at and id of the last message leased
    after_ready_at  bigint,
    after_id        bigint
);

-- migrate:down
DROP TYPE minipaas.dequeue_hint;
