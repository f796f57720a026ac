"""The light CLI subcommands (no torch): each module defines ``register(commands)``."""
