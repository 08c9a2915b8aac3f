-- Runs that never finished: the next run that takes the deploy lock marks a run still `running` as `interrupted`
-- (its process or connection died). No-transaction migrations record their progress in `strata.run.detail`
-- (`progress`: the statements that committed), so a new column is not needed for that.

-- migrate:up
ALTER TABLE strata.run DROP CONSTRAINT run_outcome_check;
ALTER TABLE strata.run ADD CONSTRAINT run_outcome_check
    CHECK (outcome IN ('running', 'success', 'noop', 'failed', 'dry-run', 'interrupted'));

-- migrate:down
UPDATE strata.run SET outcome = 'failed' WHERE outcome = 'interrupted';
ALTER TABLE strata.run DROP CONSTRAINT run_outcome_check;
ALTER TABLE strata.run ADD CONSTRAINT run_outcome_check
    CHECK (outcome IN ('running', 'success', 'noop', 'failed', 'dry-run'));
