"""What a run writes for people and scripts: a text log, ``metrics.jsonl`` and tensorboard scalars (rank 0)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter


class RunLog:
    """Writers of one run directory; every method is a no-op on processes other than rank 0."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.run_dir = run_dir
        self.writer: SummaryWriter | None = None
        self.handler: logging.Handler | None = None
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            self.handler = logging.FileHandler(run_dir / "train.log")
            self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(self.handler)
            logging.getLogger().setLevel(logging.INFO)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``metrics.jsonl``."""
        if self.enabled:
            with open(self.run_dir / "metrics.jsonl", "a") as file:
                file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
            self.handler.close()
