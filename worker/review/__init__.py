"""The review tool: `cutq report` and its static page, read from events or manifests.
It reads what the worker wrote; nothing in the engine imports it."""
