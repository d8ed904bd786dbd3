import os
import pickle

import pytest
import torch

from monai_ssl.checkpoint import (
    checkpoint_iteration,
    load_checkpoint,
    resumable_objects,
    resume_checkpoint,
    save_checkpoint,
)


def test_save_is_atomic_a_crash_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}}, str(path))

    def crash(obj, f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"model": {"w": torch.zeros(2)}}, str(path))
    assert torch.equal(load_checkpoint(str(path))["model"]["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["model.pt"]


def test_load_uses_weights_only(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("arbitrary code",))

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": Payload()}, str(path))
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(str(path))


def test_plain_state_dict_is_wrapped_and_bad_files_are_reported(tmp_path):
    torch.save({"w": torch.ones(1)}, str(tmp_path / "plain.pt"))
    assert set(load_checkpoint(str(tmp_path / "plain.pt"))) == {"model"}
    torch.save([1, 2], str(tmp_path / "list.pt"))
    with pytest.raises(ValueError, match="checkpoint dict"):
        load_checkpoint(str(tmp_path / "list.pt"))
    with pytest.raises(FileNotFoundError):
        load_checkpoint(str(tmp_path / "absent.pt"))


def test_resume_checkpoint_picks_the_highest_iteration(tmp_path):
    assert resume_checkpoint(str(tmp_path)) is None
    assert resume_checkpoint(str(tmp_path / "not_yet_created")) is None  # a first run with --resume true
    state = lambda iteration: {"model": {}, "trainer": {"epoch_length": 4, "iteration": iteration}}  # noqa: E731
    for epoch in (2, 30, 4):  # MONAI CheckpointSaver's names; "epoch=30" sorts before "epoch=4"
        save_checkpoint(state(4 * epoch), str(tmp_path / f"checkpoint_epoch={epoch}.pt"))
    assert resume_checkpoint(str(tmp_path)).endswith("checkpoint_epoch=30.pt")
    assert checkpoint_iteration(str(tmp_path / "checkpoint_epoch=30.pt")) == 120
    save_checkpoint(state(120), str(tmp_path / "pretext_checkpoint.pt"))  # the final state, same iteration
    assert resume_checkpoint(str(tmp_path)).endswith("pretext_checkpoint.pt")
    save_checkpoint({"w": torch.ones(1)}, str(tmp_path / "weights.pt"))
    assert checkpoint_iteration(str(tmp_path / "weights.pt")) == 0  # plain weights: no trainer state
    (tmp_path / "broken.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="broken.pt is not a readable PyTorch checkpoint"):
        resume_checkpoint(str(tmp_path / "broken.pt"))
    with pytest.raises(FileNotFoundError):
        resume_checkpoint(str(tmp_path / "absent.pt"))


def test_resumable_objects_leave_out_what_a_continuation_lacks(tmp_path, caplog):
    save_checkpoint({"model": {}, "heads": {}, "trainer": {}}, str(tmp_path / "c.pt"))
    wanted = {"model": 1, "heads": 2, "optimizer": 3, "trainer": 4, "random_states": 5}
    assert resumable_objects(wanted, str(tmp_path / "c.pt")) == {"model": 1, "heads": 2, "trainer": 4}
    assert "holds no optimizer, random_states: they start afresh" in caplog.text


@pytest.mark.parametrize("content", [b"", b"\x00" * 64 + b"random bytes, not a checkpoint"], ids=["empty", "random"])
def test_unreadable_files_name_the_file_and_never_suggest_weights_only_false(tmp_path, content):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as error:
        load_checkpoint(str(path))
    assert str(error.value) == f"{path} is not a readable PyTorch checkpoint (truncated or not a checkpoint)."
    assert "weights_only" not in str(error.value)


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint({"model": {"w": torch.ones(1000)}}, str(path))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="model.pt is not a readable PyTorch checkpoint"):
        load_checkpoint(str(path))


@pytest.mark.parametrize("trainer", [{"epoch_length": 4, "iteration": 12, "max_epochs": 3},
                                     {"epoch": 3, "iteration": 12}], ids=["ignite_state", "older_counters"])
def test_export_writes_a_plain_model_and_a_resumable_continuation(tmp_path, trainer):
    from ignite.engine import Engine
    from monai.handlers import CheckpointLoader

    from monai_ssl import PretextModel
    from monai_ssl.checkpoint import export_weights
    from monai_ssl.engine import pretext_save_dict
    from tests.helpers import small_unet

    model = PretextModel(small_unet(), ["rotation", "colorization"])
    source = {"model": model.network.state_dict(), "heads": model.heads.state_dict(), "config": model.config(),
              "optimizer": {"state": {}, "param_groups": []}, "trainer": trainer}
    save_checkpoint(source, str(tmp_path / "pretext_checkpoint.pt"))
    written = export_weights(str(tmp_path / "pretext_checkpoint.pt"), str(tmp_path / "out" / "model.pt"),
                             str(tmp_path / "out" / "continuation.pt"))
    plain = torch.load(written["model"], weights_only=True)
    assert all(torch.equal(plain[k], v) for k, v in model.network.state_dict().items())
    continuation = torch.load(written["continuation"], weights_only=True)
    assert set(continuation) == {"model", "heads", "config", "trainer"}
    assert continuation["trainer"] == {"epoch_length": 4, "iteration": 12, "max_epochs": 3}
    assert all(v.dtype == torch.float16 for v in continuation["heads"].values() if v.is_floating_point())
    # MONAI's loader resumes from it: counters restored, weights back in float32
    fresh = PretextModel(small_unet(seed=5), ["rotation", "colorization"])
    engine = Engine(lambda *_: None)
    engine.state.max_epochs = 10
    save_dict = pretext_save_dict(fresh, torch.optim.Adam(fresh.parameters()), engine)
    CheckpointLoader(written["continuation"], resumable_objects(save_dict, written["continuation"]))(engine)
    assert (engine.state.iteration, engine.state.epoch) == (12, 3)
    torch.testing.assert_close(fresh.network.state_dict(), model.network.state_dict(), rtol=1e-3, atol=1e-3)
