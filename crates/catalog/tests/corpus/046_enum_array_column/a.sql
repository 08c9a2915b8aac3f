CREATE TYPE color AS ENUM ('red', 'green', 'blue');
CREATE TABLE t (cs color[]);
