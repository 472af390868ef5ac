"""Ray actors (chunk-store shards, index partitions, version coordinator).

Imports `plane`; `plane` never imports this package. Actors arrive with the versioning (#3),
ingestion (#5) and query (#6) issues.
"""
