import pytest
from torch import nn

from monai_ssl.networks import get_adapter
from monai_ssl.tasks import ClassificationTask, PretextTask, create_task, list_tasks, register_task
from monai_ssl.tasks import registry
from monai_ssl.transforms import RandSliceRotationd
from tests.helpers import small_unet

EXPECTED_CLASSES = {"jigsaw": 100, "rotation": 10, "colorization": 0, "relative_position": 26}


def test_list_tasks_has_the_four_tasks_in_order():
    assert list_tasks()[:4] == ["jigsaw", "rotation", "colorization", "relative_position"]


@pytest.mark.parametrize("name", ["jigsaw", "rotation", "colorization", "relative_position"])
def test_create_task_ties_transform_head_loss_and_classes(name):
    task = create_task(name)
    assert isinstance(task, PretextTask) and task.name == name
    assert task.num_classes == EXPECTED_CLASSES[name]
    assert isinstance(task.loss, nn.Module)
    transform = task.transform().transforms[-1]  # a copy of its own: datasets never share random state
    assert type(transform) is type(task.task_transform) and transform is not task.task_transform
    assert isinstance(task.build_head(get_adapter(small_unet())), nn.Module)
    assert task.config()["name"] == name


def test_task_arguments_reach_the_transform():
    task = create_task("jigsaw", num_permutations=24, grid=(2, 2, 2), flip_axes=(0,))
    assert task.task_transform.permutations.shape == (24, 8)
    assert task.num_outputs == 24 + 8
    assert create_task("rotation", planes=[[0, 1]]).num_classes == 4
    assert create_task("relative_position", neighbours=6).num_classes == 6
    assert create_task("jigsaw", num_permutations=24).config()["args"]["num_permutations"] == 24


def test_unknown_task_lists_the_available_ones():
    with pytest.raises(ValueError, match="available tasks: jigsaw, rotation, colorization, relative_position"):
        create_task("inpainting")


def test_adding_a_task_is_one_registered_class():
    @register_task
    class FlipTask(ClassificationTask):
        name = "test_flip"

        def __init__(self, source_key="image", **kwargs):
            super().__init__(source_key, **kwargs)
            self.task_transform = RandSliceRotationd(keys=self.input_key, label_key=self.label_key, planes=((0, 1),))
            self.num_classes = 4
            self.loss = nn.CrossEntropyLoss()

    try:
        assert "test_flip" in list_tasks()
        assert create_task("test_flip").num_classes == 4
        with pytest.raises(ValueError, match="already registered"):
            register_task(type("Other", (ClassificationTask,), {"name": "test_flip"}))
    finally:
        registry._TASKS.pop("test_flip")


def test_setup_checks_live_on_the_task_so_a_new_task_is_never_skipped():
    """check_pretext_setup asks every task, including one registered outside the package; a task that says
    nothing about its needs is an error, not a silent pass."""
    from monai_ssl import PretextModel
    from monai_ssl.bundle import check_pretext_setup
    from tests.helpers import small_unet

    class NeedsLargeCrops(ClassificationTask):
        name = "test_needs_large_crops"

        def __init__(self, source_key="image", **kwargs):
            super().__init__(source_key, **kwargs)
            self.task_transform = RandSliceRotationd(keys=self.input_key, label_key=self.label_key, planes=((0, 1),))
            self.num_classes = 4
            self.loss = nn.CrossEntropyLoss()

        def check_setup(self, roi_size, adapter):
            if min(roi_size) < 48:
                raise ValueError(f"test_needs_large_crops needs roi_size >= 48, got {list(roi_size)}")

    class SaysNothing(NeedsLargeCrops):
        name = "test_says_nothing"
        check_setup = PretextTask.check_setup

    for task in (NeedsLargeCrops, SaysNothing):
        register_task(task)
    try:
        model = PretextModel(small_unet(), ["test_needs_large_crops"])
        check_pretext_setup(model, (48, 48, 48))
        with pytest.raises(ValueError, match="needs roi_size >= 48"):
            check_pretext_setup(model, (32, 32, 32))
        with pytest.raises(NotImplementedError, match="does not define check_setup"):
            check_pretext_setup(PretextModel(small_unet(), ["test_says_nothing"]), (48, 48, 48))
    finally:
        for task in (NeedsLargeCrops, SaysNothing):
            registry._TASKS.pop(task.name)
