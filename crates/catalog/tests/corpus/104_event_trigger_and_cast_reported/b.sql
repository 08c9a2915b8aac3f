CREATE FUNCTION et() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER my_event_trigger ON ddl_command_end EXECUTE FUNCTION et();
