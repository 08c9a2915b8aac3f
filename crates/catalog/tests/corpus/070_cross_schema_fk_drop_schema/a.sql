CREATE SCHEMA billing;
CREATE TABLE public.account (id int PRIMARY KEY);
CREATE TABLE billing.invoice (id int PRIMARY KEY, account_id int REFERENCES public.account);
CREATE VIEW public.invoices AS SELECT i.id FROM billing.invoice i;
