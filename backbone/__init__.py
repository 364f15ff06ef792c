"""agency-backbone: shared settings, contracts, codec, logging and metrics."""
