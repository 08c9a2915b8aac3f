CREATE TABLE parent (id bigint PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id bigint REFERENCES parent (id));
CREATE INDEX child_parent ON child (parent_id);
