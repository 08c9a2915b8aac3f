CREATE TABLE m (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE m_2024 (id int, at date NOT NULL);
