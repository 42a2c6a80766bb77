-- First start of the postgres service: one database per user of it (MLflow's is POSTGRES_DB).
-- (A volume made before a database was added here does not get it: create it by hand, e.g.
-- `docker compose exec postgres createdb -U "$POSTGRES_USER" keycloak`.)
CREATE DATABASE prefect;
CREATE DATABASE inference;
CREATE DATABASE keycloak;
CREATE DATABASE mlflow_auth;  -- the MLflow server's users and permissions (basic-auth)
