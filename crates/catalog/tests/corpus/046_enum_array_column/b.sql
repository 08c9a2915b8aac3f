CREATE TYPE color AS ENUM ('red', 'blue');
CREATE TABLE t (cs color[]);
