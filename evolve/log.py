"""The search log in ``out_dir``: what lets a killed search resume without evaluating anything twice.

Files:

- ``search.json``: the space name and the full :class:`EvolveConfig`, written when the search starts.
- ``candidates.jsonl``: one line per evaluated subnet, ``{"subnet", "metrics", "costs", "generation"}``,
  appended and flushed as soon as the evaluator returns.
- ``generations.jsonl``: one line per completed generation: its summary and the searcher's population
  (subnet strings, in order). A generation without a line here is incomplete and is rerun on resume.

A line cut short by a kill is dropped (and cut from the file) when the log is reopened.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from evolve.candidate import Candidate
from evolve.config import EvolveConfig
from evolve.errors import SearchError
from evolve.results import GenerationSummary
from search_space import SearchSpace

logger = logging.getLogger(__name__)

SETTINGS_FILE = "search.json"
CANDIDATES_FILE = "candidates.jsonl"
GENERATIONS_FILE = "generations.jsonl"


@dataclass
class LoggedSearch:
    """What a log holds: every logged candidate (file order) and the records of completed generations."""

    candidates: list[Candidate] = field(default_factory=list)
    generations: list[dict[str, Any]] = field(default_factory=list)


def load_candidates(path: str | Path, space: SearchSpace) -> list[Candidate]:
    """Read ``candidates.jsonl`` (a cut-off last line is ignored).

    Raises:
        SearchError: a malformed line before the last; ``SpaceError`` for a subnet outside ``space``.
    """
    return [Candidate.from_record(record, space) for record in _read_jsonl(Path(path), repair=False)]


class SearchLog:
    """Appends candidates and generation records to ``out_dir``; on resume, reads what is there first.

    Args:
        out_dir: the search's output folder (created if missing).
        space: the space searched (subnet strings are parsed against it).
        config: the search settings; a resumed log must have been written with the same ones
            (``generations`` may differ).
        resume: continue the log in ``out_dir``; without it, an ``out_dir`` that already holds a log is an error.

    Raises:
        SearchError: an existing log without ``resume``, a log of another space or other settings, or a
            corrupt log.
    """

    def __init__(self, out_dir: str | Path, space: SearchSpace, config: EvolveConfig, resume: bool):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.logged = LoggedSearch()
        settings = self.out_dir / SETTINGS_FILE
        exists = any((self.out_dir / name).exists() for name in (SETTINGS_FILE, CANDIDATES_FILE, GENERATIONS_FILE))
        if exists and not resume:
            raise SearchError(
                f"{self.out_dir} already holds a search log; resume it (resume=True, --resume) or choose a new out_dir"
            )
        if exists:
            self._check_settings(settings, space, config)
            self.logged = LoggedSearch(
                [Candidate.from_record(r, space) for r in _read_jsonl(self.out_dir / CANDIDATES_FILE, repair=True)],
                _read_jsonl(self.out_dir / GENERATIONS_FILE, repair=True),
            )
            logger.info(
                "resuming %s: %d logged candidates, %d completed generations",
                self.out_dir,
                len(self.logged.candidates),
                len(self.logged.generations),
            )
        else:
            settings.write_text(json.dumps({"space": space.name, "config": config.to_dict()}, indent=2) + "\n")
        self._candidates: IO[str] = open(self.out_dir / CANDIDATES_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._generations: IO[str] = open(self.out_dir / GENERATIONS_FILE, "a", encoding="utf-8")  # noqa: SIM115

    def append(self, candidates: Sequence[Candidate]) -> None:
        """Log freshly evaluated candidates, flushed at once."""
        for candidate in candidates:
            self._candidates.write(json.dumps(candidate.to_record()) + "\n")
        self._candidates.flush()

    def end_generation(self, summary: GenerationSummary, population: Sequence[Candidate]) -> None:
        """Mark ``summary.generation`` complete, recording the population the next generation breeds from."""
        record = {**summary.to_record(), "population": [c.key for c in population]}
        self._generations.write(json.dumps(record) + "\n")
        self._generations.flush()

    def close(self) -> None:
        self._candidates.close()
        self._generations.close()

    def __enter__(self) -> SearchLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_settings(self, settings: Path, space: SearchSpace, config: EvolveConfig) -> None:
        if not settings.exists():
            raise SearchError(f"{settings} is missing, so the log in {self.out_dir} cannot be resumed safely")
        try:
            saved = json.loads(settings.read_text())
            saved_config = EvolveConfig.from_dict(saved["config"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
            raise SearchError(
                f"{settings} is corrupt ({type(error).__name__}: {error}), so the log in {self.out_dir} cannot be "
                "resumed safely; start the search again with --overwrite, or in another directory"
            ) from None
        problems = []
        if saved.get("space") != space.name:
            problems.append(f"the log searched space {saved.get('space')!r}, this run space {space.name!r}")
        problems += saved_config.resume_mismatches(config)
        if problems:
            raise SearchError(
                [f"cannot resume {self.out_dir} with different settings (only generations may change):", *problems]
            )


def _read_jsonl(path: Path, repair: bool) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a cut-off last line is dropped (and, with ``repair``, cut from the file)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    records, keep_chars = [], 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            keep_chars += len(line) + 1
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):  # no newline after it: the write was cut by a kill
                logger.warning("%s: dropping a cut-off last line", path)
                break
            raise SearchError(f"{path}:{number} is not valid JSON ({err.msg}); fix or delete that line") from err
        keep_chars += len(line) + 1
    if repair:
        clean = text[: min(keep_chars, len(text))]
        if clean and not clean.endswith("\n"):
            clean += "\n"
        if clean != text:
            path.write_text(clean, encoding="utf-8")
    return records
