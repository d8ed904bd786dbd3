"""Fine-tuning throughput on CPU: time of one training step of the segmentation bundle's network, loss and
optimizer, with the convolution weights stored channels-last (the bundle's ``channels_last``, on by default on CPU),
and channels-last with the forward pass under bf16 autocast (the bundle's ``bf16_autocast``, through
``monai_ssl.inferers.AutocastInferer``), against the contiguous float32 step, measured alternately in the same run.

The network, loss and optimizer are the segmentation bundle's (``network_def``, ``loss``, ``optimizer``), built
from ``configs/train.json`` with the label-efficiency benchmark's cpu preset: 2 input channels (FLAIR + T1c),
5 classes, batches of 2 volumes x 2 crops of 48^3. Inputs are random tensors with random labels: the step's cost
does not depend on the values. The whole fine-tuning run (data, metrics, validation) gains less; the bundle docs
give both.

Run: ``python benchmarks/fine_tuning_step.py [--steps 8] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monai.bundle import ConfigParser  # noqa: E402

from monai_ssl.bundle import place_network  # noqa: E402
from monai_ssl.inferers import AutocastInferer  # noqa: E402


def bundle_parts(channels: int, classes: int) -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer]:
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "brain_mri_segmentation" / "configs" / "train.json"))
    parser["in_channels"] = channels
    parser["label_names"] = {f"class{i}": i for i in range(classes)}
    parser["device"] = torch.device("cpu")
    return (parser.get_parsed_content("network_def"), parser.get_parsed_content("loss"),
            parser.get_parsed_content("optimizer"))


def seconds_per_step(network, inferer, loss, optimizer, image, label, steps: int) -> float:
    """Median seconds of ``steps`` training steps, after one untimed warm-up step."""
    times = []
    for index in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss(inferer(image, network), label).backward()
        optimizer.step()
        if index:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the three variants")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    network, loss, optimizer = bundle_parts(channels=2, classes=5)
    image = torch.randn(4, 2, 48, 48, 48)
    label = torch.randint(0, 5, (4, 1, 48, 48, 48))
    print(f"segmentation bundle UNet, batch {tuple(image.shape)}, {args.threads} threads, torch {torch.__version__}")
    # variant: (channels_last, bf16 autocast)
    variants = {"contiguous": (False, False), "channels_last": (True, False), "channels_last+bf16": (True, True)}
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (channels_last, bf16) in variants.items():
            network.to(memory_format=torch.contiguous_format)
            place_network(network, "cpu", channels_last=channels_last)
            inferer = AutocastInferer(device_type="cpu", dtype="bfloat16", enabled=bf16)
            timings[name].append(seconds_per_step(network, inferer, loss, optimizer, image, label, args.steps))
    baseline = statistics.median(timings["contiguous"])
    for name, values in timings.items():
        seconds = statistics.median(values)
        print(f"{name:<20s} {seconds * 1e3:7.1f} ms/step  {baseline / seconds:5.2f}x contiguous "
              f"(rounds: {', '.join(f'{v * 1e3:.0f}' for v in values)} ms)")


if __name__ == "__main__":
    main()
