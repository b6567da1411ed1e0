-- Airflow's and Superset's metadata databases, beside the warehouse (POSTGRES_DB), on the first start of
-- an empty volume. The same layout as the local path: one server, one database each.
create database airflow;
create database superset;
