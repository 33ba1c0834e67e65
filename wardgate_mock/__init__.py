"""Wardgate's scripted model: a deterministic OpenAI-compatible answerer with no network.

It serves ``make run`` and the demo when no real provider key is set, backs the tests' fake
OpenAI server (``tests/fake_openai.py``) and the benches, and is not part of the product:
``gateway/`` never imports it. It reaches the gateway's router only through the provider
seam (``gateway.providers.registry``: the ``mock`` entry point in the group
``wardgate.providers``, declared in ``pyproject.toml``, pointing at ``plugin.provider``).

The rules it follows are in ``provider``'s docstring. Modules:

- ``provider``: ``generate`` (one request body → one answer, no I/O) and ``MockProvider``;
- ``plugin``: the ``mock`` provider kind's factory (the entry point);
- ``conversation``: a chat or Responses body read into one ``Conversation``;
- ``planner``: which tools to call, with which arguments, or which text (``Plan``);
- ``args``: arguments valid against a tool's JSON schema, filled from the user's words;
- ``names``: what a property's name asks for (an email, an amount, a city) and what fits it;
- ``facts``: the emails, ids, amounts and names found in the user's words;
- ``budget``: what one answer may spend on a client's schema;
- ``regex``: a linear-time matcher for a schema's ``pattern``;
- ``pattern``: an example string matching a ``pattern``;
- ``syntax``, ``syntax_shape``: a parser of ``re``'s syntax into the stdlib's tree shape;
- ``chat``, ``responses``, ``embeddings``: the answers in each endpoint's wire shape.
"""

from __future__ import annotations

from wardgate_mock.planner import MockOverrides
from wardgate_mock.provider import MockAnswer, MockProvider, error_body, generate

__all__ = ["MockAnswer", "MockOverrides", "MockProvider", "error_body", "generate"]
