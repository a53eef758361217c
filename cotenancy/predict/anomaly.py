"""Anomalies: usage far above what the forecaster expected a step earlier.

The latest sample of each VM and resource is compared with the one-step-ahead p95 forecast made
from the window *without* that sample. It is an anomaly when all of these hold:

- it exceeds the p95 by more than ``anomaly_threshold`` robust scales (1.4826 x the median absolute
  step-to-step change over the window: a volatile VM must jump further);
- it is ``anomaly_min_ratio`` times the p95 (an idle VM going from 1 to 5 KiB/s pages nobody);
- the excess is at least ``anomaly_min_share`` of the VM's size for that resource, where the size
  is known (a VM that never sends anything starting to send a trickle is not an exfiltration);
- the VM has stayed on one host since the forecast's last sample and is not migrating: what a VM
  gets on a new host (the memory an oversubscribed host withheld, the CPU a crowded one did not
  give) is not what a forecast made on the old one expected, and is no sign of an attack.

That catches a sudden network exfiltration or a runaway process while a VM's ordinary daily peak,
which the forecast already expects, passes; so does a scheduled event the operator announced (a
hint), since it raises the forecast. Anomalies become ``EventKind.ANOMALY`` events in the history
store, where the operator sees them. ``benchmarks/bench_anomaly.py`` measures how often the
defaults flag real traces and how many injected exfiltrations and runaway processes they catch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from oslo_config import cfg

from cotenancy import loading
from cotenancy.model import RESOURCE_UNITS, ClusterState, Event, EventKind, Resource
from cotenancy.predict import features as feats
from cotenancy.predict.base import Forecaster
from cotenancy.text import first_named

SOURCE = "cotenancy.predict.anomaly"


#: what a latest sample is measured against (``[predict] anomaly_reference``)
REFERENCES = ("p95", "ceiling")


@dataclass(slots=True)
class AnomalySettings:
    threshold: float = 8.0
    min_ratio: float = 2.0
    #: the least excess over the reference, as a share of the VM's size for the resource (0.1
    #: flagged a third less than 0 at the same recall of injected anomalies on held-out Bitbrains
    #: days inside the training period: docs/predictors.md)
    min_share: float = 0.1
    #: ``p95``: the one-step p95 forecast; ``ceiling``: the higher of the one-step p99 forecast and
    #: the most the VM used over its window, so a burst the VM makes every day is not news
    reference: str = "p95"
    #: how many latest samples in a row must each be an anomaly, against one forecast made before
    #: all of them: 2 lets a one-interval burst pass and flags what lasts at its second interval
    #: (on Bitbrains, inside the training period, 2 flagged a fifth as often as 1 at the same
    #: recall of injected exfiltrations and runaway processes: docs/predictors.md)
    persistence: int = 2
    #: VMs of one workload (tenant, application type) flagged in the same interval for the same
    #: resource that are reported as one event; 0 (or 1) reports every VM on its own
    group_min_vms: int = 3
    min_history: int = 6

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise ValueError(f"anomaly reference {self.reference!r} is not one of {', '.join(REFERENCES)}")
        if self.persistence < 1:
            raise ValueError(f"anomaly persistence must be at least 1, got {self.persistence!r}")

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts | None) -> AnomalySettings:
        if conf is None:
            return cls()
        p = conf.predict
        return cls(
            p.anomaly_threshold,
            p.anomaly_min_ratio,
            p.anomaly_min_share,
            p.anomaly_reference,
            p.anomaly_persistence,
            p.anomaly_group_min_vms,
        )


@dataclass(slots=True)
class Assessment:
    """One resource's latest ``persistence`` samples against one forecast made before them, per VM
    (telemetry order; any leading axes, e.g. time in an evaluation).

    ``observed``, ``p95`` and ``p99`` have a last axis of ``persistence`` (oldest sample first); the
    other arrays do not. NaN where a value is unknown; ``enough_history`` is False where the window
    has fewer than ``min_history`` valid samples, so neither a forecast nor a scale can be trusted.
    """

    observed: np.ndarray
    p95: np.ndarray
    p99: np.ndarray
    window_max: np.ndarray
    scale: np.ndarray
    size: np.ndarray
    enough_history: np.ndarray
    persistence: int = 1
    #: True where the VM changed host (or is changing) since the forecast's last sample, so the
    #: samples judged were taken on another host than the forecast's; None: no VM did
    moved: np.ndarray | None = None

    def reference(self, settings: AnomalySettings) -> np.ndarray:
        """What each sample is measured against under ``settings``."""
        if settings.reference == "p95":
            return self.p95
        return np.fmax(self.p99, self.window_max[..., None])

    def score(self, settings: AnomalySettings) -> np.ndarray:
        """Robust scales above the reference, of the latest sample."""
        return (self.observed[..., -1] - self.reference(settings)[..., -1]) / self.scale

    def flagged(self, settings: AnomalySettings) -> np.ndarray:
        """Which VMs' latest samples are an anomaly under ``settings``: each of them is."""
        if settings.persistence != self.persistence:
            raise ValueError(
                f"an assessment of {self.persistence} samples cannot judge a persistence of "
                f"{settings.persistence}"
            )
        reference = self.reference(settings)
        excess = self.observed - reference
        size = self.size[..., None]
        with np.errstate(invalid="ignore"):
            each = (
                ~np.isnan(self.observed)
                & (excess / self.scale[..., None] > settings.threshold)
                & (self.observed > settings.min_ratio * reference)
                & (np.isnan(size) | (excess >= settings.min_share * size))
            )
        judged = self.enough_history if self.moved is None else self.enough_history & ~self.moved
        return judged & each.all(axis=-1)


class MoveMemory:
    """When each VM last changed host, as the detector saw it over its rounds.

    From ``MIGRATION`` events (their time) and from a VM's host differing from the one it had the
    round before (the round's time, when no event says better); a loop's first round is handed
    the events of the window from the history store, so a restarted loop knows the recent moves.
    """

    def __init__(self) -> None:
        self.hosts: dict[str, str | None] = {}
        self.moved_at: dict[str, float] = {}

    def observe(self, state: ClusterState) -> None:
        seen: dict[str, float] = {}
        for event in state.events:
            if event.kind is EventKind.MIGRATION:
                for vm_id in event.vm_ids:
                    seen[vm_id] = max(seen.get(vm_id, -np.inf), float(event.timestamp))
        vms = state.inventory.vms
        for vm_id, vm in vms.items():
            before = self.hosts.get(vm_id, vm.host_id)
            if vm.host_id != before and vm_id not in seen:
                seen[vm_id] = float(state.now)
            self.hosts[vm_id] = vm.host_id
        for vm_id, at in seen.items():
            self.moved_at[vm_id] = max(self.moved_at.get(vm_id, -np.inf), at)
        for gone in set(self.hosts) - set(vms):
            del self.hosts[gone]
            self.moved_at.pop(gone, None)

    def moved_after(self, vm_ids: list[str], since: float, migrating: frozenset[str]) -> np.ndarray:
        """Which VMs changed host after ``since``, or are changing now."""
        return np.array(
            [vm in migrating or self.moved_at.get(vm, -np.inf) > since for vm in vm_ids], dtype=bool
        )


class AnomalyDetector:
    """Flags samples far above their forecast; see the module docstring."""

    def __init__(self, forecaster: Forecaster, settings: AnomalySettings | None = None) -> None:
        self.forecaster = forecaster
        self.settings = settings or AnomalySettings()
        self.moves = MoveMemory()

    def assess(self, state: ClusterState) -> tuple[dict[str, Assessment], dict[str, str]]:
        """Each resource's latest samples against the forecast made without them, and which
        model made each resource's forecast.

        The forecast comes through the plugin interface (:meth:`Forecaster.forecast`) from the
        window without its last column, so any forecaster serves, and hints apply.
        """
        tele = state.telemetry
        last = self.settings.persistence
        self.moves.observe(state)
        if len(tele.timestamps) < self.settings.min_history + last:
            return {}, {}
        earlier = replace(
            tele,
            timestamps=tele.timestamps[:-last],
            values={r: v[:, :-last] for r, v in tele.values.items()},
        )
        horizons = tuple(range(1, last + 1))
        forecast = self.forecaster.forecast(replace(state, telemetry=earlier), horizons, (0.5, 0.95, 0.99))
        if list(forecast.vm_ids) != list(tele.vm_ids):
            raise ValueError("the forecaster returned its VMs in another order than the telemetry's")
        inv = state.inventory.vms
        moved = self.moves.moved_after(list(tele.vm_ids), float(earlier.timestamps[-1]), state.migrating)
        out: dict[str, Assessment] = {}
        for resource in (r.value for r in Resource):
            if resource not in tele.values or resource not in forecast.values:
                continue
            window = feats.clean(earlier.values[resource])
            cube = forecast.values[resource]
            p95 = cube[:, :, forecast.quantiles.index(0.95)]
            steps = np.abs(np.diff(window, axis=1))
            mad = np.nan_to_num(feats.nanquantiles(steps, (0.5,))[:, 0], nan=0.0) * 1.4826
            out[resource] = Assessment(
                observed=feats.clean(tele.values[resource][:, -last:]),
                p95=p95,
                p99=cube[:, :, forecast.quantiles.index(0.99)],
                window_max=feats.row_nanmax(window),
                scale=np.maximum(mad, np.maximum(0.01 * p95[:, 0], 1e-3)),
                size=np.array([inv[v].size[resource] if v in inv else np.nan for v in tele.vm_ids], float),
                enough_history=(~np.isnan(window)).sum(axis=1) >= self.settings.min_history,
                persistence=last,
                moved=moved,
            )
        return out, dict(forecast.source)

    def detect(self, state: ClusterState) -> list[Event]:
        """The anomalies among each VM's latest samples, as events: one per VM, or one per
        workload whose VMs rose together (:meth:`_workloads_together`)."""
        assessments, sources = self.assess(state)
        if not assessments:
            return []
        tele = state.telemetry
        settings = self.settings
        # an anomaly of N intervals in a row starts at the first of them and lasts N intervals
        onset = float(tele.timestamps[-settings.persistence])
        events: list[Event] = []
        for resource, a in assessments.items():
            flagged = np.flatnonzero(a.flagged(settings))
            for workload, rows in self._workloads_together(state, flagged):
                source = sources.get(resource, "")
                events.append(self._event(state, resource, a, rows, workload, onset, source))
        return events

    def _workloads_together(
        self, state: ClusterState, flagged: np.ndarray
    ) -> list[tuple[tuple[str, str] | None, np.ndarray]]:
        """``flagged`` rows split into what is reported together: the VMs of one workload (tenant
        and application type) when at least ``group_min_vms`` of them rose in the same interval,
        each other VM on its own. A batch job or a rush that lifts a whole group at once is one
        thing to look at, not dozens; a VM rising alone, an exfiltration or a runaway process,
        stays its own event."""
        inv = state.inventory.vms
        by_workload: dict[tuple[str, str] | None, list[int]] = {}
        for i in flagged.tolist():
            vm = inv.get(state.telemetry.vm_ids[i])
            key = (vm.tenant, vm.workload.app_type) if vm is not None else None
            by_workload.setdefault(key, []).append(i)
        minimum = self.settings.group_min_vms
        out: list[tuple[tuple[str, str] | None, np.ndarray]] = []
        for key, rows in by_workload.items():
            if key is not None and minimum >= 2 and len(rows) >= minimum:
                out.append((key, np.array(rows)))
            else:
                out.extend((None, np.array([i])) for i in rows)
        return sorted(out, key=lambda item: int(item[1][0]))

    def _event(
        self,
        state: ClusterState,
        resource: str,
        a: Assessment,
        rows: np.ndarray,
        workload: tuple[str, str] | None,
        onset: float,
        source: str,
    ) -> Event:
        """One ANOMALY event for ``rows``; a group's figures are its highest sample's, with the
        median of its scores, and its message names the workload."""
        settings = self.settings
        tele = state.telemetry
        unit = RESOURCE_UNITS[Resource(resource)]
        against = "forecast p95" if settings.reference == "p95" else "ceiling (forecast p99, window max)"
        lasting = f" for {settings.persistence} intervals" if settings.persistence > 1 else ""
        score = a.score(settings)[rows]
        reference = a.reference(settings)[rows, -1]
        top = int(np.argmax(a.observed[rows, -1]))
        observed, p95 = float(a.observed[rows[top], -1]), float(a.p95[rows[top], -1])
        ceiling = float(reference[top])
        vm_ids = tuple(tele.vm_ids[i] for i in rows)
        hosts = {vm.host_id for vm in (state.inventory.vms.get(v) for v in vm_ids) if vm is not None}
        details = {
            "observed": f"{observed:.6g}",
            "reference": f"{ceiling:.6g}",
            "forecast_p95": f"{p95:.6g}",
            "score": f"{float(np.median(score)):.3g}",
            "forecast_source": source,
        }
        if workload is None:
            message = (
                f"{resource} {observed:.0f} {unit} against a {against} of "
                f"{ceiling:.0f} {unit} ({score[0]:.0f} robust scales above){lasting}"
            )
        else:
            tenant, app_type = workload
            details.update(tenant=tenant, app_type=app_type, vms=str(len(rows)))
            message = (
                f"{resource} rose together on {len(rows)} VMs of tenant {tenant}'s {app_type} "
                f"workload: up to {observed:.0f} {unit} against a {against} of {ceiling:.0f} {unit} "
                f"(a median of {np.median(score):.0f} robust scales above){lasting}"
            )
        return Event(
            timestamp=onset,
            kind=EventKind.ANOMALY,
            vm_ids=vm_ids,
            host_id=hosts.pop() if len(hosts) == 1 else None,
            duration=tele.step_seconds * settings.persistence,
            severity=float(min(1.0, (observed - ceiling) / max(observed, 1e-9))),
            resource=resource,
            message=message,
            source=SOURCE,
            details=details,
        )

    def detect_and_record(self, state: ClusterState, store) -> list[Event]:
        """Detect, then store the anomalies in the history (``store.add_events``)."""
        events = self.detect(state)
        if events:
            store.add_events(events)
        return events


def affected(event: Event, vm_word: str = "VM", host_word: str = "host", shown: int = 10) -> str:
    """Who an anomaly event is about, for a log line: one VM and its host, or a workload's VMs
    (the first ``shown`` named; the event keeps them all)."""
    if len(event.vm_ids) == 1:
        return f"{vm_word} {event.vm_ids[0]} ({host_word} {event.host_id})"
    where = f" on {host_word} {event.host_id}" if event.host_id else ""
    return f"{len(event.vm_ids)} {vm_word}s{where} ({first_named(event.vm_ids, shown)})"


def configured_detector(conf: cfg.ConfigOpts, strategy: object = None) -> AnomalyDetector | None:
    """The detector ``[predict] detect_anomalies`` asks for, on the strategy's own forecaster when
    it has one (one model in memory, the hints it was given), else on ``[predict] forecaster``."""
    if not conf.predict.detect_anomalies:
        return None
    forecaster = getattr(strategy, "forecaster", None)
    if not isinstance(forecaster, Forecaster):
        forecaster = loading.load_plugin(loading.FORECASTERS, conf.predict.forecaster, conf)
    return AnomalyDetector(forecaster, AnomalySettings.from_conf(conf))
