"""The only place amas-otel reaches into OpenTelemetry SDK internals (private names).

Each module here says which private name it uses, why no public API serves,
and what happens when an SDK release no longer has it (it degrades to doing
nothing rather than failing the application).
"""
