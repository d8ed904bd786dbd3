"""A bundle run redirected to a log file: no progress-bar carriage returns, nothing logged twice, no third-party
warnings that do not concern the user."""

import re

from tests.helpers import PRETRAINING, TINY_PRETRAINING, bundle_command, outputs, run_cli


def test_a_redirected_pretraining_log_is_quiet(tmp_path):
    result = run_cli(bundle_command(str(PRETRAINING / "train.json"), {**TINY_PRETRAINING, **outputs(tmp_path)}),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "\r" not in log  # the tqdm bar is drawn on a terminal only
    for noise in ("nvImageCodec", "Current default value of argument", "Warning"):
        assert noise not in log, noise
    messages = [re.sub(r"^[\d\- :,]+ - ", "", line) for line in log.splitlines() if line.strip()]
    repeated = {m for m in messages if messages.count(m) > 1}
    assert repeated == set()
    assert any("Epoch: 1/1, Iter: 2/2" in m for m in messages)  # the losses are still logged
