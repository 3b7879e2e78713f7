"""One router per resource: search, media, operations, ingestion."""
