"""The lectures' pictures, for a checkpoint (or several) and a text: python -m minrnn picture.

    activations   the text with each character coloured by one hidden (or LSTM cell) unit's value
                  after reading it; for simple features of the text (inside quotes, inside brackets,
                  position in the line) the units whose values follow them best are found and shown
    gradients     how far back a loss reaches: the norm of dL_t/dh_k (every layer's states) against
                  the distance t - k, averaged over positions of the text, one curve per checkpoint
                  (the vanishing gradients of a vanilla RNN, the long reach of an LSTM or GRU)
    temperature   the same prime sampled at several temperatures, side by side

activations and temperature are self-contained HTML pages; gradients is a PNG or SVG (matplotlib).
"""

import html
import numpy as np

from minrnn.errors import UserError

QUOTES = ('"',)
OPEN, CLOSE = "([{", ")]}"


def text_ids(m, text):
    """(the characters the model m (minrnn.load's) knows, their ids), others dropped."""
    ids = m.ids(text, "the text")
    if len(ids) < 2:
        raise UserError("the text has fewer than 2 characters the model knows")
    return m.characters(ids), ids


def language_model(m):
    if not m.task.pictured:
        raise UserError("the lectures' pictures are of a language model of a text (trained without --records, "
                        "--labels, --features or --task)")
    return m.model


def features(chars):
    """{name: (T,) values}: inside double quotes, inside brackets, position within the line."""
    inside_quotes, inside_brackets, position = [], [], []
    quoted, depth, column = False, 0, 0
    for c in chars:
        if c in QUOTES:
            quoted = not quoted
        depth = depth + (c in OPEN) - (c in CLOSE and depth > 0)
        column = 0 if c == "\n" else column + 1
        inside_quotes.append(float(quoted))
        inside_brackets.append(float(depth > 0))
        position.append(float(column))
    return {"inside quotes": np.array(inside_quotes), "inside brackets": np.array(inside_brackets),
            "position in the line": np.array(position)}


def correlations(values, feature):
    """(units,) Pearson correlation of each unit's values (T, units) with a feature (T,); 0 where
    either is constant."""
    v = values - values.mean(axis=0)
    f = feature - feature.mean()
    denom = np.sqrt((v ** 2).sum(axis=0) * (f ** 2).sum())
    return np.where(denom > 0, (v * f[:, None]).sum(axis=0) / np.where(denom > 0, denom, 1.0), 0.0)


def colour(value):
    """-1 blue, 0 white, 1 red."""
    a = max(-1.0, min(1.0, float(value)))
    r, g, b = (255, round(255 * (1 - a)), round(255 * (1 - a))) if a >= 0 else (round(255 * (1 + a)),) * 2 + (255,)
    return f"rgb({r},{g},{b})"


def coloured(chars, values, mean=0.0, spread=1.0):
    """Each character on the colour of (value - mean) / spread, its value on hover."""
    spans = []
    for c, v in zip(chars, values):
        shown = "\u21b5\n" if c == "\n" else html.escape(c)
        spans.append(f'<span style="background:{colour((v - mean) / spread)}" title="{float(v):.3f}">{shown}</span>')
    return "".join(spans)


def activations_page(m, text, unit=None, shown=2000):
    """The activations page: for each feature the best-following unit, and its values over the text."""
    model = language_model(m)
    chars, ids = text_ids(m, text)
    states = np.stack(states_after(model, ids))[:, :, :, 0, :]   # (T, L, S, H)
    T, L, S, H = states.shape
    values = states.reshape(T, L * S * H)
    names = [f"layer {l} {'h' if s == 0 else 'c'} unit {j}" for l in range(L) for s in range(S) for j in range(H)]
    # colours show what a correlation sees, a unit's swings about its own mean: cell states are
    # unbounded and drift, and scaled by their largest value a unit that tracks a feature looks blank
    mean, spread = values.mean(axis=0), np.maximum(2 * values.std(axis=0), 1e-6)
    sections = []
    for name, feature in features(chars).items():
        r = correlations(values.astype(np.float64), feature)
        best = int(np.argmax(np.abs(r)))
        top = np.argsort(-np.abs(r))[:5]
        listed = ", ".join(f"{names[k]} ({r[k]:+.2f})" for k in top)
        sections.append((f"{name}: {names[best]} follows it best (correlation {r[best]:+.2f}); the five best: {listed}",
                         coloured(chars[:shown], values[:shown, best], mean[best], spread[best])))
    if unit is not None:
        if not 0 <= unit < len(names):
            raise UserError(f"--unit {unit}: this model has units 0 to {len(names) - 1} (layers x states x hidden)")
        sections.insert(0, (f"{names[unit]}, as asked",
                            coloured(chars[:shown], values[:shown, unit], mean[unit], spread[unit])))
    body = "\n".join(f"<h2>{html.escape(title)}</h2>\n<pre>{spans}</pre>" for title, spans in sections)
    return page("minrnn activations", "Each character is coloured by the unit's value after the model read it "
                "(red above the unit's mean over the text, blue below, full colour at two standard deviations; hover "
                f"for the value). The units are found automatically among all {len(names)} (every layer's h, and c for an LSTM), "
                "by their correlation with each feature over the text.", body)


def temperature_page(m, prime="", length=300, temperatures=(0.5, 1.0, 1.5), seed=1):
    """The same prime sampled at each temperature (the same seed), side by side."""
    language_model(m)
    columns = []
    for t in temperatures:
        out = m.generate(prime, length, t, seed=seed)[len(prime):]
        columns.append(f'<div class="col"><h2>temperature {t:g}</h2><pre><b>{html.escape(prime)}</b>'
                       f'{html.escape(out)}</pre></div>')
    return page("minrnn temperature", "The same prime and seed sampled at each temperature: the logits are "
                "divided by it before the softmax, so below 1 the likeliest characters win more often (safe, "
                "repetitive), above 1 the distribution flattens (varied, then garbled).",
                f'<div class="row">{"".join(columns)}</div>')


def page(title, intro, body):
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;margin:2em} pre{white-space:pre-wrap;font-family:monospace;line-height:1.5}"
            " h2{font-size:1em} .row{display:flex;gap:1.5em} .col{flex:1;min-width:0}</style></head>\n<body>\n"
            f"<p>{html.escape(intro)}</p>\n{body}\n</body></html>\n")


def states_after(model, ids):
    """[the state (L, S, 1, H) after each id], from a zero state."""
    state, along = model.zero_state(1), []
    for token in ids:
        model.step([token], state)
        along.append(state.copy())
    return along


def reach_at(model, ids, along, t, distance):
    """(distance,) ||dL_t / d(states after step t - d)|| for d = 0..distance-1: L_t is the
    cross-entropy of predicting ids[t + 1] from the top layer's output after step t (dropout off).
    d = 0 is dL_t/dh_t itself; further back, the core's backward from the final states (dfinal) of
    a forward over steps t-d+1..t gives the gradient with respect to its initial states."""
    W, b = model.tensors["decoder.weight"].astype(np.float64), model.tensors["decoder.bias"]
    z = W @ along[t][-1, 0, 0].astype(np.float64) + b
    p = np.exp(z - z.max())
    p /= p.sum()
    p[ids[t + 1]] -= 1.0                              # dL_t / dz
    dfinal = np.zeros_like(along[t])
    dfinal[-1, 0, 0] = (W.T @ p).astype(np.float32)   # dL_t / dh_t
    norms = [float(np.linalg.norm(dfinal))]
    for d in range(1, distance):
        fwd = model.forward(np.array(ids[t - d + 1:t + 1], np.int32)[:, None], state=along[t - d], want_logits=False)
        dstate0, _ = model.backward(fwd, dfinal)
        norms.append(float(np.linalg.norm(dstate0)))
    return np.array(norms)


CHUNK = 4096   # steps per forward call on the way between positions: a bounded workspace


def states_near(model, ids, ts, distance):
    """{k: the state (L, S, 1, H) after step k} for k in [t - distance, t] of each t in ts: the
    core's forward carries the state from one position to the next in chunks, and only the
    steps near a position are taken one at a time (a long text costs a forward, not a Python loop)."""
    along, state, done = {}, model.zero_state(1), -1    # state: the state after step `done`
    for t in sorted(ts):
        while done < t - distance:
            until = min(t - distance, done + CHUNK)
            state = model.forward(np.array(ids[done + 1:until + 1], np.int32)[:, None], state=state,
                                  want_logits=False).final_state
            done = until
        along[done] = state.copy()
        while done < t:
            done += 1
            model.step([ids[done]], state)
            along[done] = state.copy()
    return along


def gradient_reach(m, text, distance=40, positions=16, seed=1):
    """(distance,) the mean over `positions` random positions t of the text of log10 reach_at."""
    model = language_model(m)
    _, ids = text_ids(m, text)
    if len(ids) < distance + 2:
        raise UserError(f"the text is too short: give at least {distance + 2} characters the model knows")
    rng = np.random.default_rng(seed)
    ts = rng.choice(np.arange(distance, len(ids) - 1), size=min(positions, len(ids) - 1 - distance), replace=False)
    along = states_near(model, ids, ts, distance)
    return np.mean([np.log10(np.maximum(reach_at(model, ids, along, t, distance), 1e-30)) for t in ts], axis=0)


def gradients_plot(checkpoints, text, out, distance=40):
    """One curve per checkpoint (path, minrnn.load's model) of gradient_reach, in a PNG or SVG."""
    from minrnn.plot import check_image_name, pyplot, save
    check_image_name(out)
    curves = [(path, m.model.config.cell, gradient_reach(m, text, distance)) for path, m in checkpoints]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for path, cell, logs in curves:
        ax.plot(np.arange(distance), logs, marker="o", markersize=3, label=f"{cell} ({path})")
    ax.set_xlabel("distance t - k (characters)")
    ax.set_ylabel("log10 || dL_t / d state_k ||")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    save(plt, fig, out)
    return curves
