-- First start of the postgres service: one database per user of it (MLflow's is POSTGRES_DB).
CREATE DATABASE prefect;
CREATE DATABASE inference;
