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
    assert task.transform().transforms[-1] is task.task_transform
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
