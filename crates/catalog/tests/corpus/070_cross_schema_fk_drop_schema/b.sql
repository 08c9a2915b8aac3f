CREATE TABLE public.account (id int PRIMARY KEY);
