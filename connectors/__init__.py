"""Agency connectors: each turns one agency system's changes into Avro events on Kafka."""
