"""Admin routes: ``GET /admin/policies`` and ``POST /admin/policies/reload``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.admin.auth import require_admin
from gateway.errors import BadRequest, ServiceUnavailable
from gateway.http.routes import json_response
from gateway.policy.service import PolicyService


class PolicyInvalid(BadRequest):
    """The files on disk do not make a valid policy set; the active revision stays."""

    status = 422
    code = "policy_invalid"


def _service(request: Request) -> PolicyService:
    service = request.app.state.ctx.services.get("policy")
    if service is None:
        raise ServiceUnavailable("The policy engine is disabled (policy.enabled: false).")
    return service


async def get_policies(request: Request) -> Response:
    """Active revision, its modules and data files, when it was loaded, the last refusal."""
    require_admin(request, "admin", "auditor")
    return json_response(_service(request).manager.status())


async def reload_policies(request: Request) -> Response:
    """Reload from disk now; 422 with ``file:line`` errors if the new set is refused."""
    admin = require_admin(request, "admin")
    service = _service(request)
    result = await service.manager.reload(
        reason="admin", force=request.query_params.get("force") == "true", actor=admin.user
    )
    if result.result == "refused":
        raise PolicyInvalid(
            "The policy set was refused; revision " + str(result.revision) + " stays active.",
            extra={"errors": result.errors, "tests": result.tests, "revision": result.revision},
        )
    return json_response(result.to_dict())


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/policies", get_policies, methods=["GET"]),
        Route("/admin/policies/reload", reload_policies, methods=["POST"]),
    ]
