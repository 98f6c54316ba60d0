"""The one interface every judge implements, and the registry that picks them by name.

A judge is built once from settings (load-then-call, as whisperX stages are) and then called on each
transcript. It declares which findings it produces so the flow can check that, together, the configured
judges cover every item of the result record.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.schema import Finding, Transcript


@runtime_checkable
class Judge(Protocol):
    name: str
    version: str
    produces: tuple[str, ...]  # finding items: "complaint_type", "script.greeting", ...

    def __call__(self, transcript: Transcript) -> list[Finding]: ...


def judge_many(judge: Judge, transcripts: Sequence[Transcript]) -> list[list[Finding]]:
    """Each transcript's findings. A judge that gains from seeing several at once (a model's forward pass)
    has a ``pipe`` method, as spaCy components do; the results are the same as calling it on each."""
    pipe = getattr(judge, "pipe", None)
    if callable(pipe):
        return list(pipe(transcripts))
    return [judge(t) for t in transcripts]


JudgeFactory = Callable[["Settings"], Judge]
_REGISTRY: dict[str, JudgeFactory] = {}


def register(name: str) -> Callable[[JudgeFactory], JudgeFactory]:
    def deco(factory: JudgeFactory) -> JudgeFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


# built-in judges by name → the module that registers them; imported only when chosen, so the rules judge
# never pays for torch
_BUILTIN = {"dead_air": "pipeline.judges.dead_air", "rules": "pipeline.judges.rules",
            "learned": "pipeline.judges.learned"}


def judge_names() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def get_judge(name: str, settings: Settings) -> Judge:
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        raise ConfigError("E051", name=name, known=", ".join(sorted(_REGISTRY)))
    return _REGISTRY[name](settings)
