"""A tiny guard added through the component registry: the worked example of docs/adding-a-guard.md.

``deny_words`` refuses a request whose messages name a configured word (403
``word_denied``), counts what it refused, and shows the count on ``GET /admin/deny-words``.
It contributes each thing a component can: a settings section, a stage, a route, a
readiness check and a closer. In the product it would be the package
``gateway/deny_words/`` (``config.py``, ``stage.py``, ``api.py``, ``component.py``); here
the four parts are one module, and ``tests/core/test_adding_a_guard.py`` serves it over HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.admin.auth import require_admin
from gateway.call import Call
from gateway.errors import PermissionDenied, ServiceUnavailable
from gateway.http.routes import bind, json_response
from gateway.pipeline import Stage
from gateway.registry import STAGE_ORDER, BaseComponent, Provider, section

if TYPE_CHECKING:
    from gateway.context import AppContext


# -- config.py: the settings section (``deny_words:`` in wardgate.yaml, WARDGATE_DENY_WORDS__…)


class DenyWordsSettings(BaseModel):
    enabled: bool = False
    #: Refused case-insensitively wherever they appear in a message's text.
    words: list[str] = Field(default_factory=list)


# -- stage.py: the stage, with the one name it has in the stage order


class WordDenied(PermissionDenied):
    code = "word_denied"


class DenyWordsStage(Stage):
    name = "deny_words"

    def __init__(self, words: list[str]) -> None:
        self.words = [w.casefold() for w in words if w]
        self.refused = 0

    async def on_request(self, call: Call) -> None:
        for message in call.body.get("messages") or ():
            content = message.get("content") if isinstance(message, dict) else None
            text = content.casefold() if isinstance(content, str) else ""
            if any(word in text for word in self.words):
                self.refused += 1
                # Never echo the word: the caller learns that, not what, was refused.
                raise WordDenied("This request names a word this gateway refuses.", param="messages")


# -- api.py: the route, handed a provider of what the component built at start


async def get_deny_words(request: Request, get: Provider[DenyWordsStage]) -> Response:
    """The refused words' count and how many requests were refused (auditor or admin)."""
    require_admin(request, "auditor")
    stage = get()
    if stage is None:
        raise ServiceUnavailable("The deny_words guard is disabled on this gateway.")
    return json_response({"words": len(stage.words), "refused": stage.refused})


def routes(stage: Provider[DenyWordsStage]) -> list[BaseRoute]:
    return [Route("/admin/deny-words", bind(get_deny_words, stage), methods=["GET"])]


# -- component.py: what the app and the CLI see


class DenyWords(BaseComponent):
    name = "deny_words"
    settings_model = DenyWordsSettings

    def __init__(self) -> None:
        self.stage: DenyWordsStage | None = None
        self.closed = False

    def routes(self) -> list[BaseRoute]:
        return routes(lambda: self.stage)

    async def start(self, ctx: AppContext) -> None:
        self.stage = None
        settings = section(ctx.settings, self.name, DenyWordsSettings)
        if not settings.enabled:
            return
        stage = self.stage = DenyWordsStage(settings.words)
        ctx.stages.append(stage)

        async def ready() -> str:
            return f"ok: {len(stage.words)} words"

        async def close() -> None:
            self.closed = True

        ctx.ready_checks[self.name] = ready
        ctx.closers.append(close)


#: Its place in the order: after redaction (it judges what would leave the gateway), before
#: policy (a refused request costs no policy evaluation). In the product this is one line in
#: ``STAGE_ORDER`` (gateway/registry.py), with its reason next to the others'.
EXAMPLE_ORDER: tuple[str, ...] = (
    *STAGE_ORDER[: STAGE_ORDER.index("redact_in") + 1],
    "deny_words",
    *STAGE_ORDER[STAGE_ORDER.index("redact_in") + 1 :],
)
