"""The coordinator API served by every worker: timelines, links, alerts, review; all audited."""
