CREATE TYPE e AS ENUM ('a', 'b', 'bb', 'c', 'd');
