"""`odconnect train` and `runs list|show|cancel`: start a run, follow it live, read the result.

Following polls the run once a second (GET is cheap and a terminal wants a live bar) and
shows iteration, loss and time left. Ctrl+C asks whether to cancel the run or leave it
training on the server; either way the command ends with exit code 130.
"""
from __future__ import annotations

import sys
import time

from rich.progress import TextColumn

from ..errors import ApiError
from ..exitcodes import Exit
from ..output import clock, percent, when
from .base import command, seg, shell

FINAL = ("succeeded", "failed", "canceled")
POLL_SECONDS = 1.0


def run_path(run: dict) -> str:
    return f"/models/{run['modelId']}/runs/{run['id']}"


def _fields(run: dict) -> dict:
    p = run.get("progress") or {}
    it, top, loss = p.get("iteration"), p.get("maxIterations"), p.get("loss")
    return {"iter": f"iter {it if it is not None else '-'}" + (f"/{top}" if top else ""),
            "loss": "loss " + ("-" if loss is None else f"{loss:.3f}"),
            "left": f"{clock(p.get('etaSeconds'))} left" if run["status"] == "training" else ""}


def _position(run: dict) -> tuple[float, float | None]:
    """How far the bar is: by time when the server knows the time left, else by iteration."""
    p = run.get("progress") or {}
    if p.get("etaSeconds") is not None and p.get("elapsedSeconds") is not None:
        return p["elapsedSeconds"], p["elapsedSeconds"] + p["etaSeconds"]
    if p.get("maxIterations"):
        return p.get("iteration") or 0, p["maxIterations"]
    return 0, None


def watch(session, run: dict) -> dict:
    """Poll until the run ends, with a live bar; KeyboardInterrupt goes to the caller."""
    progress = session.out.progress(TextColumn("{task.fields[iter]}"), TextColumn("{task.fields[loss]}"),
                                    TextColumn("{task.fields[left]}"), unit_total=False)
    with progress:
        task = progress.add_task(f"run {run['id']} {run['status']}", total=None, **_fields(run))
        while run["status"] not in FINAL:
            time.sleep(POLL_SECONDS)
            run = session.api.get(run_path(run))  # 202 while it trains, 200 once it has ended
            completed, total = _position(run)
            progress.update(task, description=f"run {run['id']} {run['status']}", completed=completed,
                            total=total, **_fields(run))
    return run


def ask(session, question: str) -> str:
    """One line from stdin; '' when there is none (a pipeline) or on a second Ctrl+C."""
    session.out.stderr.print(question, end="", markup=False)
    try:
        line = sys.stdin.readline()
    except (KeyboardInterrupt, OSError, ValueError):
        line = ""
    if not line.endswith("\n"):  # no answer typed: end the question's line
        session.out.stderr.print()
    return line.strip().lower()


def follow(session, run: dict, model: str) -> int:
    """Watch the run to its end and answer with its result; Ctrl+C asks what to do with it."""
    try:
        run = watch(session, run)
    except KeyboardInterrupt:
        session.out.stderr.print()
        answer = ask(session, f"Cancel training run {run['id']}? [y = cancel it, N = leave it running] ")
        if answer in ("y", "yes"):
            try:
                session.api.post(run_path(run) + "/cancel")
                session.out.note("canceling (the server stops the run within seconds)...")
            except ApiError as exc:
                if exc.status != 409:  # 409: it ended while the question was asked
                    raise
            try:
                run = watch(session, session.api.get(run_path(run)))
            except KeyboardInterrupt:
                pass
        else:
            session.out.note(f"run {run['id']} keeps training on the server; follow it with "
                             f"`{shell('odconnect', 'runs', 'show', model, run['id'], '--wait')}`, "
                             f"stop it with `{shell('odconnect', 'runs', 'cancel', model, run['id'])}`")
            run = session.api.get(run_path(run))
        session.out.result({"run": run, "interrupted": True}, lambda: session.out.line(
            f"Run {run['id']}: {run['status']}" + (f" ({run['reason']})" if run.get("reason") else "")))
        return Exit.INTERRUPTED
    return report(session, run)


def report(session, run: dict) -> int:
    if run["status"] != "succeeded":
        session.out.result({"run": run, "version": None}, lambda: session.out.line(
            f"Training run {run['id']} {run['status']}: {run.get('reason') or 'no reason given'}"))
        return Exit.TRAINING_FAILED
    version = session.api.get(f"/models/{run['modelId']}/versions/{run['version']}")
    session.out.result({"run": run, "version": version}, lambda: show_version(session.out, version))
    return Exit.OK


def show_version(out, version: dict) -> None:
    """The result of a version: score, AP/AP50/AP75, and per label AP50, precision and recall."""
    m = version.get("metrics") or {}
    score = version.get("performanceScore")
    out.line(f"Version {version['number']}: performance score {'-' if score is None else f'{score:.1f}'} "
             f"(AP50 in %), {version.get('iterations')} iterations in {clock(version.get('durationSeconds'))}, "
             f"evaluated on {m.get('evalImages', '?')} images"
             + (f", weights of iteration {m['keptIteration']}" if m.get("keptIteration") is not None else ""))
    rows = [("all", percent(m.get("ap")), percent(m.get("ap50")), percent(m.get("ap75")),
             percent(m.get("precision")), percent(m.get("recall")), "", "")]
    for name, lm in sorted((m.get("perLabel") or {}).items()):
        rows.append((name, "", percent(lm.get("ap50")), "", percent(lm.get("precision")),
                     percent(lm.get("recall")), lm.get("images"), lm.get("boxes")))
    out.table(["label", "AP", "AP50", "AP75", "precision", "recall", "images", "boxes"], rows,
              caption="in %; precision and recall at probability 0.5, IoU 0.5")
    for advice in m.get("advice") or []:
        out.line(f"advice: {advice}")


def train(session, args):
    body = {k: v for k, v in {
        "preset": args.preset, "budgetMinutes": args.budget, "maxIterations": args.max_iterations,
        "seed": args.seed, "weights": args.weights, "evaluationDatasetId": args.evaluation_dataset,
        "baseVersion": args.base_version}.items() if v is not None}
    if args.warm_start:
        body["warmStart"] = True
    run = session.api.post(f"/models/{seg(args.model)}/train", json=body)
    if not args.wait:
        session.out.result(run, lambda: session.out.line(
            f"Training run {run['id']} {run['status']}; follow it with "
            f"`{shell('odconnect', 'runs', 'show', args.model, run['id'], '--wait')}`"))
        return Exit.OK
    session.out.note(f"training run {run['id']} {run['status']} (Ctrl+C to cancel it or leave it running)")
    return follow(session, run, args.model)


def runs_list(session, args):
    runs = session.api.get(f"/models/{seg(args.model)}/runs")
    numbers = session.version_numbers(args.model) if runs else {}
    session.out.result(runs, lambda: session.out.table(
        ["run", "status", "trigger", "version", "created (UTC)", "finished", "reason"],
        [(r["id"], r["status"], r["trigger"], numbers.get(r.get("versionId")), when(r["created"]),
          when(r.get("finished")), r.get("reason")) for r in runs]))


def runs_show(session, args):
    run = session.api.get(f"/models/{seg(args.model)}/runs/{args.run}")
    if args.wait:
        return follow(session, run, args.model)

    def human():
        fields = _fields(run)
        session.out.line(f"Run {run['id']}: {run['status']}, {fields['iter']}, {fields['loss']}"
                         + (f", {fields['left']}" if fields["left"] else "")
                         + (f"; version {run['version']}" if run.get("version") else "")
                         + (f"; {run['reason']}" if run.get("reason") else ""))

    session.out.result(run, human)


def runs_cancel(session, args):
    run = session.api.post(f"/models/{seg(args.model)}/runs/{args.run}/cancel")
    session.out.result(run, lambda: session.out.line(f"Cancel requested for run {run['id']} ({run['status']})."))


def register(sub) -> None:
    p = command(sub, "train", train, "train a new version; --wait follows it with a live progress bar",
                """
                odconnect train cutlery --preset fast --budget 5 --wait
                odconnect train cutlery --base-version 2 --warm-start --json   # prints the queued run
                """,
                description="Starts a training run (the server checks the data first). With --wait it shows "
                            "iteration, loss and time left, and at the end the version's score, AP, AP50, "
                            "AP75 and per-label AP50, precision and recall; Ctrl+C asks whether to cancel the "
                            "run or leave it running.")
    p.add_argument("model", help="model id or name")
    p.add_argument("--preset", help="training preset: fast, balanced, scratch, accurate (GET /presets)")
    p.add_argument("--budget", type=float, metavar="MINUTES", help="time budget in minutes")
    p.add_argument("--max-iterations", type=int, help="stop after this many iterations")
    p.add_argument("--seed", type=int, help="random seed (same seed and data, same version)")
    p.add_argument("--weights", help="pretrained weights file on the server (odconnect weights add)")
    p.add_argument("--evaluation-dataset", type=int, metavar="ID", help="evaluate on this dataset")
    p.add_argument("--base-version", help="take the settings of this version (number, published, lastTrained)")
    p.add_argument("--warm-start", action="store_true", help="start from the base version's weights")
    p.add_argument("--wait", action="store_true", help="follow the run to its end and show the result")

    group = command(sub, "runs", None, "list, follow and cancel training runs",
                    "odconnect runs show cutlery 3 --wait")
    runs = group.add_subparsers(dest="action", required=True, metavar="{list,show,cancel}")
    p = command(runs, "list", runs_list, "list a model's training runs", "odconnect runs list cutlery")
    p.add_argument("model", help="model id or name")
    p = command(runs, "show", runs_show, "show a run; --wait follows it to its end",
                "odconnect runs show cutlery 3 --wait")
    p.add_argument("model", help="model id or name")
    p.add_argument("run", type=int, help="run id")
    p.add_argument("--wait", action="store_true", help="follow the run to its end and show the result")
    p = command(runs, "cancel", runs_cancel, "cancel a queued or training run", "odconnect runs cancel cutlery 3")
    p.add_argument("model", help="model id or name")
    p.add_argument("run", type=int, help="run id")
