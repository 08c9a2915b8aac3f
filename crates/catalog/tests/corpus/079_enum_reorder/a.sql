CREATE TYPE pri AS ENUM ('low', 'high', 'mid');
CREATE TABLE t (p pri);
