"""Which stages a resumed run's changed settings reach (pipelines.resume)."""

import pytest

from sportpose.errors import SpecError
from sportpose.pipelines.resume import changed_fields, check_resume
from sportpose.spec.experiment import load_spec, spec_to_dict
from tests.conftest import REPO


def _state(spec, statuses: dict[str, str]) -> dict:
    return {"parent_run_id": "0" * 32, "spec": spec_to_dict(spec),
            "stages": {name: {"status": status} for name, status in statuses.items()}}


def test_a_lifter_setting_reruns_the_lifting_stages_and_keeps_the_2d_one():
    spec = load_spec(REPO / "experiments" / "stsp_demo.yaml")
    done = _state(spec, {"epe": "finished", "lift": "finished", "full": "finished"})
    tuned = load_spec(REPO / "experiments" / "stsp_demo.yaml", ["model.gamma2_acc=50", "model.tmp_dim=32"])
    assert check_resume(done, spec_to_dict(tuned), tuned, rerun_changed=True) == ["lift", "full"]
    with pytest.raises(SpecError, match="model.gamma2_acc.*finished stage 'lift'"):
        check_resume(done, spec_to_dict(tuned), tuned)
    # only EPE finished: the lifter's settings may change without --resume=rerun-changed
    early = _state(spec, {"epe": "finished", "lift": "running"})
    assert check_resume(early, spec_to_dict(tuned), tuned) == ["lift"]
    # EPE's own training setting reaches the 2D stage, and through `after` everything downstream
    epe = load_spec(REPO / "experiments" / "stsp_demo.yaml", ["model.alpha_smooth=0.5"])
    assert check_resume(done, spec_to_dict(epe), epe, rerun_changed=True) == ["epe", "lift", "full"]
    with pytest.raises(SpecError, match="model.alpha_smooth.*finished stage 'epe'"):
        check_resume(early, spec_to_dict(epe), epe)


def test_a_family_without_unread_fields_reruns_every_stage_on_a_model_change():
    spec = load_spec(REPO / "experiments" / "multistream_demo.yaml")
    done = _state(spec, {name: "finished" for name in spec.train.stages})
    changed = load_spec(REPO / "experiments" / "multistream_demo.yaml", ["model.dropout=0.3"])
    assert changed_fields(spec_to_dict(spec)["model"], spec_to_dict(changed)["model"], "model") == ["model.dropout"]
    assert check_resume(done, spec_to_dict(changed), changed, rerun_changed=True) == list(spec.train.stages)
