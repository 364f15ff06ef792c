"""The unified person timeline: every agency's events about one person, in event-time order."""
