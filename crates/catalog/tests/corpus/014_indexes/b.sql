CREATE TABLE t (id int PRIMARY KEY, a int, b text, c jsonb);
CREATE UNIQUE INDEX t_b_lower ON t (lower(b)) WHERE a > 0;
CREATE INDEX t_a_incl ON t (a) INCLUDE (b);
CREATE INDEX t_c_gin ON t USING gin (c jsonb_path_ops);
CREATE INDEX t_desc ON t (a DESC NULLS LAST, b COLLATE "C" text_pattern_ops);
COMMENT ON INDEX t_a_incl IS 'covering';
