import logging

import pytest

from monai_ssl import PretextModel
from monai_ssl.engine import TrainingConfig
from tests.helpers import small_unet


def relative_position_model(**args):
    return PretextModel(small_unet(), [{"name": "rotation", "args": {}}, {"name": "relative_position", "args": args}])


def test_resuming_other_tasks_names_the_tasks_to_resume_with():
    saved = TrainingConfig(PretextModel(small_unet(), ["rotation"])).state_dict()
    with pytest.raises(ValueError, match=r"trained on tasks \['rotation'\], this run has \['rotation', "
                                         r"'relative_position'\]; resume with --tasks"):
        TrainingConfig(relative_position_model(patch_size=8)).load_state_dict(saved)


def test_changed_task_arguments_are_logged(caplog):
    saved = TrainingConfig(relative_position_model(patch_size=8, fit_all_neighbours=True)).state_dict()
    del saved["tasks"][1]["args"]["jitter"]  # as in a checkpoint written before the argument was recorded
    with caplog.at_level(logging.INFO, logger="monai_ssl.engine"):
        TrainingConfig(relative_position_model(patch_size=12)).load_state_dict(saved)
    lines = [r.getMessage() for r in caplog.records if "changed arguments" in r.getMessage()]
    assert lines == ["resuming task 'relative_position' with changed arguments: fit_all_neighbours True -> False, "
                     "jitter '(not recorded)' -> 2, patch_size 8 -> 12"]
    caplog.clear()
    same = relative_position_model(patch_size=8, fit_all_neighbours=True)
    with caplog.at_level(logging.INFO, logger="monai_ssl.engine"):
        TrainingConfig(same).load_state_dict(TrainingConfig(same).state_dict())
    assert "changed arguments" not in caplog.text
