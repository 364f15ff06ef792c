"""Jobcentre: change data capture from the case management database (PostgreSQL)."""
