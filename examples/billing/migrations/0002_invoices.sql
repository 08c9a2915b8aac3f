-- migrate:up
CREATE TABLE invoice (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customer (id),
    amount       numeric(12, 2) NOT NULL CHECK (amount >= 0),
    issued_at    timestamptz NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE invoice;
