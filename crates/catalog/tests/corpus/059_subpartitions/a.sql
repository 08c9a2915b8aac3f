CREATE TABLE m (id int, region text, at date) PARTITION BY LIST (region);
