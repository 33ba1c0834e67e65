"""Admin routes: ``GET /admin/policies`` and ``POST /admin/policies/reload``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.admin.auth import require_admin
from gateway.errors import BadRequest, ServiceUnavailable
from gateway.http.routes import bind, json_response
from gateway.policy.service import PolicyService
from gateway.registry import Provider


class PolicyInvalid(BadRequest):
    """The files on disk do not make a valid policy set; the active revision stays."""

    status = 422
    code = "policy_invalid"


def _service(get: Provider[PolicyService]) -> PolicyService:
    service = get()
    if service is None:
        raise ServiceUnavailable("The policy engine is disabled (policy.enabled: false).")
    return service


async def get_policies(request: Request, get: Provider[PolicyService]) -> Response:
    """Active revision, its modules and data files, when it was loaded, the last refusal."""
    require_admin(request, "admin", "auditor")
    return json_response(_service(get).manager.status())


async def reload_policies(request: Request, get: Provider[PolicyService]) -> Response:
    """Reload from disk now; 422 with ``file:line`` errors if the new set is refused."""
    admin = require_admin(request, "admin")
    service = _service(get)
    result = await service.manager.reload(
        reason="admin", force=request.query_params.get("force") == "true", actor=admin.user
    )
    if result.result == "refused":
        raise PolicyInvalid(
            "The policy set was refused; revision " + str(result.revision) + " stays active.",
            extra={"errors": result.errors, "tests": result.tests, "revision": result.revision},
        )
    return json_response(result.to_dict())


def routes(service: Provider[PolicyService]) -> list[BaseRoute]:
    """The routes, reaching ``service()`` (``None`` while the engine is off) per request."""
    return [
        Route("/admin/policies", bind(get_policies, service), methods=["GET"]),
        Route("/admin/policies/reload", bind(reload_policies, service), methods=["POST"]),
    ]
