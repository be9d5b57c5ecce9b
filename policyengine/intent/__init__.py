"""Intent-vs-topic tools: the contrastive intent space trained on a policy's own look-alike pairs."""
