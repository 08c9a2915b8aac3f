CREATE TABLE node (id int PRIMARY KEY, parent int REFERENCES node);
CREATE RECURSIVE VIEW tree (id, depth) AS SELECT id, 0 FROM node WHERE parent IS NULL UNION ALL SELECT n.id, t.depth + 1 FROM node n JOIN tree t ON n.parent = t.id;
CREATE MATERIALIZED VIEW leaves AS SELECT id FROM node WHERE id NOT IN (SELECT parent FROM node WHERE parent IS NOT NULL) WITH NO DATA;
