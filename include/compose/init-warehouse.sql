-- First start of the compose PostgreSQL: a database and owner for the warehouse,
-- beside Airflow's metadata database. psops migrations do the rest.
CREATE USER psops WITH PASSWORD 'psops' CREATEROLE;
CREATE DATABASE warehouse OWNER psops;
