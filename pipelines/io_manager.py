"""Asset values stored as JSON records (``pipelines/types.py``), so loading a stored value never runs code.

One file per asset under ``base_dir``: ``{"type": "<Record class>", "value": {...}}``, written atomically.
A missing, unreadable or hand-broken file fails with one line naming the file and the asset to re-run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
from pydantic import ValidationError

from pipelines.types import ASSET_TYPES, Record


class JsonRecordIOManager(dg.ConfigurableIOManager):
    base_dir: str

    def _path(self, key: dg.AssetKey) -> Path:
        return Path(self.base_dir).joinpath(*key.path).with_suffix(".json")

    def handle_output(self, context: dg.OutputContext, obj: Record | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, Record):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: asset values must be records, not {type(obj)}"
            )
        path = self._path(context.asset_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"type": type(obj).__name__, "value": obj.model_dump(mode="json")}, indent=2)
        )
        os.replace(tmp, path)
        context.add_output_metadata({"stored_value": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Record:
        key = context.asset_key
        path = self._path(key)
        name = key.to_user_string()
        if not path.is_file():
            raise dg.Failure(
                f"no stored value of {name} at {path}: materialize {name} first", allow_retries=False
            )
        try:
            doc = json.loads(path.read_text())
            return ASSET_TYPES[doc["type"]].model_validate(doc["value"])
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            raise dg.Failure(
                f"the stored value of {name} at {path} is not a valid record ({first}): re-materialize {name}",
                allow_retries=False,
            ) from None
