"""``Candidate``: an evaluated subnet with its metrics, its costs and the generation that first evaluated it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evolve.errors import SearchError
from search_space import SearchSpace, SubnetConfig


@dataclass(frozen=True)
class Candidate:
    """One evaluated subnet.

    Attributes:
        subnet: the subnet config.
        metrics: what the evaluator returned (at least the search objective, e.g. ``top1``).
        costs: ``macs``, ``params``, ``activations`` from the cost model, plus ``latency_ms`` when measured.
        generation: the generation in which the subnet was first evaluated (0 = initial population).
        key: ``str(subnet)``, the identity used by caches and logs.
        predicted: the accuracy predictor's value of the objective before evaluation, when one was fitted.
    """

    subnet: SubnetConfig
    metrics: Mapping[str, float]
    costs: Mapping[str, float]
    generation: int
    key: str = field(default="", compare=False)
    predicted: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", str(self.subnet))

    def value(self, name: str) -> float:
        """A metric (looked up first) or a cost by name.

        Raises:
            KeyError: neither the metrics nor the costs hold ``name``.
        """
        if name in self.metrics:
            return self.metrics[name]
        if name in self.costs:
            return self.costs[name]
        raise KeyError(f"candidate has no value {name!r}; it has {sorted({**self.costs, **self.metrics})}")

    def to_record(self) -> dict[str, Any]:
        """The JSON line of ``candidates.jsonl``: ``{"subnet", "metrics", "costs", "generation"}`` and
        ``"predicted"`` when the predictor scored it."""
        record = {"subnet": self.key, "metrics": dict(self.metrics), "costs": dict(self.costs)}
        record["generation"] = self.generation
        if self.predicted is not None:
            record["predicted"] = self.predicted
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any], space: SearchSpace) -> Candidate:
        """Inverse of :meth:`to_record`.

        Raises:
            SearchError: missing keys; ``SpaceError`` when the subnet string does not fit ``space``.
        """
        missing = sorted({"subnet", "metrics", "costs", "generation"} - set(record))
        if missing:
            raise SearchError(f"candidate record is missing {missing}: {dict(record)}")
        subnet = SubnetConfig.from_string(record["subnet"], space)
        predicted = record.get("predicted")
        return cls(
            subnet,
            dict(record["metrics"]),
            dict(record["costs"]),
            int(record["generation"]),
            record["subnet"],
            None if predicted is None else float(predicted),
        )
