INSERT INTO t VALUES ('{red,blue}');
