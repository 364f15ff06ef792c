"""The unified person timeline: every agency's events about one person, in event-time order.

`entries` (what a timeline shows of an event), `store` (timelines kept per month, pure),
`pages` (reading a page lazily) and `processor` (the Faust agents around the store).
"""
