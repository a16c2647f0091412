"""A small live plot of the training loss and the held-out score (matplotlib in Qt)."""

from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy

LABEL_SIZE = 8  # points: the smallest text on the plot, readable at the dock's size


class TrainingPlot(FigureCanvasQTAgg):
    """Loss (left axis) and validation score (right axis, 0-1) against the step.

    A dashed line marks the parent's held-out score, so the user sees at a
    glance whether training has beaten the model it started from.

    Redraws are rate-limited so hundreds of steps cannot flood the event loop.
    """

    def __init__(self, min_interval: float = 0.3) -> None:
        figure = Figure(figsize=(3.2, 1.3), layout="constrained")
        super().__init__(figure)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(125)
        self._min_interval = min_interval
        self._last_draw = 0.0
        self.loss_axes = figure.add_subplot()
        self.score_axes = self.loss_axes.twinx()
        self.loss_axes.set_xlabel("step", fontsize=LABEL_SIZE)
        self.loss_axes.set_ylabel("loss", fontsize=LABEL_SIZE, color="tab:blue")  # the colour says which is the line
        self.set_score_name("")
        self.loss_axes.set_xlim(0, 1)
        self.loss_axes.set_ylim(0, 1)
        self.score_axes.set_ylim(-0.05, 1.05)  # a score of 0 or 1 stays inside the frame
        for axes in (self.loss_axes, self.score_axes):
            axes.tick_params(labelsize=LABEL_SIZE)
        (self.loss_line,) = self.loss_axes.plot([], [], color="tab:blue", lw=1)
        (self.score_line,) = self.score_axes.plot([], [], "o-", color="tab:orange", ms=4, lw=1, clip_on=False,
                                                  zorder=3)
        # unclipped, the dots' line would count in the constrained layout, which then shrank the axes at every
        # redraw until the plot was a sliver (with no dots yet); the dots lie inside the axes anyway
        self.score_line.set_in_layout(False)
        # the parent's held-out score: dots above this line are what can replace it
        self.parent_line = self.score_axes.axhline(0, color="tab:orange", ls="--", lw=1, visible=False)
        self.parent_text = self.score_axes.text(0.01, 0, "parent", transform=self.score_axes.get_yaxis_transform(),
                                                fontsize=LABEL_SIZE, color="tab:orange", va="bottom", visible=False)
        self.parent: float | None = None
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.score_steps: list[int] = []
        self.scores: list[float] = []

    def set_score_name(self, name: str) -> None:
        """Say on the axis what the dots are ("AP50-90", "mean IoU"; "": not known yet)."""
        # two short lines, in the dots' colour: a longer label runs past the plot's edge ("held-out (dot")
        self.score_axes.set_ylabel(f"held-out\n{name or 'score'}", fontsize=LABEL_SIZE, color="tab:orange")

    def set_parent(self, score: float | None) -> None:
        """Draw the starting model's held-out score as a dashed line (None: no line)."""
        if score == self.parent:
            return
        self.parent = score
        for artist in (self.parent_line, self.parent_text):
            artist.set_visible(score is not None)
        if score is not None:
            self.parent_line.set_ydata([score, score])
            self.parent_text.set_y(score)
            self.parent_text.set_va("bottom" if score < 0.6 else "top")  # inside the frame, whatever the score
            self.parent_text.set_text(f"parent {score:.2f}")
        self._update(force=True)

    def clear(self) -> None:
        self.steps, self.losses, self.score_steps, self.scores = [], [], [], []
        self.set_score_name("")  # the last run's score name is not this run's
        self.set_parent(None)
        self._update(force=True)

    def add(self, step: int, loss: float | None = None, score: float | None = None) -> None:
        if loss is not None:
            self.steps.append(step)
            self.losses.append(loss)
        if score is not None:
            self.score_steps.append(step)
            self.scores.append(score)
        self._update(force=score is not None)

    def _update(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < self._min_interval:
            return
        self._last_draw = now
        self.loss_line.set_data(self.steps, self.losses)
        self.score_line.set_data(self.score_steps, self.scores)
        if self.steps:  # the axis follows the loss (a class model's starts above 1); set_ylim ends autoscaling
            self.loss_axes.set_ylim(0, 1.05 * max(max(self.losses), 1e-3))
        if self.steps or self.score_steps:
            last = max(self.steps[-1:] + self.score_steps[-1:] + [1])
            self.loss_axes.set_xlim(-0.03 * last, 1.03 * last)  # dots at the first and last step stay visible
        self.draw_idle()
