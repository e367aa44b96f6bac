"""Which stages of a resumed run its changed settings reach (``sportpose train --resume``).

A stage is reached by a change to its own ``train.stages.<name>`` entry, to ``data`` or ``seed``, to a model
field its task reads, or by any stage it starts from (``after``) being reached. Model fields a task does not
read are the family's ``UNREAD_FIELDS[task]`` (e.g. STSP-Net's EPE pre-training reads none of GSR's or TMP's
settings or the 3D loss weights), so that retuning the lifter retrains the lifting stages, not the 2D one
they start from.
"""

from __future__ import annotations

from typing import Any

from sportpose.errors import SpecError
from sportpose.models import MODELS
from sportpose.spec.experiment import ExperimentSpec, stage_order


def check_resume(state: dict[str, Any], resolved: dict[str, Any], spec: ExperimentSpec,
                 rerun_changed: bool = False) -> list[str]:
    """Stages whose settings changed since the run being resumed, with everything downstream of them.

    Without ``rerun_changed`` a change that affects a finished stage is refused, naming the field.

    Raises:
        SpecError: naming the first changed field that affects a finished stage.
    """
    before = state["spec"]
    order = stage_order(spec.train.stages)
    unread = getattr(MODELS[spec.model.kind], "UNREAD_FIELDS", {})
    changed: set[str] = set()
    for key in ("data", "model", "seed"):
        if before.get(key) == resolved.get(key):
            continue
        fields = changed_fields(before.get(key), resolved.get(key), key)
        for name in order:
            ignored = {f"model.{k}" for k in unread.get(spec.train.stages[name].task, ())} if key == "model" else set()
            reaching = [f for f in fields if f not in ignored and not any(f.startswith(i + ".") for i in ignored)]
            if not reaching:
                continue
            if not rerun_changed and state["stages"].get(name, {}).get("status") == "finished":
                raise SpecError(reaching[0], f"changed since the run being resumed, whose finished stage {name!r} "
                                             "used the old value (resume with --resume=rerun-changed to retrain it)")
            changed.add(name)
    for name in order:
        old = before["train"]["stages"].get(name)
        if old != resolved["train"]["stages"][name]:
            if not rerun_changed and state["stages"].get(name, {}).get("status") == "finished":
                raise SpecError(changed_fields(old, resolved["train"]["stages"][name], f"train.stages.{name}")[0],
                                "changed since the run being resumed, and that stage is finished "
                                "(resume with --resume=rerun-changed to retrain it and the stages after it)")
            changed.add(name)
    for name in order:  # downstream of a changed stage
        if any(d in changed for d in spec.train.stages[name].after):
            changed.add(name)
    return [n for n in order if n in changed and n in state["stages"]]


def changed_fields(a: Any, b: Any, key: str) -> list[str]:
    """The dotted keys under ``key`` whose values differ between ``a`` and ``b``, in sorted order."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [f for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
                for f in changed_fields(a.get(k), b.get(k), f"{key}.{k}")]
    return [key]
