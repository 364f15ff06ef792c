"""Health: the hospital's ADT feed, HL7 v2.5 messages pushed over MLLP."""
