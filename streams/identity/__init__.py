"""Identity: which person each agency record is, and every event re-keyed by person."""
