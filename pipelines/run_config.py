"""The GAN config as typed Dagster run config, derived from ganlib's schema (one schema, not two).

Each section of ``ganlib.config.GANConfig`` becomes a Dagster ``Config`` class whose fields mirror the
section's fields, all optional (unset = the value in ``configs/<name>.yaml``). Dagster checks keys, types
and enumerated values when a run is launched (Launchpad, CLI, schedule), and the Launchpad scaffolds the
fields with their descriptions; ganlib then validates ranges and cross-field rules.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Literal, Optional, Union

import dagster as dg
from pydantic import BaseModel, Field, create_model

from ganlib.config import GANConfig


def _enum(name: str, values: tuple[Any, ...]) -> type[enum.Enum]:
    return enum.Enum(name, {str(v): str(v) for v in values})


def _dagster_type(annotation: Any, name: str) -> Any:
    """A Dagster-config-compatible annotation for a ganlib field type (Dagster has no Literal or Union)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return _enum(name, args)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _dagster_type(rest[0], name)
        # e.g. ``bool | Literal["auto"]``: offered as the union's spelled-out values
        values: list[str] = []
        for a in rest:
            values += ["true", "false"] if a is bool else [str(v) for v in typing.get_args(a)]
        return _enum(name, tuple(values))
    if origin in (list, tuple):
        inner = args[0] if args else Any
        return list[_dagster_type(inner, name)]
    return annotation


def _section_config(section: str, model: type[BaseModel]) -> type[dg.Config]:
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        kind = _dagster_type(info.annotation, f"{section.title()}{key.title().replace('_', '')}")
        default = info.get_default(call_default_factory=True)
        shown = default.value if isinstance(default, enum.Enum) else default
        described = f"{info.description + '. ' if info.description else ''}File default: {shown!r}"
        fields[key] = (Optional[kind], Field(None, description=described))  # noqa: UP045 (dagster needs Optional)
    return create_model(f"{section.title()}Overrides", __base__=dg.Config, **fields)


SECTION_CONFIGS: dict[str, type[dg.Config]] = {
    name: _section_config(name, info.annotation)
    for name, info in GANConfig.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
}


def overrides_from(sections: dict[str, BaseModel | None]) -> dict[str, Any]:
    """The nested overrides that are set (not None), with Dagster enums back to ganlib's plain values."""
    out: dict[str, Any] = {}
    for name, section in sections.items():
        if section is None:
            continue
        values = {k: _plain(v) for k, v in section.model_dump().items() if v is not None}
        if values:
            out[name] = values
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        value = value.value
        return {"true": True, "false": False}.get(value, value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def run_config_for(name: str, assignments: list[str]) -> dict[str, Any]:
    """The Dagster run config for ``configs/<name>.yaml`` with ``KEY=VALUE`` overrides (the train CLI's
    ``--set`` syntax), validated by ganlib first so a bad value is named before anything launches."""
    from ganlib.config import load_config, parse_overrides

    overrides = parse_overrides(assignments)
    load_config(name, overrides, overrides_source="the overrides given")
    sections = {
        section: {key: _as_dagster(section, key, value) for key, value in values.items()}
        for section, values in overrides.items()
    }
    return {"resources": {"gan_config": {"config": {"name": name, **sections}}}}


def _as_dagster(section: str, key: str, value: Any) -> Any:
    """Booleans of an enumerated field (``bool | "auto"``) are spelled as the enum's strings."""
    annotation = SECTION_CONFIGS[section].model_fields[key].annotation
    enums = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, enum.Enum)]
    if enums and isinstance(value, bool):
        return "true" if value else "false"
    return value


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.run_config [--config NAME] train.steps=3000 ...``: print the run config (YAML)
    for ``dagster job execute -c``; ``make run SET="train.steps=3000"`` uses it."""
    import argparse
    import sys

    import yaml

    from ganlib.config import ConfigError

    parser = argparse.ArgumentParser(prog="python -m pipelines.run_config", description=main.__doc__)
    parser.add_argument("--config", default="default", help="a name under configs/")
    parser.add_argument("assignments", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        print(yaml.safe_dump(run_config_for(args.config, args.assignments), sort_keys=False), end="")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
