"""``graph_ask``: the system under test, a small product function built on ``shared.resilience``.

``POST /graph_ask`` answers a question from a knowledge graph (a Neo4j stand-in reached through
``chaos_proxy``) and an LLM (primary through ``chaos_proxy``, then a fallback model), behind
plan-priority admission; ``POST /insights/deliver`` delivers an insight to a sink with retries;
``GET /graph_ask/_status`` exports breaker, cache and admission state. Modules:

- :mod:`.settings`: every environment variable, read once per instance;
- :mod:`.errors`: the one root exception and the bad-input error;
- :mod:`.graph`: the Neo4j HTTP API client; :mod:`.insights`: the sink client; both on a
  :mod:`.sessions` pooled session made on first use;
- :mod:`.service`: the per-instance resilience objects (admission, cache, breakers, chain);
- :mod:`.answer`: the pipeline from question to answer; :mod:`.inputs`: request parsing;
- :mod:`.routes`: the thin HTTP handlers; ``main.py``: the functions-framework entry point.
"""
