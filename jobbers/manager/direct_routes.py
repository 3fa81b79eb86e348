"""Routes whose valid requests skip FastAPI's per-request parameter solving (the submit hot path).

FastAPI finds an endpoint's arguments by walking its dependency tree and inspecting every
parameter's annotation again on each request: about a third of the manager's own CPU for a
``POST /tasks``. A ``DirectRoute`` builds, once, what its endpoint takes (a JSON body, plain
header parameters, ``ServicesDep``) and fills those arguments itself, validating each with the
field FastAPI built for it. A request any of them refuses (a bad header, a body that does not
validate, no body) is handed to FastAPI's own handler, which answers it as it answers every other
route (the 422 naming the field): the direct path only ever answers valid requests, and the
route is documented by FastAPI as usual.

Its endpoint renders its own ``Response`` (FastAPI's answer-side validation is skipped too), so
a ``DirectRoute`` must declare ``response_model`` for the documentation.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import params
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from jobbers.manager.deps import get_services
from jobbers.manager.request_bodies import StrictJSONRoute

#: The dependencies a ``DirectRoute`` resolves itself, by what they compute from the request.
DIRECT_DEPENDENCIES: dict[Callable[..., Any], Callable[[Request], Any]] = {
    get_services: lambda request: request.app.state.services,
}


def _unsupported(route: APIRoute) -> str | None:
    """Why ``route``'s parameters cannot be filled directly (``None``: they can)."""
    dependant = route.dependant
    if dependant.path_params or dependant.query_params or dependant.cookie_params:
        return "only header and body parameters"
    if len(dependant.body_params) > 1 or route.body_field is None:
        return "exactly one JSON body parameter"
    if isinstance(route.body_field.field_info, params.Form | params.File):
        return "a JSON body, not a form"
    if (
        dependant.request_param_name
        or dependant.websocket_param_name
        or dependant.background_tasks_param_name
        or dependant.response_param_name
        or dependant.security_scopes_param_name
    ):
        return "no Request, Response, BackgroundTasks or security parameters"
    for sub in dependant.dependencies:
        if sub.call not in DIRECT_DEPENDENCIES or sub.name is None:
            return f"no dependency but {', '.join(f.__name__ for f in DIRECT_DEPENDENCIES)}"
    for field in dependant.header_params:
        annotation = field.field_info.annotation
        if annotation not in (str, str | None):
            return f"header parameters of type str (not {field.name}: {annotation})"
        if field.field_info.validation_alias is not None:
            return "header parameters without validation aliases"
    if route.response_model is None:
        return "a response_model (the endpoint returns its own Response)"
    return None


class DirectRoute(StrictJSONRoute):
    """A ``StrictJSONRoute`` whose valid requests reach the endpoint without FastAPI's dependency
    solving (see the module docstring); raises ``TypeError`` for an endpoint it cannot serve."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        problem = _unsupported(self)
        if problem is not None:
            raise TypeError(f"DirectRoute {path}: its endpoint may take {problem}")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        fastapi_handler = APIRoute.get_route_handler(self)
        body_field = self.body_field
        assert body_field is not None
        body_name = self.dependant.body_params[0].name
        # (argument, header name, required, field); FastAPI's header fields carry the header's name as alias.
        headers = [(f.name, f.alias, f.field_info.is_required(), f) for f in self.dependant.header_params]
        computed = [
            (sub.name or "", DIRECT_DEPENDENCIES[sub.call]) for sub in self.dependant.dependencies if sub.call
        ]
        endpoint = self.endpoint

        async def direct_handler(request: Request) -> Response:
            # StrictJSONRoute has parsed the body (or answered 422) before this runs.
            if request.app.dependency_overrides:
                return await fastapi_handler(request)
            if not await request.body():
                return await fastapi_handler(request)
            body, errors = body_field.validate(await request.json(), {}, loc=("body",))
            if errors:
                return await fastapi_handler(request)
            values: dict[str, Any] = {body_name: body}
            received = request.headers
            for name, alias, required, field in headers:
                value = received.get(alias)
                if value is None:
                    if required:
                        return await fastapi_handler(request)
                    values[name] = field.default
                    continue
                values[name], errors = field.validate(value, values, loc=("header", alias))
                if errors:
                    return await fastapi_handler(request)
            for argument, compute in computed:
                values[argument] = compute(request)
            answer = await endpoint(**values)
            if not isinstance(answer, Response):
                raise TypeError(f"the endpoint of DirectRoute {self.path} must return a Response")
            return answer

        return self._strict(direct_handler)
