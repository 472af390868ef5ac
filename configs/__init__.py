"""Pydantic config models and example YAML for jobs and clusters."""
