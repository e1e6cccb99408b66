"""`/__sandbox__/*`: what tests (and humans) use to see what really happened inside the sandbox.

No auth, never subject to faults. GET stats / jobs / objects; POST faults replaces the fault plan;
POST capacity changes hidden capacities (requests per second per operation) mid-run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, Field, RootModel, ValidationError

from pipeline.api.models import BatchJob
from pipeline.sandbox.api_errors import error_response, model_response, validation_message
from pipeline.sandbox.faults import FaultPlan
from pipeline.sandbox.objects import ObjectInfo
from pipeline.sandbox.request_stats import SandboxStats
from pipeline.sandbox.state import CreateAttempt

PREFIX = "/__sandbox__"


class JobsReadback(BaseModel):
    jobs: list[BatchJob] = Field(default_factory=list)  # every job ever created, deleted ones included
    attempts: list[CreateAttempt] = Field(default_factory=list)


class ObjectsReadback(BaseModel):
    objects: list[ObjectInfo] = Field(default_factory=list)


class Capacities(RootModel[dict[str, Annotated[float, Field(gt=0)] | None]]):
    """Operation → requests per second it accepts (None: unlimited)."""


@dataclass(eq=False)
class Readback:
    """The data sources behind the routes, as plain callables (the Sandbox object provides them)."""

    stats: Callable[[], SandboxStats]
    jobs: Callable[[], JobsReadback]
    objects: Callable[[], ObjectsReadback]
    set_faults: Callable[[FaultPlan], None]
    get_faults: Callable[[], FaultPlan]
    set_capacity: Callable[..., None]

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX + "/stats", self._stats_handler),
            web.get(PREFIX + "/jobs", self._jobs_handler),
            web.get(PREFIX + "/objects", self._objects_handler),
            web.get(PREFIX + "/faults", self._faults_get),
            web.post(PREFIX + "/faults", self._faults_post),
            web.post(PREFIX + "/capacity", self._capacity_post),
        ]

    async def _stats_handler(self, request: web.Request) -> web.StreamResponse:
        return model_response(self.stats())

    async def _jobs_handler(self, request: web.Request) -> web.StreamResponse:
        return model_response(self.jobs())

    async def _objects_handler(self, request: web.Request) -> web.StreamResponse:
        return model_response(self.objects())

    async def _faults_get(self, request: web.Request) -> web.StreamResponse:
        return model_response(self.get_faults())

    async def _faults_post(self, request: web.Request) -> web.StreamResponse:
        try:
            plan = FaultPlan.model_validate_json(await request.read())
        except ValidationError as exc:
            return error_response(400, validation_message(exc))
        self.set_faults(plan)
        return model_response(plan)

    async def _capacity_post(self, request: web.Request) -> web.StreamResponse:
        """`{"create": 20, "presign": null}`: hidden capacities changed mid-run, nothing else reset."""
        try:
            body = Capacities.model_validate_json(await request.read())
            self.set_capacity(**body.root)
        except (ValidationError, ValueError) as exc:
            message = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
            return error_response(400, message)
        return model_response(self.get_faults())
