"""The one interface every judge implements, and the registry that picks them by name.

A judge is built once from settings (load-then-call, as whisperX stages are) and then called on each
transcript. It declares which findings it produces so the flow can check that, together, the configured
judges cover every item of the result record.
"""

from __future__ import annotations

from collections.abc import Callable
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


JudgeFactory = Callable[["Settings"], Judge]
_REGISTRY: dict[str, JudgeFactory] = {}


def register(name: str) -> Callable[[JudgeFactory], JudgeFactory]:
    def deco(factory: JudgeFactory) -> JudgeFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_builtin() -> None:
    # importing the modules registers them; kept lazy so a judge's heavy imports load only when chosen
    from pipeline.judges import dead_air, rules  # noqa: F401


def judge_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_judge(name: str, settings: Settings) -> Judge:
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError("E051", name=name, known=", ".join(sorted(_REGISTRY)))
    return _REGISTRY[name](settings)
