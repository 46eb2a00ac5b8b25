"""The training loop's bookkeeping: per-epoch windows, forecast, budget, target accuracy.

Worker side. :func:`make_callback` returns the Keras callback the worker passes to
``fit`` (last in the list, so that EarlyStopping has decided before it runs); the
arithmetic (:func:`forecast`, :func:`budget_decision`, :func:`target_reached`) is plain
Python so it is tested without TensorFlow.

Windows: ``epoch-1`` starts at fit's first callback; at the end of epoch k the window
is stopped and the next one started at once (``epoch-k+1``, or ``fit-end`` when the
training stops), so the windows partition the training scope exactly: per-epoch
energies plus fit-end add up to the training energy.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.schema import (
    BudgetRecord,
    BudgetSpec,
    EpochRecord,
    Forecast,
    TargetRecord,
    Window,
)

FORECAST_METHOD = (
    "set-up as measured + mean of the epochs so far x planned epochs + one validation "
    "pass (at the epochs' mean power) for the final evaluation; an upper bound when early "
    "stopping may end the training sooner")


def forecast(setup: Window | None, epochs: list[EpochRecord], epochs_planned: int,
             price: Callable[[float], float]) -> Forecast | None:
    """The run's time, energy and CO2 forecast from the epochs so far (None without energy).

    ``price`` turns kWh into kg CO2eq in the home region.
    """
    measured = [e for e in epochs if e.energy is not None]
    if not measured or setup is None or setup.energy is None:
        return None
    epoch_s = statistics.fmean(e.duration_s for e in measured)
    epoch_kwh = statistics.fmean(e.energy.energy_kwh for e in measured)  # type: ignore[union-attr]
    validation_s = statistics.fmean(e.validation_s for e in measured)
    power_kw = epoch_kwh / epoch_s * 3600 if epoch_s > 0 else 0.0
    evaluation_kwh = power_kw * validation_s / 3600
    duration = setup.duration_s + epoch_s * epochs_planned + validation_s
    energy = setup.energy.energy_kwh + epoch_kwh * epochs_planned + evaluation_kwh
    return Forecast(after_epoch=len(epochs), duration_s=duration, energy_kwh=energy,
                    co2_kg=price(energy), method=FORECAST_METHOD)


def budget_decision(budget: BudgetSpec, made: Forecast) -> BudgetRecord:
    """Whether the forecast exceeds the budget, and what the run does about it."""
    value = made.co2_kg if budget.unit == "kg" else made.energy_kwh
    exceeded = value > budget.limit
    action = "none" if not exceeded else ("stopped" if budget.on_exceed == "stop" else "warned")
    return BudgetRecord(spec=budget, exceeded=exceeded, forecast_value=value, action=action)


def target_reached(target: float, epochs: list[EpochRecord],
                   price: Callable[[float], float]) -> TargetRecord:
    """Training time and energy until validation accuracy first reached ``target``.

    Epoch granularity: the figures run to the end of the first epoch whose validation
    accuracy is at least the target (its validation included).
    """
    elapsed_s = energy = 0.0
    complete = True
    for record in epochs:
        elapsed_s += record.duration_s
        if record.energy is None:
            complete = False
        else:
            energy += record.energy.energy_kwh
        if record.val_accuracy >= target:
            return TargetRecord(accuracy=target, reached=True, epoch=record.epoch,
                                duration_s=elapsed_s,
                                energy_kwh=energy if complete else None,
                                co2_kg=price(energy) if complete else None)
    return TargetRecord(accuracy=target, reached=False)


@dataclass
class LoopState:
    """What the training loop has produced so far; read when the results are written."""

    epochs: list[EpochRecord] = field(default_factory=list)
    train_begin: float | None = None
    """perf_counter at fit's first callback (the training scope's origin)."""
    first_step_s: float | None = None
    max_step_gap_s: float = 0.0
    forecast: Forecast | None = None
    budget: BudgetRecord | None = None
    over_budget: bool = False


def _finite(value: Any) -> float | None:
    """A Keras log value as a finite float, or None (missing, NaN, infinite)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def make_callback(*, state: LoopState, tracking: Any, epochs: int, process_start: float,
                  forecast_after: int, budget: BudgetSpec | None,
                  price: Callable[[float], float], on_history: Callable[[], None],
                  emit: Callable[..., None],
                  check_stop: Callable[[], None] = lambda: None) -> Any:
    """The Keras callback that records epochs, windows, forecast and budget.

    ``tracking`` is a :class:`harness.tracking.Tracking` (or None: no energy windows);
    ``process_start`` is the process's start on the time.time() clock; ``on_history``
    writes history.json; ``emit`` sends a progress event to the host; ``check_stop``
    raises if the worker was asked to stop (called after every step and epoch).
    """
    import keras

    class RunCallback(keras.callbacks.Callback):
        """Records history, windows and the longest gap between training steps.

        With ``steps_per_execution`` > 1 Keras calls the batch hooks once per execution
        (8 steps), so a gap is measured between executions, and ``first_step_s`` is the
        end of the first execution: both are upper bounds of the per-step figures. The
        time spent validating is not a gap; the epoch boundary around it is, and so is
        the end of fit.
        """

        def on_train_begin(self, logs: dict | None = None) -> None:
            state.train_begin = self.last_event = time.perf_counter()
            if tracking is not None:
                tracking.start_window("epoch-1")

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch_start = time.perf_counter()
            self._train_end: float | None = None

        def gap(self, now: float) -> None:
            state.max_step_gap_s = max(state.max_step_gap_s, now - self.last_event)
            self.last_event = now

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            check_stop()
            now = time.perf_counter()
            if state.first_step_s is None:
                state.first_step_s = time.time() - process_start
                self.last_event = now
            else:
                self.gap(now)

        def on_test_begin(self, logs: dict | None = None) -> None:
            self._train_end = time.perf_counter()
            self.gap(self._train_end)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            now = time.perf_counter()
            logs = logs or {}
            number = epoch + 1
            window = tracking.stop_window() if tracking is not None else None
            train_end = self._train_end or now
            record = EpochRecord(
                epoch=number,
                loss=_finite(logs.get("loss")),
                accuracy=_finite(logs.get("accuracy")) or 0.0,
                val_loss=_finite(logs.get("val_loss")),
                val_accuracy=_finite(logs.get("val_accuracy")) or 0.0,
                # The window starts where the previous one stopped (fit's first callback
                # for epoch 1), so durations add up to the training scope.
                duration_s=window.duration_s if window else now - self._epoch_start,
                train_s=train_end - self._epoch_start,
                validation_s=now - train_end,
                energy=window.energy if window else None,
            )
            if number == forecast_after:
                setup = tracking.windows[0] if tracking is not None and tracking.windows else None
                made = forecast(setup, [*state.epochs, record], epochs, price)
                if made is not None:
                    state.forecast = made
                    record = record.model_copy(update={"forecast": made})
                    emit(event="forecast", after_epoch=number, duration_s=made.duration_s,
                         energy_kwh=made.energy_kwh, co2_kg=made.co2_kg)
                    if budget is not None:
                        state.budget = budget_decision(budget, made)
                        if state.budget.exceeded:
                            emit(event="budget", action=state.budget.action,
                                 forecast=state.budget.forecast_value, limit=budget.limit,
                                 unit=budget.unit)
                            if budget.on_exceed == "stop":
                                state.over_budget = True
                                self.model.stop_training = True
            state.epochs.append(record)
            on_history()
            stopping = bool(getattr(self.model, "stop_training", False)) or number >= epochs
            if tracking is not None:
                tracking.start_window("fit-end" if stopping else f"epoch-{number + 1}")
            # The first step of the next epoch is measured from here, so a stall at
            # the epoch boundary (iterator teardown) counts as a gap.
            self.last_event = time.perf_counter()
            training_kwh = sum(e.energy.energy_kwh for e in state.epochs if e.energy)
            emit(event="epoch", epoch=number, epochs=epochs, accuracy=record.accuracy,
                 val_accuracy=record.val_accuracy, epoch_s=record.duration_s,
                 energy_kwh=training_kwh,
                 forecast_co2_kg=state.forecast.co2_kg if state.forecast else None)
            check_stop()

        def on_train_end(self, logs: dict | None = None) -> None:
            self.gap(time.perf_counter())

    return RunCallback()
