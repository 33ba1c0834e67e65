"""Upstream model providers: the providers component, from ``policies/models.yaml`` to the wire.

component.py      Providers: the component (router, ``forward``, ``stream_trust`` when needed)
config.py         ProviderSettings: the ``providers`` section (retries, circuits, pools)
base.py           the provider seam: one method, ``send``
registry.py       provider kinds: a deployment's ``provider:`` → a factory (entry points too)
openai_compat.py  OpenAI-compatible upstreams over pooled aiohttp
router.py         deployment choice, retries with backoff, fallback, circuit breaking
errors.py         a provider's error answers become the gateway's own errors
stage.py          ForwardStage (``forward``): the call to the upstream
stream_trust.py   StreamTrustStage (``stream_trust``): a stream's events must add up
metrics.py        wardgate_circuit_state: each deployment's circuit breaker, at scrape time
"""
