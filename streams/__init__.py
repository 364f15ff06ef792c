"""Stream processors (Faust): identity, timeline, and later alerts and notifications."""
