"""Helpers the tests share: real servers they start (PostgreSQL, SMTP), sample campaigns and
subscribers, web helpers, and a corpus for the de-identification gate. Fixtures live in conftest.py."""
