"""Benchmark: can the time a public form takes tell an address's state?

Issue #16: POST /subscribe, and POST /preferences ("email me my preferences link"), must take the same
time whatever the state of the address typed in: new, pending, confirmed, unsubscribed, bounced,
complained or erased. Goals, for each form, in-process (Flask's test client) and over HTTP
(Werkzeug's threaded server on 127.0.0.1, a new connection per request, as that server closes each):

- for every pair of states, the medians of ``--requests`` (default 500) interleaved requests per
  state differ by less than 10% (of the smaller);
- a classifier that guesses the state from the time does no better than chance plus 5 points:
  k-nearest neighbours (k = 25) over all seven states (chance 1/7), and for every pair of states the
  best single threshold (chance 1/2); both trained on one half of the requests and scored on the
  other, then the other way round (2-fold cross-validation), so that noise is not mistaken for skill.

Method: a fresh SQLite store (the default deployment) in a temporary folder, the memory transport,
rate limits off. Every request names an address of its own, all addresses of the same length
(``pendi30123@example.org``), so that only the state differs; the states are interleaved in a shuffled
order (fixed seed). Before each request the app's mail thread is left to finish what the previous
one deferred: the measured request is alone, the attacker's best case (a loaded server only adds
noise). The time is taken around the whole request: ``client.post`` in-process; from connecting to
reading the last byte over HTTP. A warm-up of 100 requests is not counted.

Run: ``.venv/bin/python bench/timing_bench.py [--requests 500] [--seed 16] [--quick]``. It prints a
table of medians per form and way, the largest pairwise difference and the classifiers' accuracy,
``PASS`` or ``MISS`` per goal; the exit status is 1 if a goal was missed. ``--quick`` runs 100 requests
per state. The script uses only the app's public interfaces, so it can be pointed at an older version
of the package (``PYTHONPATH=...``) to measure the leak this fixes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import itertools
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from newsletter.config import Settings
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store.engine import Store, init_store, open_store
from newsletter.store.models import Source, Status
from newsletter.subscribers import service
from newsletter.subscribers.consent import ConsentInfo
from newsletter.web import RateLimits, close_app, create_app

sys.path.append(str(Path(__file__).resolve().parent.parent))  # after PYTHONPATH: another version may be timed
from tests.support.wsgi import InFlight

STATES = ("new", "pending", "confirmed", "unsubscribed", "bounced", "complained", "erased")
CODES = dict(zip(STATES, ("nuevo", "pendi", "confi", "unsub", "bounc", "compl", "erase"), strict=True))  # one length
SECRET = "timing-bench-secret-0123456789abcdef"
MEDIAN_GOAL = 0.10
CLASSIFIER_MARGIN = 0.05
NEIGHBOURS = 25
WARM_UP = 100
FORMS = {"subscribe": "/subscribe", "preferences link": "/preferences"}


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


def settings_for(folder: Path) -> Settings:
    return Settings(
        project_dir=folder,
        database_url=f"sqlite:///{folder / 'subscribers.db'}",
        secret_key=SECRET,
        organisation="Harvest Bench Clinic",
        postal_address="1 Example Way, Springfield, ZZ 00000",
        from_address="news@harvest.example",
        public_base_url="https://news.harvest.example",
        transport="memory:",
    )


def no_limits() -> RateLimits:
    # Every limit field off, whatever this version of the package calls them.
    off = {f.name: "" for f in dataclasses.fields(RateLimits) if f.name != "storage_uri"}
    return RateLimits(**off)


def populate(store: Store, runs: int, per_state: int) -> dict[str, list[list[str]]]:
    """Addresses in every state, ``per_state`` for each of ``runs`` runs, all of one length."""
    addresses = {
        state: [[f"{CODES[state]}{run}{n:04d}@example.org" for n in range(per_state)] for run in range(runs)]
        for state in STATES
    }
    consent = ConsentInfo(Source.MANUAL, "v1")
    with store.session() as session:
        for state in STATES:
            if state == "new":
                continue
            for address in itertools.chain.from_iterable(addresses[state]):
                subscriber = service.add(
                    session, address, consent=consent, confirmed=state != "pending", secret_key=SECRET
                ).subscriber
                if state in ("unsubscribed", "bounced", "complained"):
                    service.unsubscribe(session, subscriber, actor="bench", status=Status(state))
                elif state == "erased":
                    service.forget(session, address, secret_key=SECRET)
    return addresses


def form_data(path: str, address: str) -> dict[str, str]:
    if path == "/subscribe":
        return {"email": address, "name": "Sam Reader", "topic": "faq-updates"}
    return {"email": address}


def in_process(app: Flask) -> Callable[[str, dict[str, str]], float]:
    client = app.test_client()

    def request(path: str, data: dict[str, str]) -> float:
        started = time.perf_counter()
        response = client.post(path, data=data, buffered=True)  # closed, as a server closes it
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.status_code
        return elapsed

    return request


@contextlib.contextmanager
def over_http(app: Flask) -> Iterator[Callable[[str, dict[str, str]], float]]:
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_port

    def request(path: str, data: dict[str, str]) -> float:
        body = urlencode(data)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        connection.close()
        assert response.status == 200, response.status
        return elapsed

    try:
        yield request
    finally:
        server.shutdown()
        server.server_close()


def measure(
    app: Flask, request: Callable[[str, dict[str, str]], float], path: str, addresses: dict[str, list[str]], seed: int
) -> dict[str, list[float]]:
    mailer, in_flight = app.extensions["newsletter"].mailer, app.wsgi_app

    def quiet() -> None:  # the previous request is closed and its deferred work done: this one runs alone
        in_flight.wait()
        mailer.join()

    for n in range(WARM_UP):
        quiet()
        request(path, form_data(path, f"warmu{seed % 10}{n:04d}@example.org"))
    order = [(state, address) for state in STATES for address in addresses[state]]
    random.Random(seed).shuffle(order)
    times: dict[str, list[float]] = {state: [] for state in STATES}
    for state, address in order:
        quiet()
        times[state].append(request(path, form_data(path, address)))
    quiet()
    return times


def probe(
    app: Flask, request: Callable[[str, dict[str, str]], float], addresses: dict[str, list[str]], seed: int
) -> dict[str, list[float]]:
    """The time of a signup for a new address sent right after one for each state, without waiting:
    the first one's deferred work runs meanwhile, so this is how much of it a second request feels."""
    mailer, in_flight = app.extensions["newsletter"].mailer, app.wsgi_app
    order = [(state, address) for state in STATES for address in addresses[state]]
    random.Random(seed).shuffle(order)
    times: dict[str, list[float]] = {state: [] for state in STATES}
    for n, (state, address) in enumerate(order):
        in_flight.wait()
        mailer.join()
        request("/subscribe", form_data("/subscribe", address))
        times[state].append(request("/subscribe", form_data("/subscribe", f"probe{seed % 10}{n:05d}@example.org")))
    in_flight.wait()
    mailer.join()
    return times


# --- the analysis -------------------------------------------------------------------------------------


def knn_accuracy(times: dict[str, list[float]]) -> float:
    """k-nearest neighbours on the time, 2-fold: the share of requests whose state it guesses."""
    halves = [
        [(t, state) for state, ts in times.items() for t in ts[0::2]],
        [(t, state) for state, ts in times.items() for t in ts[1::2]],
    ]
    right = total = 0
    for train, test in ((halves[0], halves[1]), (halves[1], halves[0])):
        train.sort()
        keys = [t for t, _ in train]
        for t, state in test:
            right += _vote(train, keys, t) == state
            total += 1
    return right / total


def _vote(train: list[tuple[float, str]], keys: list[float], t: float) -> str:
    import bisect

    at = bisect.bisect_left(keys, t)
    low, high = at - 1, at
    votes: dict[str, int] = {}
    for _ in range(NEIGHBOURS):  # walk outwards from t, nearest first
        if high >= len(train) or (low >= 0 and t - keys[low] <= keys[high] - t):
            state, low = train[low][1], low - 1
        else:
            state, high = train[high][1], high + 1
        votes[state] = votes.get(state, 0) + 1
    return max(sorted(votes), key=votes.__getitem__)


def threshold_accuracy(a: list[float], b: list[float]) -> float:
    """The best single threshold between two states, chosen on one half, scored on the other (2-fold)."""
    right = total = 0
    for fold in (0, 1):
        train_a, test_a = a[fold::2], a[1 - fold :: 2]
        train_b, test_b = b[fold::2], b[1 - fold :: 2]
        cut, a_below = _best_cut(train_a, train_b)
        right += sum((t < cut) == a_below for t in test_a) + sum((t < cut) != a_below for t in test_b)
        total += len(test_a) + len(test_b)
    return right / total


def _best_cut(a: list[float], b: list[float]) -> tuple[float, bool]:
    points = sorted([(t, 0) for t in a] + [(t, 1) for t in b])
    below_a = below_b = 0
    best = (0.0, points[0][0], True)
    for i, (t, label) in enumerate(points):
        if label == 0:
            below_a += 1
        else:
            below_b += 1
        cut = (t + points[i + 1][0]) / 2 if i + 1 < len(points) else t + 1
        # "a is below the cut": a's below plus b's above; else the opposite.
        score_a = below_a + (len(b) - below_b)
        score_b = below_b + (len(a) - below_a)
        for score, a_below in ((score_a, True), (score_b, False)):
            if score > best[0]:
                best = (score, cut, a_below)
    return best[1], best[2]


@dataclasses.dataclass
class Verdict:
    spread: float
    spread_pair: tuple[str, str]
    knn: float
    threshold: float
    threshold_pair: tuple[str, str]

    @property
    def passed(self) -> bool:
        return (
            self.spread < MEDIAN_GOAL
            and self.knn <= 1 / len(STATES) + CLASSIFIER_MARGIN
            and self.threshold <= 0.5 + CLASSIFIER_MARGIN
        )


def judge(times: dict[str, list[float]]) -> Verdict:
    medians = {state: statistics.median(ts) for state, ts in times.items()}
    spread, spread_pair = max(
        (abs(medians[a] - medians[b]) / min(medians[a], medians[b]), (a, b))
        for a, b in itertools.combinations(STATES, 2)
    )
    threshold, threshold_pair = max(
        (threshold_accuracy(times[a], times[b]), (a, b)) for a, b in itertools.combinations(STATES, 2)
    )
    return Verdict(spread, spread_pair, knn_accuracy(times), threshold, threshold_pair)


def report(title: str, times: dict[str, list[float]], verdict: Verdict) -> None:
    print(f"\n{title}")
    print("| state | median | p10 | p90 |")
    print("|---|---|---|---|")
    for state in STATES:
        ts = sorted(times[state])
        p10, p90 = ts[len(ts) // 10], ts[len(ts) * 9 // 10]
        print(f"| {state} | {statistics.median(ts) * 1000:.2f} ms | {p10 * 1000:.2f} ms | {p90 * 1000:.2f} ms |")
    chance_knn = 1 / len(STATES)
    print(
        f"largest difference of medians: {verdict.spread:.1%} ({' vs '.join(verdict.spread_pair)}; goal < 10%) "
        f"{'PASS' if verdict.spread < MEDIAN_GOAL else 'MISS'}"
    )
    print(
        f"k-NN over 7 states: {verdict.knn:.1%} right (chance {chance_knn:.1%}, goal <= {chance_knn + 0.05:.1%}) "
        f"{'PASS' if verdict.knn <= chance_knn + CLASSIFIER_MARGIN else 'MISS'}"
    )
    print(
        f"best threshold for a pair: {verdict.threshold:.1%} right ({' vs '.join(verdict.threshold_pair)}; "
        f"chance 50%, goal <= 55%) {'PASS' if verdict.threshold <= 0.5 + CLASSIFIER_MARGIN else 'MISS'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per state, per form and way")
    parser.add_argument("--seed", type=int, default=16, help="seed of the interleaving")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 requests per state")
    parser.add_argument("--probe", action="store_true", help="also time a signup sent right after each (a report)")
    args = parser.parse_args()
    per_state = 100 if args.quick else args.requests
    folder = Path(tempfile.mkdtemp(prefix="newsletter-timing-bench-"))
    settings = settings_for(folder)
    init_store(settings.resolved_database_url)
    store = open_store(settings.resolved_database_url)
    ways = ("in-process", "over HTTP")
    runs = [(form, way) for form in FORMS for way in ways] + ([("probe", way) for way in ways] if args.probe else [])
    print(f"preparing {per_state} addresses per state for each of {len(runs)} runs...", flush=True)
    addresses = populate(store, len(runs), per_state)
    app = create_app(settings, store=store, transport=lambda: MemoryTransport(), rate_limits=no_limits())
    app.wsgi_app = InFlight(app.wsgi_app)  # type: ignore[method-assign]
    passed = True
    try:
        for run, (form, way) in enumerate(runs):
            mine = {state: addresses[state][run] for state in STATES}
            if form == "probe":
                if way == "in-process":
                    times = probe(app, in_process(app), mine, args.seed + run)
                else:
                    with over_http(app) as request:
                        times = probe(app, request, mine, args.seed + run)
                MemoryTransport.reset()
                title = f"A new signup right after one for each state (not a goal: a report), {way}"
                report(title, times, judge(times))
                continue
            path = FORMS[form]
            if way == "in-process":
                times = measure(app, in_process(app), path, mine, args.seed + run)
            else:
                with over_http(app) as request:
                    times = measure(app, request, path, mine, args.seed + run)
            MemoryTransport.reset()
            verdict = judge(times)
            report(f"POST {path} ({form}), {way}: {per_state} interleaved requests per state", times, verdict)
            passed &= verdict.passed
    finally:
        close_app(app)
        store.dispose()
    print("\nPASS" if passed else "\nMISS")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
