-- One database per service, each owned by its own role (docker compose only).
-- Run once by the postgres image on an empty data volume
-- (/docker-entrypoint-initdb.d). The passwords are development values: the compose
-- stack binds PostgreSQL to 127.0.0.1 only. Kubernetes uses CloudNativePG instead
-- (deploy/base/postgres), which generates the credentials.
CREATE ROLE grants LOGIN PASSWORD 'grants';
CREATE ROLE sandbox LOGIN PASSWORD 'sandbox';
CREATE ROLE ipshare LOGIN PASSWORD 'ipshare';

CREATE DATABASE grants OWNER grants ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE sandbox OWNER sandbox ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE ipshare OWNER ipshare ENCODING 'UTF8' TEMPLATE template0;

-- A service connects to its own database only.
REVOKE CONNECT ON DATABASE grants FROM PUBLIC;
REVOKE CONNECT ON DATABASE sandbox FROM PUBLIC;
REVOKE CONNECT ON DATABASE ipshare FROM PUBLIC;
