CREATE TYPE money2 AS (amount numeric, currency char(3));
CREATE TABLE price (id int PRIMARY KEY, p money2);
