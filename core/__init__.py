"""cutq's torch-free core: the job and event contract, errors, validation, storage and logging.

Both sides depend on it and it depends on neither: :mod:`cutq.submitter` (publishing, bulk,
the upload function) and :mod:`cutq.worker` (models, batching, the pipeline) import from here,
never from each other. ``lint-imports`` checks this in ``make test``.
"""
