"""Training runs in the background: start, watch, cancel and resume them; one at a time.

The app's pages and the terminal run the same command, `python -m fer_core train ...`
(`cli.train_argv` builds it from a TrainConfig). A run started from a page is a child process in
its own session, so it survives page reruns, browser reloads and the page's session ending, and
never blocks the server. Everything the page shows comes from files in the run folder, written
atomically by the training process itself:

    status.json    state (starting, running, finished, cancelled, failed), pid, times, message
    progress.json  phase, epoch and batch, running metrics, elapsed and estimated time left
    train.log      the command's output (appended on resume)
    history.csv    one row per finished epoch (training.py), checkpoints/ (resumable)

A run whose status says running but whose process is gone was killed or crashed: it shows as
"stopped" and resumes from its last checkpoint. One training per machine at a time: the
training process holds an exclusive lock on `<runs dir>/.training.lock` for its whole life (a
run started by a page inherits the lock its starter took, so two pages cannot both start one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fer_core.card import CARD_FILE, HISTORY_FILE, read_history
from fer_core.errors import FerError
from fer_core.progress import TrainingCancelled, TrainingReporter

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR_ENV = "FER_RUNS_DIR"
LOCK_FD_ENV = "FER_TRAINING_LOCK_FD"
LOCK_FILE = ".training.lock"
STATUS_FILE = "status.json"
PROGRESS_FILE = "progress.json"
LOG_FILE = "train.log"
CONFIG_FILE = "train_config.json"  # = training.CONFIG_FILE (kept here so reading runs needs no TensorFlow)
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PROGRESS_INTERVAL = 0.5  # seconds between progress.json writes within a phase
ACTIVE_STATES = ("starting", "running")


def default_runs_dir() -> Path:
    """`$FER_RUNS_DIR`, else `runs/` in the repository (git-ignored)."""
    return Path(os.environ.get(RUNS_DIR_ENV) or REPO_ROOT / "runs")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json(path: Path, payload: dict) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


# --- is a process alive (and ours)? -----------------------------------------------------------


def process_alive(pid: int | None) -> bool:
    """True when `pid` runs (zombies, i.e. exited but not yet reaped, count as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file():
        with contextlib.suppress(OSError):
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
            return state not in ("Z", "X")
    return True


_CHILDREN: dict[int, subprocess.Popen] = {}  # runs this process started: polled so they are reaped


def _reap_children() -> None:
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)


# --- the machine-wide training lock ------------------------------------------------------------


@dataclass(frozen=True)
class LockHolder:
    run_dir: str
    pid: int
    started: str


class TrainingLock:
    """An exclusive flock on `<runs dir>/.training.lock`, held by the training process."""

    def __init__(self, runs_dir: Path | None = None):
        self.path = Path(runs_dir or default_runs_dir()) / LOCK_FILE
        # Who holds it is written beside it: replacing the lock file itself (an atomic write
        # makes a new inode) would leave the flock on the old inode and let a second run in.
        self.holder_path = self.path.with_name(LOCK_FILE + ".json")
        self.fd: int | None = None

    def holder(self) -> LockHolder | None:
        """Who holds the lock now (read from the file, confirmed by the process being alive)."""
        _reap_children()
        info = _read_json(self.holder_path)
        pid = info.get("pid")
        if isinstance(pid, int) and process_alive(pid):
            return LockHolder(str(info.get("run_dir", "")), pid, str(info.get("started", "")))
        return None

    def acquire(self, run_dir: Path, attempts: int = 5) -> None:
        """Take the lock or raise FerError naming the training that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == attempts - 1:
                    os.close(fd)
                    holder = self.holder()
                    who = f"{holder.run_dir} (pid {holder.pid}, since {holder.started})" if holder else "another process"
                    raise FerError(
                        f"another training is running: {who}; wait for it to end or cancel it first "
                        "(one training per machine at a time)"
                    ) from None
                time.sleep(0.05)
        self.fd = fd
        self.record(run_dir, os.getpid())

    def adopt(self, fd: int, run_dir: Path) -> None:
        """Use a lock descriptor inherited from the process that started this run."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # already ours: this only confirms it
        except OSError as error:
            raise FerError(f"the training lock handed to this run is not usable ({error})") from None
        self.fd = fd
        self.record(run_dir, os.getpid())

    def record(self, run_dir: Path, pid: int) -> None:
        """Write who holds the lock (readers never flock: they check the pid instead)."""
        _write_json(self.holder_path, {"run_dir": str(run_dir), "pid": pid, "started": _now()})

    def release(self) -> None:
        """Let go of the lock and of the record naming this process (readers go by the record's
        pid, and this process may live on, e.g. a test or a notebook that trained in-process)."""
        if self.fd is not None:
            if _read_json(self.holder_path).get("pid") == os.getpid():
                with contextlib.suppress(OSError):
                    self.holder_path.unlink()
            os.close(self.fd)
            self.fd = None


# --- the training process's side: progress, status, cancel ---------------------------------------


class RunReporter(TrainingReporter):
    """Writes progress.json and status.json for a run; the SIGTERM handler sets `cancel_requested`.

    Within the fit loop a cancel is acted on between batches (training.RunFolderCallback calls
    `check_cancel`); in any other phase (loading data, teacher predictions, finalizing) the
    signal handler raises at once.
    """

    INTERRUPTIBLE = ("training", "validating")

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.cancel_requested = False
        self.started = time.time()
        self.current_phase = "starting"
        self.progress: dict = {}
        self._last_write = 0.0
        self._epoch_seconds: list[float] = []
        self._epoch_started = time.time()
        self._step_seconds = 0.0

    # status.json
    def status(self, state: str, message: str = "", **extra) -> None:
        payload = _read_json(self.run_dir / STATUS_FILE)
        payload.update({"state": state, "pid": os.getpid(), "message": message, "updated": _now(), **extra})
        payload.setdefault("started", _now())
        if state not in ACTIVE_STATES:
            payload["ended"] = _now()
        _write_json(self.run_dir / STATUS_FILE, payload)

    # TrainingReporter hooks
    def phase(self, name: str, detail: str = "") -> None:
        if name != self.current_phase and name == "training":
            self._epoch_started = time.time()
        self.current_phase = name
        self.progress.update({"phase": name, "detail": detail, "fraction": None})
        self._write(force=True)

    def step(self, fraction: float, detail: str = "") -> None:
        self.progress.update({"fraction": round(float(fraction), 4), "detail": detail})
        self._write()

    def batch(self, epoch: int, epochs: int, step: int, steps: int, logs: dict) -> None:
        now = time.time()
        if step == 1:
            self._epoch_started = now - self._step_seconds  # the first batch's time is already spent
        elapsed_in_epoch = now - self._epoch_started
        self._step_seconds = elapsed_in_epoch / step
        epoch_seconds = (sum(self._epoch_seconds) / len(self._epoch_seconds)) if self._epoch_seconds else self._step_seconds * steps * 1.05
        remaining = (steps - step) * self._step_seconds + (epochs - epoch) * epoch_seconds
        self.progress.update(
            {
                "phase": "training",
                "epoch": epoch,
                "epochs": epochs,
                "batch": step,
                "steps": steps,
                "loss": _number(logs.get("loss")),
                "accuracy": _number(logs.get("accuracy")),
                "eta_seconds": round(remaining, 1),
                "seconds_per_epoch": round(epoch_seconds, 1),
            }
        )
        self._write()

    def epoch_end(self, row: dict) -> None:
        self._epoch_seconds.append(float(row.get("seconds") or 0.0))
        self.progress.update({"last_epoch": {key: _number(value) for key, value in row.items()}, "batch": self.progress.get("steps")})
        self._write(force=True)

    def _write(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_write < PROGRESS_INTERVAL:
            return
        self._last_write = now
        self.progress.update({"elapsed_seconds": round(now - self.started, 1), "updated": now})
        with contextlib.suppress(OSError):  # a full disk must not kill the training for a progress file
            _write_json(self.run_dir / PROGRESS_FILE, self.progress)

    def on_signal(self, signum: int, _frame) -> None:
        self.cancel_requested = True
        if self.current_phase not in self.INTERRUPTIBLE:
            self.check_cancel()


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else round(number, 6)


def run_training_command(
    config, resume: bool = False, finalize: bool = True, register: str | None = None, tflite_weights: str = "int8"
) -> int:
    """What `python -m fer_core train` does: lock, train, finalize, register, with status files.

    Returns the exit status: 0 done, 130 cancelled; FerErrors propagate (after status "failed").
    """
    from fer_core.training import train

    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = TrainingLock(Path(os.environ.get(RUNS_DIR_ENV) or default_runs_dir()))
    inherited = os.environ.pop(LOCK_FD_ENV, None)
    if inherited:
        lock.adopt(int(inherited), run_dir)
    else:
        lock.acquire(run_dir)
    reporter = RunReporter(run_dir)
    previous = {sig: signal.signal(sig, reporter.on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    reporter.status("running", started=_now(), command=[sys.executable, "-m", "fer_core", *sys.argv[1:]])
    try:
        result = train(config, resume=resume, reporter=reporter)
        print(
            f"{result.run_dir}: {result.epochs_done} epochs, best val_accuracy {result.best_val_accuracy:.4f} "
            f"at epoch {result.best_epoch}",
            flush=True,
        )
        registered = None
        if finalize:
            from fer_core.export import finalize_run

            reporter.phase("finalizing", "export, TFLite, evaluation on the validation data")
            card = finalize_run(result.run_dir, tflite_weights=tflite_weights)
            print(f"{result.run_dir}: model folder ready ({card.name}, val accuracy {card.metrics.get('val_accuracy')})", flush=True)
            reporter.phase("evaluating", "the custom dataset's test split")
            for line in compare_on_custom_test(result.run_dir, config):
                print(line, flush=True)
            if register is not None:
                from fer_core.registry import ModelRegistry

                reporter.phase("registering")
                model = ModelRegistry().register(result.run_dir, register or None)
                registered = model.name
                print(f"registered {model.name} in {model.path}", flush=True)
        reporter.phase("done")
        reporter.status("finished", f"{result.epochs_done} epochs", registered=registered, epochs_done=result.epochs_done)
        return 0
    except TrainingCancelled:
        reporter.phase("cancelled")
        reporter.status("cancelled", "cancelled by the user; the last finished epoch is kept and can be resumed")
        print("cancelled: the last finished epoch is checkpointed; resume with --resume", flush=True)
        return 130
    except BaseException as error:
        reporter.status("failed", f"{type(error).__name__}: {error}" if not isinstance(error, FerError) else str(error))
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.release()


# --- the page's side: validate, start, read, cancel --------------------------------------------


def compare_on_custom_test(run_dir: Path, config) -> list[str]:
    """When a model was trained on a custom dataset, evaluate it and the model it started from
    (if any) on that dataset's test split, one pass each; both reports are stored in the new
    model's evaluations/ and the card's metrics get `custom_test` (what the Dataset page shows).
    Returns lines to print; nothing happens for other data or an empty test split."""
    from fer_core.card import read_card, write_card
    from fer_core.data import load_dataset
    from fer_core.dataset_store import is_dataset_root
    from fer_core.inference import EmotionClassifier
    from fer_core.reports import evaluate_and_store

    if not is_dataset_root(config.train_data):
        return []
    card = read_card(run_dir)
    try:
        test = load_dataset(config.train_data, ["test"], image_size=card.input_size)
    except FerError as error:
        return [f"no evaluation on the custom test split: {error}"]
    new = evaluate_and_store(run_dir, test, "none", ["test"])
    summary = {"data": str(config.train_data), "faces": len(test), "accuracy": round(new.report.accuracy, 4),
               "macro_f1": round(new.report.macro_f1, 4), "slug": new.slug}
    lines = [f"custom test split ({len(test)} faces): {card.name} {new.report.accuracy:.1%}"]
    if config.init_from and Path(config.init_from).is_dir():
        previous = EmotionClassifier(config.init_from)
        # stored under the new model, named for the one it started from
        old_slug = f"{new.slug}-{previous.card.name}"
        old_test = test if previous.input_size == card.input_size else load_dataset(
            config.train_data, ["test"], image_size=previous.input_size)
        old = evaluate_and_store(run_dir, old_test, "none", ["test"], classifier=previous, slug=old_slug)
        summary["previous"] = {"model": previous.card.name, "accuracy": round(old.report.accuracy, 4),
                               "macro_f1": round(old.report.macro_f1, 4), "slug": old_slug}
        lines.append(f"custom test split: {previous.card.name} (before) {old.report.accuracy:.1%}")
    card.metrics["custom_test"] = summary
    write_card(run_dir, card)
    return lines


@dataclass
class RunInfo:
    """A run folder as the Training report page shows it."""

    name: str
    path: Path
    state: str  # starting, running, finished, cancelled, failed, stopped (killed/crashed), unknown
    message: str = ""
    pid: int | None = None
    started: str = ""
    ended: str = ""
    registered: str | None = None
    config: dict = field(default_factory=dict)
    progress: dict = field(default_factory=dict)
    epochs_done: int = 0
    resumable: bool = False  # has a checkpoint (or at least its config) to continue from

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def finalized(self) -> bool:
        return (self.path / CARD_FILE).is_file()

    def history(self) -> list[dict]:
        return read_history(self.path / HISTORY_FILE)

    def log_tail(self, lines: int = 40) -> str:
        path = self.path / LOG_FILE
        if not path.is_file():
            return ""
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64_000))
            text = handle.read().decode("utf-8", errors="replace")
        # Keras' progress bars rewrite one line with \r: keep what a terminal would show.
        shown = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
        return "\n".join([line for line in shown if line.strip()][-lines:])


def read_run(run_dir: str | os.PathLike) -> RunInfo:
    """The state of one run folder, from its files (and whether its process still lives)."""
    _reap_children()
    path = Path(run_dir)
    status = _read_json(path / STATUS_FILE)
    progress = _read_json(path / PROGRESS_FILE)
    config = _read_json(path / CONFIG_FILE)
    state_file = _read_json(path / "checkpoints" / "state.json")
    state = str(status.get("state") or "")
    pid = status.get("pid") if isinstance(status.get("pid"), int) else None
    message = str(status.get("message") or "")
    if state in ACTIVE_STATES and not process_alive(pid):
        state = "stopped"
        message = "the training process ended without saying why (killed, out of memory, or the machine restarted); resume it from its last finished epoch"
    elif not state:
        state = "finished" if (path / CARD_FILE).is_file() else ("stopped" if state_file else "unknown")
    return RunInfo(
        name=path.name,
        path=path,
        state=state,
        message=message,
        pid=pid,
        started=str(status.get("started") or ""),
        ended=str(status.get("ended") or ""),
        registered=status.get("registered"),
        config=config,
        progress=progress,
        epochs_done=int(state_file.get("epochs_done") or 0),
        resumable=bool(config) and state not in ACTIVE_STATES,
    )


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run folder (one holding train_config.json), newest first."""
    root = Path(runs_dir or default_runs_dir())
    if not root.is_dir():
        return []
    folders = [folder for folder in root.iterdir() if folder.is_dir() and (folder / CONFIG_FILE).is_file()]
    folders.sort(key=lambda folder: (folder / CONFIG_FILE).stat().st_mtime, reverse=True)
    return [read_run(folder) for folder in folders]


def active_run(runs_dir: str | os.PathLike | None = None) -> RunInfo | None:
    """The run holding the training lock now, if any."""
    holder = TrainingLock(Path(runs_dir or default_runs_dir())).holder()
    return read_run(holder.run_dir) if holder and holder.run_dir else None


def check_run_name(name: str, runs_dir: Path) -> Path:
    """The folder for a new run called `name`; FerError for path tricks or a name in use."""
    if not name or not RUN_NAME.match(name) or name in (".", ".."):
        raise FerError(
            f"{name!r} is not a valid run name: use letters, digits, '_', '-' and '.', start with a letter or "
            "digit, 64 characters at most (no path separators)"
        )
    folder = runs_dir / name
    if folder.exists():
        raise FerError(f"a run named {name!r} exists already ({folder}); choose another name or resume it")
    return folder


def check_training_request(config, runs_dir: str | os.PathLike | None = None, run_name: str | None = None) -> dict[str, dict[str, int]]:
    """Everything that can be checked before a training starts, without loading the data: the
    run name as the user typed it (when given; the run goes to `<runs dir>/<run_name>`), the data
    paths (faces per class, via data.count_faces), the zoo architecture, the model to fine-tune
    from and the teacher. Returns the face counts per data source; FerError says what is wrong."""
    from fer_core import zoo
    from fer_core.card import read_card
    from fer_core.data import count_faces

    if run_name is not None:
        folder = check_run_name(run_name, Path(runs_dir or default_runs_dir()))
        if Path(config.out).resolve() != folder.resolve():
            raise FerError(f"the run folder {config.out} is not {folder}")
    zoo.get_spec(config.architecture)
    counts = {"train": count_faces(config.train_data, _usages_for(config.train_data, config.train_usage, "train"))}
    for index, path in enumerate(config.mix_data, start=1):
        counts[f"mix {index}"] = count_faces(path, _usages_for(path, config.train_usage, "train"))
    if config.val_data:
        counts["val"] = count_faces(config.val_data, _usages_for(config.val_data, config.val_usage, "val"))
    for role, source in (("start from", config.init_from), ("teacher", config.teacher)):
        if not source or (role == "start from" and Path(source).is_file()):  # a bare .keras file is checked on load
            continue
        card = read_card(source)  # ModelError: not a model folder
        if role == "start from" and card.architecture != config.architecture:
            raise FerError(f"{source} is a {card.architecture} model; fine-tuning needs the same architecture ({config.architecture})")
    if not 1 <= int(config.epochs) <= 10_000:
        raise FerError(f"epochs must be between 1 and 10000, got {config.epochs}")
    return counts


def _usages_for(path: str, usages: list[str], split: str) -> list[str] | None:
    """The selector `count_faces` takes for one source: CSV Usage values, a store split, or none."""
    from fer_core.dataset_store import is_dataset_root

    if str(path).lower().endswith(".csv"):
        return list(usages)
    return [split] if is_dataset_root(path) else None


def start_training(
    config,
    runs_dir: str | os.PathLike | None = None,
    resume: bool = False,
    register: str | None = "",
    python: str = sys.executable,
) -> RunInfo:
    """Start `python -m fer_core train` for `config` in the background and return at once.

    `config.out` is the run folder (check the request with `check_training_request` first). The
    lock is taken here and handed to the child, so a second start fails at once with a message
    naming the running one.
    """
    from fer_core.cli import train_argv

    runs_root = Path(runs_dir or default_runs_dir())
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = TrainingLock(runs_root)
    lock.acquire(run_dir)
    try:
        argv = [python, "-m", "fer_core", *train_argv(config, resume=resume, register=register)]
        env = {**os.environ, LOCK_FD_ENV: str(lock.fd), RUNS_DIR_ENV: str(runs_root), "PYTHONUNBUFFERED": "1"}
        with (run_dir / LOG_FILE).open("ab") as log:
            log.write(f"\n$ {' '.join(argv)}\n".encode())
            log.flush()
            child = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(lock.fd,),
                start_new_session=True,  # survives the page, its session and a server reload
            )
        _CHILDREN[child.pid] = child
        lock.record(run_dir, child.pid)
        status = _read_json(run_dir / STATUS_FILE) if resume else {}
        status.update({"state": "starting", "pid": child.pid, "message": "", "updated": _now(), "argv": argv})
        status.setdefault("started", _now())
        status.pop("ended", None)
        _write_json(run_dir / STATUS_FILE, status)
    finally:
        os.close(lock.fd)  # the child holds the lock from here on
        lock.fd = None
    return read_run(run_dir)


def cancel_run(run_dir: str | os.PathLike, wait: float = 0.0) -> RunInfo:
    """Ask a running training to stop (SIGTERM); it keeps its last finished epoch.

    `wait` > 0: wait up to that many seconds for it to end.
    """
    info = read_run(run_dir)
    if not info.active or info.pid is None:
        raise FerError(f"{info.name} is not running (it is {info.state})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline and process_alive(info.pid):
        time.sleep(0.2)
        _reap_children()
    return read_run(run_dir)


def config_for_resume(run: RunInfo, epochs: int | None = None):
    """The TrainConfig that continues `run` (optionally to a new number of epochs)."""
    from fer_core.training import TrainConfig

    known = {item.name for item in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{key: value for key, value in run.config.items() if key in known})
    return dataclasses.replace(config, out=str(run.path), epochs=epochs or config.epochs)
