"""Events in frames between stream stages, and state written once per key per frame.

A Faust agent pays about 0.33 ms of CPU per Kafka message and every table write is one more
message, so the internal topics carry frames (`backbone.frames.EventFrame`: many events of one
partition in one message) and each stage handles a frame as a batch:
- `framer`: the first hop, agency topics (one event per message) -> `record-frames`, on
  confluent-kafka, outside Faust's per-message path;
- `outbox`: a stage's outgoing events, grouped per destination partition, sent as frames;
- `batched_table`: a table whose writes wait for the end of the frame, one per changed key.

What a frame's events are, per topic (key; value; headers):
- `record-frames`, `identity-input`: record id; the agency event as its connector wrote it;
  the connector's headers;
- `person-events`: person id; the agency event as its connector wrote it; `event_id` and
  `household` (JSON: member person id -> relationship);
- `identity-decisions`: record id; a `backbone.identity.IdentityDecision` (record id, person id
  (null: erased), fingerprint; command id on an erasure's confirmation);
- `identity-changes`: person id; a `backbone.identity.IdentityChange` (link, merge, split,
  absorb, erase; streams/identity/messages.py);
- `alert-updates`: person id; a `backbone.alerts.AlertViewUpdate` (member, absorb, closed,
  check; streams/alerting/messages.py).
`identity-input` also carries commands, one `backbone.identity.IdentityCommand` per message,
unframed (backbone/identity_commands.py).
"""
