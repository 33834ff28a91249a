"""The ipshare domain: plain Python, no FastAPI, SQL, Kafka, settings or clock imports."""
