"""Prefect flows: wiring of ``ser_pipeline`` functions into tasks. No pipeline logic lives here."""
