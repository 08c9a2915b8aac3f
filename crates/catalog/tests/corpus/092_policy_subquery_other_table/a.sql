CREATE TABLE member (user_name text, team int);
CREATE TABLE doc (id int, team int);
ALTER TABLE doc ENABLE ROW LEVEL SECURITY;
CREATE POLICY team_docs ON doc USING (team IN (SELECT m.team FROM member m WHERE m.user_name = current_user));
