"""Action plans: ordered steps that change placement and allocations, each with its reason."""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field

from cotenancy.model.inventory import Allocation
from cotenancy.model.resources import Resources


class ActionKind(enum.StrEnum):
    LIVE_MIGRATE = "live_migrate"
    RESIZE = "resize"
    SET_ALLOCATION = "set_allocation"
    SET_MAINTENANCE = "set_maintenance"


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    SCHEDULED = "scheduled"


@dataclass(slots=True)
class Action:
    """One step of a plan.

    ``depends_on`` lists the ``index`` of steps that must succeed first; steps with no path between
    them may run in parallel. ``reason`` says which forecast or pair risk caused the step and
    ``expected_benefit`` what it should buy (e.g. risk reduction), so an operator can judge it.
    """

    index: int
    kind: ActionKind
    vm_id: str | None = None
    source_host_id: str | None = None
    target_host_id: str | None = None
    size: Resources | None = None
    allocation: Allocation | None = None
    host_id: str | None = None
    maintenance: bool | None = None
    depends_on: tuple[int, ...] = ()
    reason: str = ""
    expected_benefit: float = 0.0
    status: StepStatus = StepStatus.PENDING
    message: str = ""


@dataclass(slots=True)
class ActionPlan:
    """What a strategy decided in one round.

    ``stats`` carries solver facts (status, objective, optimality gap, wall time, max pair risk).
    """

    strategy: str
    actions: list[Action] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)
    stats: dict[str, float | str] = field(default_factory=dict)

    def add(self, kind: ActionKind, **fields_: object) -> Action:
        action = Action(index=len(self.actions), kind=kind, **fields_)  # type: ignore[arg-type]
        self.actions.append(action)
        return action

    @property
    def migrations(self) -> list[Action]:
        return [a for a in self.actions if a.kind is ActionKind.LIVE_MIGRATE]
