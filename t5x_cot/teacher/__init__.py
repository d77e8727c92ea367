"""Teacher CoT generation: prompts, OpenAI-compatible client, store, filter, offline teachers."""
