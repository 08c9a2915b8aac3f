CREATE TABLE public.users (
  id bigint PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name varchar(100),
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.users IS 'people';
COMMENT ON COLUMN public.users.email IS 'login';
