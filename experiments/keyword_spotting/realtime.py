"""Real-time check: the time to recognize one one-second clip on one CPU core, and the real-time factor.

    taskset -c 0 python experiments/keyword_spotting/realtime.py            # into scratch/ here; --out DIR
    taskset -c 0 python experiments/keyword_spotting/realtime.py --update   # overwrite the committed realtime.md

One clip at a time (batch 1), as a device listening to a microphone would: decode the
WAV file, compute its log-mel spectrogram and run the model on it, with one torch thread
(``taskset -c 0`` pins the process to one core). The model is the study's FedAvg model
of seed 0 (runs/fedavg/seed_0) when it has finished, else the same architecture freshly
initialized (the time does not depend on the weights); the clips are the test speakers'
of seed 0. Real-time factor = processing time / duration of the audio (1 s): below 1
keeps up with live audio. Both wall-clock and CPU time of the thread are reported (the
CPU time does not count waiting for a busy core).
"""

import platform
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from fedsim.compose import compose
from fedsim.instantiate import build
from fedsim.models import build_model
from fedsim.study import analysis_folder

HERE = Path(__file__).parent
RUN = HERE / "runs" / "fedavg" / "seed_0"
NUM_CLIPS, WARM_UP = 300, 30


def model_and_data():
    """The study's model (trained if its run finished) and the seed-0 keywords data."""
    from run import COMMON, METHODS  # the study's settings, next to this script

    cfg, _ = compose(*COMMON, *METHODS["fedavg"], "seed=0")
    data = build(cfg.dataset)
    model = build_model(cfg.model, data.input_shape, data.num_classes, seed=0)
    trained = (RUN / "model.pt").is_file() and (RUN / "status.yaml").is_file() and \
        OmegaConf.load(RUN / "status.yaml").status == "completed"
    if trained:
        model.load_state_dict(torch.load(RUN / "model.pt", weights_only=True))
    return model.eval(), data, trained


def processor() -> str:
    """The CPU's model name (Linux), else the machine type."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def timed(function, *args) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.thread_time() - cpu


def measure() -> dict:
    torch.set_num_threads(1)
    model, data, trained = model_and_data()
    rows = data.test.with_format("python")
    clips = [rows[i % len(rows)] for i in range(WARM_UP + NUM_CLIPS)]
    features = data.features
    times = {"features_wall": [], "features_cpu": [], "model_wall": [], "model_cpu": []}
    correct = 0
    with torch.inference_mode():
        for index, row in enumerate(clips):
            x, feature_wall, feature_cpu = timed(lambda r: torch.from_numpy(features([r["audio"]])), row)
            logits, model_wall, model_cpu = timed(model, x)
            if index < WARM_UP:
                continue
            correct += int(logits.argmax(dim=1).item() == row["label"])
            for name, value in (("features_wall", feature_wall), ("features_cpu", feature_cpu),
                                ("model_wall", model_wall), ("model_cpu", model_cpu)):
                times[name].append(value)
    medians = {name: float(np.median(values)) for name, values in times.items()}
    total_wall = np.array(times["features_wall"]) + np.array(times["model_wall"])
    total_cpu = np.array(times["features_cpu"]) + np.array(times["model_cpu"])
    return {
        **medians,
        "total_wall": float(np.median(total_wall)), "total_wall_p95": float(np.percentile(total_wall, 95)),
        "total_cpu": float(np.median(total_cpu)), "trained": trained, "accuracy": correct / NUM_CLIPS,
        "weights": sum(p.numel() for p in model.parameters()), "input_shape": data.input_shape,
    }


def markdown(result: dict) -> str:
    ms = {name: 1000 * value for name, value in result.items() if isinstance(value, float) and name != "accuracy"}
    model = "the FedAvg model of seed 0" if result["trained"] else "an untrained model of the same architecture"
    lines = [
        f"Real-time check: {NUM_CLIPS} one-second clips one at a time, one thread on one core "
        f"({processor()}), TC-ResNet8 ({result['weights']:,} weights, input "
        f"{result['input_shape']}), {model}.",
        "",
        "| step | median wall time (ms) | median CPU time (ms) |",
        "|---|---|---|",
        f"| decode WAV + log-mel spectrogram | {ms['features_wall']:.2f} | {ms['features_cpu']:.2f} |",
        f"| TC-ResNet8 forward pass | {ms['model_wall']:.2f} | {ms['model_cpu']:.2f} |",
        f"| total per clip | {ms['total_wall']:.2f} (95th percentile {ms['total_wall_p95']:.2f}) | {ms['total_cpu']:.2f} |",
        "",
        f"Real-time factor (total time per clip / 1 s of audio): {result['total_wall']:.4f} by the wall clock, "
        f"{result['total_cpu']:.4f} in CPU time: about {1 / result['total_wall']:.0f} clips a second on one core.",
    ]
    if result["trained"]:
        lines.append(f"Accuracy on these clips (the test speakers'): {100 * result['accuracy']:.1f}%.")
    return "\n".join(lines) + "\n"


def main() -> None:
    out = analysis_folder(HERE, __doc__.splitlines()[0])
    text = markdown(measure())
    (out / "realtime.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
