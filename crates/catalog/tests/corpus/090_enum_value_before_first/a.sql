CREATE TYPE e AS ENUM ('b', 'c');
