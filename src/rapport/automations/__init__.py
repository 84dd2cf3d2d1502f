"""Rules of the form "when … if … then …" run by the worker from the events outbox."""
