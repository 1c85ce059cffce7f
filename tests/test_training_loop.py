"""The loop on a toy objective: resume after Ctrl-C or after a finished epoch gives the same numbers."""

import signal

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from ssinfnet.data.augment import make_augmentation
from ssinfnet.training import distributed, loop
from ssinfnet.training.lookahead import Lookahead
from ssinfnet.training.runs import RunDir

CPU = distributed.Context(0, 1, torch.device("cpu"))


class Points(Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(20, 3, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class ToyRegression:
    """Linear regression with dropout-like noise (uses the global RNG, so RNG handling matters)."""

    batch_size = 4
    augment = None

    def __init__(self, stop_at: int | None = None):
        torch.manual_seed(1)
        self.model = torch.nn.Linear(3, 1)
        self.modules = {"model": self.model}
        self.optimizers = {"opt": Lookahead(torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9))}
        self.data = Points()
        self.stop_at = stop_at
        self.steps = 0
        self.saved_best = 0

    def dataset(self, epoch):
        return self.data

    def phase(self, epoch):
        return "toy"

    def train_step(self, batch, nets, epoch, progress):
        self.steps += 1
        if self.steps == self.stop_at:
            raise KeyboardInterrupt
        noise = 0.01 * torch.randn(len(batch["y"]))
        return loop.Step(((nets["model"](batch["x"]).squeeze(1) - batch["y"] - noise) ** 2).mean(), "opt")

    def end_epoch(self, epoch, run):
        with torch.no_grad():
            error = ((self.model(self.data.x).squeeze(1) - self.data.y) ** 2).mean()
        return {"val_mse": float(error), "score": -float(error)}

    def save_best(self, run):
        self.saved_best += 1


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_epoch_batches_cover_data_and_split_across_ranks():
    single = loop.epoch_batches(10, 4, seed=0, epoch=0, ctx=CPU)
    assert sorted(i for b in single for i in b) == list(range(10))
    assert single == loop.epoch_batches(10, 4, seed=0, epoch=0, ctx=CPU)
    assert single != loop.epoch_batches(10, 4, seed=0, epoch=1, ctx=CPU)
    ranks = [loop.epoch_batches(7, 2, 0, 0, distributed.Context(r, 2, torch.device("cpu"))) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])  # DDP needs the same number of steps on every rank
    assert set(i for r in ranks for b in r for i in b) == set(range(7))  # 7 padded to 8: one sample twice
    assert loop.epoch_batches(5, 2, 0, 0, CPU)[-1] != [0] and all(len(b) > 1 for b in loop.epoch_batches(5, 2, 0, 0, CPU))


def test_interrupt_then_resume_matches_uninterrupted(tmp_path):
    straight = loop.fit(ToyRegression(), RunDir(tmp_path / "a"), CPU, epochs=4, seed=3, progress=False)
    assert straight[-1]["val_mse"] < straight[0]["val_mse"]

    run = RunDir(tmp_path / "b")
    with pytest.raises(loop.TrainingInterrupted) as stop:
        loop.fit(ToyRegression(stop_at=8), run, CPU, epochs=4, seed=3, progress=False)  # mid epoch 2
    assert (stop.value.epoch, stop.value.step) == (1, 2)
    resumed = loop.fit(ToyRegression(), run, CPU, epochs=4, seed=3, resume=True, progress=False)
    assert without_time(resumed) == without_time(straight)
    assert (run.path / "metrics.jsonl").read_text().count("\n") == 4


def test_resume_after_finished_epochs_and_best_checkpoint(tmp_path):
    straight = loop.fit(ToyRegression(), RunDir(tmp_path / "a"), CPU, epochs=3, seed=0, progress=False)
    run = RunDir(tmp_path / "b")
    loop.fit(ToyRegression(), run, CPU, epochs=1, seed=0, progress=False)
    objective = ToyRegression()
    resumed = loop.fit(objective, run, CPU, epochs=3, seed=0, resume=True, progress=False)
    assert without_time(resumed) == without_time(straight)
    assert objective.saved_best >= 1
    best = run.load("best")
    assert best["best"] == max(row["score"] for row in straight)


def test_stop_at_ends_after_the_first_epoch_reaching_the_target_and_stays_finished_on_resume(tmp_path):
    full = loop.fit(ToyRegression(), RunDir(tmp_path / "full"), CPU, epochs=6, seed=0, progress=False)
    scores = [row["score"] for row in full]
    target = scores[2]  # validation error falls every epoch here, so epoch 3 is the first to reach it
    assert all(s < target for s in scores[:2])
    run = RunDir(tmp_path / "stop")
    stopped = loop.fit(ToyRegression(), run, CPU, epochs=6, seed=0, progress=False, stop_at=target)
    assert without_time(stopped) == without_time(full[:3])
    assert run.load("best")["best"] == target  # the exported model is the epoch that reached the target
    again = loop.fit(ToyRegression(), run, CPU, epochs=6, seed=0, resume=True, progress=False, stop_at=target)
    assert len(again) == 3


class AugmentedPoints(Points):
    """Points with a jitter drawn by the real training augmentation (its own random streams)."""

    def __init__(self, augment):
        super().__init__()
        self.augment = augment

    def __getitem__(self, i):
        image, _ = self.augment(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), np.zeros((8, 8), np.int64))
        return {**super().__getitem__(i), "jitter": torch.tensor(float(image.std()))}


class SignalledRegression(ToyRegression):
    """ToyRegression whose data goes through an augmentation, and which sends itself SIGINT (a real
    Ctrl-C) ``signals`` times in the middle of step ``signal_at``: after the loss, before the loop's update."""

    def __init__(self, signal_at: int | None = None, signals: int = 1, signal_in_validation: int | None = None):
        super().__init__()
        self.augment = make_augmentation(0)
        self.data = AugmentedPoints(self.augment)
        self.signal_at, self.signals, self.signal_in_validation = signal_at, signals, signal_in_validation

    def train_step(self, batch, nets, epoch, progress):
        self.steps += 1
        noise = 0.01 * torch.randn(len(batch["y"]))
        loss = ((nets["model"](batch["x"]).squeeze(1) - batch["y"] - noise - batch["jitter"]) ** 2).mean()
        if self.steps == self.signal_at:
            for _ in range(self.signals):
                signal.raise_signal(signal.SIGINT)
        return loop.Step(loss, "opt")

    def end_epoch(self, epoch, run):
        if epoch == self.signal_in_validation:
            signal.raise_signal(signal.SIGINT)
        return super().end_epoch(epoch, run)


def fit_signalled(run, resume=False, **kwargs):
    objective = SignalledRegression(**kwargs)
    history = loop.fit(objective, run, CPU, epochs=4, seed=3, resume=resume, progress=False)
    return history, objective.model.state_dict()


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_inside_a_step_stops_after_it_and_resumes_bit_identical(tmp_path):
    straight, weights = fit_signalled(RunDir(tmp_path / "a"))
    run = RunDir(tmp_path / "b")
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(loop.TrainingInterrupted) as stop:
        fit_signalled(run, signal_at=8)  # step 3 of epoch 2 (5 steps per epoch)
    assert signal.getsignal(signal.SIGINT) is handler  # the loop's handler is gone again
    assert stop.value.saved and (stop.value.epoch, stop.value.step) == (1, 3)  # the step finished, then stopped
    assert (run.load("last")["epoch"], run.load("last")["step"]) == (1, 3)
    resumed, resumed_weights = fit_signalled(run, resume=True)
    assert without_time(resumed) == without_time(straight)
    assert same_weights(resumed_weights, weights)


def test_second_ctrl_c_stops_at_once_without_saving_a_half_step(tmp_path):
    straight, weights = fit_signalled(RunDir(tmp_path / "a"))
    run = RunDir(tmp_path / "b")
    with pytest.raises(loop.TrainingInterrupted) as stop:
        fit_signalled(run, signal_at=8, signals=2)
    assert not stop.value.saved and "not saved" in str(stop.value)
    assert (run.load("last")["epoch"], run.load("last")["step"]) == (1, 0)  # the end of epoch 1 is kept
    resumed, resumed_weights = fit_signalled(run, resume=True)
    assert without_time(resumed) == without_time(straight) and same_weights(resumed_weights, weights)


def test_ctrl_c_during_validation_stops_after_the_epoch_checkpoint(tmp_path):
    straight, weights = fit_signalled(RunDir(tmp_path / "a"))
    run = RunDir(tmp_path / "b")
    with pytest.raises(loop.TrainingInterrupted) as stop:
        fit_signalled(run, signal_in_validation=1)
    assert stop.value.saved and (stop.value.epoch, stop.value.step) == (2, 0)
    assert (run.path / "metrics.jsonl").read_text().count("\n") == 2
    resumed, resumed_weights = fit_signalled(run, resume=True)
    assert without_time(resumed) == without_time(straight) and same_weights(resumed_weights, weights)
