"""Housing: nightly CSV snapshots of tenancies, diffed against the previous night's."""
