"""Anomalies: usage far above what the forecaster expected a step earlier.

The latest sample of each VM and resource is compared with the one-step-ahead p95 forecast made
from the window *without* that sample. It is an anomaly when it exceeds the p95 by more than
``anomaly_threshold`` robust scales (1.4826 x the median absolute step-to-step change over the
window: a volatile VM must jump further) *and* is ``anomaly_min_ratio`` times the p95 (so an idle VM
going from 1 to 5 KiB/s does not page anyone). That catches a sudden network exfiltration or a
runaway process while a VM's ordinary daily peak, which the forecast already expects, passes.
Anomalies become ``EventKind.ANOMALY`` events in the history store, where the operator sees them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from oslo_config import cfg

from cotenancy.model import RESOURCE_UNITS, ClusterState, Event, EventKind, Resource
from cotenancy.predict import features as feats
from cotenancy.predict.base import Forecaster

SOURCE = "cotenancy.predict.anomaly"


@dataclass(slots=True)
class AnomalySettings:
    threshold: float = 8.0
    min_ratio: float = 2.0
    min_history: int = 6

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts | None) -> AnomalySettings:
        if conf is None:
            return cls()
        return cls(conf.predict.anomaly_threshold, conf.predict.anomaly_min_ratio)


class AnomalyDetector:
    """Flags samples far above their forecast; see the module docstring."""

    def __init__(self, forecaster: Forecaster, settings: AnomalySettings | None = None) -> None:
        self.forecaster = forecaster
        self.settings = settings or AnomalySettings()

    def detect(self, state: ClusterState) -> list[Event]:
        tele = state.telemetry
        if len(tele.timestamps) < self.settings.min_history + 1:
            return []
        resources = [r.value for r in Resource if r.value in tele.values]
        past = {r: tele.values[r][:, :-1] for r in resources}
        inv = state.inventory.vms
        sizes = {
            r: np.array([inv[v].size[r] if v in inv else np.nan for v in tele.vm_ids]) for r in resources
        }
        forecast = self.forecaster.forecast_arrays(  # type: ignore[attr-defined]
            past,
            float(tele.timestamps[-2]),
            tele.step_seconds,
            (1,),
            (0.5, 0.95),
            sizes=sizes,
            vm_ids=tele.vm_ids,
        )
        events: list[Event] = []
        stamp = float(tele.timestamps[-1])
        for resource in resources:
            window = feats.clean(past[resource])
            observed = feats.clean(tele.values[resource][:, -1:])[:, 0]
            p95 = forecast.values[resource][:, 0, 1]
            steps = np.abs(np.diff(window, axis=1))
            valid = (~np.isnan(window)).sum(axis=1) >= self.settings.min_history
            mad = np.nan_to_num(feats.nanquantiles(steps, (0.5,))[:, 0], nan=0.0) * 1.4826
            scale = np.maximum(mad, np.maximum(0.01 * p95, 1e-3))
            score = (observed - p95) / scale
            flagged = (
                valid
                & ~np.isnan(observed)
                & (score > self.settings.threshold)
                & (observed > self.settings.min_ratio * p95)
            )
            unit = RESOURCE_UNITS[Resource(resource)]
            for i in np.flatnonzero(flagged):
                vm_id = tele.vm_ids[i]
                vm = inv.get(vm_id)
                events.append(
                    Event(
                        timestamp=stamp,
                        kind=EventKind.ANOMALY,
                        vm_ids=(vm_id,),
                        host_id=vm.host_id if vm is not None else None,
                        duration=tele.step_seconds,
                        severity=float(min(1.0, (observed[i] - p95[i]) / max(observed[i], 1e-9))),
                        resource=resource,
                        message=(
                            f"{resource} {observed[i]:.0f} {unit} against a forecast p95 of "
                            f"{p95[i]:.0f} {unit} ({score[i]:.0f} robust scales above)"
                        ),
                        source=SOURCE,
                        details={
                            "observed": f"{observed[i]:.6g}",
                            "forecast_p95": f"{p95[i]:.6g}",
                            "score": f"{score[i]:.3g}",
                            "forecast_source": forecast.source.get(resource, ""),
                        },
                    )
                )
        return events

    def detect_and_record(self, state: ClusterState, store) -> list[Event]:
        """Detect, then store the anomalies in the history (``store.add_events``)."""
        events = self.detect(state)
        if events:
            store.add_events(events)
        return events
