-- docker compose: the databases the local default gets from the embedded server (see c360.settings).
create database redshift;
create database oltp;
create database airflow;
