"""Shared domain rules and plumbing used by ingest, warehouse and reporting."""
