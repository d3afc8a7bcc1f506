"""Redis: the client factory (single node or cluster), retry with backoff, join state."""
