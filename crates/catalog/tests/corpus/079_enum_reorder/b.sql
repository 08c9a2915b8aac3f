CREATE TYPE pri AS ENUM ('low', 'mid', 'high');
CREATE TABLE t (p pri);
