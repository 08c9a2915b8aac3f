CREATE TYPE addr AS (street text, city text);
