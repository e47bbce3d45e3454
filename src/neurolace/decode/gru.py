"""A small recurrent decoder: a GRU over binned features (torch, CPU).

Recurrent networks are the strongest offline decoders of motor cortex in the
comparison of Glaser et al. 2020 (eNeuro 7:ENEURO.0506-19.2020), and a GRU
drove the handwriting BCI of Willett et al. 2021 (Nature 593:249). This one
is deliberately small (one layer, 64-128 units) so ``step`` stays well under a
millisecond on one CPU thread.

Training: features and kinematics are standardised; the network runs over
random contiguous windows of the first ``1 - validation_fraction`` of the
training bins; the loss ignores the first ``burn_in_bins`` of every window,
so the network learns to work from a hidden state that has already seen
data, as it does when decoding continuously (except in windows that start a
segment: there the zero state is the one ``predict`` starts from, so every
bin counts). Adam, early stopping on the
mean-squared error of the last ``validation_fraction`` of the bins (contiguous,
never shuffled), keeping the best epoch. Optional augmentations of the
training windows: white and constant-offset feature noise, and time warp
(:func:`time_warp_windows`: a window replayed faster or slower, its velocity
scaled by the same rate). Everything is seeded by ``seed``
inside :func:`torch.random.fork_rng`, so the global torch RNG is untouched.

torch is an optional dependency (``pip install neurolace[torch]``) and is
imported only inside ``fit``. Decoding runs the trained weights with numpy
(:func:`gru_forward`, the equations of :class:`torch.nn.GRU`), so a fitted
decoder pickles without torch and ``step`` has no framework overhead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurolace.core.checks import check_in, check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.decode.base import BaseDecoder

__all__ = ["CONFIGURATIONS", "GRUDecoder", "gru_forward", "time_warp_windows"]


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "GRUDecoder needs torch; install the optional extra: pip install 'neurolace[torch]'"
        ) from error
    return torch


def _build_network(
    torch: Any, n_features: int, n_dims: int, hidden_size: int, n_layers: int, dropout: float
) -> Any:
    class _Network(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input_dropout = torch.nn.Dropout(dropout)
            self.recurrent = torch.nn.GRU(n_features, hidden_size, num_layers=n_layers, batch_first=True)
            self.readout = torch.nn.Linear(hidden_size, n_dims)

        def forward(self, features: Any, hidden: Any = None) -> tuple[Any, Any]:
            states, hidden = self.recurrent(self.input_dropout(features), hidden)
            return self.readout(states), hidden

    return _Network()


#: configurations ``(hidden_size, dropout)`` tried when both are "auto"; the two of the earlier offline
#: benchmark's grid that differed in size and regularisation (the third, shorter windows, never won)
CONFIGURATIONS = ((96, 0.25), (128, 0.4))

_TRAINED = ("layers_", "readout_weight_", "readout_bias_", "n_epochs_", "best_epoch_", "validation_loss_")


def time_warp_windows(
    features: np.ndarray,
    velocity: np.ndarray,
    starts: np.ndarray,
    rates: np.ndarray,
    last_index: np.ndarray,
    window_bins: int,
    velocity_zero: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample windows of a recording in time, features and velocity together.

    Window ``i`` reads the recording at the (fractional) bins
    ``t_k = starts[i] + rates[i] * k``, ``k = 0 .. window_bins - 1``, by linear
    interpolation between neighbouring bins: ``rates[i] > 1`` replays the same
    path faster, ``< 1`` slower. A path traversed ``r`` times faster has ``r``
    times the velocity, so the velocity is scaled about ``velocity_zero``:
    ``v'_k = zero + r (v(t_k) - zero)``. Bins past ``last_index[i]`` (the end of
    the window's segment) are not read: they repeat that bin and are marked
    invalid, for the caller to leave out of the loss (the network is causal, so
    they cannot change the valid bins' outputs). Time-warped training data is
    an augmentation of recurrent BCI decoders (the synthetic sentences of
    Willett et al. 2021, Nature 593:249); named for neurolace's GRU in issue 9
    after Sussillo et al. 2016 (Nat Commun 7:13749), who trained a recurrent
    decoder on perturbed data for robustness.

    Parameters
    ----------
    features : ndarray, shape (n_bins, n_features)
    velocity : ndarray, shape (n_bins, n_dims)
    starts : ndarray of int, shape (n_windows,)
        First bin of each window.
    rates : ndarray, shape (n_windows,)
        Tempo of each window (bins of the recording per output bin), > 0.
    last_index : ndarray of int, shape (n_windows,)
        Last bin each window may read (``>= starts``).
    window_bins : int
        Output length of every window.
    velocity_zero : float or ndarray, shape (n_dims,), default 0.0
        The value of zero velocity in ``velocity``'s units (``-mean / scale``
        for standardised velocity).

    Returns
    -------
    warped_features : ndarray, shape (n_windows, window_bins, n_features)
    warped_velocity : ndarray, shape (n_windows, window_bins, n_dims)
    valid : ndarray of bool, shape (n_windows, window_bins)
        Output bins that lie inside ``[starts, last_index]``.
    """
    starts = np.asarray(starts)
    rates = np.asarray(rates, dtype=np.float64)
    last = np.asarray(last_index)[:, np.newaxis]
    positions = starts[:, np.newaxis] + rates[:, np.newaxis] * np.arange(window_bins)
    valid = positions <= last + 1e-9
    positions = np.minimum(positions, last)
    lower = np.floor(positions).astype(np.intp)
    upper = np.minimum(lower + 1, last)
    weight = (positions - lower)[..., np.newaxis].astype(features.dtype)

    def interpolate(values: np.ndarray) -> np.ndarray:
        return values[lower] * (1 - weight) + values[upper] * weight

    zero = np.asarray(velocity_zero, dtype=velocity.dtype)
    scale = rates[:, np.newaxis, np.newaxis].astype(velocity.dtype)
    warped_velocity = zero + scale * (interpolate(velocity) - zero)
    return interpolate(features), warped_velocity, valid


def _configurations(hidden_size: Any, dropout: Any) -> list[tuple[int, float]]:
    """The ``(hidden_size, dropout)`` pairs to train: "auto" takes the values of :data:`CONFIGURATIONS`."""
    pairs = []
    for default_size, default_dropout in CONFIGURATIONS:
        size = default_size if isinstance(hidden_size, str) else hidden_size
        rate = default_dropout if isinstance(dropout, str) else dropout
        pairs.append((size, rate))
    for size, rate in pairs:
        if isinstance(hidden_size, str):
            check_in(hidden_size, "hidden_size", ("auto",))
        else:
            check_int(size, "hidden_size", minimum=1)
        if isinstance(dropout, str):
            check_in(dropout, "dropout", ("auto",))
        elif not 0 <= check_nonnegative(rate, "dropout") < 1:
            raise InvalidInputError(f"dropout must lie in [0, 1), got {rate}")
    return list(dict.fromkeys(pairs))


class GRUDecoder(BaseDecoder):
    """GRU decoder with early stopping on a contiguous validation split.

    Parameters
    ----------
    hidden_size : int or "auto", default "auto"
        GRU units. With ``dropout`` also "auto", the decoder trains each of
        :data:`CONFIGURATIONS` and keeps the one with the lowest validation loss
        (the last ``validation_fraction`` of the training bins); an explicit value
        replaces that setting in every configuration.
    n_layers : int, default 1
    window_bins : int, default 96
        Length of the training windows.
    burn_in_bins : int, default 16
        Bins at the start of each window left out of the loss.
    dropout : float or "auto", default "auto"
        Dropout on the (standardised) input features (see ``hidden_size``).
    learning_rate : float, default 3e-3
    weight_decay : float, default 1e-4
    batch_size : int, default 32
    max_epochs : int, default 80
        One epoch draws enough windows to cover the training bins once.
    patience : int, default 10
        Stop after this many epochs without a better validation loss.
    validation_fraction : float, default 0.15
        Last part of the training bins used for early stopping.
    input_noise_std : float, default 0.0
        Training augmentation: white Gaussian noise of this standard deviation
        (standardised feature units) added to every training bin.
    offset_noise_std : float, default 0.0
        Training augmentation: one Gaussian offset per training window and feature
        (a baseline shift). White and constant-offset noise are the two noise types
        Willett et al. 2021 (Nature 593:249) added to the features when training
        their recurrent handwriting decoder; their public speech-decoder baseline
        (Willett et al. 2023, Nature 620:1031) uses SD 0.8 and 0.2 on z-scored
        features (read from that code, not from the papers). Sussillo et al. 2016
        (Nat Commun 7:13749) trained on perturbed data for the same purpose,
        robustness to neural variability. Off by default: offline on the real M1
        sets they did not beat the un-augmented GRU clearly (docs/decoders.md).
    time_warp_max : float, default 0.0
        Training augmentation: each training window is replayed at a random tempo
        ``r``, log-uniform in ``[1 / (1 + time_warp_max), 1 + time_warp_max]``, its
        features and velocity resampled together and the velocity scaled by ``r``
        (:func:`time_warp_windows`); 0 switches it off (training is then exactly
        the un-warped one). Bins a fast window would read past the end of its
        segment are left out of the loss.
    feature_transform : {"none", "sqrt"}, default "sqrt"
    seed : int, default 0
    n_threads : int, default 1
        torch threads while training (restored afterwards). One thread is usually the
        fastest for a network this small and keeps training deterministic.
    guard : "auto", None or SignalGuard, default "auto"

    Attributes
    ----------
    layers_ : list of (weight_ih, weight_hh, bias_ih, bias_hh)
        Trained GRU weights per layer (numpy; decoding needs no torch).
    readout_weight_ : ndarray, shape (n_dims, hidden_size)
    readout_bias_ : ndarray, shape (n_dims,)
    n_epochs_ : int
        Epochs trained (including the patience epochs after the best one).
    best_epoch_ : int
    validation_loss_ : list of float
        Validation MSE (standardised units) after each epoch.
    hidden_size_, dropout_ : int, float
        The configuration kept.
    configuration_losses_ : list of float
        Best validation loss of each configuration tried.
    """

    def __init__(
        self,
        *,
        hidden_size: int | str = "auto",
        n_layers: int = 1,
        window_bins: int = 96,
        burn_in_bins: int = 16,
        dropout: float | str = "auto",
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 32,
        max_epochs: int = 80,
        patience: int = 10,
        validation_fraction: float = 0.15,
        input_noise_std: float = 0.0,
        offset_noise_std: float = 0.0,
        time_warp_max: float = 0.0,
        feature_transform: str = "sqrt",
        seed: int = 0,
        n_threads: int = 1,
        guard: Any = "auto",
    ) -> None:
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.window_bins = window_bins
        self.burn_in_bins = burn_in_bins
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.input_noise_std = input_noise_std
        self.offset_noise_std = offset_noise_std
        self.time_warp_max = time_warp_max
        self.feature_transform = feature_transform
        self.seed = seed
        self.n_threads = n_threads
        self.guard = guard

    def _fit_model(self, X: np.ndarray, y: np.ndarray, segments: list[tuple[int, int]]) -> None:
        torch = _import_torch()
        configurations = _configurations(self.hidden_size, self.dropout)
        n_layers = check_int(self.n_layers, "n_layers", minimum=1)
        window = check_int(self.window_bins, "window_bins", minimum=2)
        burn_in = check_int(self.burn_in_bins, "burn_in_bins", minimum=0, maximum=window - 1)
        learning_rate = check_positive(self.learning_rate, "learning_rate")
        weight_decay = check_nonnegative(self.weight_decay, "weight_decay")
        batch_size = check_int(self.batch_size, "batch_size", minimum=1)
        max_epochs = check_int(self.max_epochs, "max_epochs", minimum=1)
        patience = check_int(self.patience, "patience", minimum=1)
        fraction = check_nonnegative(self.validation_fraction, "validation_fraction")
        if not 0 < fraction < 1:
            raise InvalidInputError(f"validation_fraction must lie in (0, 1), got {fraction}")
        seed = check_int(self.seed, "seed", minimum=0)
        n_threads = check_int(self.n_threads, "n_threads", minimum=1)

        self.feature_mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.feature_scale_ = np.where(scale > 0, scale, 1.0)
        self.target_mean_ = y.mean(axis=0)
        target_scale = y.std(axis=0)
        self.target_scale_ = np.where(target_scale > 0, target_scale, 1.0)
        features = ((X - self.feature_mean_) / self.feature_scale_).astype(np.float32)
        targets = ((y - self.target_mean_) / self.target_scale_).astype(np.float32)
        n_bins = X.shape[0]
        n_validation = round(fraction * n_bins)
        split = n_bins - n_validation
        later_starts = [start for start, _ in segments if split <= start]
        if len(segments) > 1 and later_starts:
            split = later_starts[0]  # validate on whole segments
        if n_bins - split < 2 or split < 2:
            raise InvalidInputError(
                f"X has too few bins ({n_bins}) to split off a validation_fraction of {fraction}"
            )
        train_ranges = [(start, min(stop, split)) for start, stop in segments if start < split]
        validation = [(start, max(start, split), stop) for start, stop in segments if stop > split]
        window = min(window, max(stop - start for start, stop in train_ranges))
        burn_in = min(burn_in, window - 1)
        window_starts = np.concatenate(
            [np.arange(start, stop - window + 1) for start, stop in train_ranges if stop - start >= window]
        )
        # a window that starts a segment starts from the zero state, exactly as predict does there:
        # its first bins are scored too (with 31-bin trials, burn-in would otherwise hide half of each)
        fresh = np.isin(window_starts, [start for start, _ in train_ranges])
        input_noise = check_nonnegative(self.input_noise_std, "input_noise_std")
        offset_noise = check_nonnegative(self.offset_noise_std, "offset_noise_std")
        time_warp = check_nonnegative(self.time_warp_max, "time_warp_max")
        # the last bin each window may read: the end of its training range (a time-warped window
        # replaying faster reads further than window bins)
        range_stops = np.concatenate(
            [np.full(stop - start - window + 1, stop - 1) for start, stop in train_ranges if stop - start >= window]
        )
        velocity_zero = (-self.target_mean_ / self.target_scale_).astype(np.float32)

        previous_threads = torch.get_num_threads()
        torch.set_num_threads(n_threads)
        trained = []
        try:
            for hidden_size, dropout in configurations:
                self._train(
                    torch,
                    features,
                    targets,
                    (window_starts, fresh, sum(stop - start for start, stop in train_ranges)),
                    (input_noise, offset_noise),
                    (time_warp, range_stops, velocity_zero),
                    validation,
                    window,
                    burn_in,
                    seed,
                    hidden_size,
                    n_layers,
                    dropout,
                    learning_rate,
                    weight_decay,
                    batch_size,
                    max_epochs,
                    patience,
                )
                trained.append({name: getattr(self, name) for name in _TRAINED})
        finally:
            torch.set_num_threads(previous_threads)
        # the configuration with the lowest validation loss (training bins only) wins
        losses = [result["validation_loss_"][result["best_epoch_"]] for result in trained]
        best = int(np.argmin(losses))
        for name, value in trained[best].items():
            setattr(self, name, value)
        self.hidden_size_, self.dropout_ = configurations[best]
        self.configuration_losses_ = losses

    def _train(
        self,
        torch: Any,
        features: np.ndarray,
        targets: np.ndarray,
        windows: tuple[np.ndarray, np.ndarray, int],
        noise: tuple[float, float],
        warp: tuple[float, np.ndarray, np.ndarray],
        validation: list[tuple[int, int, int]],
        window: int,
        burn_in: int,
        seed: int,
        hidden_size: int,
        n_layers: int,
        dropout: float,
        learning_rate: float,
        weight_decay: float,
        batch_size: int,
        max_epochs: int,
        patience: int,
    ) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            sampler = np.random.default_rng(seed)
            network = _build_network(
                torch, features.shape[1], targets.shape[1], hidden_size, n_layers, dropout
            )
            optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate, weight_decay=weight_decay)
            train_x = torch.from_numpy(features)
            train_y = torch.from_numpy(targets)
            n_validation_values = sum(stop - first for _, first, stop in validation) * targets.shape[1]
            window_starts, fresh, n_train_bins = windows
            input_noise, offset_noise = noise
            time_warp, range_stops, velocity_zero = warp
            log_rate_max = float(np.log1p(time_warp))
            # enough windows per epoch to score every training bin about once (stacked short trials too)
            n_windows = int(np.ceil(n_train_bins / max(window - burn_in, 1)))
            scored = torch.ones(window_starts.size, window)
            scored[torch.from_numpy(~fresh), :burn_in] = 0.0
            offsets = torch.arange(window)
            best_loss, best_state, best_epoch, losses = np.inf, None, 0, []
            for epoch in range(max_epochs):
                network.train()
                chosen = sampler.integers(0, window_starts.size, size=n_windows)
                for batch_start in range(0, n_windows, batch_size):
                    batch = chosen[batch_start : batch_start + batch_size]
                    weight = scored[torch.from_numpy(batch)]
                    if time_warp > 0:
                        rates = np.exp(sampler.uniform(-log_rate_max, log_rate_max, size=batch.size))
                        warped_x, warped_y, valid = time_warp_windows(
                            features, targets, window_starts[batch], rates, range_stops[batch], window, velocity_zero
                        )
                        inputs, labels = torch.from_numpy(warped_x), torch.from_numpy(warped_y)
                        weight = weight * torch.from_numpy(valid)
                    else:
                        index = torch.from_numpy(window_starts[batch])[:, None] + offsets
                        inputs, labels = train_x[index], train_y[index]
                    if input_noise > 0:  # white noise on every bin of the standardised features
                        inputs = inputs + input_noise * torch.randn_like(inputs)
                    if offset_noise > 0:  # one constant offset per window and feature
                        inputs = inputs + offset_noise * torch.randn(inputs.shape[0], 1, inputs.shape[2])
                    predicted, _ = network(inputs)
                    squared = torch.sum((predicted - labels) ** 2, dim=2)
                    loss = torch.sum(weight * squared) / (torch.sum(weight) * targets.shape[1])
                    optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
                    optimizer.step()
                network.eval()
                with torch.no_grad():
                    squared_error = 0.0
                    for context, first, stop in validation:  # each from its segment's start
                        predicted, _ = network(train_x[np.newaxis, context:stop])
                        error = predicted[0, first - context :] - train_y[first:stop]
                        squared_error += float(torch.sum(error**2))
                    validation_loss = squared_error / n_validation_values
                losses.append(validation_loss)
                if validation_loss < best_loss:
                    best_loss, best_epoch = validation_loss, epoch
                    best_state = {key: value.detach().clone() for key, value in network.state_dict().items()}
                elif epoch - best_epoch >= patience:
                    break
            network.load_state_dict(best_state)
        self.layers_ = [
            tuple(
                getattr(network.recurrent, f"{name}_l{layer}").detach().numpy().astype(np.float64)
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
            for layer in range(n_layers)
        ]
        self.readout_weight_ = network.readout.weight.detach().numpy().astype(np.float64)
        self.readout_bias_ = network.readout.bias.detach().numpy().astype(np.float64)
        self.n_epochs_ = len(losses)
        self.best_epoch_ = best_epoch
        self.validation_loss_ = losses

    def _initial_model_state(self) -> np.ndarray:
        return np.zeros((len(self.layers_), self.layers_[0][1].shape[1]))

    def _decode(self, X: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs = (X - self.feature_mean_) / self.feature_scale_
        hidden = hidden.copy()
        for layer, (weight_ih, weight_hh, bias_ih, bias_hh) in enumerate(self.layers_):
            inputs, hidden[layer] = gru_forward(inputs, hidden[layer], weight_ih, weight_hh, bias_ih, bias_hh)
        decoded = inputs @ self.readout_weight_.T + self.readout_bias_
        return decoded * self.target_scale_ + self.target_mean_, hidden


def _sigmoid(value: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * value))


def gru_forward(
    inputs: np.ndarray,
    hidden: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Run one GRU layer over a sequence with numpy (the equations of :class:`torch.nn.GRU`).

    ``r = σ(W_ir x + b_ir + W_hr h + b_hr)``, ``z = σ(W_iz x + b_iz + W_hz h + b_hz)``,
    ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``, ``h' = (1 - z) ⊙ n + z ⊙ h``.

    Parameters
    ----------
    inputs : ndarray, shape (n_bins, n_inputs)
    hidden : ndarray, shape (hidden_size,)
        State before the first bin.
    weight_ih : ndarray, shape (3 * hidden_size, n_inputs)
        Gates in torch's order (reset, update, new).
    weight_hh : ndarray, shape (3 * hidden_size, hidden_size)
    bias_ih, bias_hh : ndarray, shape (3 * hidden_size,)

    Returns
    -------
    states : ndarray, shape (n_bins, hidden_size)
    hidden : ndarray, shape (hidden_size,)
        State after the last bin.
    """
    size = weight_hh.shape[1]
    projected = inputs @ weight_ih.T + bias_ih
    states = np.empty((inputs.shape[0], size))
    for index in range(inputs.shape[0]):
        recurrent = weight_hh @ hidden + bias_hh
        gates = _sigmoid(projected[index, : 2 * size] + recurrent[: 2 * size])
        reset, update = gates[:size], gates[size:]
        candidate = np.tanh(projected[index, 2 * size :] + reset * recurrent[2 * size :])
        hidden = (1.0 - update) * candidate + update * hidden
        states[index] = hidden
    return states, hidden
