"""The Prefect-free sync engine: parts composed around one run context (:mod:`engine.context`), built and
ordered by the coordinator (:class:`engine.coordinator.Syncer`)."""
