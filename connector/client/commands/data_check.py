"""`odconnect data-check`: the server's check before training, as tables; the exit code says
whether training can start (0) or not (8), so a pipeline can stop before it trains."""
from __future__ import annotations

from ..exitcodes import Exit
from .base import command, seg


def data_check(session, args):
    params = {"datasetId": args.dataset} if args.dataset is not None else None
    check = session.api.get(f"/models/{seg(args.model)}/data-check", params=params)

    def human():
        out = session.out
        out.line(f"{check['images']} images, {check['imagesWithBoxes']} with boxes, {check['boxes']} boxes"
                 + (f" ({check['unapprovedBoxes']} suggested boxes wait for approval)" if check["unapprovedBoxes"] else ""))
        out.table(["label", "images", "boxes"], [(t["name"], t["images"], t["boxes"]) for t in check["labels"]])
        if check["warnings"]:
            out.table(["severity", "label", "problem"],
                      [(w["severity"], w.get("label"), w["message"]) for w in check["warnings"]])
        out.line("Training can start." if check["canTrain"] else "Training cannot start: fix the blocking problems.")

    session.out.result(check, human)
    return Exit.OK if check["canTrain"] else Exit.DATA_NOT_READY


def register(sub) -> None:
    p = command(sub, "data-check", data_check, "check a model's training data (exit 8 when training cannot start)",
                "odconnect data-check cutlery && odconnect train cutlery --wait")
    p.add_argument("model", help="model id or name")
    p.add_argument("--dataset", type=int, help="check one dataset instead of all training datasets")
