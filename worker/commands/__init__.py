"""The worker's CLI subcommands. Light modules: heavy imports happen inside each handler."""
