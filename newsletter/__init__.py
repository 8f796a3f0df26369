"""Harvest's newsletter: subscribers, campaigns and delivery behind the "Subscribe for Updates" form."""

__version__ = "0.1.0"
